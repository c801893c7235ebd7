"""``TrainConfig``: every knob of a training run, nesting the pipeline it trains.

The architecture is a :class:`~nsnet.config.PipelineConfig` (``cfg.pipeline``), so every
sampler and recognizer field (``dropout``, ``attention_dim``, ...) can be set from a JSON
config or the command line (``--sampler-dropout``, ``--recognizer-input-size``, ...).
Older flat names (``sampler_size``, ``recognizer_size``, ``hidden_dim``, ``attention``,
``temporal_kernel``, ``backbones_pretrained``, ``num_frames``, ``k``, ``lam``) are still
accepted by :meth:`TrainConfig.from_dict` and as flags.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, PipelineConfig
from ..data.features import default_cache_dir
from .pseudo_labels import RULES, PseudoLabelRule

__all__ = ["TrainConfig", "LEGACY_KEYS"]

_PSEUDO = PseudoLabelRule()

#: flat names of earlier versions -> paths inside ``pipeline`` ("backbones_pretrained" sets both)
LEGACY_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "num_frames": (("num_frames",),), "k": (("k",),), "lam": (("lam",),),
    "sampler_backbone": (("sampler", "backbone"),), "sampler_size": (("sampler", "input_size"),),
    "recognizer_backbone": (("recognizer", "backbone"),), "recognizer_size": (("recognizer", "input_size"),),
    "recognizer_head": (("recognizer", "head"),), "attention": (("sampler", "attention"),),
    "hidden_dim": (("sampler", "hidden_dim"),), "temporal_kernel": (("sampler", "temporal_kernel"),),
    "backbones_pretrained": (("sampler", "backbone_pretrained"), ("recognizer", "backbone_pretrained")),
}
#: pipeline fields a training run sets itself (from the data and ``finetune``)
DERIVED = {"class_names", "trained", "meta", "sampler.num_classes", "sampler.freeze_backbone",
           "recognizer.freeze_backbone"}


@dataclass
class TrainConfig:
    """Every knob of a training run; saved into the checkpoint's ``meta.train``.

    ``finetune=True`` also trains both backbones (at ``finetune_lr``; heads use ``lr``) on
    decoded previews instead of cached features, and the checkpoint then stores them; the
    knobs marked "finetune" only act then. The comments here are the ``nsnet train --help``
    texts' short form (``nsnet.cli.train.HELP`` has the full ones).
    """

    data: str = ""                       # dataset folder or annotation file (see nsnet.data)
    video_root: str | None = None        # where the videos are, when not beside the annotations
    out: str = "runs/nsnet"              # checkpoint folder to write
    cache_dir: str | None = None         # feature cache (default: nsnet.data.features.default_cache_dir())
    subset: str = "training"
    max_videos: int | None = None
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)  # architecture, T, K, lam
    finetune: bool = False               # also train the backbones, on decoded previews (GPU use)
    # optimisation
    recognizer_epochs: int = 40
    sampler_epochs: int = 60
    batch_size: int = 32                 # videos per forward pass (per process)
    grad_accum: int = 1                  # forward passes per optimiser step (global batch: x world size)
    lr: float = 2e-3                     # heads
    finetune_lr: float = 1e-4            # backbones, with --finetune
    weight_decay: float = 1e-4
    seed: int = 0
    # pseudo labels and losses
    pseudo_rule: str = _PSEUDO.rule
    gamma: float = _PSEUDO.gamma
    rho: float = _PSEUDO.rho
    tau: float = _PSEUDO.tau
    alpha: float = 1.0
    beta: float = 1.0
    non_mode: str = "uniform"            # the background-class variant inverts the attention (README)
    # finetune at scale
    frame_chunk: int = 0                 # finetune: backbone frames per chunk (0 = batch x T at once)
    augment: bool = False                # finetune: random resized crop + horizontal flip of the previews
    amp: bool = True                     # False: everything in float32 (same as precision "fp32")
    precision: str = "auto"              # backbones' precision: features cached and fine-tuning (auto: fp16 on CUDA)
    preview_workers: int | None = None   # finetune: DataLoader processes prefetching previews (None: auto)
    # validation
    val_subset: str = "validation"       # "" or "none": no validation
    val_every: int = 1                   # epochs between validations (0: none)
    # runtime
    device: str = "auto"
    resume: bool = False
    save_state: bool = True              # keep a resumable training state next to the output
    state_every_min: float = 10.0        # ... written mid-epoch after this many minutes
    state_min_interval_s: float = 60.0   # ... written at an epoch end at most this often (always at a stage end)
    log_every: int = 50                  # a progress line every N optimiser steps / N videos (0: none)
    progress: bool = True                # tqdm bars (only when stderr is a terminal)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.pipeline, dict):
            self.pipeline = PipelineConfig.from_dict(self.pipeline)
        if self.pseudo_rule not in RULES:
            raise ConfigError(f"pseudo_rule must be one of {', '.join(RULES)}, got {self.pseudo_rule!r}")
        if self.non_mode not in ("background", "uniform"):
            raise ConfigError(f"non_mode must be 'background' or 'uniform', got {self.non_mode!r}")
        for name, low in (("recognizer_epochs", 0), ("sampler_epochs", 0), ("batch_size", 1), ("grad_accum", 1),
                          ("frame_chunk", 0), ("val_every", 0), ("log_every", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("state_every_min", "state_min_interval_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        from ..inference.pipeline import PRECISIONS  # lazy: the pipeline module is heavy

        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.amp and self.precision not in ("auto", "fp32"):
            raise ConfigError(f"--no-amp (float32) contradicts --precision {self.precision}: give one of them")
        if self.preview_workers is not None and (not isinstance(self.preview_workers, int)
                                                 or isinstance(self.preview_workers, bool)
                                                 or not 0 <= self.preview_workers <= 64):
            raise ConfigError(f"preview_workers must be an integer in 0..64, got {self.preview_workers!r}")
        if self.augment and not self.finetune:
            raise ConfigError("augment needs finetune: cached features are computed once, without augmentation")

    # ------------------------------------------------------------------ (de)serialising
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a JSON-able dict: top-level fields, a nested ``pipeline`` dict, dotted
        pipeline paths (``"sampler.dropout"``) and the flat names of :data:`LEGACY_KEYS`."""
        data = dict(data)
        pipeline = data.pop("pipeline", None)
        pipeline = pipeline.to_dict() if isinstance(pipeline, PipelineConfig) else dict(pipeline or {})
        pipeline = {k: dict(v) if isinstance(v, dict) else v for k, v in pipeline.items()}
        for key in list(data):
            paths = LEGACY_KEYS.get(key) or ((tuple(key.split(".")),) if "." in key else None)
            if paths is None:
                continue
            value = data.pop(key)
            for path in paths:
                node = pipeline
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = value
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        try:
            return cls(**data, pipeline=PipelineConfig.from_dict(pipeline))
        except TypeError as exc:  # e.g. a field given where a section was expected
            raise ConfigError(f"invalid training config: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, without the pipeline fields a run sets itself (class names, ...)."""
        out = dataclasses.asdict(self)
        pipe = out["pipeline"]
        for path in DERIVED:
            *parents, leaf = path.split(".")
            node = pipe
            for part in parents:
                node = node[part]
            node.pop(leaf, None)
        return out

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` applied (any key :meth:`from_dict` accepts)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------------ derived
    @property
    def pseudo_labels(self) -> PseudoLabelRule:
        return PseudoLabelRule(self.pseudo_rule, self.gamma, self.rho, self.tau)

    def pipeline_config(self, class_names: list[str]) -> PipelineConfig:
        """The pipeline to build for ``class_names``: frozen backbones unless fine-tuning."""
        # a recognizer with the backbone's own head is not trained, so its backbone stays frozen
        tune_recognizer = self.finetune and self.pipeline.recognizer.head == "linear"
        base = self.pipeline
        return dataclasses.replace(
            base, class_names=list(class_names), trained=False, meta={},
            sampler=dataclasses.replace(base.sampler, freeze_backbone=not self.finetune),
            recognizer=dataclasses.replace(base.recognizer, freeze_backbone=not tune_recognizer))

    @property
    def compute_precision(self) -> str:
        """The precision the run's pipeline is built with: ``precision``, or ``fp32`` with ``amp`` off."""
        return self.precision if self.amp else "fp32"

    @property
    def validates(self) -> bool:
        return bool(self.val_subset) and self.val_subset.lower() != "none" and self.val_every > 0

    @property
    def cache_path(self) -> Path:
        """Feature / preview cache: ``cache_dir``, else the user cache folder ``eval`` and ``ablate`` share."""
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    def _beside_out(self, suffix: str) -> Path:
        out = Path(self.out)
        return out.with_name(out.name + suffix)

    @property
    def state_path(self) -> Path:
        """``<out>.train_state.pt``: the resumable training state."""
        return self._beside_out(".train_state.pt")

    @property
    def best_path(self) -> Path:
        """``<out>.best``: the checkpoint of the sampler epoch with the best validation NSNet mAP at K."""
        return self._beside_out(".best")

    @property
    def skipped_path(self) -> Path:
        """``<out>.skipped.tsv``: the videos that could not be read."""
        return self._beside_out(".skipped.tsv")
