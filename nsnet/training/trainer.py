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
S=224, too much to hold a real dataset in memory) and read back batch by batch; bf16
autocast, frame chunks and augmentation are in :mod:`.modules`.

Every step of ``--batch-size`` videos per process accumulates gradients; the optimiser
steps every ``--grad-accum`` of them (global batch: batch size x accumulation x processes).
The learning rate follows a cosine schedule per stage, stepped once per epoch.

The same command runs under ``torchrun`` with DistributedDataParallel (gloo on CPU, nccl
on GPU) and a DistributedSampler; only rank 0 logs (:mod:`nsnet.distributed`). Progress
lines, the validation metric and the best checkpoint are :mod:`.monitor`'s; the resumable
state (what it holds, when it is written, what ``--resume`` may change) is :mod:`.state`'s.
Ground-truth segments are never read here.
"""
from __future__ import annotations

import json
import logging
import math
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from ..config import ConfigError
from ..data.features import build_feature_set, load_records, map_labels, write_skipped
from ..inference import CheckpointError, Pipeline, resolve_device
from ..models.recognizer import class_probs
from ..models.sampler import SamplerHeads
from ..progress import show_bar
from .. import distributed as dist_utils
from .config import TrainConfig
from .losses import NSNetLoss
from .modules import (Inputs, Previews, RecognizerModule, SamplerModule, augment_clips, autocast, load_previews,
                      on_device)
from .monitor import StepLog, Validator
from .pseudo_labels import teacher_confidences
from .state import StateWriter, check_resume, read_state

__all__ = ["Trainer", "TrainResult", "train", "run", "train_recognizer", "teacher_pseudo_labels", "train_sampler",
           "load_previews", "Previews"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- optimisation
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


def _cosine(opt: torch.optim.Optimizer, epochs: int, done: int):
    """The stage's cosine schedule, moved past the ``done`` epochs already run: exactly the
    learning rates a run started with these settings would have reached."""
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    with warnings.catch_warnings():  # stepping the schedule before the optimiser is intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(done):
            sched.step()
    return sched


def _load_optimizer(opt: torch.optim.Optimizer, saved: dict, cfg: TrainConfig) -> None:
    """The saved moments and step counts, with this run's learning rates and weight decay."""
    bases = [g["lr"] for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, base in zip(opt.param_groups, bases):
        group["lr"] = group["initial_lr"] = base
        group["weight_decay"] = cfg.weight_decay


class Trainer:
    """One optimisation stage over per-video tensors, with resume, validation and DDP."""

    def __init__(self, cfg: TrainConfig, pipe: Pipeline, info: dist_utils.DistInfo,
                 validator: Validator | None = None) -> None:
        self.cfg, self.pipe, self.info, self.validator = cfg, pipe, info, validator
        self.history: dict[str, list[float]] = {"recognizer": [], "sampler": []}
        self.writer = StateWriter(cfg, info.is_main)

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.info.enabled:
            return module
        ids = [self.pipe.device.index or 0] if self.pipe.device.type == "cuda" else None
        # a trainable backbone keeps its own (unused) classifier: let DDP skip it
        tuned = any(p.requires_grad for n, p in module.named_parameters() if "backbone" in n.split("."))
        return DDP(module, device_ids=ids, find_unused_parameters=tuned)

    def fit(self, stage: str, module: nn.Module, n: int, epochs: int,
            step_loss: Callable[[nn.Module, Tensor], Tensor], resume: dict | None) -> None:
        """Train ``module`` for ``epochs`` over ``n`` videos; ``step_loss(module, idx)`` is the mean
        loss of the videos ``idx``. Resumes from ``resume`` when it is this stage's state."""
        cfg, info, device = self.cfg, self.info, self.pipe.device
        opt = torch.optim.AdamW(_param_groups(module, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        start, skip, partial = 0, 0, (0.0, 0)
        if resume and resume.get("stage") == stage:
            _load_optimizer(opt, resume["optim"], cfg)
            start, skip = int(resume["epoch"]), int(resume.get("step", 0))
            partial = (float(resume.get("loss_sum", 0.0)), int(resume.get("loss_batches", 0))) if skip else partial
            history = resume.get("history", [])
            history = history if isinstance(history, dict) else {stage: history}
            self.history.update({k: list(v) for k, v in history.items()})
            if self.validator is not None:
                self.validator.load_state_dict(resume.get("validation"))
            if resume.get("rng") is not None:
                torch.set_rng_state(resume["rng"])
            if resume.get("cuda_rng") is not None and device.type == "cuda":
                torch.cuda.set_rng_state(resume["cuda_rng"], device)
        sched = _cosine(opt, epochs, start)
        wrapped = self._wrap(module)
        sampler = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=False)
        steps = math.ceil(math.ceil(len(sampler) / cfg.batch_size) / cfg.grad_accum)  # per epoch
        meter = StepLog(stage, epochs, steps, start * steps + skip, cfg.log_every, info.world_size, info.is_main)
        bar = tqdm(range(start, epochs), desc=f"train {stage}", disable=not show_bar(cfg.progress, info.is_main),
                   initial=start, total=epochs, unit="epoch")
        for epoch in bar:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
            batches = list(order.split(cfg.batch_size))
            groups = [batches[i:i + cfg.grad_accum] for i in range(0, len(batches), cfg.grad_accum)]
            wrapped.train()
            total = torch.tensor(partial[0], dtype=torch.float64, device=device)
            count = partial[1]
            for g, group in enumerate(groups):
                if g < skip:  # taken before the state this run resumed from was written
                    continue
                opt.zero_grad(set_to_none=True)
                for j, idx in enumerate(group):
                    last = j == len(group) - 1
                    with nullcontext() if last or not info.enabled else wrapped.no_sync():
                        loss = step_loss(wrapped, idx)
                        (loss / len(group)).backward()
                    total += loss.detach().double()
                    count += 1
                    meter.add(loss, len(idx))
                opt.step()
                meter.step(epoch + 1, opt.param_groups[0]["lr"])
                if g < len(groups) - 1 and self.writer.due(epoch_end=False):
                    self.writer.write(self._state(stage, epoch, g + 1, opt, float(total), count))
            skip, partial = 0, (0.0, 0)
            sched.step()
            mean = dist_utils.all_reduce_mean(float(total) / max(1, count), info, device)
            self.history[stage].append(mean)
            bar.set_postfix(loss=f"{mean:.4f}")
            text = f"loss {mean:.4f}"
            validated = self.validator is not None and self.validator.due(epoch + 1, epochs)
            if validated:
                if cfg.finetune:  # DDP leaves BatchNorm statistics per rank: validate with rank 0's
                    dist_utils.broadcast_buffers(module, info)
                text += ", " + self.validator.validate(stage, epoch + 1)
            if validated or epoch % 10 == 0 or epoch == epochs - 1:
                log.info("%s epoch %d/%d: %s", stage, epoch + 1, epochs, text)
            if epoch < epochs - 1 and self.writer.due(epoch_end=True):
                self.writer.write(self._state(stage, epoch + 1, 0, opt, 0.0, 0))
        dist_utils.broadcast_buffers(module, info)  # the last step's BatchNorm statistics: rank 0's
        if start < epochs:  # the end of a stage is always saved
            self.writer.write(self._state(stage, epochs, 0, opt, 0.0, 0))
        module.eval()

    def _state(self, stage: str, epoch: int, step: int, opt, loss_sum: float, loss_batches: int) -> dict[str, Any]:
        """What :func:`~nsnet.training.state.read_state` reads back (see :mod:`.state`)."""
        device = self.pipe.device
        return {"stage": stage, "epoch": epoch, "step": step, "loss_sum": loss_sum, "loss_batches": loss_batches,
                "model": self.pipe.trained_state_dict(), "optim": opt.state_dict(),
                "history": {k: list(v) for k, v in self.history.items()},
                "validation": self.validator.state_dict() if self.validator is not None else None,
                "config": json.dumps(self.cfg.to_dict()), "world_size": self.info.world_size,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


# --------------------------------------------------------------------------- stages
def _batch(inputs: Inputs, idx: Tensor, cfg: TrainConfig, device: torch.device, train: bool = True) -> Tensor:
    """The inputs of videos ``idx`` on the device; fine-tuning previews augmented when asked."""
    x = inputs[idx.to(device) if isinstance(inputs, Tensor) else idx].to(device)
    return augment_clips(x) if train and cfg.augment and x.dtype == torch.uint8 else x


def train_recognizer(trainer: Trainer, inputs: Inputs, labels: Tensor, resume: dict | None) -> None:
    """Stage 1: per-frame cross-entropy of the recognizer (head, or backbone + head on previews),
    every frame carrying the video label."""
    cfg, device = trainer.cfg, trainer.pipe.device
    inputs, labels = on_device(inputs, device), labels.to(device)

    def step(module: nn.Module, idx: Tensor) -> Tensor:
        x = _batch(inputs, idx, cfg, device)                    # (B, T, Dr) features or (B, T, S, S, 3) uint8
        y = labels[idx.to(device)].repeat_interleave(x.shape[1])  # (B*T,)
        with autocast(device, cfg.amp and cfg.finetune):
            logits = module(x.flatten(0, 1))
        return nn.functional.cross_entropy(logits.float(), y)

    trainer.fit("recognizer", RecognizerModule(trainer.pipe.recognizer, cfg.frame_chunk), len(inputs),
                cfg.recognizer_epochs, step, resume)


@torch.no_grad()
def teacher_pseudo_labels(pipe: Pipeline, inputs: Inputs, labels: Tensor, cfg: TrainConfig) -> Tensor:
    """Stage 2: (N, T) frame targets from the recognizer's ground-truth-class confidence (eval mode)."""
    pipe.recognizer.eval()
    teacher, inputs, n = RecognizerModule(pipe.recognizer, cfg.frame_chunk), on_device(inputs, pipe.device), len(inputs)
    step = n if isinstance(inputs, Tensor) else cfg.batch_size  # features in one go, previews in batches
    probs = []
    for b in range(0, n, step):
        x = _batch(inputs, torch.arange(b, min(n, b + step)), cfg, pipe.device, train=False)  # (B, T, ...)
        with autocast(pipe.device, cfg.amp and cfg.finetune):
            logits = teacher(x.flatten(0, 1))                            # (B*T, C)
        probs.append(class_probs(logits).view(x.shape[0], x.shape[1], -1))
    conf = teacher_confidences(torch.cat(probs), labels.to(pipe.device))  # (N, T, C) -> (N, T)
    return cfg.pseudo_labels(conf).cpu()


def train_sampler(trainer: Trainer, inputs: Inputs, labels: Tensor, pseudo: Tensor, resume: dict | None) -> None:
    """Stage 3: frame BCE against pseudo labels + salient / non-salient video losses
    (heads on features, or backbone + heads on previews)."""
    cfg, device = trainer.cfg, trainer.pipe.device
    inputs, labels, pseudo = on_device(inputs, device), labels.to(device), pseudo.to(device)
    criterion = NSNetLoss(cfg.alpha, cfg.beta, cfg.non_mode)

    def step(module: nn.Module, idx: Tensor) -> Tensor:
        x = _batch(inputs, idx, cfg, device)
        with autocast(device, cfg.amp and cfg.finetune):
            outs = module(x)                                    # from (B, T, Ds) or (B, T, S, S, 3)
        idx = idx.to(device)
        return criterion(SamplerHeads(*(t.float() for t in outs)), pseudo[idx], labels[idx]).total

    trainer.fit("sampler", SamplerModule(trainer.pipe.sampler, cfg.frame_chunk), len(inputs), cfg.sampler_epochs,
                step, resume)


# --------------------------------------------------------------------------- driver
def _load_weights(state: dict, cfg: TrainConfig, pipe: Pipeline) -> None:
    try:
        pipe.load_trained_state(state["model"])
    except CheckpointError as exc:
        raise ConfigError(f"{cfg.state_path} was saved by a different model ({exc}); "
                          "use the settings it was trained with, or run without --resume") from None


def _validation_records(cfg: TrainConfig, class_names: list[str], info: dist_utils.DistInfo) -> list:
    """The validation videos (by the training classes), or [] with one line saying why there are none.

    The file was read (and its problems reported) for the training subset already: this read is quiet;
    its unreadable videos are reported with the training ones.
    """
    if not cfg.validates:
        return []
    try:
        records, _ = load_records(cfg.data, cfg.val_subset, video_root=cfg.video_root, max_videos=cfg.max_videos,
                                  quiet=True)
    except FileNotFoundError as exc:
        if info.is_main:
            log.warning("no validation (%s): no validation metric, no best checkpoint", exc)
        return []
    records, unknown = map_labels(records, class_names)
    if unknown and info.is_main:
        log.warning("validation: %d videos have labels the training classes lack, left out: %s",
                    sum(unknown.values()), unknown)
    return records


def _inputs(cfg: TrainConfig, pipe: Pipeline, info: dist_utils.DistInfo, records, what: str):
    """(recognizer inputs, sampler inputs, labels, skipped) of ``records``."""
    if cfg.finetune:  # both stages read the same previews; each network resizes them itself
        previews, labels, skipped = load_previews(records, pipe.class_names, cfg, info, what=f"{what} previews")
        return previews, previews, labels, skipped
    fs = build_feature_set(records, pipe.class_names, pipe, cfg.pipeline.num_frames, cfg.cache_path, dist=info,
                           progress=cfg.progress, log_every=cfg.log_every, report_skipped=False,
                           what=f"{what} features")
    return fs.recognizer, fs.sampler, fs.labels, fs.skipped


@dataclass
class TrainResult:
    pipeline: Pipeline
    history: dict[str, list[float]]   # mean loss per epoch, per stage
    num_videos: int
    seconds: float
    checkpoint: Path | None = None    # written by ``run`` on the main process
    skipped: dict[str, tuple[str, str]] = field(default_factory=dict)  # unreadable videos: id -> (path, reason)
    validation: dict[str, Any] | None = None  # Validator.summary() plus "history"; None without validation


def train(cfg: TrainConfig, info: dist_utils.DistInfo | None = None) -> TrainResult:
    """Run the three stages and return the trained pipeline.

    Writes the caches, the training state, ``<out>.skipped.tsv`` (unreadable videos) and
    ``<out>.best`` (best validation epoch), not the final checkpoint (``run`` does).
    """
    device = resolve_device(cfg.device)
    info = info or dist_utils.DistInfo()
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    started = time.perf_counter()
    state = read_state(cfg)
    if state is not None:
        check_resume(state, cfg, info.world_size)  # before any data is read or model built
    records, class_names = load_records(cfg.data, cfg.subset, video_root=cfg.video_root, max_videos=cfg.max_videos,
                                        quiet=not info.is_main)  # the readers' warnings once, from rank 0
    val_records = _validation_records(cfg, class_names, info)
    torch.manual_seed(cfg.seed)  # heads start identically on every rank
    pipe = Pipeline.build(cfg.pipeline_config(class_names), device=device)
    if state is not None:
        _load_weights(state, cfg, pipe)
    rec_in, sam_in, labels, skipped = _inputs(cfg, pipe, info, records, "training")
    validator, total = None, len(records)
    if val_records:
        v_rec, v_sam, v_labels, v_skipped = _inputs(cfg, pipe, info, val_records, "validation")
        validator = Validator(cfg, pipe, info, v_rec, v_sam, v_labels, resumed=state is not None)
        skipped, total = {**skipped, **v_skipped}, total + len(val_records)
    if info.is_main:
        if not write_skipped(cfg.skipped_path, skipped, total):
            cfg.skipped_path.unlink(missing_ok=True)  # an earlier run's list
        log.info("training on %d videos (%d classes)%s; %d process(es), %d videos per optimiser step", len(labels),
                 len(class_names), f", validating on {len(validator)} ({cfg.val_subset})" if validator else "",
                 info.world_size, cfg.batch_size * cfg.grad_accum * info.world_size)
    trainer = Trainer(cfg, pipe, info, validator)
    if cfg.pipeline.recognizer.head == "linear" and not (state and state["stage"] == "sampler"):
        train_recognizer(trainer, rec_in, labels, state)
    pseudo = teacher_pseudo_labels(pipe, rec_in, labels, cfg)
    log.info("pseudo labels (%s): %.1f%% of frames salient", cfg.pseudo_rule, 100 * float(pseudo.mean()))
    if validator is not None:
        validator.forget_recognizer()
    train_sampler(trainer, sam_in, labels, pseudo, state)
    pipe.config.trained = True
    validation = dict(validator.summary(), history=validator.history) if validator is not None else None
    return TrainResult(pipe, trainer.history, len(labels), time.perf_counter() - started, skipped=skipped,
                       validation=validation)


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
            if result.validation is not None:
                pipe.config.meta["validation"] = {k: v for k, v in result.validation.items() if k != "history"}
            result.checkpoint = pipe.save_pretrained(out)
            cfg.state_path.unlink(missing_ok=True)
            if result.validation and result.validation["best"] is not None:
                log.info("best validation %s %.1f at sampler epoch %d: %s", result.validation["metric"],
                         100 * result.validation["best"], result.validation["best_epoch"], cfg.best_path)
        dist_utils.barrier(info)
        return result
    finally:
        dist_utils.shutdown(info)
