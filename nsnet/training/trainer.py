"""The three-stage NSNet training recipe (docs/method.md, "Training"); ``nsnet train`` runs it.

1. Recognizer: a linear head on frozen backbone features of frames sampled across each
   training video (TSN-style previews), trained with only the video label.
2. Pseudo labels: the frozen recognizer (teacher) scores every preview frame; its
   confidence in the ground-truth class becomes frame targets (``nsnet.pseudo_labels``).
3. Sampler: temporal module + frame head + attention + C+1 classifier on frozen
   sampler features, with ``L_frame + alpha L_sal + beta L_non``.

Backbone features are cached on disk (frozen backbones), so epochs cost milliseconds.

``--finetune`` (meant for GPUs; slow but working on a CPU) trains the backbones too: stage 1
trains recognizer backbone + head, stage 2 takes pseudo labels from that fine-tuned
recognizer, stage 3 trains sampler backbone + heads; backbones learn at ``--finetune-lr``,
heads at ``--lr``, and the checkpoint stores the backbones. Its inputs are the decoded
uint8 previews (T, S, S, 3) at the recognizer size S, centre-cropped, kept in the on-disk
preview cache of ``nsnet.data.VideoDataset`` (T*S*S*3 bytes a video: 2.4 MB at T=16,
S=224, too much to hold a real dataset in memory) and read back batch by batch.

The same command runs under ``torchrun --nproc_per_node N`` with DistributedDataParallel
(gloo on CPU, nccl on GPU) and a DistributedSampler. Training state (weights, optimiser,
epoch) is saved after every epoch next to the output and ``--resume`` picks it up; it is
loaded with ``weights_only=True``. Ground-truth segments are never read here.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from ..config import ConfigError
from ..data.dataset import VideoDataset
from ..data.features import build_feature_set, load_records, write_skipped
from ..errors import one_line
from ..inference import CheckpointError, Pipeline, resolve_device
from ..models.recognizer import class_probs
from ..models.sampler import SamplerHeads
from .. import distributed as dist_utils
from .config import TrainConfig
from .losses import NSNetLoss
from .pseudo_labels import teacher_confidences

__all__ = ["Trainer", "TrainResult", "train", "run", "train_recognizer", "teacher_pseudo_labels", "train_sampler",
           "load_previews", "Previews"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- inputs
class Previews:
    """Decoded previews of the readable training videos, for fine-tuning.

    ``previews[idx]`` with a (B,) index tensor gives uint8 (B, T, S, S, 3) on the CPU, read
    from the preview cache: it stands in for indexing cached features (N, T, D).
    """

    def __init__(self, dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices   # a VideoDataset and its readable records

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: Tensor) -> Tensor:
        return torch.stack([self.dataset.load(self.indices[i])["frames"] for i in idx.tolist()])


Inputs = Tensor | Previews   # per-video stage inputs: cached features (N, T, D) or previews (N, T, S, S, 3)


def load_previews(records, class_names: list[str], cfg: TrainConfig,
                  info: dist_utils.DistInfo) -> tuple[Previews, Tensor]:
    """Decode every record's previews into the cache (each rank its shard); (previews, labels (N,)).

    Unreadable videos are logged and left out, as with cached features.
    """
    ds = VideoDataset(records, class_names, cfg.pipeline.num_frames, cfg.pipeline.recognizer.input_size,
                      cfg.cache_path)
    for i in tqdm(range(info.rank, len(ds), info.world_size), desc="previews", unit="video",
                  disable=not (cfg.progress and info.is_main)):
        ds[i]  # decodes into the cache; a failure is recorded in ds.failures
    dist_utils.barrier(info)

    def readable(i: int) -> bool:  # cached by some rank, else (a failure elsewhere) try once more here
        key = ds.preview_key(i)
        return key is not None and (key in ds.cache or ds[i] is not None)

    keep = [i for i, r in enumerate(ds.records) if r.video_id not in ds.failures and readable(i)]
    ds.report()
    if not keep:
        raise FileNotFoundError("none of the videos could be read")
    labels = torch.tensor([ds.records[i].label_index for i in keep], dtype=torch.long)
    return Previews(ds, keep), labels


def _embed(backbone: nn.Module, frames: Tensor, size: int) -> Tensor:
    """uint8 previews (..., H, W, 3) -> backbone features (..., D), with gradients when training."""
    lead = frames.shape[:-3]
    x = backbone.preprocess(frames.reshape(-1, *frames.shape[-3:]), size)  # (N, 3, S, S)
    if x.is_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    return backbone.forward_features(x).float().view(*lead, -1)            # (..., D)


# --------------------------------------------------------------------------- stages
class _RecognizerModule(nn.Module):
    """``forward`` = recognizer logits (N, C) of features (N, Dr) or of previews (N, S, S, 3).

    One module owning backbone and head, so DDP sees every parameter being trained.
    """

    def __init__(self, recognizer: nn.Module) -> None:
        super().__init__()
        self.recognizer = recognizer

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:  # fine-tuning: run the backbone on the frames
            x = _embed(self.recognizer.backbone, x, self.recognizer.cfg.input_size)  # (N, Dr)
        return self.recognizer.forward_head(x)


class _SamplerModule(nn.Module):
    """``forward`` = the sampler heads on features (B, T, Ds) or previews (B, T, S, S, 3),
    returning a tuple (DDP-friendly)."""

    def __init__(self, sampler: nn.Module) -> None:
        super().__init__()
        self.sampler = sampler

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if x.dtype == torch.uint8:  # fine-tuning: run the backbone on the frames
            x = _embed(self.sampler.backbone, x, self.sampler.cfg.input_size)  # (B, T, Ds)
        h = self.sampler.forward_head(x)
        return h.frame_logits, h.attention, h.video_logits, h.nonsalient_logits


def _param_groups(module: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Trainable parameters: heads at ``lr``, then (when fine-tuning) backbones at ``finetune_lr``."""
    heads, backbones = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (backbones if "backbone" in name.split(".") else heads).append(p)
    groups = [{"params": heads, "lr": cfg.lr}]
    if backbones:
        groups.append({"params": backbones, "lr": cfg.finetune_lr})
    return groups


