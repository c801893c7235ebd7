"""``PipelineResult``: what one pipeline run on one video produced (a plain record).

It holds per-frame outputs, the decision for one (K, lam), timings and costs, and turns
into the ``predict --json`` object with ``to_dict()``. What can be derived from it (another
K or lam, the baselines, the teacher curve) lives in :mod:`nsnet.inference.methods`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.recognizer import topk_labels

__all__ = ["PipelineResult", "json_safe", "model_info", "describe_model", "SYNTHETIC_TRAINED_ON"]

#: ``model_info``'s ``trained_on`` for a model whose classes are all synthetic-benchmark classes.
SYNTHETIC_TRAINED_ON = "the synthetic benchmark (nsnet make-synthetic)"


@dataclass(frozen=True)
class PipelineResult:
    """Per-frame outputs for one video plus the decision for one (K, lam).

    Vectors are numpy arrays. ``frame_probs`` (recognizer probabilities on every preview)
    is present when the pipeline ran with ``dense=True``; it lets
    :func:`~nsnet.inference.methods.rerank` and :func:`~nsnet.inference.methods.compare`
    work without running a network again.
    """

    video: dict[str, Any]            # {path, duration_s, fps, width, height, num_frames, ...}
    timestamps_s: np.ndarray         # (T,) seconds
    frame_scores: np.ndarray         # (T,) p_t, frame-level saliency
    attention: np.ndarray            # (T,) g_t, video-level attention
    fused: np.ndarray                # (T,) s_t
    selected: np.ndarray             # (K,) ascending preview indices
    probs: np.ndarray                # (C,) video prediction from the selected frames
    class_names: list[str]
    timings_ms: dict[str, float]     # decode, sampler, recognizer, total
    gflops: dict[str, float]         # sampler, recognizer, total, dense
    lam: float
    device: str
    trained: bool = True
    repeated: bool = False           # the video had fewer distinct frames than T
    frame_probs: np.ndarray | None = field(default=None, repr=False)  # (T, C)
    dense_recognizer_ms: float | None = None  # measured time of the recognizer on all T previews
    model: dict[str, Any] | None = None  # model_info(): name, num_classes, trained_on, synthetic
    selected_probs: np.ndarray | None = field(default=None, repr=False)  # (K, C) the recognizer on each kept preview

    def __post_init__(self) -> None:
        if self.model is None:   # what the class names and the trained flag alone tell (name unknown)
            object.__setattr__(self, "model", describe_model(self.class_names, self.trained))

    @property
    def num_frames(self) -> int:
        return int(self.fused.shape[0])

    @property
    def k(self) -> int:
        return int(self.selected.shape[0])

    @property
    def labels(self) -> list[dict]:
        """Top-5 ``{"label", "score"}``, best first."""
        return topk_labels(torch.from_numpy(self.probs), self.class_names, 5)

    def to_dict(self) -> dict[str, Any]:
        """The ``nsnet predict --json`` object (see README, "Interfaces").

        Strict JSON: a non-finite number (say, a duration a container lied about) becomes null.
        """
        return json_safe({
            "video": dict(self.video),
            "timestamps_s": [round(float(x), 4) for x in self.timestamps_s],
            "frame_scores": [float(x) for x in self.frame_scores],
            "attention": [float(x) for x in self.attention],
            "fused": [float(x) for x in self.fused],
            "selected": [int(i) for i in self.selected],
            "labels": self.labels,
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
            "gflops": {k: round(float(v), 4) for k, v in self.gflops.items()},
            "model": dict(self.model),
        })


def model_info(config, source: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a model knows, from its ``PipelineConfig`` (``config.json``): ``{name, num_classes,
    trained_on, synthetic}``.

    ``name``: the checkpoint folder's name or the Hub id ``source`` (where it was loaded from),
    else the folder training wrote it to (``meta.train.out``), else None. ``synthetic``: every
    class is one of the synthetic benchmark's (:data:`nsnet.data.synthetic.CLASS_NAMES`), so
    its labels name nothing in a real video. ``trained_on``: :data:`SYNTHETIC_TRAINED_ON` for
    such a model, else the name of the training data's file or folder (``meta.train.data``);
    None for an untrained model or one whose config does not say.
    """
    train = config.meta.get("train") if isinstance(config.meta, dict) else None
    train = train if isinstance(train, dict) else {}
    name = None
    if source is not None:
        local = Path(source)
        name = local.resolve().name if local.exists() else str(source)
    elif isinstance(train.get("out"), str) and train["out"]:
        name = Path(train["out"]).name
    data = train.get("data")
    data = Path(data) if isinstance(data, str) and data else None
    if data is not None and data.name == "annotations.json":
        data = data.parent
    return describe_model(config.class_names or [], config.trained, name=name,
                          data=None if data is None else data.name or None)


def describe_model(class_names, trained: bool, *, name: str | None = None, data: str | None = None) -> dict[str, Any]:
    """``model_info`` from the class names, the trained flag and, where known, the model's name and
    the name of its training data."""
    from ..data.synthetic.classes import CLASS_NAMES

    names = [str(c) for c in class_names]
    synthetic = bool(names) and set(names) <= set(CLASS_NAMES)
    trained_on = None if not trained else SYNTHETIC_TRAINED_ON if synthetic else data
    return {"name": name, "num_classes": len(names), "trained_on": trained_on, "synthetic": synthetic}


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (dicts, lists, tuples walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
