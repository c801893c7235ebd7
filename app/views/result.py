"""Pure views of a ``PipelineResult``: gallery items, captions, tables and markdown.

Nothing here imports Gradio or runs a network, so every function is testable on a
hand-built result. ``app.tabs.analyze`` wraps these values into component updates.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from nsnet.inference import PipelineResult
from nsnet.inference.methods import compare, teacher_curve
from nsnet.viz import Segment, fmt_time, frame_times, selection_ranks  # the library's one definitions

__all__ = [
    "Segment", "selection_ranks", "fmt_time", "fmt_ms", "gallery_items", "frame_caption", "frame_view", "label_scores",
    "COMPARISON_HEADERS", "comparison_rows", "cost_markdown", "summary_markdown",
    "PER_FRAME_HEADERS", "per_frame_rows", "in_segments", "frame_times", "gallery_key", "clamp_frame",
]


def fmt_ms(ms: float) -> str:
    if ms is None or not math.isfinite(ms):
        return "-"
    return f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def gallery_items(result: PipelineResult, images: Sequence[Any] | None) -> list[tuple[Any, str]]:
    """The selected frames in time order, each captioned with rank, time and fused score.

    ``images`` has one picture per preview (the decoded frames, or their file paths);
    without them there is nothing to show.
    """
    if images is None:
        return []
    ranks = selection_ranks(result)
    times = frame_times(result)
    items = []
    for i in sorted(ranks):
        caption = f"#{ranks[i]} · {fmt_time(times[i])} · s={result.fused[i]:.2f}"
        items.append((images[i], caption))
    return items


def gallery_key(result: PipelineResult) -> tuple:
    """What the gallery shows of a result: which previews, with which captions."""
    return tuple(sorted(int(i) for i in result.selected)), [c for _, c in gallery_items(result, range(result.num_frames))]


def clamp_frame(frame: Any, t: int) -> int:
    """A 1-based frame number from a slider's value, within 1..T (1 when it is not a number)."""
    try:
        f = int(float(frame))
    except (TypeError, ValueError):
        f = 1
    return min(max(f, 1), t)


def frame_caption(result: PipelineResult, index: int, segments: Sequence[Segment] = ()) -> str:
    """A one-line markdown caption with a preview frame's time and scores."""
    t = result.num_frames
    i = int(min(max(int(index), 0), t - 1))
    times = frame_times(result)
    ranks = selection_ranks(result)
    parts = [f"**Frame {i + 1} of {t}**", fmt_time(times[i]),
             f"fused s={result.fused[i]:.2f}", f"frame p={result.frame_scores[i]:.2f}",
             f"attention g={result.attention[i]:.2f}"]
    if result.frame_probs is not None:
        parts.append(f"teacher {teacher_curve(result)[i]:.2f}")
    parts.append(f"**selected, rank {ranks[i]}**" if i in ranks else "not selected")
    if segments:
        inside = in_segments(times[i:i + 1], segments)[0]
        parts.append("inside a ground-truth segment" if inside else "background (no action)")
    return " · ".join(parts)


def frame_view(result: PipelineResult, index: int, segments: Sequence[Segment] = (),
               images: Sequence[Any] | None = None) -> tuple[Any, str]:
    """One preview frame (``images[i]``, or ``None`` without images) and its caption."""
    i = int(min(max(int(index), 0), result.num_frames - 1))
    image = None if images is None else images[i]
    return image, frame_caption(result, i, segments)


def label_scores(result: PipelineResult) -> dict[str, float]:
    """Top-5 labels as {label: probability} (the shape ``gr.Label`` takes)."""
    return {d["label"]: float(d["score"]) for d in result.labels}


COMPARISON_HEADERS = ["Method", "Frames", "Predicted label", "Confidence", "GFLOPs", "Time (ms)"]


def comparison_rows(result: PipelineResult, seed: int = 0, video_id: str | None = None) -> list[list[Any]]:
    """NSNet-K vs uniform-K vs random-K vs dense-T on this clip.

    Random-K is seeded per video as ``analyze`` / ``eval`` rows are (``nsnet.inference.methods.compare``):
    ``video_id`` is a dataset video's (or example's) id, so its frames are its row's; None (an upload):
    the library's default identity of the clip (its content).

    Before the dense pass (``frame_probs`` is None) only NSNet's own row is known: the
    baselines need the recognizer on every preview.
    """
    names = {"NSNet": f"NSNet-{result.k}", "uniform": f"Uniform-{result.k}", "random": f"Random-{result.k}",
             "dense": f"Dense-{result.num_frames}"}
    if result.frame_probs is None:
        top = result.labels[0] if result.labels else {"label": "?", "score": float("nan")}
        found = [{"method": "NSNet", "frames": [int(i) for i in result.selected], "label": top["label"],
                  "score": top["score"], "gflops": result.gflops["total"], "ms": result.timings_ms["total"]}]
    else:
        found = compare(result, seed=seed, video_id=video_id)
    rows = []
    for row in found:
        frames = row["frames"]
        shown = ", ".join(str(i + 1) for i in frames) if len(frames) <= 8 else f"all {len(frames)}"
        rows.append([names.get(row["method"], row["method"]), shown, row["label"],
                     round(float(row["score"]), 3), round(float(row["gflops"]), 2), round(float(row["ms"]), 1)])
    return rows


