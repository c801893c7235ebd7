"""Frame-selection methods and what they cost: the one definition eval, the CLI and the app use.

A method decides which of the T previews the recognizer sees; the video prediction is
the mean of the recognizer's class probabilities over those frames (docs/method.md):

==============  ===============================================  ==========================
method          frames kept                                      GFLOPs per video
==============  ===============================================  ==========================
nsnet           top-K of ``fuse(p, g, lam)``                      sampler (T) + recognizer (K)
frame_only      top-K of ``fuse(p, g, 1)`` (frame branch alone)   sampler (T) + recognizer (K)
attention_only  top-K of ``fuse(p, g, 0)`` (attention alone)      sampler (T) + recognizer (K)
uniform         K segment centres of the T previews               recognizer (K)
random          K distinct previews (seeded per video)            recognizer (K)
oracle          top-K teacher confidence in the true class        recognizer (K)
dense           all T previews                                    recognizer (T)
==============  ===============================================  ==========================

Everything here re-ranks per-frame outputs that were already computed: no network runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import PipelineConfig
from ..models.selection import fuse, random_indices, select_topk, uniform_indices
from .result import PipelineResult

__all__ = ["METHODS", "CLIP_METHODS", "select", "video_seed", "method_gflops", "video_scores", "rerank", "compare",
           "clip_video_id", "teacher_curve"]

METHODS = ("dense", "uniform", "random", "frame_only", "attention_only", "nsnet", "oracle")
CLIP_METHODS = ("nsnet", "uniform", "random", "dense")  # the per-clip comparison (no ground truth needed)
_LAMS = {"frame_only": 1.0, "attention_only": 0.0}


def video_seed(seed: int, video_id: str) -> int:
    """The random-K seed of one video: a stable hash of the run's ``seed`` and the video's id.

    ``eval`` and ``analyze`` seed random-K per video with it, so the frames a video gets
    never depend on which other videos were evaluated, in which order, or on which rank.
    """
    digest = hashlib.sha256(f"{int(seed)}/{video_id}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def select(method: str, frame_scores: Tensor, attention: Tensor, k: int, lam: float, *,
           teacher_conf: Tensor | None = None, seed: int | Sequence[int] = 0) -> Tensor:
    """(N, k) preview indices (ascending) that ``method`` keeps; inputs are (N, T).

    ``random`` with an int ``seed`` draws every video's frames from one generator seeded
    with it, in order; with a sequence of N seeds (:func:`video_seed`) each video draws
    from its own generator. ``oracle`` needs ``teacher_conf`` (N, T), the teacher's
    confidence in the true class.
    """
    n, t = frame_scores.shape
    if method == "dense":
        return torch.arange(t).expand(n, t)
    if method == "uniform":
        return torch.tensor(uniform_indices(t, k)).expand(n, k)
    if method == "random":
        if isinstance(seed, int):
            gen = torch.Generator().manual_seed(seed)
            return torch.tensor([random_indices(t, k, gen) for _ in range(n)]).view(n, k)
        if len(seed) != n:
            raise ValueError(f"random-K needs one seed per video ({n}), got {len(seed)}")
        return torch.tensor([random_indices(t, k, torch.Generator().manual_seed(int(s))) for s in seed]).view(n, k)
    if method == "oracle":
        if teacher_conf is None:
            raise ValueError("the oracle needs the teacher's ground-truth-class confidences")
        return select_topk(teacher_conf, k)
    if method == "nsnet" or method in _LAMS:
        return select_topk(fuse(frame_scores, attention, _LAMS.get(method, lam)), k)
    raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")


def method_gflops(method: str, cost: dict[str, float]) -> float:
    """GFLOPs per video of ``method`` from a pipeline's ``gflops_per_video(T, K)``."""
    if method == "dense":
        return cost["dense"]
    if method in ("uniform", "random", "oracle"):
        return cost["recognizer"]
    return cost["total"]


def video_scores(frame_probs: Tensor, idx: Tensor) -> Tensor:
    """(N, C): mean class probabilities over each video's kept frames. frame_probs (N, T, C), idx (N, k)."""
    gathered = frame_probs.gather(1, idx.unsqueeze(-1).expand(-1, -1, frame_probs.shape[-1]))  # (N, k, C)
    return gathered.mean(1)


