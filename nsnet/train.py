"""``python -m nsnet train``: the three-stage NSNet recipe (NSNET.md section 5).

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

import argparse
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from . import distributed as dist_utils
from .config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from .losses import NSNetLoss
from .models.sampler import SamplerHeads
from .pipeline import Pipeline, resolve_device
from .pseudo_labels import RULES, make_pseudo_labels, teacher_confidences

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Every knob of a training run; saved into the checkpoint's ``meta.train``.

    ``finetune=True`` also trains both backbones (at ``finetune_lr``; heads use ``lr``) on
    decoded previews instead of cached features, and the checkpoint then stores them.
    """

    data: str = ""                       # dataset folder or annotation file (see nsnet.data)
    video_root: str | None = None        # where the videos are, when not beside the annotations
    out: str = "runs/nsnet"              # checkpoint folder to write
    cache_dir: str | None = None         # feature cache (default: <data>/.nsnet-cache, shared with eval)
    subset: str = "training"
    max_videos: int | None = None
    # pipeline
    num_frames: int = 16
    k: int = 4
    lam: float = 0.5
    sampler_backbone: str = "efficientnet_lite0"
    sampler_size: int = 96               # 96 px keeps NSNet-K under 40% of dense-T GFLOPs (README)
    recognizer_backbone: str = "efficientnet_lite2"
    recognizer_size: int = 224
    recognizer_head: str = "linear"
    attention: str = "sigmoid"
    hidden_dim: int = 256
    temporal_kernel: int = 3
    backbones_pretrained: bool = True
    finetune: bool = False               # also train the backbones, on decoded previews (GPU use; see above)
    # optimisation
    recognizer_epochs: int = 40
    sampler_epochs: int = 60
    batch_size: int = 32                 # videos per step (per process)
    lr: float = 2e-3                     # heads
    finetune_lr: float = 1e-4            # backbones, with --finetune
    weight_decay: float = 1e-4
    seed: int = 0
    # pseudo labels and losses
    pseudo_rule: str = "threshold"       # best of the four rules on the benchmark (README, Ablations)
    gamma: float = 0.8
    rho: float = 0.25
    tau: float = 0.5
    alpha: float = 1.0
    beta: float = 1.0
    non_mode: str = "uniform"            # the background-class variant inverts the attention (README)
    # runtime
    device: str = "auto"
    resume: bool = False
    save_state: bool = True              # write the resumable state after every epoch
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pseudo_rule not in RULES:
            raise ConfigError(f"pseudo_rule must be one of {', '.join(RULES)}, got {self.pseudo_rule!r}")
        if self.non_mode not in ("background", "uniform"):
            raise ConfigError(f"non_mode must be 'background' or 'uniform', got {self.non_mode!r}")
        PipelineConfig.validate(self.num_frames, self.k, self.lam)

    def pipeline_config(self, class_names: list[str]) -> PipelineConfig:
        # a recognizer with the backbone's own head is not trained, so its backbone stays frozen
        tune_recognizer = self.finetune and self.recognizer_head == "linear"
        return PipelineConfig(
            class_names=list(class_names),
            sampler=SamplerConfig(backbone=self.sampler_backbone, backbone_pretrained=self.backbones_pretrained,
                                  freeze_backbone=not self.finetune,
                                  input_size=self.sampler_size, hidden_dim=self.hidden_dim,
                                  temporal_kernel=self.temporal_kernel, attention=self.attention),
            recognizer=RecognizerConfig(backbone=self.recognizer_backbone, head=self.recognizer_head,
                                        backbone_pretrained=self.backbones_pretrained,
                                        freeze_backbone=not tune_recognizer,
                                        input_size=self.recognizer_size),
            num_frames=self.num_frames, k=self.k, lam=self.lam)

    @property
    def cache_path(self) -> Path:
        """Feature / preview cache; by default beside the data, shared with ``eval``."""
        from .features import default_cache_dir

        return Path(self.cache_dir) if self.cache_dir else default_cache_dir(self.data)

    @property
    def state_path(self) -> Path:
        out = Path(self.out)
        return out.with_name(out.name + ".train_state.pt")


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
    from .data.dataset import VideoDataset

    ds = VideoDataset(records, class_names, cfg.num_frames, cfg.recognizer_size, cfg.cache_path)
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


class _Trainer:
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
                 "config": json.dumps(dataclasses.asdict(self.cfg))}
        path = self.cfg.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)


def _on(inputs: Inputs, device: torch.device) -> Inputs:
    """Cached features move to the device once; previews are read (and moved) per batch."""
    return inputs.to(device) if isinstance(inputs, Tensor) else inputs


