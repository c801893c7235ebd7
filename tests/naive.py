"""Naive second implementations of the numbers NSNet reports, for tests to check the library against.

Written from the definitions (docs/method.md, the ActivityNet / VOC all-points AP), in plain
Python on lists, sharing no code with ``nsnet``: a bug in the library cannot hide here.
Slow on purpose (brute force), so only for the small cases tests use.
"""
from __future__ import annotations

import math


def minmax(x) -> list[float]:
    """Min-max normalisation into [0, 1]; a constant vector maps to 0.5 everywhere (docs/method.md:
    a spread of at most ``1e-5 * max(1, |x|max)`` counts as constant)."""
    x = [float(v) for v in x]
    lo, hi = min(x), max(x)
    if hi - lo <= 1e-5 * max(1.0, max(abs(v) for v in x)):
        return [0.5] * len(x)
    return [(v - lo) / (hi - lo) for v in x]


def fuse(p, g, lam: float) -> list[float]:
    """``s_t = lam * norm(p_t) + (1 - lam) * norm(g_t)``."""
    return [lam * a + (1 - lam) * b for a, b in zip(minmax(p), minmax(g))]


def topk(scores, k: int) -> list[int]:
    """The ``k`` largest scores' indices, ascending; ties go to the earlier index."""
    ranked = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(ranked[:k])


def uniform(t: int, k: int) -> list[int]:
    """Segment centres of K equal parts of [0, T): ``floor((i + 0.5) * T / K)``."""
    return [math.floor((i + 0.5) * t / k) for i in range(k)]


def tsn_centres(duration_s: float, t: int) -> list[float]:
    """TSN sample points in seconds: ``(i + 0.5) * duration / T``."""
    return [(i + 0.5) * duration_s / t for i in range(t)]


def mean_rows(matrix, idx) -> list[float]:
    """Column means of the rows ``idx`` of ``matrix`` (the video score of the kept frames)."""
    cols = len(matrix[0])
    return [sum(float(matrix[i][c]) for i in idx) / len(idx) for c in range(cols)]


def average_precision(scores, targets) -> float:
    """Interpolated AP by brute force: for each positive, the best precision at its rank or any later rank.

    Ranked by score, ties in input order. NaN without a positive.
    """
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # stable: ties in input order
    hits = [bool(targets[i]) for i in order]
    npos = sum(hits)
    if npos == 0:
        return math.nan
    precision_at = [sum(hits[:r + 1]) / (r + 1) for r in range(len(hits))]
    total = 0.0
    for r, hit in enumerate(hits):
        if hit:
            total += max(precision_at[r:])
    return total / npos


def mean_average_precision(scores, labels) -> float:
    """Mean over the classes that have a positive of one-vs-rest AP. scores: N lists of C; labels: N ints."""
    num_classes = len(scores[0])
    aps = [average_precision([row[c] for row in scores], [y == c for y in labels])
           for c in range(num_classes) if c in set(labels)]
    return sum(aps) / len(aps) if aps else math.nan


def top1(scores, labels) -> float:
    """Fraction of videos whose highest score (first one on ties) is their label."""
    right = sum(max(range(len(row)), key=lambda c: (row[c], -c)) == y for row, y in zip(scores, labels))
    return right / len(labels)


def inside(timestamps, segments) -> list[bool]:
    """Timestamp inside any closed ``[start, end]`` segment."""
    return [any(s <= t <= e for s, e in segments) for t in timestamps]
