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
S=224, too much to hold a real dataset in memory) and read back batch by batch;
autocast (``--precision``; fp16 with loss scaling), frame chunks, augmentation and the
prefetching of previews are in :mod:`.modules`. Cached features stay in host memory and
move to the device a batch at a time; pseudo-labelling runs in chunks of videos.

Every step of ``--batch-size`` videos per process accumulates gradients; the optimiser
steps every ``--grad-accum`` of them (global batch: batch size x accumulation x processes).
The learning rate follows a cosine schedule per stage, stepped once per epoch.

The same command runs under ``torchrun`` with DistributedDataParallel (gloo on CPU, nccl
on GPU) and trains as one process at the same global batch and seed would, to float
tolerance (sample order, loss weights, random draws: :mod:`.batches`, which also says what
differs with ``--finetune``); only rank 0 logs (:mod:`nsnet.distributed`). Progress
lines, the validation metric and the best checkpoint are :mod:`.monitor`'s; the resumable
state (what it holds, when it is written, what ``--resume`` may change) is :mod:`.state`'s.
Ground-truth segments are never read here.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
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
                      to_device)
from .batches import KeyedDropout, epoch_batches, video_keys
from .interrupt import StopRequest, TrainingInterrupted
from .monitor import StepLog, Validator
from .pseudo_labels import health_warning, teacher_confidences
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
        self.stop = StopRequest()  # Ctrl-C: save the state at the next step, then TrainingInterrupted

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.info.enabled:
            return module
        ids = [self.pipe.device.index or 0] if self.pipe.device.type == "cuda" else None
        # a trainable backbone keeps its own (unused) classifier: let DDP skip it
        tuned = any(p.requires_grad for n, p in module.named_parameters() if "backbone" in n.split("."))
        return DDP(module, device_ids=ids, find_unused_parameters=tuned)

    def fit(self, *args, **kwargs) -> None:
        """:meth:`_fit`, where a first Ctrl-C (one process) saves the state after the current
        optimiser step and raises :class:`~.interrupt.TrainingInterrupted`."""
        with self.stop.deferred(enabled=not self.info.enabled):
            self._fit(*args, **kwargs)

    def _stop_if_asked(self, stage: str, epoch: int, step: int) -> None:
        """After a state write point: stop when Ctrl-C asked for it (the state was just written)."""
        if not self.stop.requested:
            return
        saved = None
        if self.writer.enabled:  # positions as the log counts them (see .state)
            saved = f"{epoch} {stage} epoch" + ("s" if epoch != 1 else "")
            if step:
                saved += f" and {step} step" + ("s" if step != 1 else "") + f" of epoch {epoch + 1}"
        raise TrainingInterrupted(self.cfg.state_path, saved)

    def _fit(self, stage: str, module: nn.Module, n: int, epochs: int,
             step_loss: Callable[[nn.Module, Tensor, list[int]], Tensor], resume: dict | None,
             inputs: Inputs | None = None) -> None:
        """Train ``module`` for ``epochs`` over ``n`` videos; ``step_loss(module, idx, keys)`` is the mean
        loss of the videos ``idx`` (``keys``: their random draws, :func:`.batches.video_keys`).
        Resumes from ``resume`` when it is this stage's state.
        ``inputs`` that can :meth:`~.modules.Previews.prefetch` are told each epoch's batches."""
        cfg, info, device = self.cfg, self.info, self.pipe.device
        opt = torch.optim.AdamW(_param_groups(module, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # fp16 autocast (fine-tuning only: heads on cached features run in float32) needs loss scaling
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.finetune and self.pipe.amp_dtype is torch.float16)
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
            if resume.get("scaler") and scaler.is_enabled():
                scaler.load_state_dict(resume["scaler"])
        sched = _cosine(opt, epochs, start)
        wrapped = self._wrap(module)
        dropout = KeyedDropout(module)  # N processes train as one: see .batches
        steps = math.ceil(math.ceil(n / (cfg.batch_size * info.world_size)) / cfg.grad_accum)  # per epoch
        meter = StepLog(stage, epochs, steps, start * steps + skip, cfg.log_every, info.world_size, info.is_main)
        bar = tqdm(range(start, epochs), desc=f"train {stage}", disable=not show_bar(cfg.progress, info.is_main),
                   initial=start, total=epochs, unit="epoch")
        for epoch in bar:
            groups = epoch_batches(n, epoch, cfg.seed, cfg.batch_size, cfg.grad_accum, info.rank, info.world_size)
            if hasattr(inputs, "prefetch"):
                inputs.prefetch([idx for group in groups[skip:] for idx, _ in group])
            wrapped.train()
            total = torch.tensor(partial[0], dtype=torch.float64, device=device)
            count = partial[1]
            for g, group in enumerate(groups):
                if g < skip:  # taken before the state this run resumed from was written
                    continue
                opt.zero_grad(set_to_none=True)
                for j, (idx, weight) in enumerate(group):  # weight: see .batches (0: a stand-in pass)
                    last = j == len(group) - 1
                    keys = video_keys(cfg.seed, stage, epoch, idx)
                    with nullcontext() if last or not info.enabled else wrapped.no_sync(), dropout.keyed(keys):
                        loss = step_loss(wrapped, idx, keys)
                        scaler.scale(loss * weight).backward()
                    if weight:
                        total += loss.detach().double() * len(idx)
                        count += len(idx)
                        meter.add(loss, len(idx))
                scaler.step(opt)
                scaler.update()
                meter.step(epoch + 1, opt.param_groups[0]["lr"])
                if g < len(groups) - 1 and (self.writer.due(epoch_end=False) or self.stop.requested):
                    self.writer.write(self._state(stage, epoch, g + 1, opt, float(total), count, scaler))
                    self._stop_if_asked(stage, epoch, g + 1)
            skip, partial = 0, (0.0, 0)
            with warnings.catch_warnings():  # fp16: GradScaler skips the steps whose gradients overflowed
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                sched.step()
            # the mean loss of the epoch's videos (a mid-epoch resume counts rank 0's replayed part for every rank)
            mean = dist_utils.all_reduce_mean(float(total), info, device) / max(
                1e-12, dist_utils.all_reduce_mean(float(count), info, device))
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
            if epoch < epochs - 1 and (self.writer.due(epoch_end=True) or self.stop.requested):
                self.writer.write(self._state(stage, epoch + 1, 0, opt, 0.0, 0, scaler))
                self._stop_if_asked(stage, epoch + 1, 0)
        dist_utils.broadcast_buffers(module, info)  # the last step's BatchNorm statistics: rank 0's
        if start < epochs:  # the end of a stage is always saved
            self.writer.write(self._state(stage, epochs, 0, opt, 0.0, 0, scaler))
        self._stop_if_asked(stage, epochs, 0)
        module.eval()

    def _state(self, stage: str, epoch: int, step: int, opt, loss_sum: float, loss_batches: int,
               scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
        """What :func:`~nsnet.training.state.read_state` reads back (see :mod:`.state`)."""
        device = self.pipe.device
        return {"stage": stage, "epoch": epoch, "step": step, "loss_sum": loss_sum, "loss_batches": loss_batches,
                "model": self.pipe.trained_state_dict(), "optim": opt.state_dict(),
                "history": {k: list(v) for k, v in self.history.items()},
                "validation": self.validator.state_dict() if self.validator is not None else None,
                "config": json.dumps(self.cfg.to_dict()), "world_size": self.info.world_size,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None}


# --------------------------------------------------------------------------- stages
def _batch(inputs: Inputs, idx: Tensor, cfg: TrainConfig, device: torch.device, train: bool = True,
           keys: list[int] | None = None) -> Tensor:
    """The inputs of videos ``idx`` (gathered in host memory) on the device; fine-tuning previews
    augmented when asked (each video by its key, :func:`.batches.video_keys`)."""
    x = to_device(inputs[idx.cpu()], device)
    return augment_clips(x, keys=keys) if train and cfg.augment and x.dtype == torch.uint8 else x


def train_recognizer(trainer: Trainer, inputs: Inputs, labels: Tensor, resume: dict | None) -> None:
    """Stage 1: per-frame cross-entropy of the recognizer (head, or backbone + head on previews),
    every frame carrying the video label."""
    cfg, device = trainer.cfg, trainer.pipe.device
    labels, amp = labels.to(device), trainer.pipe.amp_dtype if cfg.finetune else None

    def step(module: nn.Module, idx: Tensor, keys: list[int]) -> Tensor:
        x = _batch(inputs, idx, cfg, device, keys=keys)  # (B, T, Dr) features or (B, T, S, S, 3) uint8
        y = labels[idx.to(device)].repeat_interleave(x.shape[1])  # (B*T,)
        with autocast(device, amp):
            logits = module(x.flatten(0, 1))
        return nn.functional.cross_entropy(logits.float(), y)

    trainer.fit("recognizer", RecognizerModule(trainer.pipe.recognizer, cfg.frame_chunk), len(inputs),
                cfg.recognizer_epochs, step, resume, inputs)


#: frames per pseudo-labelling pass over cached features (previews go ``batch_size`` videos at a time)
PSEUDO_LABEL_FRAMES = 16384


@torch.no_grad()
def teacher_pseudo_labels(pipe: Pipeline, inputs: Inputs, labels: Tensor, cfg: TrainConfig) -> Tensor:
    """Stage 2: (N, T) frame targets from the recognizer's ground-truth-class confidence (eval mode),
    in chunks of videos (only the (N, T) confidences are kept, never (N, T, C) probabilities)."""
    pipe.recognizer.eval()
    teacher, n = RecognizerModule(pipe.recognizer, cfg.frame_chunk), len(inputs)
    amp = pipe.amp_dtype if cfg.finetune else None
    features = isinstance(inputs, Tensor)
    step = max(1, PSEUDO_LABEL_FRAMES // max(1, inputs.shape[1])) if features else cfg.batch_size
    batches = [torch.arange(b, min(n, b + step)) for b in range(0, n, step)]
    if hasattr(inputs, "prefetch"):
        inputs.prefetch(batches)
    conf = []
    for idx in batches:
        x = _batch(inputs, idx, cfg, pipe.device, train=False)  # (B, T, ...)
        with autocast(pipe.device, amp):
            logits = teacher(x.flatten(0, 1))                            # (B*T, C)
        probs = class_probs(logits).view(x.shape[0], x.shape[1], -1)    # (B, T, C)
        conf.append(teacher_confidences(probs, labels[idx].to(pipe.device)).cpu())  # (B, T)
    return cfg.pseudo_labels(torch.cat(conf))  # per-video rules: the same as on all videos at once


def train_sampler(trainer: Trainer, inputs: Inputs, labels: Tensor, pseudo: Tensor, resume: dict | None) -> None:
    """Stage 3: frame BCE against pseudo labels + salient / non-salient video losses
    (heads on features, or backbone + heads on previews)."""
    cfg, device = trainer.cfg, trainer.pipe.device
    labels, pseudo = labels.to(device), pseudo.to(device)
    criterion = NSNetLoss(cfg.alpha, cfg.beta, cfg.non_mode)
    amp = trainer.pipe.amp_dtype if cfg.finetune else None

    def step(module: nn.Module, idx: Tensor, keys: list[int]) -> Tensor:
        x = _batch(inputs, idx, cfg, device, keys=keys)
        with autocast(device, amp):
            outs = module(x)                                    # from (B, T, Ds) or (B, T, S, S, 3)
        idx = idx.to(device)
        return criterion(SamplerHeads(*(t.float() for t in outs)), pseudo[idx], labels[idx]).total

    trainer.fit("sampler", SamplerModule(trainer.pipe.sampler, cfg.frame_chunk), len(inputs), cfg.sampler_epochs,
                step, resume, inputs)


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
        previews, labels, skipped = load_previews(records, pipe.class_names, cfg, info, what=f"{what} previews",
                                                  workers=preview_workers(cfg, pipe.device))
        return previews, previews, labels, skipped
    fs = build_feature_set(records, pipe.class_names, pipe, cfg.pipeline.num_frames, cfg.cache_path, dist=info,
                           progress=cfg.progress, log_every=cfg.log_every, report_skipped=False,
                           what=f"{what} features")
    return fs.recognizer, fs.sampler, fs.labels, fs.skipped


def preview_workers(cfg: TrainConfig, device: torch.device) -> int:
    """``cfg.preview_workers``, else on CUDA the cores left after this process (per local rank), up to 4; on CPU 0."""
    if cfg.preview_workers is not None:
        return cfg.preview_workers
    if device.type != "cuda":
        return 0
    cores = (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(4, cores - 1))


@dataclass
class TrainResult:
    pipeline: Pipeline
    history: dict[str, list[float]]   # mean loss per epoch, per stage
    num_videos: int
    seconds: float
    checkpoint: Path | None = None    # written by ``run`` on the main process
    skipped: dict[str, tuple[str, str]] = field(default_factory=dict)  # unreadable videos: id -> (path, reason)
    validation: dict[str, Any] | None = None  # Validator.summary() plus "history"; None without validation
    pseudo_labels: dict[str, Any] | None = None  # {"rule", "salient_fraction", "healthy"} (pseudo_label_summary)


def pseudo_label_summary(pseudo: Tensor, cfg: TrainConfig, info: dist_utils.DistInfo) -> dict[str, Any]:
    """``{"rule", "salient_fraction", "healthy"}`` of the (N, T) pseudo labels; logs the fraction
    (main process), as a WARNING with the likely cause and the fix when it is degenerate."""
    fraction = float(pseudo.float().mean())
    problem = health_warning(fraction, cfg.pseudo_labels)
    if info.is_main:
        if problem:
            log.warning("%s", problem)
        else:
            log.info("pseudo labels (%s): %.1f%% of frames salient", cfg.pseudo_rule, 100 * fraction)
    return {"rule": cfg.pseudo_rule, "salient_fraction": round(fraction, 6), "healthy": problem is None}


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
    pipe = Pipeline.build(cfg.pipeline_config(class_names), device=device, precision=cfg.compute_precision)
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
    health = pseudo_label_summary(pseudo, cfg, info)
    if validator is not None:
        validator.forget_recognizer()
    train_sampler(trainer, sam_in, labels, pseudo, state)
    pipe.config.trained = True
    validation = dict(validator.summary(), history=validator.history) if validator is not None else None
    return TrainResult(pipe, trainer.history, len(labels), time.perf_counter() - started, skipped=skipped,
                       validation=validation, pseudo_labels=health)


def summary_line(result: TrainResult) -> str:
    """One line: videos, time, the final losses and the share of salient pseudo labels."""
    losses = ", ".join(f"{k} {v[-1]:.4f}" for k, v in result.history.items() if v)
    text = f"trained on {result.num_videos} videos in {result.seconds:.1f} s; final loss {losses or 'none'}"
    pl = result.pseudo_labels
    if pl is not None:
        text += (f"; pseudo labels ({pl['rule']}) {100 * pl['salient_fraction']:.1f}% of frames salient"
                 + ("" if pl["healthy"] else " (degenerate: see the warning above)"))
    return text


def run(cfg: TrainConfig) -> TrainResult:
    """Train (joining the process group under torchrun) and write the checkpoint ``cfg.out``."""
    info = dist_utils.init(resolve_device(cfg.device))  # collectives wait as long as analyze's (ranks' shards differ)
    try:
        result = train(cfg, info)
        out = Path(cfg.out)
        if info.is_main:
            pipe = result.pipeline
            pipe.config.meta = {"train": cfg.to_dict(), "num_train_videos": result.num_videos,
                                "final_loss": {k: (v[-1] if v else None) for k, v in result.history.items()},
                                "train_seconds": round(result.seconds, 1), "world_size": info.world_size,
                                "pseudo_labels": result.pseudo_labels}
            if result.validation is not None:
                pipe.config.meta["validation"] = {k: v for k, v in result.validation.items() if k != "history"}
            result.checkpoint = pipe.save_pretrained(out)
            cfg.state_path.unlink(missing_ok=True)
            log.info("%s", summary_line(result))
            if result.validation and result.validation["best"] is not None:
                log.info("best validation %s %.1f at sampler epoch %d: %s", result.validation["metric"],
                         100 * result.validation["best"], result.validation["best_epoch"], cfg.best_path)
        dist_utils.barrier(info)
        return result
    finally:
        dist_utils.shutdown(info)
