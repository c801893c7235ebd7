"""Two checkpoints on the same clip, pure views: the shared chart, each side's headline and cost, the overlap.

Both pipelines ran densely on the same decoded previews (``app.server.runtime.analyze_pair``);
the comparison's state, ``app.state.session.CompareState``, re-ranks both for a new K / λ.
``compare_spec`` draws both fused curves on one chart with both selections marked (and, on
request, both frame-level and attention curves). No Gradio, no network.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from nsnet.inference import PipelineResult

from .plots import COLORS, FONT
from .result import fmt_ms, fmt_time, frame_times, selection_ranks

if TYPE_CHECKING:  # annotations only: the state is built by app.state.session
    from app.state.session import CompareState

__all__ = ["compare_spec", "side_markdown", "cost_markdown", "overlap_markdown", "gt_mark", "SIDE_COLORS"]

SIDE_COLORS = {"A": {"fused": COLORS["fused"], "frame": "#60a5fa", "attention": "#fb923c"},
               "B": {"fused": "#0d9488", "frame": "#1e3a8a", "attention": "#9a3412"}}


def gt_mark(label: str, gt_label: str | None) -> str:
    """' ✓' / ' ✗' after a predicted label when the ground truth is known, else ''."""
    if not gt_label:
        return ""
    return " ✓" if label == gt_label else " ✗"


def side_markdown(result: PipelineResult, name: str, side: str, gt_label: str | None = None) -> str:
    """One checkpoint's headline: its top label (with a right/wrong mark) and which frames it kept."""
    top = result.labels[0] if result.labels else {"label": "?", "score": float("nan")}
    times = frame_times(result)
    frames = ", ".join(f"{i + 1} ({fmt_time(times[i])})" for i in sorted(int(j) for j in result.selected))
    gt = f" · ground truth **{gt_label}**" if gt_label else ""
    return (f"#### {side}: {name}\n\n**{top['label']}** · {float(top['score']):.0%}{gt_mark(top['label'], gt_label)}"
            f"{gt}\n\nFrames kept (K={result.k}): {frames}")


def cost_markdown(result: PipelineResult) -> str:
    """A compact cost table for one checkpoint (decode is shared by both)."""
    tm, gf = result.timings_ms, result.gflops
    dense = "" if result.dense_recognizer_ms is None else (
        f"\n\nDense pass (all {result.num_frames} previews, for instant K/λ): {fmt_ms(result.dense_recognizer_ms)}.")
    return ("| Stage | Time | GFLOPs |\n|---|---:|---:|\n"
            f"| Sampler ({result.num_frames}) | {fmt_ms(tm['sampler'])} | {gf['sampler']:.2f} |\n"
            f"| Recognizer ({result.k}) | {fmt_ms(tm['recognizer'])} | {gf['recognizer']:.2f} |\n"
            f"| **NSNet, past decoding** | **{fmt_ms(tm['sampler'] + tm['recognizer'])}** | **{gf['total']:.2f}** |"
            + dense)


def overlap_markdown(state: "CompareState") -> str:
    """Which frames both kept, which only one did; the shared decode and the total wait."""
    a = {int(i) for i in state.result_a.selected}
    b = {int(i) for i in state.result_b.selected}

    def fmt(s: set) -> str:
        return ", ".join(str(i + 1) for i in sorted(s)) or "none"

    la, lb = state.result_a.labels[0]["label"], state.result_b.labels[0]["label"]
    same = "the same top label" if la == lb else "different top labels"
    ra = state.result_a
    return (f"`{state.clip_name}` · T={ra.num_frames}, K={ra.k}, λ={ra.lam:.2f} · "
            f"{same} · frames both kept: **{fmt(a & b)}** · only A: {fmt(a - b)} · only B: {fmt(b - a)}.\n\n"
            f"Decoded once ({fmt_ms(state.decode_ms)}), both checkpoints on the same previews; the comparison took "
            f"{fmt_ms(state.total_ms)} in all.")