# ----------------------------------------------------------------- one clip (a PipelineResult)
def _need_dense(result: PipelineResult, what: str) -> np.ndarray:
    if result.frame_probs is None:
        raise ValueError(f"{what} needs per-frame recognizer outputs: run the pipeline with dense=True")
    return result.frame_probs


def teacher_curve(result: PipelineResult) -> np.ndarray:
    """(T,) recognizer confidence of the predicted class on every preview (needs dense)."""
    probs = _need_dense(result, "the teacher curve")
    return probs[:, int(np.argmax(result.probs))]


def rerank(result: PipelineResult, k: int, lam: float) -> PipelineResult:
    """The decision for another K or lam, from the cached per-frame outputs only.

    The recognizer time is scaled per frame from this run's measurement.
    """
    probs = _need_dense(result, "re-ranking")
    PipelineConfig.validate(result.num_frames, k, lam)
    fused = fuse(torch.from_numpy(result.frame_scores), torch.from_numpy(result.attention), lam)
    selected = select_topk(fused, k).numpy()
    per_frame_gf = result.gflops["dense"] / result.num_frames
    rec_ms = result.timings_ms["recognizer"] * k / max(1, result.k)
    timings = dict(result.timings_ms, recognizer=rec_ms)
    timings["total"] = timings["decode"] + timings["sampler"] + rec_ms
    gflops = dict(result.gflops, recognizer=per_frame_gf * k)
    gflops["total"] = gflops["sampler"] + gflops["recognizer"]
    return dataclasses.replace(result, fused=fused.numpy(), selected=selected, lam=float(lam),
                               probs=probs[selected].mean(0), selected_probs=probs[selected], timings_ms=timings,
                               gflops=gflops)


def clip_video_id(result: PipelineResult) -> str:
    """What identifies the video of a one-clip result, for its random-K seed.

    The content fingerprint the pipeline recorded (``video["fingerprint"]``,
    :func:`nsnet.video.fingerprint`: the same file, uploaded or copied or renamed, gets the
    same one); for a result without one (frames given directly), a hash of its per-frame
    outputs. Never the session or the file name.
    """
    found = (result.video or {}).get("fingerprint")
    if found:
        return str(found)
    h = hashlib.sha256()
    for values in (result.timestamps_s, result.frame_scores, result.attention):
        h.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return "outputs:" + h.hexdigest()[:16]


def compare(result: PipelineResult, seed: int = 0, video_id: str | None = None) -> list[dict[str, Any]]:
    """NSNet-K vs uniform-K vs random-K vs dense-T on one clip (needs dense).

    Each row: method, frames (indices), label, score, gflops, ms. The ms of the baselines
    are decode + their recognizer frames at this run's measured per-frame cost.

    Random-K is seeded per video with the rule of ``analyze`` / ``eval`` rows,
    ``video_seed(seed, video_id)``: pass the dataset row's id as ``video_id`` and the frames
    are that row's; without it the video is identified by :func:`clip_video_id` (its
    content fingerprint), so one clip always gets the same frames and two clips their own.
    """
    probs = torch.from_numpy(_need_dense(result, "the comparison table"))[None]  # (1, T, C)
    t, k = result.num_frames, result.k
    per_frame_ms = (result.dense_recognizer_ms or result.timings_ms["recognizer"] * t / k) / t
    cost = {"sampler": result.gflops["sampler"], "recognizer": result.gflops["dense"] / t * k,
            "total": result.gflops["total"], "dense": result.gflops["dense"]}
    scores = torch.from_numpy(result.frame_scores)[None]
    attention = torch.from_numpy(result.attention)[None]
    vseed = video_seed(seed, clip_video_id(result) if video_id is None else str(video_id))
    rows = []
    for method in CLIP_METHODS:
        if method == "nsnet":
            idx, ms = torch.from_numpy(result.selected)[None], result.timings_ms["total"]
        else:
            idx = select(method, scores, attention, k, result.lam, seed=[vseed])
            ms = result.timings_ms["decode"] + per_frame_ms * idx.shape[1]
        p = video_scores(probs, idx)[0]
        top = int(torch.argmax(p))
        rows.append({"method": "NSNet" if method == "nsnet" else method, "frames": idx[0].tolist(),
                     "label": result.class_names[top], "score": float(p[top]),
                     "gflops": float(method_gflops(method, cost)), "ms": float(ms)})
    return rows
