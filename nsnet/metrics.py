"""Metrics: ActivityNet-style mAP, top-1, and frame-level AP / precision / recall.

A leaf module (numpy only), so training (validation during a run) and evaluation share one
definition.
"""
from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "mean_average_precision", "top1_accuracy", "precision_recall"]


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Interpolated AP of binary ``targets`` ranked by ``scores`` (ActivityNet / VOC all-points).

    Returns NaN when there is no positive. Ties are ranked in input order (stable).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    targets = np.asarray(targets).astype(bool).ravel()
    npos = int(targets.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(targets[order])
    fp = np.cumsum(~targets[order])
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, 1e-12)
    # precision envelope (max to the right), then sum over recall steps
    mprec = np.concatenate([[0.0], prec, [0.0]])
    mrec = np.concatenate([[0.0], rec, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes (with at least one positive) of one-vs-rest AP. scores: (N, C); labels: (N,)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    aps = [average_precision(scores[:, c], labels == c) for c in range(scores.shape[1]) if (labels == c).any()]
    return float(np.mean(aps)) if aps else float("nan")


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(scores).argmax(1) == np.asarray(labels)).mean())


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pooled precision and recall of boolean predictions against boolean truth."""
    pred = np.asarray(pred).astype(bool)
    truth = np.asarray(truth).astype(bool)
    tp = float((pred & truth).sum())
    precision = tp / pred.sum() if pred.sum() else float("nan")
    recall = tp / truth.sum() if truth.sum() else float("nan")
    return float(precision), float(recall)
