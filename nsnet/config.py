"""Configuration dataclasses for the sampler, the recognizer and the pipeline.

Every choice of the method (docs/method.md) is a field here, so a checkpoint's
``config.json`` says exactly which formulation produced it. All configs round-trip
through plain JSON (``to_dict`` / ``from_dict``); unknown keys are rejected so a typo
in a config file is an error, not a silently ignored setting.

Every field is checked for its type and range when a config is built, so a hostile or
damaged ``config.json`` fails with one :class:`ConfigError` naming the field and what is
allowed, before anything is allocated. The ranges are generous (no real model comes
near them) but bounded: :data:`LIMITS` lists them, and :data:`MAX_FRAMES` is the largest
``T`` the library, the CLI and the app accept.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from . import jsonsafe
from .errors import shown
from .limits import MAX_FRAMES

__all__ = ["SamplerConfig", "RecognizerConfig", "PipelineConfig", "ConfigError", "MAX_FRAMES", "LIMITS",
           "check_number", "whole_number", "finite_number", "parse_params"]

T = TypeVar("T")

#: (low, high) inclusive bounds of the numeric fields, by ``section.field``.
LIMITS: dict[str, tuple[float, float]] = {
    "sampler.input_size": (16, 1024), "sampler.hidden_dim": (1, 8192), "sampler.temporal_kernel": (1, 31),
    "sampler.attention_dim": (1, 8192), "sampler.dropout": (0.0, 0.99), "sampler.num_classes": (0, 100_000),
    "recognizer.input_size": (16, 1024), "recognizer.dropout": (0.0, 0.99),
    "num_frames": (1, MAX_FRAMES), "lam": (0.0, 1.0),
}
MAX_CLASSES = 100_000
MAX_NAME_CHARS = 500
#: Largest ``config.json`` read (100 000 class names of 500 characters fit); larger is refused unread.
MAX_CONFIG_BYTES = 64 << 20


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_number(name: str, value: Any, kind: type, low: float, high: float) -> None:
    """Raise ConfigError unless ``value`` is a finite ``kind`` (int or float) in ``[low, high]``.

    Booleans are not numbers here, and an int field refuses 2.5 instead of rounding it.
    """
    ok_type = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else \
        (isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok_type:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} in [{low:g}, {high:g}], got {_short(value)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {_short(value)}")


def _check_fields(obj: Any, section: str, texts: tuple[str, ...], flags: tuple[str, ...]) -> None:
    prefix = f"{section}." if section else ""
    for name in texts:
        value = getattr(obj, name)
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
            raise ConfigError(f"{prefix}{name} must be a non-empty string of at most {MAX_NAME_CHARS} "
                              f"characters, got {_short(value)}")
    for name in flags:
        if not isinstance(getattr(obj, name), bool):
            raise ConfigError(f"{prefix}{name} must be true or false, got {_short(getattr(obj, name))}")
    for key, (low, high) in LIMITS.items():
        sec, _, name = key.rpartition(".")
        if sec == section:
            check_number(f"{prefix}{name}", getattr(obj, name), float if isinstance(low, float) else int, low, high)


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {_short(data)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**data)


@dataclass
class SamplerConfig:
    """The light NSNet sampler (docs/method.md: sampler features, frame level, video level, fusion)."""

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
            raise ConfigError(f"sampler.attention must be 'sigmoid' or 'softmax', got {_short(self.attention)}")
        _check_fields(self, "sampler", ("backbone",), ("backbone_pretrained", "freeze_backbone"))
        if self.temporal_kernel % 2 == 0:
            raise ConfigError(f"sampler.temporal_kernel must be a positive odd number, got {self.temporal_kernel}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamplerConfig":
        return _from_dict(cls, data)


@dataclass
class RecognizerConfig:
    """The heavy per-frame recognizer (docs/method.md, "Recognition")."""

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
            raise ConfigError(f"recognizer.head must be 'linear' or 'backbone', got {_short(self.head)}")
        _check_fields(self, "recognizer", ("backbone",), ("backbone_pretrained", "freeze_backbone"))

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
        for name, cls in (("sampler", SamplerConfig), ("recognizer", RecognizerConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise ConfigError(f"{name} must be an object of {cls.__name__} fields, got {_short(value)}")
        if not isinstance(self.class_names, (list, tuple)) or len(self.class_names) > MAX_CLASSES:
            raise ConfigError(f"class_names must be a list of at most {MAX_CLASSES} names")
        if not all(isinstance(c, (str, int)) and not isinstance(c, bool) and 0 < len(str(c)) <= MAX_NAME_CHARS
                   for c in self.class_names):
            raise ConfigError(f"class_names must hold non-empty names of at most {MAX_NAME_CHARS} characters")
        self.class_names = [str(c) for c in self.class_names]
        if not isinstance(self.trained, bool):
            raise ConfigError(f"trained must be true or false, got {_short(self.trained)}")
        if not isinstance(self.meta, dict):
            raise ConfigError(f"meta must be an object, got {_short(self.meta)}")
        self.validate(self.num_frames, self.k, self.lam)

    @staticmethod
    def validate(num_frames: int, k: int, lam: float) -> None:
        """Raise ConfigError unless ``1 <= num_frames <= MAX_FRAMES``, ``1 <= k <= num_frames``
        (integers) and ``0 <= lam <= 1``."""
        check_number("num_frames (T)", num_frames, int, 1, MAX_FRAMES)
        if isinstance(k, int) and not isinstance(k, bool) and not 1 <= k <= num_frames:
            raise ConfigError(f"k must be between 1 and T={num_frames}, got {k}")
        check_number("k", k, int, 1, num_frames)
        check_number("lam", lam, float, 0.0, 1.0)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        return _from_dict(cls, dict(data) if isinstance(data, dict) else data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "PipelineConfig":
        # bounded like a checkpoint's config.json: a regular file, size and nesting limited, one line otherwise
        data = jsonsafe.load_file(path, str(path), max_bytes=MAX_CONFIG_BYTES, error=ConfigError)
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{Path(path).name}: {exc}") from None


# --------------------------------------------------------------------------- T, K and lam as people type them
def whole_number(value: Any, name: str) -> int:
    """An integer from a form, an API call or a command line (``8``, ``8.0``, ``"8"``).

    ``2.5`` is refused, never rounded; so are booleans, NaN and infinities (ConfigError, one line).
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, got {shown(value)}")
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a whole number, got {shown(value)}") from None
    if not math.isfinite(f) or f != math.floor(f):
        raise ConfigError(f"{name} must be a whole number, got {shown(value)}")
    return int(f)


def finite_number(value: Any, name: str) -> float:
    """A finite float from a form, an API call or a command line; ConfigError (one line) for anything else."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {shown(value)}")
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a number, got {shown(value)}") from None
    if not math.isfinite(f):
        raise ConfigError(f"{name} must be a finite number, got {shown(value)}")
    return f


def parse_params(t: Any, k: Any, lam: Any, *, max_frames: int | None = None,
                 limit_name: str = "the limit") -> tuple[int, int, float]:
    """``(T, K, lam)`` from what a person typed: whole numbers T and K, a finite lam, T at most
    ``max_frames`` (a deployment's own ceiling, called ``limit_name`` in the message), then the
    one range check, :meth:`PipelineConfig.validate`. Raises ConfigError with one line.
    """
    t, k, lam = whole_number(t, "T"), whole_number(k, "K"), finite_number(lam, "λ")
    if max_frames is not None and t > max_frames:
        raise ConfigError(f"T={shown(t)} is above {limit_name} of {max_frames} previews.")
    PipelineConfig.validate(t, k, lam)
    return t, k, lam
