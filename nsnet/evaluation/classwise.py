"""Per-class results: how many videos a class has, and each method's top-1 and AP on it.

``per_class`` is what ``eval --json`` and the ``analyze`` summary report as ``per_class``:
``{class: {n, top1: {method: ...}, ap: {method: ...}}}`` for every class that has at
least one labelled video (a class without one has no AP and no top-1). ``top1`` of a
class is the fraction of its videos whose arg-max class is right (its recall at rank 1);
``ap`` is the one-vs-rest average precision of the class over all labelled videos, the
term that :func:`~nsnet.metrics.mean_average_precision` averages, so the mean of a
method's per-class ``ap`` is its mAP.

:func:`class_aps` computes every class's AP at once with numpy (one sort per class
column, no Python loop over videos); it equals :func:`nsnet.metrics.average_precision`
(ActivityNet / VOC all-points interpolation, ties ranked in input order).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..inference.result import json_safe

__all__ = ["class_aps", "mean_ap", "mean_ap_many", "per_class"]


def _column_aps(cols: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """(..., P) AP of each score row of ``cols`` (..., P, N) against ``positive`` (P, N)."""
    order = np.argsort(-cols, axis=-1, kind="stable")                      # ties in input order
    hits = np.take_along_axis(np.broadcast_to(positive, cols.shape), order, axis=-1)  # positive at each rank
    tp = np.cumsum(hits, axis=-1)
    precision = tp / np.arange(1, cols.shape[-1] + 1)
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]   # max precision to the right
    return (envelope * hits).sum(-1) / positive.sum(-1)                    # each positive adds 1/npos of recall


def class_aps(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) one-vs-rest AP of every class; NaN for a class without a positive. scores (N, C), labels (N,)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    aps = np.full(scores.shape[1], np.nan)
    present = np.unique(labels[(labels >= 0) & (labels < scores.shape[1])])
    if scores.shape[0] and present.size:
        aps[present] = _column_aps(scores[:, present].T, labels[None, :] == present[:, None])
    return aps


def mean_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """mAP over the classes with a positive (as :func:`~nsnet.metrics.mean_average_precision`); NaN if none."""
    return float(mean_ap_many(np.asarray(scores)[None], labels)[0])


def mean_ap_many(scores: np.ndarray, labels: np.ndarray, chunk_elements: int = 1 << 22) -> np.ndarray:
    """(M,) mAP of M score matrices of the same videos at once. scores (M, N, C), labels (N,).

    Works on groups of matrices of at most ``chunk_elements`` scores, so memory stays bounded.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    m, n, c = scores.shape
    present = np.unique(labels[(labels >= 0) & (labels < c)])
    out = np.full(m, np.nan)
    if n == 0 or present.size == 0:
        return out
    positive = labels[None, :] == present[:, None]                         # (P, N)
    step = max(1, chunk_elements // (n * present.size))
    for a in range(0, m, step):
        cols = np.swapaxes(scores[a:a + step][:, :, present], 1, 2).astype(np.float64)  # (m', P, N)
        out[a:a + step] = _column_aps(cols, positive).mean(-1)
    return out


def per_class(scores: Mapping[str, np.ndarray], labels: Sequence[int] | np.ndarray,
              class_names: Sequence[str]) -> dict[str, Any]:
    """``{class: {n, top1: {method}, ap: {method}}}`` over labelled videos, in the order of ``class_names``.

    ``scores``: per method (N, C) class scores of the same N videos; ``labels``: (N,) class
    indices (every one in ``0..C-1``). The ``n`` of the classes add up to N.
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"labels must be class indices in 0..{len(class_names) - 1}")
    tops, aps = {}, {}
    for method, s in scores.items():
        s = np.asarray(s)
        if s.shape != (labels.size, len(class_names)):
            raise ValueError(f"{method}: scores of shape {s.shape}, expected {(labels.size, len(class_names))}")
        tops[method] = s.argmax(1) if labels.size else np.zeros(0, np.int64)
        aps[method] = class_aps(s, labels)
    counts = np.bincount(labels, minlength=len(class_names))
    out: dict[str, Any] = {}
    for c, name in enumerate(class_names):
        if counts[c] == 0:
            continue
        mine = labels == c
        out[name] = {"n": int(counts[c]),
                     "top1": {m: float((tops[m][mine] == c).mean()) for m in scores},
                     "ap": {m: float(aps[m][c]) for m in scores}}
    return json_safe(out)
