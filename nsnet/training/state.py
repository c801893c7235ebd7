"""The resumable training state: what it holds, when it is written, what a resume may change.

The state (``<out>.train_state.pt``, loaded with ``weights_only=True``) holds the trained
weights, the optimiser, the loss and validation history, the RNG, the best validation
result so far and the run's ``TrainConfig`` as JSON. Positions are counted the way the log
counts them: ``epoch`` is the number of epochs of ``stage`` that are finished (the log's
"epoch 157/3000" once it is done), ``step`` the optimiser steps already taken in the next
epoch (0 at an epoch boundary; more after a mid-epoch write).

**When it is written** (:class:`StateWriter`, main process only, atomically: temp file,
fsync, rename): at the end of every stage; at the end of an epoch when at least
``state_min_interval_s`` seconds passed since the last write; after an optimiser step
inside an epoch when ``state_every_min`` minutes passed (long fine-tuning epochs); and when
Ctrl-C stops a one-process run, after the optimiser step in progress (:mod:`.interrupt`).

**What a resume may change** (:func:`check_resume`, before any data is read):

* the model, the data and what is learned from them (:data:`REFUSED`: every ``pipeline``
  field, ``data``, ``subset``, ``max_videos``, ``finetune``, ``seed``; and once the state is
  in the sampler stage also its objective, :data:`OBJECTIVE`): refused, with a one-line diff;
* the schedule (:data:`SCHEDULE`: epochs, lr, batch size, ...): applied, said in one log
  line. The remaining epochs follow the cosine schedule of the *new* settings, exactly as if
  the run had been started with them (lr of epoch e of E: ``lr (1 + cos(pi e / E)) / 2``).
  An epoch count below the epochs the stage has reached is refused. A mid-epoch state
  whose batches cannot be replayed (batch size, accumulation or world size changed)
  restarts that epoch from its first batch;
* everything else (where files are, device, logging, validation and state cadence,
  ``frame_chunk``, ``amp``): applied silently.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError
from ..errors import one_line
from .config import TrainConfig

__all__ = ["STATE_VERSION", "REFUSED", "OBJECTIVE", "SCHEDULE", "read_state", "check_resume", "save_state",
           "StateWriter", "config_diff"]

log = logging.getLogger(__name__)

STATE_VERSION = 3  # 3: batches and loss sums of nsnet.training.batches (per video, one order for all ranks)
#: what the weights were trained for: a resume that changes one of these is refused ("pipeline.*" too)
REFUSED = ("data", "subset", "max_videos", "finetune", "seed")
#: the sampler stage's objective: refused once the state is in that stage (before, it was not used yet)
OBJECTIVE = ("pseudo_rule", "gamma", "rho", "tau", "alpha", "beta", "non_mode")
#: the schedule: a resume applies the new values and says how in one log line
SCHEDULE = ("recognizer_epochs", "sampler_epochs", "lr", "finetune_lr", "weight_decay", "batch_size", "grad_accum",
            "augment", "val_subset")
STAGES = ("recognizer", "sampler")


# --------------------------------------------------------------------------- reading and writing
def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_state(cfg: TrainConfig) -> dict[str, Any] | None:
    """The state to resume from (``None`` without ``--resume`` or without a state file).

    States of earlier versions (0-based ``epoch`` of the last finished epoch) are converted.
    """
    path = cfg.state_path
    if not cfg.resume:
        return None
    if not path.is_file():
        log.info("no training state at %s: starting from scratch", path)
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        stage, epoch, _ = state["stage"], int(state["epoch"]), state["model"]
    except Exception as exc:  # truncated or foreign file: pickle, zip and key errors alike
        raise ConfigError(f"{path}: unreadable training state ({one_line(exc, 120)}); "
                          "delete it or run without --resume") from None
    if stage not in STAGES:
        raise ConfigError(f"{path}: unknown training stage {stage!r}; delete it or run without --resume")
    if int(state.get("version", 1)) < 2:  # version 1: "epoch" was the 0-based index of the last finished epoch
        state["epoch"], state["step"] = epoch + 1, 0
    state.setdefault("step", 0)
    return state


# --------------------------------------------------------------------------- what may change
def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and key != "extra":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _same(key: str, old: Any, new: Any) -> bool:
    if key in ("data", "video_root") and old and new:
        return old == new or os.path.realpath(str(old)) == os.path.realpath(str(new))
    return old == new


def _show(value: Any) -> str:
    return value if isinstance(value, str) and value else json.dumps(value)


def config_diff(saved: dict[str, Any], cfg: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (saved value, current value)}`` of every setting that differs.

    A key the saved config lacks (an older version) counts as its default.
    """
    old = _flat(TrainConfig().to_dict())
    old.update(_flat(saved))
    new = _flat(cfg.to_dict())
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if not _same(k, old.get(k), new.get(k))}


