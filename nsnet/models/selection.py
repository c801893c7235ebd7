"""Pure frame-ranking functions: min-max fusion, top-K and the baseline samplers.

These are shared by the sampler's forward pass, by evaluation and by the explorer,
which re-ranks cached per-frame outputs when the user moves K or lam (no network runs).
All functions work on the last dimension and accept any leading batch shape.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["minmax_norm", "fuse", "select_topk", "uniform_indices", "random_indices"]


def minmax_norm(x: Tensor, dim: int = -1, rel_eps: float = 1e-5) -> Tensor:
    """Min-max normalise ``x`` along ``dim`` into [0, 1].

    A slice whose spread is below ``rel_eps * max(1, |x|max)`` counts as constant and maps
    to 0.5, so float noise in near-constant scores is never stretched into a ranking.
    """
    lo = x.amin(dim=dim, keepdim=True)
    hi = x.amax(dim=dim, keepdim=True)
    span = hi - lo
    tol = rel_eps * x.abs().amax(dim=dim, keepdim=True).clamp_min(1.0)
    out = (x - lo) / span.clamp_min(1e-12)
    return torch.where(span > tol, out, torch.full_like(x, 0.5))


def fuse(frame_scores: Tensor, attention: Tensor, lam: float) -> Tensor:
    """Multi-granularity saliency ``s_t = lam * norm(p_t) + (1 - lam) * norm(g_t)``.

    frame_scores, attention: (..., T). Returns (..., T) in [0, 1].
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be between 0 and 1, got {lam}")
    return lam * minmax_norm(frame_scores) + (1.0 - lam) * minmax_norm(attention)


def select_topk(scores: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` largest scores along the last dim, in ascending (temporal) order.

    Ties go to the earlier frame, so the result is deterministic. scores: (..., T) -> (..., k) int64.
    """
    t = scores.shape[-1]
    if not 1 <= k <= t:
        raise ValueError(f"k must be between 1 and T={t}, got {k}")
    # Stable descending sort: equal scores keep temporal order, so ties pick earlier frames.
    order = torch.sort(scores.float(), dim=-1, descending=True, stable=True).indices
    return order[..., :k].sort(dim=-1).values


def uniform_indices(t: int, k: int) -> list[int]:
    """K of T previews spread uniformly (segment centres of K equal parts of [0, T))."""
    if not 1 <= k <= t:
        raise ValueError(f"k must be between 1 and T={t}, got {k}")
    return [min(t - 1, int(math.floor((i + 0.5) * t / k))) for i in range(k)]


def random_indices(t: int, k: int, generator: torch.Generator | None = None) -> list[int]:
    """K distinct previews drawn uniformly at random, ascending."""
    if not 1 <= k <= t:
        raise ValueError(f"k must be between 1 and T={t}, got {k}")
    return sorted(torch.randperm(t, generator=generator)[:k].tolist())
