"""Pure chart specs: ``PipelineResult`` -> a Plotly figure as a plain dict (no Plotly import, no Gradio).

:func:`saliency_spec` is the explorer's saliency chart: the frame-level scores ``p_t``,
the video-level attention ``g_t``, the fused saliency ``s_t``, the K selected previews
marked with their rank (1 = highest ``s_t``), ground-truth segments shaded when known,
and optionally the teacher curve. It is a JSON-able dict in Plotly's figure schema
(``{"data": [...], "layout": {...}}``, no template), so the page can send it to the
browser as is and ``nsnet export`` can render the same figure to PNG / SVG
(:mod:`nsnet.export.figure`). The library never imports the app; the app's chart is
meant to come from here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .inference.methods import teacher_curve
from .inference.result import PipelineResult

__all__ = ["COLORS", "FONT", "Segment", "frame_times", "selection_ranks", "fmt_time", "chart_layout", "saliency_spec"]

COLORS = {
    "frame": "#2563eb",      # p_t, blue
    "attention": "#ea580c",  # g_t, orange
    "fused": "#7c3aed",      # s_t, violet
    "teacher": "#6b7280",    # grey, dashed
    "segment": "#16a34a",    # ground truth, green
    "cursor": "#111827",
}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


@dataclass(frozen=True)
class Segment:
    """A ground-truth segment of the clip, in seconds."""

    start: float
    end: float
    label: str = ""


def frame_times(result: PipelineResult) -> np.ndarray:
    """(T,) x positions: the preview timestamps, or 0..T-1 when the clip has no usable times."""
    ts = np.asarray(result.timestamps_s, dtype=np.float64)
    if ts.shape[0] != result.num_frames or not np.all(np.isfinite(ts)):
        return np.arange(result.num_frames, dtype=np.float64)
    return ts


def selection_ranks(result: PipelineResult) -> dict[int, int]:
    """{preview index: rank} for the selected frames; rank 1 has the highest fused score (ties: earlier frame)."""
    sel = [int(i) for i in result.selected]
    order = sorted(sel, key=lambda i: (-float(result.fused[i]), i))
    return {i: r + 1 for r, i in enumerate(order)}


def fmt_time(seconds: float | None) -> str:
    """12.34 -> '12.3 s'; 83.2 -> '1:23.2'."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(seconds, 60.0)
    return f"{int(m)}:{s:04.1f}"


def _axis(title: str, **extra: Any) -> dict:
    return dict(title=dict(text=title), showgrid=True, gridcolor="#eef0f3", zeroline=False, linecolor="#9ca3af",
                ticks="outside", automargin=True, **extra)


def chart_layout(x_title: str, height: int) -> dict:
    return dict(
        height=height, margin=dict(l=56, r=16, t=40, b=48),
        font=dict(family=FONT, size=13, color="#1f2937"),
        plot_bgcolor="white", paper_bgcolor="white",
        hovermode="x unified", hoverlabel=dict(align="left"),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, bgcolor="rgba(0,0,0,0)"),
        xaxis=_axis(x_title), yaxis=_axis("score", range=[-0.03, 1.08]),
    )


def _floats(values: Any) -> list[float | None]:
    """JSON numbers; a non-finite value becomes a gap (null), as Plotly's own encoder does."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).ravel()]


def saliency_spec(result: PipelineResult, *, segments: Sequence[Segment] = (), teacher: bool = False,
                  height: int = 380) -> dict:
    """The saliency chart for one result, as a figure dict (see the module docstring).

    ``teacher=True`` adds the teacher curve; it needs a dense result (``frame_probs``)
    and is skipped silently otherwise.
    """
    x = frame_times(result)
    has_time = not np.array_equal(x, np.arange(result.num_frames, dtype=np.float64)) or result.num_frames == 1
    idx = np.arange(result.num_frames)
    hover_x = [f"frame {i + 1} · {fmt_time(t)}" if has_time else f"frame {i + 1}" for i, t in zip(idx, x)]
    layout = chart_layout("time (s)" if has_time else "preview frame", height)
    xs = _floats(x)
    data: list[dict] = []
    shapes: list[dict] = []

    for seg in segments:  # ground truth first, so it sits under the curves
        shapes.append(dict(type="rect", xref="x", yref="y domain", x0=float(seg.start), x1=float(seg.end), y0=0, y1=1,
                           fillcolor=COLORS["segment"], opacity=0.13, line=dict(width=0), layer="below"))
    if segments:  # one legend entry for all segments
        data.append(dict(type="scatter", x=[None], y=[None], mode="markers", name="ground truth",
                         marker=dict(symbol="square", size=12, color=COLORS["segment"], opacity=0.35),
                         hoverinfo="skip"))

    def curve(values: Any, name: str, color: str, width: float, size: int, hover: str, **line: Any) -> dict:
        return dict(type="scatter", x=xs, y=_floats(values), customdata=hover_x, mode="lines+markers", name=name,
                    line=dict(color=color, width=width, **line), marker=dict(size=size), hovertemplate=hover)

    data.append(curve(result.frame_scores, "frame-level p<sub>t</sub>", COLORS["frame"], 1.8, 5,
                      "p=%{y:.3f}<extra>frame-level</extra>"))
    data.append(curve(result.attention, "attention g<sub>t</sub>", COLORS["attention"], 1.8, 5,
                      "g=%{y:.3f}<extra>attention</extra>"))
    if teacher and result.frame_probs is not None:
        top = result.labels[0]["label"] if result.labels else "?"
        data.append(curve(teacher_curve(result), f"teacher: P({top})", COLORS["teacher"], 1.6, 4,
                          "teacher=%{y:.3f}<extra>teacher</extra>", dash="dash"))
    data.append(curve(result.fused, f"fused s<sub>t</sub> (λ={result.lam:.2f})", COLORS["fused"], 3, 6,
                      "%{customdata}<br>s=%{y:.3f}<extra>fused</extra>"))

    ranks = selection_ranks(result)
    sel = sorted(ranks)
    data.append(dict(
        type="scatter", x=_floats(x[sel]), y=_floats(result.fused[sel]), mode="markers+text",
        name=f"selected (K={result.k})",
        marker=dict(symbol="circle", size=15, color="rgba(124,58,237,0.18)", line=dict(color=COLORS["fused"], width=2.5)),
        text=[f"#{ranks[i]}" for i in sel], textposition="top center", textfont=dict(color=COLORS["fused"], size=12),
        hovertemplate="selected, rank %{text}<extra></extra>"))
    for i in sel:
        shapes.append(dict(type="line", xref="x", yref="y domain", x0=float(x[i]), x1=float(x[i]), y0=0, y1=1,
                           line=dict(color=COLORS["fused"], width=1, dash="dot"), opacity=0.5, layer="below"))

    lo, hi = float(x[0]), float(x[-1])
    span = hi - lo if len(x) > 1 else 1.0
    duration = (result.video or {}).get("duration_s")
    if has_time and duration:  # show the whole clip, not just the preview span
        lo, hi = min(lo, 0.0), max(hi, float(duration))
        span = hi - lo
    pad = 0.02 * span if span > 0 else 0.5
    layout["xaxis"]["range"] = [lo - pad, hi + pad]
    layout["shapes"] = shapes
    return {"data": data, "layout": layout}
