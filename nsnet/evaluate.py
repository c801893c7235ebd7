"""``python -m nsnet eval``: NSNet against the baselines at the same K (NSNET.md, "How it is judged").

Methods: dense-T, uniform-K, random-K, frame-only (lam = 1), attention-only (lam = 0),
NSNet (the checkpoint's lam) and oracle-K (the K frames with the teacher's highest
ground-truth-class confidence). Each gets mAP (ActivityNet convention), top-1 and
GFLOPs per video. Where ground-truth segments exist: saliency AP of the fused score
against the salient mask, and the pseudo labels' precision and recall against it.
Per-frame outputs are computed once from cached backbone features; every method and
every K is then a re-ranking, so the K = 1..T accuracy-vs-GFLOPs curve is cheap.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ConfigError
from .metrics import average_precision, mean_average_precision, precision_recall, top1_accuracy
from .models.selection import fuse, random_indices, select_topk, uniform_indices
from .pipeline import DEFAULT_CHECKPOINT, CheckpointError, Pipeline
from .pseudo_labels import make_pseudo_labels, teacher_confidences

log = logging.getLogger(__name__)

METHODS = ("dense", "uniform", "random", "frame_only", "attention_only", "nsnet", "oracle")


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
    probs = torch.softmax(logits.float(), -1).view(n, t, -1)
    return FrameOutputs(heads.frame_scores.float().cpu(), heads.attention.float().cpu(), probs.cpu(), fs.labels.cpu())


def select(out: FrameOutputs, method: str, k: int, lam: float, seed: int = 0) -> torch.Tensor:
    """(N, k) preview indices that ``method`` keeps for each video."""
    n, t = out.frame_scores.shape
    if method == "dense":
        return torch.arange(t).expand(n, t)
    if method == "uniform":
        return torch.tensor(uniform_indices(t, k)).expand(n, k)
    if method == "random":
        gen = torch.Generator().manual_seed(seed)
        return torch.tensor([random_indices(t, k, gen) for _ in range(n)])
    if method == "oracle":
        return select_topk(out.teacher_conf, k)
    weight = {"frame_only": 1.0, "attention_only": 0.0, "nsnet": lam}[method]
    return select_topk(fuse(out.frame_scores, out.attention, weight), k)


def video_scores(out: FrameOutputs, idx: torch.Tensor) -> np.ndarray:
    """(N, C): mean class probabilities over each video's kept frames."""
    gathered = out.frame_probs.gather(1, idx.unsqueeze(-1).expand(-1, -1, out.frame_probs.shape[-1]))
    return gathered.mean(1).numpy()


def method_gflops(pipe: Pipeline, method: str, t: int, k: int) -> float:
    cost = pipe.gflops_per_video(t, k)
    if method == "dense":
        return cost["dense"]
    if method in ("uniform", "random", "oracle"):
        return cost["recognizer"]
    return cost["total"]


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
        scores = video_scores(out, select(out, m, k, lam, seed))
        methods[m] = {"map": mean_average_precision(scores, labels), "top1": top1_accuracy(scores, labels),
                      "gflops": method_gflops(pipe, m, t, k)}
    result: dict[str, Any] = {"t": t, "k": k, "num_videos": n, "methods": methods,
                              "saliency_ap": None, "pseudo_labels": None}
    if fs.gt_mask is not None:
        mask = fs.gt_mask.bool()
        fused = fuse(out.frame_scores, out.attention, lam)
        aps = [average_precision(fused[i].numpy(), mask[i].numpy()) for i in range(n)
               if 0 < int(mask[i].sum()) < t]
        result["saliency_ap"] = float(np.mean(aps)) if aps else None
        train = pipe.config.meta.get("train", {})
        pseudo = make_pseudo_labels(out.teacher_conf, train.get("pseudo_rule", "threshold"),
                                    gamma=train.get("gamma", 0.8), rho=train.get("rho", 0.25), tau=train.get("tau", 0.5))
        p, r = precision_recall((pseudo >= 0.5).numpy(), mask.numpy())
        result["pseudo_labels"] = {"precision": p, "recall": r}
    return _nan_to_none(result)


def k_curve(pipe: Pipeline, out: FrameOutputs, lam: float, seed: int = 0,
            methods: tuple[str, ...] = ("nsnet", "uniform", "random")) -> dict[str, list[dict]]:
    """mAP and GFLOPs for K = 1..T per method (accuracy-vs-cost curve)."""
    t = out.frame_scores.shape[1]
    labels = out.labels.numpy()
    curve: dict[str, list[dict]] = {m: [] for m in methods}
    for k in range(1, t + 1):
        for m in methods:
            scores = video_scores(out, select(out, m, k, lam, seed))
            curve[m].append({"k": k, "gflops": method_gflops(pipe, m, t, k),
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


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nsnet eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder or annotation file")
    p.add_argument("--video-root", default=None)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="checkpoint folder or hub id")
    p.add_argument("--subset", default="validation")
    p.add_argument("--k", type=int, default=None, help="frames kept (default: the checkpoint's K)")
    p.add_argument("--lam", type=float, default=None, help="fusion weight (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-K baseline")
    p.add_argument("--cache-dir", default=None, help="feature cache (default: <data>/.nsnet-cache)")
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", dest="json_out", default=None, help="write the result object here")
    p.add_argument("--plot", default=None, help="write the accuracy-vs-GFLOPs curve (K = 1..T) as Plotly HTML")
    p.add_argument("--plot-js", choices=["inline", "cdn"], default="inline",
                   help="inline plotly.js (offline, ~5 MB) or load it from the CDN (small file)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from .features import build_feature_set, default_cache_dir, load_records

    args = build_parser().parse_args(argv)
    try:
        pipe = Pipeline.from_pretrained(args.checkpoint, device=args.device)
        records, class_names = load_records(args.data, args.subset, video_root=args.video_root,
                                            max_videos=args.max_videos)
        if list(class_names) != list(pipe.class_names):
            raise ConfigError(f"the dataset's classes ({len(class_names)}) differ from the checkpoint's "
                              f"({len(pipe.class_names)}): evaluate on the data it was trained for")
        cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir(args.data)
        fs = build_feature_set(records, class_names, pipe, pipe.config.num_frames, cache,
                               progress=not args.no_progress)
        out = frame_outputs(pipe, fs)
        result = evaluate(pipe, fs, args.k, args.lam, args.seed, outputs=out)
    except (ConfigError, CheckpointError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    text = json.dumps(result, indent=2)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    print(text)
    if args.plot:
        lam = pipe.config.lam if args.lam is None else args.lam
        path = write_curve_html(k_curve(pipe, out, lam, args.seed), result["methods"]["dense"], args.plot,
                                f"{args.subset}: mAP vs GFLOPs over K = 1..{result['t']}", args.plot_js)
        log.info("wrote %s", path)
    return 0