def compare_spec(state: "CompareState", *, detail: bool = False, height: int = 400) -> dict:
    """Both fused curves on one chart, both selections marked (figure dict, like ``app.views.plots``).

    ``detail`` adds both checkpoints' frame-level and attention curves (thin, dotted/dashed).
    """
    ra, rb = state.result_a, state.result_b
    x = frame_times(ra)
    xs = [float(v) for v in x]
    data: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    for seg in state.segments:
        shapes.append(dict(type="rect", xref="x", yref="y domain", x0=float(seg.start), x1=float(seg.end), y0=0, y1=1,
                           fillcolor=COLORS["segment"], opacity=0.13, line=dict(width=0), layer="below"))
    if state.segments:
        data.append(dict(type="scatter", x=[None], y=[None], mode="markers", name="ground truth",
                         marker=dict(symbol="square", size=12, color=COLORS["segment"], opacity=0.35),
                         hoverinfo="skip"))

    def floats(values: Sequence[float]) -> list[float | None]:
        return [float(v) if math.isfinite(float(v)) else None for v in values]

    sides = (("A", ra, state.name_a, "circle"), ("B", rb, state.name_b, "diamond"))
    for side, r, name, symbol in sides:
        colors = SIDE_COLORS[side]
        if detail:
            for key, label, dash in (("frame", "frame-level p", "dot"), ("attention", "attention g", "dash")):
                values = r.frame_scores if key == "frame" else r.attention
                data.append(dict(type="scatter", x=xs, y=floats(values), mode="lines", name=f"{side}: {label}",
                                 line=dict(color=colors[key], width=1.4, dash=dash),
                                 hovertemplate=f"{side} {label}=%{{y:.3f}}<extra></extra>"))
        data.append(dict(type="scatter", x=xs, y=floats(r.fused), mode="lines+markers",
                         name=f"{side}: fused s ({name})", line=dict(color=colors["fused"], width=3),
                         marker=dict(size=5), hovertemplate=f"{side} s=%{{y:.3f}}<extra></extra>"))
    for side, r, name, symbol in sides:
        ranks = selection_ranks(r)
        sel = sorted(ranks)
        color = SIDE_COLORS[side]["fused"]
        data.append(dict(type="scatter", x=[xs[i] for i in sel], y=floats([r.fused[i] for i in sel]),
                         mode="markers+text", name=f"{side}: selected (K={r.k})",
                         marker=dict(symbol=symbol, size=15, color="rgba(255,255,255,0.4)",
                                     line=dict(color=color, width=2.5)),
                         text=[f"{side}{ranks[i]}" for i in sel], textposition="top center" if side == "A"
                         else "bottom center", textfont=dict(color=color, size=11),
                         hovertemplate=f"{side} selected, rank %{{text}}<extra></extra>"))
        for i in sel:
            shapes.append(dict(type="line", xref="x", yref="y domain", x0=xs[i], x1=xs[i], y0=0 if side == "A" else 0.5,
                               y1=0.5 if side == "A" else 1, line=dict(color=color, width=1, dash="dot"), opacity=0.6,
                               layer="below"))
    lo, hi = (xs[0], xs[-1]) if xs else (0.0, 1.0)
    duration = (ra.video or {}).get("duration_s")
    if duration:
        lo, hi = min(lo, 0.0), max(hi, float(duration))
    pad = 0.02 * (hi - lo) if hi > lo else 0.5
    layout = dict(
        height=height, margin=dict(l=56, r=16, t=40, b=48), font=dict(family=FONT, size=13, color="#1f2937"),
        plot_bgcolor="white", paper_bgcolor="white", hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, bgcolor="rgba(0,0,0,0)"),
        xaxis=dict(title=dict(text="time (s)"), range=[lo - pad, hi + pad], showgrid=True, gridcolor="#eef0f3",
                   zeroline=False, automargin=True),
        yaxis=dict(title=dict(text="score"), range=[-0.08, 1.12], showgrid=True, gridcolor="#eef0f3", zeroline=False),
        shapes=shapes)
    return {"data": data, "layout": layout}
