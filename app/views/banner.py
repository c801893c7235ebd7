"""What the serving model knows: its label set, what it was trained on and its validation numbers.

``describe(config, label, source)`` reads a checkpoint's ``config.json`` meta (``meta.train.data``,
``meta.train.subset``, ``meta.num_train_videos``) and, when the checkpoint is a local folder,
an ``eval_validation.json`` beside it (``nsnet eval --json``); ``banner_markdown(info)`` is the
model banner at the top of the page. Nothing here imports Gradio or runs a network.
"""
from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsnet.config import PipelineConfig
from nsnet.data.synthetic import CLASS_NAMES as SYNTHETIC_CLASSES

__all__ = ["ModelInfo", "describe", "read_validation", "banner_markdown", "banner_classes", "is_synthetic",
           "model_banner"]

log = logging.getLogger(__name__)

EVAL_FILES = ("eval_validation.json", "eval.json")


@dataclass(frozen=True)
class ModelInfo:
    label: str                                   # the name the page uses for it
    trained: bool
    class_names: tuple[str, ...]
    pretrained_backbones: bool = True
    train_data: str | None = None                # meta.train.data
    train_subset: str | None = None
    num_train_videos: int | None = None
    validation: dict[str, Any] | None = field(default=None)   # eval_validation.json

    @property
    def synthetic(self) -> bool:
        return is_synthetic(self.class_names)


def is_synthetic(class_names) -> bool:
    """True when every class is one of the synthetic benchmark's (``nsnet make-synthetic``)."""
    names = set(class_names)
    return bool(names) and names <= set(SYNTHETIC_CLASSES)


def read_validation(folder: Path) -> dict[str, Any] | None:
    """The ``nsnet eval --json`` object saved beside a checkpoint, if any (None when unreadable)."""
    for name in EVAL_FILES:
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                log.warning("ignoring %s: %s", path, exc)
                return None
            return data if isinstance(data, dict) and isinstance(data.get("methods"), dict) else None
    return None


def describe(config: PipelineConfig, label: str, source: str | Path | None = None) -> ModelInfo:
    """The banner's facts for a pipeline config; ``source`` is its checkpoint folder (or hub id)."""
    meta = config.meta if isinstance(config.meta, dict) else {}
    train = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    n_train = meta.get("num_train_videos")
    folder = Path(source) if source else None
    validation = read_validation(folder) if folder is not None and folder.is_dir() else None
    return ModelInfo(
        label=label, trained=bool(config.trained), class_names=tuple(config.class_names),
        pretrained_backbones=bool(config.sampler.backbone_pretrained and config.recognizer.backbone_pretrained),
        train_data=str(train["data"]) if train.get("data") else None,
        train_subset=str(train["subset"]) if train.get("subset") else None,
        num_train_videos=int(n_train) if isinstance(n_train, int) and not isinstance(n_train, bool) else None,
        validation=validation)


def _pct(x: Any) -> str:
    try:
        return f"{100 * float(x):.1f}"
    except (TypeError, ValueError):
        return "?"


def _validation_text(v: dict[str, Any]) -> str:
    m = v.get("methods", {})
    parts = []
    for key, name in (("nsnet", "NSNet"), ("dense", "dense"), ("uniform", "uniform")):
        if isinstance(m.get(key), dict):
            row = m[key]
            parts.append(f"{name} top-1 {_pct(row.get('top1'))}%" + (f", mAP {_pct(row.get('map'))}"
                                                                     if key == "nsnet" else ""))
    where = []
    if v.get("num_videos"):
        where.append(f"{int(v['num_videos'])} videos")
    if v.get("k") and v.get("t"):
        where.append(f"K={int(v['k'])} of T={int(v['t'])}")
    return f"validation ({', '.join(where)}): " + " · ".join(parts) if where else "validation: " + " · ".join(parts)


def _esc(text: str) -> str:
    """Text from a checkpoint, safe inside the banner's markdown and HTML."""
    return html.escape(str(text)).replace("*", "&#42;").replace("_", "&#95;").replace("`", "&#96;")


def model_banner(trained: bool, name: str, num_classes: int, pretrained_backbones: bool = True) -> str:
    """A one-paragraph statement of which model is serving, loud when it is untrained."""
    if trained:
        return f"Model: **{name}** ({num_classes} classes, trained)."
    which = "" if "untrained" in name.lower() else f" ({name})"
    backbones = "ImageNet-pretrained backbones" if pretrained_backbones else "random backbones"
    return (f"⚠️ **This model is untrained**{which}: {backbones} with randomly "
            f"initialised NSNet heads and {num_classes} placeholder classes. Curves, selections and labels "
            f"are **not meaningful**; they only show how the explorer works.")


def banner_markdown(info: ModelInfo) -> str:
    """The model banner: which model, what it knows (label set, training data, validation numbers)."""
    n = len(info.class_names)
    if not info.trained:
        lines = [model_banner(False, info.label, n, info.pretrained_backbones)]
    else:
        facts = [f"Model: **{_esc(info.label)}** ({n} classes, trained)"]
        if info.train_data:
            trained_on = f"trained on `{_esc(info.train_data)}`"
            extra = [x for x in (f"{info.train_subset} subset" if info.train_subset else "",
                                 f"{info.num_train_videos} videos" if info.num_train_videos else "") if x]
            facts.append(trained_on + (f" ({', '.join(extra)})" if extra else ""))
        elif info.num_train_videos:
            facts.append(f"trained on {info.num_train_videos} videos")
        if info.validation:
            facts.append(_validation_text(info.validation))
        else:
            facts.append("no validation numbers with this checkpoint")
        lines = [" · ".join(facts) + "."]
    shown = ", ".join(_esc(c) for c in info.class_names)
    lines.append(f"<details><summary>Its {n} classes (the only answers it can give)</summary>{shown}</details>")
    if info.trained and info.synthetic:
        lines.append(
            "⚠️ **This model was trained on the synthetic benchmark** (moving shapes, not real actions): "
            f"a real clip will be forced into one of its {n} synthetic classes, so its label means nothing there. To analyse real "
            "videos, serve a checkpoint trained on real data: `python app.py --checkpoint DIR`, `--models-dir DIR` "
            "(every checkpoint folder in it is offered in the picker), or a Hugging Face Hub id on Spaces "
            "(`NSNET_CHECKPOINT=user/name`, or the hub box with `--allow-hub`).")
    return "\n\n".join(lines)


def banner_classes(info: ModelInfo) -> list[str]:
    """CSS classes of the banner (``untrained`` is the loud one; ``synthetic`` a notice)."""
    if not info.trained:
        return ["untrained"]
    return ["trained", "synthetic"] if info.synthetic else ["trained"]
