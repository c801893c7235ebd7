"""``PipelineResult``: what one pipeline run on one video produced (a plain record).

It holds per-frame outputs, the decision for one (K, lam), timings and costs, and turns
into the ``predict --json`` object with ``to_dict()``. What can be derived from it (another
K or lam, the baselines, the teacher curve) lives in :mod:`nsnet.inference.methods`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..models.recognizer import topk_labels

__all__ = ["PipelineResult", "json_safe"]


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
        })


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (dicts, lists, tuples walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
