"""NSNet against the baselines at the same K (docs/method.md, "Evaluation"); ``nsnet eval`` runs it.

Methods: dense-T, uniform-K, random-K, frame-only (lam = 1), attention-only (lam = 0),
NSNet (the checkpoint's lam) and oracle-K (the K frames with the teacher's highest
ground-truth-class confidence). Each gets mAP (ActivityNet convention), top-1 and
GFLOPs per video. Where ground-truth segments exist: saliency AP of the fused score
against the salient mask, and the pseudo labels' precision and recall against it.
Per-frame outputs are computed once from cached backbone features; every method and
every K is then a re-ranking, so the K = 1..T accuracy-vs-GFLOPs curve is cheap.

Per-frame outputs and per-video scores come from :mod:`nsnet.evaluation.rows`, video by
video, the code ``nsnet analyze`` runs (random-K seeded per video id), so the table and
the per-video rows (:func:`video_rows`, ``eval --per-video``) never disagree.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import PipelineConfig
from ..inference import Pipeline
from ..inference.methods import METHODS, method_gflops, select, video_scores, video_seed
from ..inference.result import json_safe
from ..models.selection import fuse
from ..training.pseudo_labels import PseudoLabelRule, teacher_confidences
from ..metrics import average_precision, mean_average_precision, precision_recall, top1_accuracy
from .classwise import per_class
from .faithfulness import faithfulness_from_outputs
from .rows import VideoInfo, VideoOutputs, error_row, head_outputs, make_row, method_scores

__all__ = ["FrameOutputs", "frame_outputs", "evaluate", "k_curve", "video_rows", "write_curve_html", "METHODS"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameOutputs:
    """Per-frame outputs of a pipeline on N videos (what every method re-ranks)."""

    frame_scores: torch.Tensor  # (N, T) p_t
    attention: torch.Tensor     # (N, T) g_t
    frame_probs: torch.Tensor   # (N, T, C) recognizer probabilities on every preview
    labels: torch.Tensor        # (N,)
    video_ids: tuple[str, ...] = ()  # random-K is seeded per video id (positions when empty)

    @property
    def teacher_conf(self) -> torch.Tensor:  # (N, T)
        return teacher_confidences(self.frame_probs, self.labels)

    def video(self, i: int) -> VideoOutputs:
        return VideoOutputs(self.frame_scores[i], self.attention[i], self.frame_probs[i])

    def seeds(self, seed: int) -> list[int]:
        """Per-video random-K seeds (:func:`~nsnet.inference.methods.video_seed`)."""
        ids = self.video_ids or [str(i) for i in range(self.frame_scores.shape[0])]
        return [video_seed(seed, vid) for vid in ids]


@torch.no_grad()
def frame_outputs(pipe: Pipeline, fs) -> FrameOutputs:
    """Run the sampler heads and the recognizer head on a FeatureSet's cached features.

    Video by video, with :func:`nsnet.evaluation.rows.head_outputs`, the function ``analyze``
    uses: the outputs never depend on how videos were batched.
    """
    pipe.sampler.eval()
    pipe.recognizer.eval()
    outs = [head_outputs(pipe, fs.sampler[i], fs.recognizer[i]) for i in range(len(fs))]
    return FrameOutputs(torch.stack([o.frame_scores for o in outs]), torch.stack([o.attention for o in outs]),
                        torch.stack([o.frame_probs for o in outs]), fs.labels.cpu(), tuple(fs.video_ids))


def _scores(out: FrameOutputs, method: str, k: int, lam: float, seed: int) -> np.ndarray:
    """(N, C) video scores of ``method``, video by video as the rows of ``analyze`` compute them."""
    seeds, labels = out.seeds(seed), out.labels.tolist()
    return np.stack([method_scores(out.video(i), method, k, lam, seeds[i], labels[i])[1].numpy()
                     for i in range(len(seeds))])


def _batch_scores(out: FrameOutputs, method: str, k: int, lam: float, seed: int) -> np.ndarray:
    """(N, C) video scores of ``method`` for all videos at once (the K curve)."""
    teacher = out.teacher_conf if method == "oracle" else None
    idx = select(method, out.frame_scores, out.attention, k, lam, teacher_conf=teacher, seed=out.seeds(seed))
    return video_scores(out.frame_probs, idx).numpy()


def evaluate(pipe: Pipeline, fs, k: int | None = None, lam: float | None = None, seed: int = 0,
             outputs: FrameOutputs | None = None) -> dict[str, Any]:
    """The ``eval --json`` object for one FeatureSet."""
    out = outputs or frame_outputs(pipe, fs)
    n, t = out.frame_scores.shape
    k = pipe.config.k if k is None else k
    lam = pipe.config.lam if lam is None else lam
    PipelineConfig.validate(t, k, lam)  # the one check of T, K and lam
    labels = out.labels.numpy()
    methods, all_scores = {}, {}
    for m in METHODS:
        scores = all_scores[m] = _scores(out, m, k, lam, seed)
        methods[m] = {"map": mean_average_precision(scores, labels), "top1": top1_accuracy(scores, labels),
                      "gflops": method_gflops(m, pipe.gflops_per_video(t, k))}
    result: dict[str, Any] = {"t": t, "k": k, "num_videos": n, "methods": methods,
                              "saliency_ap": None, "pseudo_labels": None}
    # docs/method.md, "Faithfulness": keep / drop the frames ranked by the fused saliency
    result["faithfulness"] = faithfulness_from_outputs(out, lam, seed=seed)
    result["per_class"] = per_class(all_scores, labels, pipe.class_names)
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
            scores = _batch_scores(out, m, k, lam, seed)
            curve[m].append({"k": k, "gflops": method_gflops(m, pipe.gflops_per_video(t, k)),
                             "map": mean_average_precision(scores, labels)})
    return curve


def video_rows(pipe: Pipeline, fs, records: Sequence, out: FrameOutputs, k: int | None = None,
               lam: float | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The ``analyze`` rows of a FeatureSet (``eval --per-video``), in the order of ``records``.

    Videos the feature cache could not read become error rows; unlabelled records that
    ``eval`` left out are not listed. ``timings_ms`` is null (features came from the cache)
    and ``duration_s`` is the annotation's.
    """
    k = pipe.config.k if k is None else k
    lam = pipe.config.lam if lam is None else lam
    t = out.frame_scores.shape[1]
    cost, position = pipe.gflops_per_video(t, k), {vid: i for i, vid in enumerate(fs.video_ids)}
    rows = []
    for record in records:
        info = VideoInfo.from_record(record)
        if info.id in position:
            i = position[info.id]
            rows.append(make_row(info, out.video(i), fs.timestamps_s[i].numpy(), record.duration, k=k, lam=lam,
                                 seed=seed, cost=cost, class_names=pipe.class_names, timings_ms=None))
        elif info.id in fs.skipped:
            rows.append(error_row(info, fs.skipped[info.id][1]))
    return rows