def cost_markdown(result: PipelineResult) -> str:
    """Decode / sampler / recognizer time, device and GFLOPs, plus what the dense pass cost."""
    tm, gf = result.timings_ms, result.gflops
    lines = [
        "| Stage | Time | GFLOPs |",
        "|---|---:|---:|",
        f"| Decode ({result.num_frames} previews) | {fmt_ms(tm['decode'])} | - |",
        f"| Sampler ({result.num_frames} frames) | {fmt_ms(tm['sampler'])} | {gf['sampler']:.2f} |",
        f"| Recognizer ({result.k} frames) | {fmt_ms(tm['recognizer'])} | {gf['recognizer']:.2f} |",
        f"| **NSNet total** | **{fmt_ms(tm['total'])}** | **{gf['total']:.2f}** |",
        "",
        f"Device: `{result.device}`. GFLOPs are multiply-adds (the convention of the NSNet paper).",
    ]
    if result.frame_probs is not None:
        dense_ms = result.dense_recognizer_ms
        extra_ms = None if dense_ms is None else max(0.0, dense_ms - tm["recognizer"])
        extra_gf = gf["dense"] - gf["recognizer"]
        lines.append(
            f"To re-rank instantly when K or λ move, and to fill the comparison table and the teacher curve, "
            f"the explorer also ran the recognizer on the other {result.num_frames - result.k} previews "
            f"(dense: +{fmt_ms(extra_ms)}, +{extra_gf:.2f} GFLOPs). That extra pass is not part of NSNet's "
            f"cost above, but it is part of the wait you saw.")
    return "\n".join(lines)


def summary_markdown(result: PipelineResult, clip_name: str, model_name: str, *, cached: bool = False,
                     segments: Sequence[Segment] = (), gt_label: str | None = None) -> str:
    """The headline above the chart: prediction (with ✓ / ✗ against ``gt_label`` when the clip's
    ground truth is known), clip facts and the model."""
    top = result.labels[0] if result.labels else {"label": "?", "score": float("nan")}
    v = result.video or {}
    facts = []
    if v.get("duration_s"):
        facts.append(fmt_time(float(v["duration_s"])))
    if v.get("width") and v.get("height"):
        facts.append(f"{v['width']}×{v['height']}")
    if v.get("fps"):
        facts.append(f"{float(v['fps']):.3g} fps")
    head = f"### {top['label']} · {float(top['score']):.0%}"
    if gt_label:
        right = top["label"] == gt_label
        head += (" · ✓ right" if right else " · ✗ wrong") + f"\n\nGround truth: **{gt_label}**" + (
            "" if right or gt_label in result.class_names else " (not one of this model's classes)")
    untrained = "" if result.trained or "untrained" in model_name.lower() else " (untrained)"
    body = (f"`{clip_name}` ({', '.join(facts) or 'unknown size'}) · model **{model_name}**{untrained}"
            f" · T={result.num_frames}, K={result.k}, λ={result.lam:.2f}")
    notes = []
    if result.repeated:
        notes.append("the clip has fewer distinct frames than T, so some previews repeat")
    if segments:
        notes.append(f"{len(segments)} ground-truth segment(s) shaded in green")
    if cached:
        notes.append("served from the example cache (timings are from its first run)")
    return head + "\n\n" + body + ("\n\n" + "; ".join(notes).capitalize() + "." if notes else "")


def in_segments(times: Iterable[float], segments: Sequence[Segment]) -> list[bool]:
    return [any(s.start <= float(t) <= s.end for s in segments) for t in times]


PER_FRAME_HEADERS = ["frame", "time_s", "frame_score", "attention", "fused", "selected", "rank",
                     "teacher_confidence", "in_gt_segment"]


def per_frame_rows(result: PipelineResult, segments: Sequence[Segment] = ()) -> list[list[Any]]:
    """One row per preview frame (the CSV export). Empty cells where a value is unknown."""
    ranks = selection_ranks(result)
    teacher = teacher_curve(result) if result.frame_probs is not None else None
    gt = in_segments(frame_times(result), segments) if segments else None
    rows = []
    for i in range(result.num_frames):
        rows.append([
            i, round(float(result.timestamps_s[i]), 4), round(float(result.frame_scores[i]), 6),
            round(float(result.attention[i]), 6), round(float(result.fused[i]), 6), int(i in ranks),
            ranks.get(i, ""), "" if teacher is None else round(float(teacher[i]), 6),
            "" if gt is None else int(gt[i]),
        ])
    return rows
