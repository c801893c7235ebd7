"""``python -m nsnet train``: the three-stage NSNet recipe (NSNET.md section 5).

1. Recognizer: a linear head on frozen backbone features of frames sampled across each
   training video (TSN-style previews), trained with only the video label.
2. Pseudo labels: the frozen recognizer (teacher) scores every preview frame; its
   confidence in the ground-truth class becomes frame targets (``nsnet.pseudo_labels``).
3. Sampler: temporal module + frame head + attention + C+1 classifier on frozen
   sampler features, with ``L_frame + alpha L_sal + beta L_non``.

Backbone features are cached on disk (frozen backbones), so epochs cost milliseconds.
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
    """Every knob of a training run; saved into the checkpoint's ``meta.train``."""

    data: str = ""                       # dataset folder or annotation file (see nsnet.data)
    video_root: str | None = None        # where the videos are, when not beside the annotations
    out: str = "runs/nsnet"              # checkpoint folder to write
    cache_dir: str | None = None         # feature cache (default: <out>/../.nsnet-cache)
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
    # optimisation
    recognizer_epochs: int = 40
    sampler_epochs: int = 60
    batch_size: int = 32                 # videos per step (per process)
    lr: float = 2e-3
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
        return PipelineConfig(
            class_names=list(class_names),
            sampler=SamplerConfig(backbone=self.sampler_backbone, backbone_pretrained=self.backbones_pretrained,
                                  input_size=self.sampler_size, hidden_dim=self.hidden_dim,
                                  temporal_kernel=self.temporal_kernel, attention=self.attention),
            recognizer=RecognizerConfig(backbone=self.recognizer_backbone, head=self.recognizer_head,
                                        backbone_pretrained=self.backbones_pretrained,
                                        input_size=self.recognizer_size),
            num_frames=self.num_frames, k=self.k, lam=self.lam)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out).resolve().parent / ".nsnet-cache"

    @property
    def state_path(self) -> Path:
        out = Path(self.out)
        return out.with_name(out.name + ".train_state.pt")


# --------------------------------------------------------------------------- stages
class _HeadsModule(nn.Module):
    """``forward`` = the sampler heads on features, returning a tuple (DDP-friendly)."""

    def __init__(self, sampler: nn.Module) -> None:
        super().__init__()
        self.sampler = sampler

    def forward(self, feats: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h = self.sampler.forward_head(feats)
        return h.frame_logits, h.attention, h.video_logits, h.nonsalient_logits


class _Trainer:
    """One optimisation stage over per-video tensors, with resume and DDP."""

    def __init__(self, cfg: TrainConfig, pipe: Pipeline, info: dist_utils.DistInfo) -> None:
        self.cfg, self.pipe, self.info = cfg, pipe, info
        self.history: dict[str, list[float]] = {"recognizer": [], "sampler": []}

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.info.enabled:
            return module
        ids = [self.pipe.device.index or 0] if self.pipe.device.type == "cuda" else None
        return DDP(module, device_ids=ids)

    def fit(self, stage: str, module: nn.Module, n: int, epochs: int,
            step_loss: Callable[[nn.Module, Tensor], Tensor], resume: dict | None) -> None:
        cfg, info, device = self.cfg, self.info, self.pipe.device
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
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


def train_recognizer(trainer: _Trainer, feats: Tensor, labels: Tensor, resume: dict | None) -> None:
    """Stage 1: per-frame cross-entropy of the recognizer head, every frame carrying the video label."""
    rec, device = trainer.pipe.recognizer, trainer.pipe.device
    feats, labels = feats.to(device), labels.to(device)
    t = feats.shape[1]

    def step(head: nn.Module, idx: Tensor) -> Tensor:
        x = feats[idx.to(device)].flatten(0, 1)                 # (B*T, Dr)
        y = labels[idx.to(device)].repeat_interleave(t)         # (B*T,)
        return nn.functional.cross_entropy(head(x), y)

    trainer.fit("recognizer", rec.head, feats.shape[0], trainer.cfg.recognizer_epochs, step, resume)


@torch.no_grad()
def teacher_pseudo_labels(pipe: Pipeline, rec_feats: Tensor, labels: Tensor, cfg: TrainConfig) -> Tensor:
    """Stage 2: (N, T) frame targets from the frozen recognizer's ground-truth-class confidence."""
    pipe.recognizer.eval()
    n, t, _ = rec_feats.shape
    logits = pipe.recognizer.forward_head(rec_feats.to(pipe.device).flatten(0, 1))
    probs = torch.softmax(logits.float(), -1).view(n, t, -1)                      # (N, T, C)
    conf = teacher_confidences(probs, labels.to(pipe.device))                   # (N, T)
    return make_pseudo_labels(conf, cfg.pseudo_rule, gamma=cfg.gamma, rho=cfg.rho, tau=cfg.tau).cpu()


def train_sampler(trainer: _Trainer, feats: Tensor, labels: Tensor, pseudo: Tensor, resume: dict | None) -> None:
    """Stage 3: frame BCE against pseudo labels + salient / non-salient video losses."""
    cfg, device = trainer.cfg, trainer.pipe.device
    feats, labels, pseudo = feats.to(device), labels.to(device), pseudo.to(device)
    criterion = NSNetLoss(cfg.alpha, cfg.beta, cfg.non_mode)

    def step(heads_module: nn.Module, idx: Tensor) -> Tensor:
        idx = idx.to(device)
        heads = SamplerHeads(*heads_module(feats[idx]))
        return criterion(heads, pseudo[idx], labels[idx]).total

    trainer.fit("sampler", _HeadsModule(trainer.pipe.sampler), feats.shape[0], cfg.sampler_epochs, step, resume)


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
    fs = build_feature_set(records, class_names, pipe, cfg.num_frames, cfg.cache_path, dist=info,
                           progress=cfg.progress)
    trainer = _Trainer(cfg, pipe, info)
    resume = _load_resume(cfg, pipe)
    if cfg.recognizer_head == "linear" and not (resume and resume["stage"] == "sampler"):
        train_recognizer(trainer, fs.recognizer, fs.labels, resume)
    pseudo = teacher_pseudo_labels(pipe, fs.recognizer, fs.labels, cfg)
    log.info("pseudo labels (%s): %.1f%% of frames salient", cfg.pseudo_rule, 100 * float(pseudo.mean()))
    train_sampler(trainer, fs.sampler, fs.labels, pseudo, resume)
    pipe.config.trained = True
    return TrainResult(pipe, trainer.history, len(fs), time.perf_counter() - started)


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