def train_recognizer(trainer: _Trainer, inputs: Inputs, labels: Tensor, resume: dict | None) -> None:
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
        probs.append(torch.softmax(logits.float(), -1).view(x.shape[0], x.shape[1], -1))
    conf = teacher_confidences(torch.cat(probs), labels.to(pipe.device))  # (N, T, C) -> (N, T)
    return make_pseudo_labels(conf, cfg.pseudo_rule, gamma=cfg.gamma, rho=cfg.rho, tau=cfg.tau).cpu()


def train_sampler(trainer: _Trainer, inputs: Inputs, labels: Tensor, pseudo: Tensor, resume: dict | None) -> None:
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
    state = torch.load(cfg.state_path, map_location="cpu", weights_only=True)
    pipe.load_trained_state(state["model"])
    log.info("loaded training state from %s (stage %s, epoch %d)", cfg.state_path, state["stage"], state["epoch"])
    return state


@dataclass
class TrainResult:
    pipeline: Pipeline
    history: dict[str, list[float]]   # mean loss per epoch, per stage
    num_videos: int
    seconds: float
    checkpoint: Path | None = None    # written by ``run`` on the main process


def train(cfg: TrainConfig, info: dist_utils.DistInfo | None = None) -> TrainResult:
    """Run the three stages and return the trained pipeline (nothing is written but caches and state)."""
    from .features import build_feature_set, load_records

    device = resolve_device(cfg.device)
    info = info or dist_utils.DistInfo()
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    started = time.perf_counter()
    records, class_names = load_records(cfg.data, cfg.subset, video_root=cfg.video_root, max_videos=cfg.max_videos)
    torch.manual_seed(cfg.seed)  # heads start identically on every rank
    pipe = Pipeline.build(cfg.pipeline_config(class_names), device=device)
    if cfg.finetune:  # both stages read the same previews; each network resizes them itself
        rec_in, labels = load_previews(records, class_names, cfg, info)
        sam_in = rec_in
    else:
        fs = build_feature_set(records, class_names, pipe, cfg.num_frames, cfg.cache_path, dist=info,
                               progress=cfg.progress)
        rec_in, sam_in, labels = fs.recognizer, fs.sampler, fs.labels
    trainer = _Trainer(cfg, pipe, info)
    resume = _load_resume(cfg, pipe)
    if cfg.recognizer_head == "linear" and not (resume and resume["stage"] == "sampler"):
        train_recognizer(trainer, rec_in, labels, resume)
    pseudo = teacher_pseudo_labels(pipe, rec_in, labels, cfg)
    log.info("pseudo labels (%s): %.1f%% of frames salient", cfg.pseudo_rule, 100 * float(pseudo.mean()))
    train_sampler(trainer, sam_in, labels, pseudo, resume)
    pipe.config.trained = True
    return TrainResult(pipe, trainer.history, len(labels), time.perf_counter() - started)


def run(cfg: TrainConfig) -> TrainResult:
    """Train (joining the process group under torchrun) and write the checkpoint ``cfg.out``."""
    info = dist_utils.init(resolve_device(cfg.device))
    try:
        result = train(cfg, info)
        out = Path(cfg.out)
        if info.is_main:
            pipe = result.pipeline
            pipe.config.meta = {"train": dataclasses.asdict(cfg), "num_train_videos": result.num_videos,
                                "final_loss": {k: (v[-1] if v else None) for k, v in result.history.items()},
                                "train_seconds": round(result.seconds, 1), "world_size": info.world_size}
            result.checkpoint = pipe.save_pretrained(out)
            cfg.state_path.unlink(missing_ok=True)
        dist_utils.barrier(info)
        return result
    finally:
        dist_utils.shutdown(info)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nsnet train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file with TrainConfig fields; flags given on the command line override it")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("extra",):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = int if isinstance(default, int) else float if isinstance(default, float) else str
            if f.name == "max_videos":
                kind = int
            p.add_argument(flag, dest=f.name, type=kind, default=None, help=f"(default: {default})")
    return p


def config_from_args(argv: list[str] | None) -> TrainConfig:
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        try:
            values.update(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read training config {args.config}: {exc}") from None
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    cfg = TrainConfig(**values)
    if not cfg.data:
        raise ConfigError("--data is required (a dataset folder or annotation file)")
    return cfg


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = config_from_args(argv)
        result = run(cfg)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if result.checkpoint:
        log.info("checkpoint written to %s", result.checkpoint)
    return 0
