"""Statistics over ``nsnet analyze`` rows as a browser of them needs: counts, per-method top-1 and mAP,
NSNet's confusions, the mean saliency AP and top-1 against K, all from the rows alone (no network).

A row is one JSON object of ``nsnet analyze`` (:data:`nsnet.evaluation.rows.ROW_KEYS`), or one the
explorer computed the same way; rows may be pending (``pending``), failed (``error``) or unlabelled
(``gt`` null). Per-method mAP is :func:`~nsnet.metrics.mean_average_precision` of the rows'
``class_scores`` (as :func:`nsnet.evaluation.rows.summarize`); top-1 against K re-ranks the rows'
cached per-frame outputs with :mod:`nsnet.inference.methods` (``select``, ``video_scores``, random-K
seeded per video with ``video_seed``), the frame choices ``eval`` and ``analyze`` make.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..inference.methods import CLIP_METHODS, select, video_scores, video_seed
from ..metrics import mean_average_precision
from . import rows as row_code

__all__ = ["DatasetSummary", "summarise", "accuracy_by_k", "saliency_ap", "finite"]


def finite(x: Any) -> float | None:
    """``x`` as a finite float, else None (a row's numbers may be null, or text in a damaged file)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def saliency_ap(fused: Sequence[float], timestamps_s: Sequence[float], segments) -> float | None:
    """AP of a row's fused score against the previews inside a ground-truth segment (``eval``'s rule,
    :func:`nsnet.evaluation.rows.saliency_ap`). None without segments, or when every preview (or none)
    is inside one."""
    if not segments:
        return None
    fused_t = torch.as_tensor(np.asarray(fused, dtype=np.float32))
    return finite(row_code.saliency_ap(fused_t, np.asarray(timestamps_s, dtype=np.float64), segments))


def _method(row: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = row.get(name)
    return value if isinstance(value, dict) else {}


def _ok(row: Mapping[str, Any], method: str) -> bool | None:
    return _method(row, method).get("correct")


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset's rows add up to."""

    total: int                                   # rows
    analysed: int                                # rows with a result
    with_gt: int                                 # analysed rows with a ground-truth label
    pending: int
    errors: int
    accuracy: dict[str, float | None]            # method -> top-1 over ``with_gt``
    map: dict[str, float | None]                 # method -> mAP from the rows' ``class_scores`` (None without)
    correct: dict[str, int]
    saliency_ap: float | None                    # mean over rows that have one
    confusion: dict[tuple[str, str], int]        # (gt, NSNet label) -> count, analysed rows with gt
    k_curve: dict | None                         # :func:`accuracy_by_k`


def summarise(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str] | None = None, lam: float = 0.5,
              seed: int = 0) -> DatasetSummary:
    """Per-method accuracy, NSNet's confusion and the accuracy-vs-K curve of a set of rows."""
    analysed = [r for r in rows if not r.get("error") and not r.get("pending") and isinstance(r.get("nsnet"), dict)]
    judged = [r for r in analysed if r.get("gt")]
    correct = {m: sum(1 for r in judged if _ok(r, m) is True) for m in CLIP_METHODS}
    accuracy = {m: (correct[m] / len(judged) if judged else None) for m in CLIP_METHODS}
    aps = [a for r in analysed if (a := finite(r.get("saliency_ap"))) is not None]
    confusion = Counter((r["gt"], _method(r, "nsnet").get("label")) for r in judged)
    return DatasetSummary(
        total=len(rows), analysed=len(analysed), with_gt=len(judged),
        pending=sum(1 for r in rows if r.get("pending")), errors=sum(1 for r in rows if r.get("error")),
        accuracy=accuracy, correct=correct, map=_maps(judged, class_names or ()),
        saliency_ap=float(np.mean(aps)) if aps else None,
        confusion=dict(confusion), k_curve=accuracy_by_k(judged, class_names, lam, seed) if class_names else None)


def _maps(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, float | None]:
    """Per-method mAP (``nsnet eval``'s) from the rows' ``class_scores``, over rows whose label the model knows."""
    index = {c: i for i, c in enumerate(class_names)}
    usable = [r for r in rows if r.get("gt") in index and isinstance(r.get("class_scores"), dict)
              and all(len(r["class_scores"].get(m) or ()) == len(index) for m in CLIP_METHODS)]
    if not usable:
        return {m: None for m in CLIP_METHODS}
    labels = np.asarray([index[r["gt"]] for r in usable])
    return {m: finite(mean_average_precision(np.asarray([r["class_scores"][m] for r in usable], dtype=np.float32),
                                             labels)) for m in CLIP_METHODS}


def accuracy_by_k(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str], lam: float = 0.5, seed: int = 0
                  ) -> dict | None:
    """Top-1 of NSNet-K, uniform-K, random-K for K = 1..T and of dense-T, from the rows' cached
    per-frame outputs (``frame_scores``, ``attention``, ``frame_probs``): no network runs.

    Uses the rows with ground truth and ``frame_probs`` over ``class_names`` at the most common
    T; returns None when there are none. Random-K seeds each video with ``video_seed(seed, id)``,
    like ``nsnet analyze``.
    """
    usable = [r for r in rows if r.get("gt") and r.get("frame_probs") is not None and r.get("frame_scores")
              and np.shape(r["frame_probs"]) == (len(r["frame_scores"]), len(class_names))]
    if not usable:
        return None
    t = Counter(len(r["frame_scores"]) for r in usable).most_common(1)[0][0]
    usable = [r for r in usable if len(r["frame_scores"]) == t]
    scores = torch.tensor([r["frame_scores"] for r in usable], dtype=torch.float32)
    attention = torch.tensor([r["attention"] for r in usable], dtype=torch.float32)
    probs = torch.from_numpy(np.stack([np.asarray(r["frame_probs"], dtype=np.float32) for r in usable]))
    names = np.asarray(list(class_names), dtype=object)
    gt = np.asarray([r["gt"] for r in usable], dtype=object)

    def top1(idx: torch.Tensor) -> float:
        pred = names[video_scores(probs, idx).argmax(1).numpy()]
        return float(np.mean(pred == gt))

    curve: dict[str, Any] = {"t": t, "n": len(usable), "k": list(range(1, t + 1)), "lam": float(lam)}
    for method in ("nsnet", "uniform"):
        curve[method] = [top1(select(method, scores, attention, k, lam)) for k in range(1, t + 1)]
    seeds = [video_seed(seed, str(r["id"])) for r in usable]
    curve["random"] = [top1(select("random", scores, attention, k, lam, seed=seeds)) for k in range(1, t + 1)]
    curve["dense"] = top1(select("dense", scores, attention, t, lam))
    return curve
