"""What a training run reports while it runs: progress lines, the validation metric, the best checkpoint.

* :class:`StepLog`: every ``log_every`` optimiser steps one line with the stage, epoch and
  step, the mean loss since the last line (main process), the learning rate, samples per
  second (all processes) and the stage's ETA. It is logging, not a bar: ``--no-progress``
  and non-terminal logs keep it.
* :class:`Validator`: every ``val_every`` epochs (and after the last) a metric on the
  ``val_subset`` videos, computed from the same inputs as training (cached features, or
  previews through the backbones when fine-tuning):

  - stage 1 (recognizer): **recognizer mAP**, the mean class probabilities over all T
    previews (dense-T), i.e. the teacher's quality; it is logged, not used to select;
  - stage 3 (sampler): **NSNet mAP@K**, the recognizer on the K frames the sampler picks
    at the config's ``lam`` (exactly ``nsnet eval``'s ``nsnet`` method). Whenever it beats
    every earlier sampler epoch (ties keep the earlier one), the pipeline is written to
    ``<out>.best`` (a checkpoint folder like ``<out>``; its ``meta.validation`` says which
    epoch and value). ``<out>`` itself stays the last epoch's.
"""
from __future__ import annotations

import logging
import math
import shutil
import time
from typing import Any

import torch
from torch import Tensor

from .. import distributed as dist_utils
from ..inference import Pipeline
from ..inference.methods import select, video_scores
from ..metrics import mean_average_precision
from ..models.recognizer import class_probs
from ..models.sampler import SamplerHeads
from ..progress import format_duration
from .config import TrainConfig
from .modules import Inputs, RecognizerModule, SamplerModule, autocast, to_device

__all__ = ["StepLog", "Validator"]

log = logging.getLogger(__name__)

#: videos per validation forward pass on cached features
_FEATURE_BATCH = 256


class StepLog:
    """One progress line every ``every`` optimiser steps (see the module docstring)."""

    def __init__(self, stage: str, epochs: int, steps_per_epoch: int, done: int, every: int, world_size: int,
                 enabled: bool) -> None:
        self.stage, self.epochs, self.total = stage, epochs, epochs * steps_per_epoch
        self.done = self.first = done
        self.every, self.world, self.enabled = every, world_size, enabled and every > 0
        self.start = self.last = time.perf_counter()
        self.loss: Tensor | float = 0.0
        self.batches = self.samples = 0

    def add(self, loss: Tensor, samples: int) -> None:
        """One forward pass (no device sync)."""
        if self.enabled:
            self.loss = self.loss + loss.detach().double()
            self.batches, self.samples = self.batches + 1, self.samples + samples

    def step(self, epoch: int, lr: float) -> None:
        """One optimiser step of epoch ``epoch`` (1-based)."""
        self.done += 1
        if not self.enabled or self.done % self.every:
            return
        now = time.perf_counter()
        rate = self.samples * self.world / max(now - self.last, 1e-9)
        per_step = (now - self.start) / max(1, self.done - self.first)
        loss = float(self.loss) / max(1, self.batches)
        log.info("%s epoch %d/%d step %d/%d: loss %.4f, lr %.3g, %.1f samples/s, ETA %s", self.stage, epoch,
                 self.epochs, self.done, self.total, loss, lr, rate, format_duration(per_step * (self.total - self.done)))
        self.loss, self.batches, self.samples, self.last = 0.0, 0, 0, now