def write_curve_html(curve: dict[str, list[dict]], dense: dict[str, float], path: str | Path, title: str,
                     plotly_js: str = "inline") -> Path:
    """Accuracy-vs-GFLOPs plot as Plotly HTML. ``plotly_js``: ``directory`` (a few KB; plotly.js
    is written once as ``plotly.min.js`` beside the HTML and shared by every plot there; works
    offline), ``inline`` (self-contained, ~5 MB a file) or ``cdn`` (a few KB, loads plotly.js
    from its CDN when opened)."""
    if plotly_js not in ("directory", "inline", "cdn"):
        raise ValueError(f"plotly_js must be 'directory', 'inline' or 'cdn', got {plotly_js!r}")
    import plotly.graph_objects as go

    fig = go.Figure()
    for method, points in curve.items():
        fig.add_trace(go.Scatter(x=[p["gflops"] for p in points], y=[100 * p["map"] for p in points],
                                 mode="lines+markers", name=method, text=[f"K={p['k']}" for p in points],
                                 hovertemplate="%{text}<br>%{x:.2f} GFLOPs<br>mAP %{y:.1f}<extra>" + method + "</extra>"))
    fig.add_trace(go.Scatter(x=[dense["gflops"]], y=[100 * dense["map"]], mode="markers", name="dense-T",
                             marker={"symbol": "star", "size": 14}))
    fig.update_layout(title=title, xaxis_title="GFLOPs per video (multiply-adds)", yaxis_title="mAP (%)", template="plotly_white")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True if plotly_js == "inline" else plotly_js)
    return path