def _epochs_key(stage: str) -> str:
    return f"{stage}_epochs"


def check_resume(state: dict[str, Any], cfg: TrainConfig, world_size: int) -> None:
    """Refuse a resume that changes the model, the data or (in the sampler stage) the objective;
    log one line saying where the run resumes and what it does with changed schedule settings.

    Sets ``state["step"] = 0`` when a mid-epoch state cannot be replayed batch for batch.
    """
    path, stage, done, step = cfg.state_path, state["stage"], int(state["epoch"]), int(state.get("step", 0))
    raw = state.get("config")
    if raw is None:
        log.warning("%s holds no config (an older state): the settings cannot be compared", path)
        diff: dict[str, tuple[Any, Any]] = {}
    else:
        try:
            saved = json.loads(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: unreadable config in the training state; delete it or run "
                              "without --resume") from None
        diff = config_diff(saved, cfg)
    refused = [k for k in diff if k in REFUSED or k.startswith("pipeline.") or (stage == "sampler" and k in OBJECTIVE)]
    if refused:
        what = ", ".join(f"{k} {_show(diff[k][0])} -> {_show(diff[k][1])}" for k in refused)
        raise ConfigError(f"cannot resume from {path}: {what} (resume with the saved settings, or run without "
                          "--resume to start over)")
    epochs = getattr(cfg, _epochs_key(stage))
    reached = done + (1 if step else 0)
    if epochs < reached:
        raise ConfigError(f"cannot resume from {path}: {_epochs_key(stage)} {epochs} is below the {reached} epochs "
                          f"the {stage} stage has reached (ask for at least {reached}, or run without --resume)")
    changes = [f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in diff.items() if k in SCHEDULE]
    notes = []
    if stage == "sampler" and "recognizer_epochs" in diff:
        notes.append("recognizer_epochs has no effect: the recognizer stage is finished")
    old_world = int(state.get("world_size", world_size))
    if old_world != world_size:
        changes.append(f"world size {old_world} -> {world_size}")
    older = int(state.get("version", 1)) < 3  # per-rank batches (DistributedSampler), loss sums per batch
    if step and (old_world != world_size or {"batch_size", "grad_accum"} & set(diff) or (older and world_size > 1)):
        notes.append(f"epoch {done + 1} restarts from its first batch (its batches cannot be replayed)")
        state["step"] = 0
    elif step and older:  # one process: the same batches; its loss sums become sums over videos
        state["loss_sum"] = float(state.get("loss_sum", 0.0)) * cfg.batch_size
        state["loss_batches"] = int(state.get("loss_batches", 0)) * cfg.batch_size
    if "val_subset" in diff:
        notes.append("the best validation result so far is forgotten (another subset)")
        state.pop("validation", None)
    if {"lr", "finetune_lr", _epochs_key(stage)} & set(diff):
        lr = cfg.lr * (1 + math.cos(math.pi * done / max(1, epochs))) / 2
        notes.append(f"the remaining epochs follow the cosine schedule of the new settings, as if the run had "
                     f"started with them (lr now {lr:.3g})")
    where = f"after epoch {done}" + (f", step {state['step']}" if state["step"] else "") + f" of {epochs}"
    text = f"resuming the {stage} stage {where} from {path}"
    if changes:
        text += "; changed: " + ", ".join(changes)
    if notes:
        text += "; " + "; ".join(notes)
    log.info("%s", text)


# --------------------------------------------------------------------------- when to write
class StateWriter:
    """Throttles the state writes (see the module docstring); only the main process writes."""

    def __init__(self, cfg: TrainConfig, enabled: bool) -> None:
        self.path, self.enabled = cfg.state_path, enabled and cfg.save_state
        self.every_s, self.min_interval_s = 60.0 * cfg.state_every_min, cfg.state_min_interval_s
        self.last = time.monotonic()
        self.writes = 0

    def due(self, *, epoch_end: bool) -> bool:
        """Whether to write now: at an epoch end after ``state_min_interval_s``, inside an epoch
        after ``state_every_min`` minutes since the last write."""
        if not self.enabled:
            return False
        return time.monotonic() - self.last >= (self.min_interval_s if epoch_end else self.every_s)

    def write(self, state: dict[str, Any]) -> None:
        if self.enabled:
            save_state(self.path, dict(state, version=STATE_VERSION))
            self.last, self.writes = time.monotonic(), self.writes + 1
            log.debug("wrote training state %s (%s, epoch %d, step %d)", self.path, state["stage"], state["epoch"],
                      state["step"])
