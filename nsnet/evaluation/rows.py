"""Per-video rows of ``nsnet analyze`` (and ``eval --per-video``) and the summary over them.

One code path from backbone features to numbers, shared by ``analyze`` and ``eval``:

* :func:`head_outputs` -- the per-frame outputs of one video (``p_t``, ``g_t`` and the
  recognizer's class probabilities on every preview) from its backbone features;
* :func:`method_scores` -- which previews a method keeps and the video's class scores,
  from :mod:`nsnet.inference.methods` (random-K is seeded per video with
  :func:`~nsnet.inference.methods.video_seed`, so a video's frames never depend on which
  other videos were analysed, on which rank, or in which order);
* :func:`make_row` / :func:`error_row` -- the JSONL row (README, "Analysing a dataset");
* :func:`summarize` -- counts and per-method mAP / top-1 over rows.

Everything here runs per video, so a video's numbers do not depend on how videos were
batched: ``eval``'s aggregate and the rows of ``analyze`` are the same computation.
Vectors are written as the shortest decimal that reads back as the same float32, so a
summary computed from the rows equals one computed from the tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data.records import segments_mask
from ..inference.methods import CLIP_METHODS, method_gflops, select, video_scores, video_seed
from ..inference.result import json_safe
from ..models.recognizer import class_probs
from ..models.selection import fuse
from ..metrics import average_precision, mean_average_precision, top1_accuracy
from .classwise import per_class
from .faithfulness import RowCollector

__all__ = ["ROW_METHODS", "ROW_KEYS", "VideoOutputs", "VideoInfo", "head_outputs", "method_scores", "make_row",
           "error_row", "summarize", "f32_list"]

#: The methods every row reports (the per-clip comparison of the explorer).
ROW_METHODS: tuple[str, ...] = CLIP_METHODS  # nsnet, uniform, random, dense

#: The keys of every row, in the order they are written (the contract the explorer reads).
ROW_KEYS: tuple[str, ...] = ("id", "path", "subset", "gt", "segments", "duration_s", "timestamps_s", "frame_scores",
                             "attention", "fused", "selected", "teacher", *ROW_METHODS, "saliency_ap", "gflops",
                             "timings_ms", "error", "class_scores", "frame_probs")


@dataclass(frozen=True)
class VideoOutputs:
    """Per-frame outputs of the pipeline on one video (what every method re-ranks)."""

    frame_scores: Tensor  # (T,) p_t, float32 on the CPU
    attention: Tensor     # (T,) g_t
    frame_probs: Tensor   # (T, C) recognizer probabilities on every preview


@dataclass(frozen=True)
class VideoInfo:
    """What a row says about a video besides the network outputs."""

    id: str
    path: str
    subset: str | None = None
    gt: str | None = None                 # class name, None when unlabelled
    label_index: int = -1                 # index of ``gt`` in the checkpoint's classes
    segments: tuple[tuple[float, float], ...] | None = None  # ground truth, None when unknown

    @classmethod
    def from_record(cls, record) -> "VideoInfo":
        """From a :class:`nsnet.data.records.VideoRecord`."""
        return cls(str(record.video_id), str(record.path), record.subset, record.label, int(record.label_index),
                   record.segments)


@torch.no_grad()
def head_outputs(pipe, sampler_feats: Tensor, recognizer_feats: Tensor) -> VideoOutputs:
    """Sampler heads and recognizer head of one video's backbone features (T, Ds) and (T, Dr)."""
    heads = pipe.sampler.forward_head(sampler_feats.unsqueeze(0).to(pipe.device))
    logits = pipe.recognizer.forward_head(recognizer_feats.to(pipe.device))
    return VideoOutputs(heads.frame_scores[0].float().cpu(), heads.attention[0].float().cpu(),
                        class_probs(logits).cpu())


def method_scores(out: VideoOutputs, method: str, k: int, lam: float, seed: int,
                  label_index: int = -1) -> tuple[Tensor, Tensor]:
    """(kept preview indices (k',), class scores (C,)) of ``method`` on one video.

    ``seed`` is this video's seed (:func:`~nsnet.inference.methods.video_seed`); the oracle
    needs ``label_index``.
    """
    teacher = out.frame_probs[:, label_index].unsqueeze(0) if method == "oracle" else None
    idx = select(method, out.frame_scores.unsqueeze(0), out.attention.unsqueeze(0), k, lam,
                 teacher_conf=teacher, seed=seed)
    return idx[0], video_scores(out.frame_probs.unsqueeze(0), idx)[0]


def f32_list(values) -> list[float]:
    """Floats written as the shortest decimal that reads back as the same float32."""
    arr = np.asarray(values, dtype=np.float32).ravel()
    return [float(str(v)) for v in arr]  # str(np.float32) is its shortest round-trip form


def saliency_ap(fused: Tensor, timestamps_s: np.ndarray, segments) -> float | None:
    """AP of the fused saliency against the previews inside a ground-truth segment.

    None without segments, or when every preview or none is inside one (as ``eval``).
    """
    if segments is None:
        return None
    mask = segments_mask(timestamps_s, segments)
    if not 0 < int(mask.sum()) < mask.size:
        return None
    return average_precision(fused.numpy(), mask)