class Validator:
    """The validation metric of each stage and the best checkpoint (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, pipe: Pipeline, info: dist_utils.DistInfo, recognizer_inputs: Inputs,
                 sampler_inputs: Inputs, labels: Tensor, resumed: bool = False) -> None:
        self.cfg, self.pipe, self.info = cfg, pipe, info
        self.rec_in, self.sam_in, self.labels = recognizer_inputs, sampler_inputs, labels
        self.history: dict[str, list[list[float]]] = {"recognizer": [], "sampler": []}  # [epoch, value] pairs
        self.best: dict[str, float] | None = None   # {"epoch", "value"} of the sampler stage
        self._probs: Tensor | None = None           # the fixed recognizer's (N, T, C) during stage 3
        if info.is_main and not resumed and cfg.best_path.exists():  # a previous run's best is not this one's
            shutil.rmtree(cfg.best_path, ignore_errors=True)

    def __len__(self) -> int:
        return len(self.labels)

    def metric_name(self, stage: str) -> str:
        return "recognizer mAP" if stage == "recognizer" else f"NSNet mAP@{self.pipe.config.k}"

    def due(self, epoch: int, epochs: int) -> bool:
        """Validate after epoch ``epoch`` (1-based) of ``epochs``?"""
        return epoch % self.cfg.val_every == 0 or epoch == epochs

    # ------------------------------------------------------------------ outputs
    def _run(self, inputs: Inputs, fn) -> Tensor:
        """``fn`` over every validation video in batches -> (N, ...) on the CPU; previews are
        sharded over the ranks and gathered, cached features are computed whole everywhere."""
        device, n = self.pipe.device, len(self.labels)
        sharded = not isinstance(inputs, Tensor) and self.info.enabled
        mine = list(range(self.info.rank, n, self.info.world_size)) if sharded else list(range(n))
        step = _FEATURE_BATCH if isinstance(inputs, Tensor) else self.cfg.batch_size
        outs = []
        batches = [torch.tensor(mine[b:b + step], dtype=torch.long) for b in range(0, len(mine), step)]
        if hasattr(inputs, "prefetch"):
            inputs.prefetch(batches)
        with torch.no_grad(), autocast(device, None if isinstance(inputs, Tensor) else self.pipe.amp_dtype):
            for idx in batches:
                outs.append(fn(to_device(inputs[idx], device)).float().cpu())
        local = torch.cat(outs) if outs else torch.empty(0)
        if not sharded:
            return local
        parts = dist_utils.all_gather((mine, local), self.info)
        out = torch.empty((n, *parts[0][1].shape[1:]), dtype=local.dtype)
        for idx, values in parts:
            if idx:
                out[torch.tensor(idx)] = values
        return out

    def _recognizer_probs(self) -> Tensor:
        module = RecognizerModule(self.pipe.recognizer, self.cfg.frame_chunk)

        def probs(x: Tensor) -> Tensor:  # (B, T, ...) -> (B, T, C)
            return class_probs(module(x.flatten(0, 1))).view(x.shape[0], x.shape[1], -1)

        return self._run(self.rec_in, probs)

    def _sampler_outputs(self) -> Tensor:
        module = SamplerModule(self.pipe.sampler, self.cfg.frame_chunk)

        def scores(x: Tensor) -> Tensor:  # (B, T, ...) -> (B, 2, T): frame scores p_t, attention g_t
            heads = SamplerHeads(*(t.float() for t in module(x)))
            return torch.stack([heads.frame_scores, heads.attention], 1)

        return self._run(self.sam_in, scores)

    def forget_recognizer(self) -> None:
        """Call when the recognizer changed outside :meth:`validate` (before stage 3)."""
        self._probs = None

    # ------------------------------------------------------------------ the metric
    def validate(self, stage: str, epoch: int) -> str:
        """Compute the stage's metric after epoch ``epoch`` (1-based); returns the log text.

        Every rank must call it (fine-tuning shards the work); only the main process writes.
        """
        sampler_mode, recognizer_mode = self.pipe.sampler.training, self.pipe.recognizer.training
        self.pipe.sampler.eval()
        self.pipe.recognizer.eval()
        try:
            labels = self.labels.numpy()
            if stage == "recognizer":
                self._probs = None
                value = mean_average_precision(self._recognizer_probs().mean(1).numpy(), labels)
            else:
                if self._probs is None:
                    self._probs = self._recognizer_probs()
                out = self._sampler_outputs()
                cfg = self.pipe.config
                idx = select("nsnet", out[:, 0], out[:, 1], cfg.k, cfg.lam)
                value = mean_average_precision(video_scores(self._probs, idx).numpy(), labels)
        finally:
            self.pipe.sampler.train(sampler_mode)
            self.pipe.recognizer.train(recognizer_mode)
        self.history[stage].append([epoch, value])
        text = f"val {self.metric_name(stage)} {100 * value:.1f}"
        if stage == "sampler":
            better = not math.isnan(value) and (self.best is None or value > self.best["value"])
            if better:
                self.best = {"epoch": epoch, "value": value}
                if self.info.is_main:
                    self._write_best()
            if self.best is not None:
                text += f" (best {100 * self.best['value']:.1f} at epoch {self.best['epoch']})"
        return text

    def _write_best(self) -> None:
        config = self.pipe.config
        trained, meta = config.trained, config.meta
        config.trained = True
        config.meta = {"train": self.cfg.to_dict(), "validation": self.summary()}
        try:
            self.pipe.save_pretrained(self.cfg.best_path)
        finally:
            config.trained, config.meta = trained, meta

    def summary(self) -> dict[str, Any]:
        """What the checkpoints' ``meta.validation`` says."""
        last = self.history["sampler"][-1] if self.history["sampler"] else None
        rec = self.history["recognizer"][-1] if self.history["recognizer"] else None
        return {"subset": self.cfg.val_subset, "num_videos": len(self), "metric": self.metric_name("sampler"),
                "best": None if self.best is None else self.best["value"],
                "best_epoch": None if self.best is None else self.best["epoch"],
                "best_checkpoint": str(self.cfg.best_path) if self.best is not None else None,
                "last": None if last is None else last[1],
                "recognizer_map": None if rec is None else rec[1]}

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: [list(p) for p in v] for k, v in self.history.items()},
                "best": dict(self.best) if self.best else None}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state:
            self.history = {k: [list(p) for p in state.get("history", {}).get(k, [])] for k in self.history}
            self.best = dict(state["best"]) if state.get("best") else None
