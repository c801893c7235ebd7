"""NSNet against the baselines at the same K (docs/method.md, "Evaluation"); ``nsnet eval`` runs it.

Methods: dense-T, uniform-K, random-K, frame-only (lam = 1), attention-only (lam = 0),
NSNet (the checkpoint's lam) and oracle-K (the K frames with the teacher's highest
ground-truth-class confidence). Each gets mAP (ActivityNet convention), top-1 and
GFLOPs per video. Where ground-truth segments exist: saliency AP of the fused score
against the salient mask, and the pseudo labels' precision and recall against it.
Per-frame outputs are computed once from cached backbone features; every method and
every K is then a re-ranking, so the K = 1..T accuracy-vs-GFLOPs curve is cheap.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..inference import Pipeline
from ..inference.methods import METHODS, method_gflops, select, video_scores
from ..inference.result import json_safe
from ..models.recognizer import class_probs
from ..models.selection import fuse
from ..training.pseudo_labels import PseudoLabelRule, teacher_confidences
from .metrics import average_precision, mean_average_precision, precision_recall, top1_accuracy

__all__ = ["FrameOutputs", "frame_outputs", "evaluate", "k_curve", "write_curve_html", "METHODS"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameOutputs:
    """Per-frame outputs of a pipeline on N videos (what every method re-ranks)."""

    frame_scores: torch.Tensor  # (N, T) p_t
    attention: torch.Tensor     # (N, T) g_t
    frame_probs: torch.Tensor   # (N, T, C) recognizer probabilities on every preview
    labels: torch.Tensor        # (N,)

    @property
    def teacher_conf(self) -> torch.Tensor:  # (N, T)
        return teacher_confidences(self.frame_probs, self.labels)


@torch.no_grad()
def frame_outputs(pipe: Pipeline, fs) -> FrameOutputs:
    """Run the sampler heads and the recognizer head on a FeatureSet's cached features."""
    pipe.sampler.eval()
    pipe.recognizer.eval()
    heads = pipe.sampler.forward_head(fs.sampler.to(pipe.device))
    n, t, _ = fs.recognizer.shape
    logits = pipe.recognizer.forward_head(fs.recognizer.to(pipe.device).flatten(0, 1))
    probs = class_probs(logits).view(n, t, -1)
    return FrameOutputs(heads.frame_scores.float().cpu(), heads.attention.float().cpu(), probs.cpu(), fs.labels.cpu())


def _scores(out: FrameOutputs, method: str, k: int, lam: float, seed: int) -> np.ndarray:
    """(N, C) video scores of ``method`` (see :mod:`nsnet.inference.methods`)."""
    teacher = out.teacher_conf if method == "oracle" else None
    idx = select(method, out.frame_scores, out.attention, k, lam, teacher_conf=teacher, seed=seed)
    return video_scores(out.frame_probs, idx).numpy()


def evaluate(pipe: Pipeline, fs, k: int | None = None, lam: float | None = None, seed: int = 0,
             outputs: FrameOutputs | None = None) -> dict[str, Any]:
    """The ``eval --json`` object for one FeatureSet."""
    out = outputs or frame_outputs(pipe, fs)
    n, t = out.frame_scores.shape
    k = pipe.config.k if k is None else k
    lam = pipe.config.lam if lam is None else lam
    if not 1 <= k <= t:
        raise ConfigError(f"k must be between 1 and T={t}, got {k}")
    labels = out.labels.numpy()
    methods = {}
    for m in METHODS:
        scores = _scores(out, m, k, lam, seed)
        methods[m] = {"map": mean_average_precision(scores, labels), "top1": top1_accuracy(scores, labels),
                      "gflops": method_gflops(m, pipe.gflops_per_video(t, k))}
    result: dict[str, Any] = {"t": t, "k": k, "num_videos": n, "methods": methods,
                              "saliency_ap": None, "pseudo_labels": None}
    if fs.gt_mask is not None:
        mask = fs.gt_mask.bool()
        fused = fuse(out.frame_scores, out.attention, lam)
        aps = [average_precision(fused[i].numpy(), mask[i].numpy()) for i in range(n)
               if 0 < int(mask[i].sum()) < t]
        result["saliency_ap"] = float(np.mean(aps)) if aps else None
        pseudo = PseudoLabelRule.from_train_meta(pipe.config.meta.get("train", {}))(out.teacher_conf)
        p, r = precision_recall((pseudo >= 0.5).numpy(), mask.numpy())
        result["pseudo_labels"] = {"precision": p, "recall": r}
    return json_safe(result)


def k_curve(pipe: Pipeline, out: FrameOutputs, lam: float, seed: int = 0,
            methods: tuple[str, ...] = ("nsnet", "uniform", "random")) -> dict[str, list[dict]]:
    """mAP and GFLOPs for K = 1..T per method (accuracy-vs-cost curve)."""
    t = out.frame_scores.shape[1]
    labels = out.labels.numpy()
    curve: dict[str, list[dict]] = {m: [] for m in methods}
    for k in range(1, t + 1):
        for m in methods:
            scores = _scores(out, m, k, lam, seed)
            curve[m].append({"k": k, "gflops": method_gflops(m, pipe.gflops_per_video(t, k)),
                             "map": mean_average_precision(scores, labels)})
    return curve


def write_curve_html(curve: dict[str, list[dict]], dense: dict[str, float], path: str | Path, title: str,
                     plotly_js: str = "inline") -> Path:
    """Accuracy-vs-GFLOPs plot as Plotly HTML: ``inline`` (self-contained, works offline, ~5 MB)
    or ``cdn`` (a few KB, loads plotly.js from its CDN when opened)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for method, points in curve.items():
        fig.add_trace(go.Scatter(x=[p["gflops"] for p in points], y=[100 * p["map"] for p in points],
                                 mode="lines+markers", name=method, text=[f"K={p['k']}" for p in points],
                                 hovertemplate="%{text}<br>%{x:.2f} GFLOPs<br>mAP %{y:.1f}<extra>" + method + "</extra>"))
    fig.add_trace(go.Scatter(x=[dense["gflops"]], y=[100 * dense["map"]], mode="markers", name="dense-T",
                             marker={"symbol": "star", "size": 14}))
    fig.update_layout(title=title, xaxis_title="GFLOPs per video", yaxis_title="mAP (%)", template="plotly_white")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True if plotly_js == "inline" else "cdn")
    return path