def make_row(info: VideoInfo, out: VideoOutputs, timestamps_s, duration_s: float | None, *, k: int, lam: float,
             seed: int, cost: dict[str, float], class_names: Sequence[str],
             timings_ms: dict[str, float] | None) -> dict[str, Any]:
    """The JSONL row of one analysed video (keys :data:`ROW_KEYS`; strict JSON once dumped)."""
    fused = fuse(out.frame_scores, out.attention, lam)
    vseed = video_seed(seed, info.id)
    methods, scores, selected = {}, {}, None
    for m in ROW_METHODS:
        idx, p = method_scores(out, m, k, lam, vseed)
        top = int(torch.argmax(p))
        methods[m] = {"label": class_names[top], "score": float(str(p[top].numpy())),
                      "correct": None if info.label_index < 0 else top == info.label_index}
        scores[m] = f32_list(p)
        if m == "nsnet":
            selected, nsnet_top = idx, top
    ts = np.asarray(timestamps_s, dtype=np.float64)
    row = {
        "id": info.id, "path": info.path, "subset": info.subset, "gt": info.gt,
        "segments": [[float(s), float(e)] for s, e in (info.segments or ())],
        "duration_s": None if duration_s is None else float(duration_s),
        "timestamps_s": [round(float(x), 4) for x in ts],
        "frame_scores": f32_list(out.frame_scores), "attention": f32_list(out.attention), "fused": f32_list(fused),
        "selected": [int(i) for i in selected],
        "teacher": f32_list(out.frame_probs[:, nsnet_top]),
        **methods,
        "saliency_ap": saliency_ap(fused, ts, info.segments),
        "gflops": {m: round(float(method_gflops(m, cost)), 4) for m in ROW_METHODS},
        "timings_ms": None if timings_ms is None else {n: round(float(v), 2) for n, v in timings_ms.items()},
        "error": None,
        "class_scores": scores,
        "frame_probs": [f32_list(p) for p in out.frame_probs],  # (T, C): accuracy-vs-K with no network pass
    }
    return json_safe(row)


def error_row(info: VideoInfo, error: str, timings_ms: dict[str, float] | None = None) -> dict[str, Any]:
    """The row of a video that could not be analysed: every key present, ``error`` one line."""
    row: dict[str, Any] = {key: None for key in ROW_KEYS}
    row.update({"id": info.id, "path": info.path, "subset": info.subset, "gt": info.gt,
                "segments": [[float(s), float(e)] for s, e in (info.segments or ())],
                "error": " ".join(str(error).split()) or "error"})
    for key in ("timestamps_s", "frame_scores", "attention", "fused", "selected", "teacher"):
        row[key] = []
    if timings_ms is not None:
        row["timings_ms"] = {n: round(float(v), 2) for n, v in timings_ms.items()}
    return json_safe(row)


def summarize(rows: Iterable[dict], class_names: Sequence[str], *, seed: int = 0) -> dict[str, Any]:
    """Counts, and per method mAP / top-1 (labelled videos) and GFLOPs, over rows in order.

    The mAP of a method is :func:`~nsnet.metrics.mean_average_precision` of the
    rows' ``class_scores`` (read back as float32), exactly as ``eval`` computes it. ``per_class``
    (:func:`~nsnet.evaluation.classwise.per_class`) and ``faithfulness`` (:mod:`nsnet.evaluation.faithfulness`,
    random orders seeded with the run's ``seed``) come from the same rows' ``class_scores`` and ``frame_probs``.
    """
    index = {c: i for i, c in enumerate(class_names)}
    counts = {"videos": 0, "ok": 0, "errors": 0, "labelled": 0, "unlabelled": 0, "unknown_label": 0}
    scores: dict[str, list] = {m: [] for m in ROW_METHODS}
    labels, saliency, gflops, first_error = [], [], None, None
    faith = RowCollector(class_names)
    for row in rows:
        counts["videos"] += 1
        if row.get("error"):
            counts["errors"] += 1
            first_error = first_error or f"{row['id']}: {row['error']}"
            continue
        counts["ok"] += 1
        gflops = gflops or row.get("gflops")
        faith.add(row)
        if row.get("gt") is None:
            counts["unlabelled"] += 1
            continue
        if row["gt"] not in index:  # a label the checkpoint does not know: no mAP, no top-1
            counts["unknown_label"] += 1
            continue
        counts["labelled"] += 1
        labels.append(index[row["gt"]])
        for m in ROW_METHODS:
            scores[m].append(np.asarray(row["class_scores"][m], dtype=np.float32))
        if row.get("saliency_ap") is not None:
            saliency.append(row["saliency_ap"])
    methods = {}
    for m in ROW_METHODS:
        entry: dict[str, Any] = {"map": None, "top1": None, "gflops": None if gflops is None else gflops[m]}
        if labels:
            s, y = np.stack(scores[m]), np.asarray(labels)
            entry.update(map=mean_average_precision(s, y), top1=top1_accuracy(s, y))
        methods[m] = entry
    classes = per_class({m: np.stack(scores[m]) for m in ROW_METHODS}, labels, class_names) if labels else {}
    return json_safe({"counts": counts, "methods": methods,
                      "saliency_ap": float(np.mean(saliency)) if saliency else None, "first_error": first_error,
                      "per_class": classes, "faithfulness": faith.result(seed=seed)})