class Trainer:
    """One optimisation stage over per-video tensors, with resume and DDP."""

    def __init__(self, cfg: TrainConfig, pipe: Pipeline, info: dist_utils.DistInfo) -> None:
        self.cfg, self.pipe, self.info = cfg, pipe, info
        self.history: dict[str, list[float]] = {"recognizer": [], "sampler": []}

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.info.enabled:
            return module
        ids = [self.pipe.device.index or 0] if self.pipe.device.type == "cuda" else None
        # a trainable backbone keeps its own (unused) classifier: let DDP skip it
        tuned = any(p.requires_grad for n, p in module.named_parameters() if "backbone" in n.split("."))
        return DDP(module, device_ids=ids, find_unused_parameters=tuned)

    def fit(self, stage: str, module: nn.Module, n: int, epochs: int,
            step_loss: Callable[[nn.Module, Tensor], Tensor], resume: dict | None) -> None:
        cfg, info, device = self.cfg, self.info, self.pipe.device
        opt = torch.optim.AdamW(_param_groups(module, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
        start = 0
        if resume and resume.get("stage") == stage:
            opt.load_state_dict(resume["optim"])
            sched.load_state_dict(resume["sched"])
            start = int(resume["epoch"]) + 1
            self.history[stage] = list(resume.get("history", []))
            log.info("resuming %s stage at epoch %d", stage, start)
        wrapped = self._wrap(module)
        sampler = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=False)
        bar = tqdm(range(start, epochs), desc=f"train {stage}", disable=not (cfg.progress and info.is_main),
                   initial=start, total=epochs, unit="epoch")
        for epoch in bar:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
            wrapped.train()
            total, steps = 0.0, 0
            for b in range(0, len(order), cfg.batch_size):
                idx = order[b:b + cfg.batch_size]
                loss = step_loss(wrapped, idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, steps = total + float(loss.detach()), steps + 1
            sched.step()
            mean = dist_utils.all_reduce_mean(total / max(1, steps), info, device)
            self.history[stage].append(mean)
            bar.set_postfix(loss=f"{mean:.4f}")
            if epoch % 10 == 0 or epoch == epochs - 1:
                log.info("%s epoch %d/%d loss %.4f", stage, epoch + 1, epochs, mean)
            if info.is_main and cfg.save_state:
                self._save_state(stage, epoch, opt, sched)
        if info.enabled:  # the last step's BatchNorm statistics are per rank: every rank takes rank 0's
            for buf in module.buffers():
                torch.distributed.broadcast(buf, src=0)
        module.eval()

    def _save_state(self, stage: str, epoch: int, opt, sched) -> None:
        state = {"stage": stage, "epoch": epoch, "model": self.pipe.trained_state_dict(),
                 "optim": opt.state_dict(), "sched": sched.state_dict(), "history": self.history[stage],
                 "config": json.dumps(self.cfg.to_dict())}
        path = self.cfg.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)


def _on(inputs: Inputs, device: torch.device) -> Inputs:
    """Cached features move to the device once; previews are read (and moved) per batch."""
    return inputs.to(device) if isinstance(inputs, Tensor) else inputs


def train_recognizer(trainer: Trainer, inputs: Inputs, labels: Tensor, resume: dict | None) -> None:
    """Stage 1: per-frame cross-entropy of the recognizer (head, or backbone + head on previews),
    every frame carrying the video label."""
    device = trainer.pipe.device
    inputs, labels = _on(inputs, device), labels.to(device)

    def step(module: nn.Module, idx: Tensor) -> Tensor:
        idx = idx.to(device)
        x = inputs[idx].to(device)                         # (B, T, Dr) features or (B, T, S, S, 3) uint8
        y = labels[idx].repeat_interleave(x.shape[1])      # (B*T,)
        return nn.functional.cross_entropy(module(x.flatten(0, 1)), y)

    trainer.fit("recognizer", _RecognizerModule(trainer.pipe.recognizer), len(inputs),
                trainer.cfg.recognizer_epochs, step, resume)


@torch.no_grad()
def teacher_pseudo_labels(pipe: Pipeline, inputs: Inputs, labels: Tensor, cfg: TrainConfig) -> Tensor:
    """Stage 2: (N, T) frame targets from the recognizer's ground-truth-class confidence (eval mode)."""
    pipe.recognizer.eval()
    teacher, inputs, n = _RecognizerModule(pipe.recognizer), _on(inputs, pipe.device), len(inputs)
    step = n if isinstance(inputs, Tensor) else cfg.batch_size  # features in one go, previews in batches
    probs = []
    for b in range(0, n, step):
        x = inputs[torch.arange(b, min(n, b + step), device=pipe.device)].to(pipe.device)  # (B, T, ...)
        logits = teacher(x.flatten(0, 1))                                # (B*T, C)
        probs.append(class_probs(logits).view(x.shape[0], x.shape[1], -1))
    conf = teacher_confidences(torch.cat(probs), labels.to(pipe.device))  # (N, T, C) -> (N, T)
    return cfg.pseudo_labels(conf).cpu()


def train_sampler(trainer: Trainer, inputs: Inputs, labels: Tensor, pseudo: Tensor, resume: dict | None) -> None:
    """Stage 3: frame BCE against pseudo labels + salient / non-salient video losses
    (heads on features, or backbone + heads on previews)."""
    cfg, device = trainer.cfg, trainer.pipe.device
    inputs, labels, pseudo = _on(inputs, device), labels.to(device), pseudo.to(device)
    criterion = NSNetLoss(cfg.alpha, cfg.beta, cfg.non_mode)

    def step(module: nn.Module, idx: Tensor) -> Tensor:
        idx = idx.to(device)
        heads = SamplerHeads(*module(inputs[idx].to(device)))  # from (B, T, Ds) or (B, T, S, S, 3)
        return criterion(heads, pseudo[idx], labels[idx]).total

    trainer.fit("sampler", _SamplerModule(trainer.pipe.sampler), len(inputs), cfg.sampler_epochs, step, resume)


# --------------------------------------------------------------------------- driver
def _load_resume(cfg: TrainConfig, pipe: Pipeline) -> dict | None:
    if not cfg.resume or not cfg.state_path.is_file():
        if cfg.resume:
            log.info("no training state at %s: starting from scratch", cfg.state_path)
        return None
    try:
        state = torch.load(cfg.state_path, map_location="cpu", weights_only=True)
        stage, epoch, model = state["stage"], int(state["epoch"]), state["model"]
    except Exception as exc:  # truncated or foreign file: pickle, zip and key errors alike
        raise ConfigError(f"{cfg.state_path}: unreadable training state ({one_line(exc, 120)}); "
                          "delete it or run without --resume") from None
    try:
        pipe.load_trained_state(model)
    except CheckpointError as exc:
        raise ConfigError(f"{cfg.state_path} was saved by a different model ({exc}); "
                          "use the settings it was trained with, or run without --resume") from None
    log.info("loaded training state from %s (stage %s, epoch %d)", cfg.state_path, stage, epoch)
    return state


@dataclass
class TrainResult:
    pipeline: Pipeline
    history: dict[str, list[float]]   # mean loss per epoch, per stage
    num_videos: int
    seconds: float
    checkpoint: Path | None = None    # written by ``run`` on the main process
    skipped: dict[str, tuple[str, str]] = field(default_factory=dict)  # unreadable videos: id -> (path, reason)


def train(cfg: TrainConfig, info: dist_utils.DistInfo | None = None) -> TrainResult:
    """Run the three stages and return the trained pipeline (nothing is written but caches and state)."""
    device = resolve_device(cfg.device)
    info = info or dist_utils.DistInfo()
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    started = time.perf_counter()
    records, class_names = load_records(cfg.data, cfg.subset, video_root=cfg.video_root, max_videos=cfg.max_videos)
    torch.manual_seed(cfg.seed)  # heads start identically on every rank
    pipe = Pipeline.build(cfg.pipeline_config(class_names), device=device)
    skipped: dict[str, tuple[str, str]] = {}
    if cfg.finetune:  # both stages read the same previews; each network resizes them itself
        rec_in, labels = load_previews(records, class_names, cfg, info)
        sam_in = rec_in
        paths = {r.video_id: str(r.path) for r in records}
        skipped = {vid: (paths.get(vid, "?"), why) for vid, why in rec_in.dataset.failures.items()}
    else:
        fs = build_feature_set(records, class_names, pipe, cfg.pipeline.num_frames, cfg.cache_path, dist=info,
                               progress=cfg.progress)
        rec_in, sam_in, labels, skipped = fs.recognizer, fs.sampler, fs.labels, fs.skipped
    trainer = Trainer(cfg, pipe, info)
    resume = _load_resume(cfg, pipe)
    if cfg.pipeline.recognizer.head == "linear" and not (resume and resume["stage"] == "sampler"):
        train_recognizer(trainer, rec_in, labels, resume)
    pseudo = teacher_pseudo_labels(pipe, rec_in, labels, cfg)
    log.info("pseudo labels (%s): %.1f%% of frames salient", cfg.pseudo_rule, 100 * float(pseudo.mean()))
    train_sampler(trainer, sam_in, labels, pseudo, resume)
    pipe.config.trained = True
    return TrainResult(pipe, trainer.history, len(labels), time.perf_counter() - started, skipped=skipped)


def run(cfg: TrainConfig) -> TrainResult:
    """Train (joining the process group under torchrun) and write the checkpoint ``cfg.out``."""
    info = dist_utils.init(resolve_device(cfg.device))
    try:
        result = train(cfg, info)
        out = Path(cfg.out)
        if info.is_main:
            pipe = result.pipeline
            pipe.config.meta = {"train": cfg.to_dict(), "num_train_videos": result.num_videos,
                                "final_loss": {k: (v[-1] if v else None) for k, v in result.history.items()},
                                "train_seconds": round(result.seconds, 1), "world_size": info.world_size}
            result.checkpoint = pipe.save_pretrained(out)
            write_skipped(out.with_name(out.name + ".skipped.tsv"), result.skipped)
            cfg.state_path.unlink(missing_ok=True)
        dist_utils.barrier(info)
        return result
    finally:
        dist_utils.shutdown(info)
