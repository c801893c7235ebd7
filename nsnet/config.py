"""Configuration dataclasses for the sampler, the recognizer and the pipeline.

Every choice that ``shared/NSNET.md`` leaves open is a field here, so a checkpoint's
``config.json`` says exactly which formulation produced it. All configs round-trip
through plain JSON (``to_dict`` / ``from_dict``); unknown keys are rejected so a typo
in a config file is an error, not a silently ignored setting.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = ["SamplerConfig", "RecognizerConfig", "PipelineConfig", "ConfigError"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**data)


@dataclass
class SamplerConfig:
    """The light NSNet sampler (NSNET.md sections 1, 2, 4, 6)."""

    backbone: str = "efficientnet_lite0"
    backbone_pretrained: bool = True
    freeze_backbone: bool = True
    input_size: int = 96           # preview resolution (square, after short-side resize + centre crop)
    hidden_dim: int = 256          # d, width of h_t
    temporal_kernel: int = 3       # 1-D conv over t; 1 disables temporal context
    attention: Literal["sigmoid", "softmax"] = "sigmoid"
    attention_dim: int = 128       # width of W in g_t = sigmoid(w_a . tanh(W h_t))
    dropout: float = 0.1
    num_classes: int = 0           # C; psi has C + 1 outputs (the last is "background")

    def __post_init__(self) -> None:
        if self.attention not in ("sigmoid", "softmax"):
            raise ConfigError(f"sampler.attention must be 'sigmoid' or 'softmax', got {self.attention!r}")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
            raise ConfigError(f"sampler.temporal_kernel must be a positive odd number, got {self.temporal_kernel}")
        for name in ("input_size", "hidden_dim", "attention_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sampler.{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamplerConfig":
        return _from_dict(cls, data)


@dataclass
class RecognizerConfig:
    """The heavy per-frame recognizer (NSNET.md section 7)."""

    backbone: str = "efficientnet_lite2"
    backbone_pretrained: bool = True
    freeze_backbone: bool = True
    input_size: int = 224
    dropout: float = 0.2
    # "linear": a new Linear(D, C) head trained on the video labels.
    # "backbone": use the backbone's own classifier and labels (ImageNet, an HF
    # image classifier, or CLIP zero-shot prompts); no training needed.
    head: Literal["linear", "backbone"] = "linear"

    def __post_init__(self) -> None:
        if self.head not in ("linear", "backbone"):
            raise ConfigError(f"recognizer.head must be 'linear' or 'backbone', got {self.head!r}")
        if self.input_size < 1:
            raise ConfigError(f"recognizer.input_size must be >= 1, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RecognizerConfig":
        return _from_dict(cls, data)


@dataclass
class PipelineConfig:
    """Everything needed to rebuild a pipeline; saved as a checkpoint's ``config.json``."""

    class_names: list[str] = field(default_factory=list)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    num_frames: int = 16           # T, previews per video
    k: int = 4                     # K, frames kept for the recognizer
    lam: float = 0.5               # fusion weight of the frame-level branch
    trained: bool = False          # False for a randomly initialised (untrained) pipeline
    meta: dict[str, Any] = field(default_factory=dict)  # versions, training summary, ...

    def __post_init__(self) -> None:
        if isinstance(self.sampler, dict):
            self.sampler = SamplerConfig.from_dict(self.sampler)
        if isinstance(self.recognizer, dict):
            self.recognizer = RecognizerConfig.from_dict(self.recognizer)
        self.class_names = [str(c) for c in self.class_names]
        self.validate(self.num_frames, self.k, self.lam)

    @staticmethod
    def validate(num_frames: int, k: int, lam: float) -> None:
        """Raise ConfigError unless ``1 <= k <= num_frames`` and ``0 <= lam <= 1``."""
        if num_frames < 1:
            raise ConfigError(f"num_frames (T) must be >= 1, got {num_frames}")
        if not 1 <= k <= num_frames:
            raise ConfigError(f"k must be between 1 and T={num_frames}, got {k}")
        if not 0.0 <= lam <= 1.0:
            raise ConfigError(f"lam must be between 0 and 1, got {lam}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        return _from_dict(cls, dict(data))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "PipelineConfig":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data)
