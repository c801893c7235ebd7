"""Pure plotting: ``PipelineResult`` -> plotly ``Figure`` (no Gradio, no network).

One chart over time: the frame-level scores ``p_t`` (the head trained from pseudo
labels), the video-level attention ``g_t``, the fused saliency ``s_t``, the K selected
frames marked with their rank, ground-truth segments shaded when known, and optionally
the teacher curve (recognizer confidence of the predicted class on every preview).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from nsnet.pipeline import PipelineResult

from .views import Segment, fmt_time, frame_times, selection_ranks

__all__ = ["COLORS", "FONT", "saliency_figure", "empty_figure"]

COLORS = {
    "frame": "#2563eb",      # p_t, blue
    "attention": "#ea580c",  # g_t, orange
    "fused": "#7c3aed",      # s_t, violet
    "teacher": "#6b7280",    # grey, dashed
    "segment": "#16a34a",    # ground truth, green
    "cursor": "#111827",
}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def _layout(fig: go.Figure, x_title: str, height: int) -> None:
    fig.update_layout(
        height=height, margin=dict(l=56, r=16, t=40, b=48),
        font=dict(family=FONT, size=13, color="#1f2937"),
        plot_bgcolor="white", paper_bgcolor="white",
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, bgcolor="rgba(0,0,0,0)"),
        xaxis=dict(title=dict(text=x_title), showgrid=True, gridcolor="#eef0f3", zeroline=False,
                   linecolor="#9ca3af", ticks="outside"),
        yaxis=dict(title=dict(text="score"), range=[-0.03, 1.08], showgrid=True, gridcolor="#eef0f3",
                   zeroline=False, linecolor="#9ca3af", ticks="outside"),
    )


def empty_figure(message: str = "Upload a clip or pick an example, then press Run.", height: int = 380) -> go.Figure:
    """A placeholder chart with a centred message."""
    fig = go.Figure()
    _layout(fig, "time (s)", height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=15, color="#6b7280"))
    return fig


def saliency_figure(result: PipelineResult, *, segments: Sequence[Segment] = (), teacher: bool = False,
                    height: int = 380) -> go.Figure:
    """The saliency chart for one result.

    ``teacher=True`` adds the teacher curve; it needs a dense result (``frame_probs``)
    and is skipped silently otherwise.
    """
    x = frame_times(result)
    has_time = not np.array_equal(x, np.arange(result.num_frames, dtype=np.float64)) or result.num_frames == 1
    x_title = "time (s)" if has_time else "preview frame"
    idx = np.arange(result.num_frames)
    hover_x = [f"frame {i + 1} · {fmt_time(t)}" if has_time else f"frame {i + 1}" for i, t in zip(idx, x)]

    fig = go.Figure()
    _layout(fig, x_title, height)

    span = float(x[-1] - x[0]) if len(x) > 1 else 1.0
    for seg in segments:  # ground truth first, so it sits under the curves
        fig.add_vrect(x0=seg.start, x1=seg.end, fillcolor=COLORS["segment"], opacity=0.13, line_width=0,
                      layer="below")
    if segments:  # one legend entry for all segments
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="ground truth",
                                 marker=dict(symbol="square", size=12, color=COLORS["segment"], opacity=0.35),
                                 hoverinfo="skip"))

    common = dict(x=x, customdata=hover_x, mode="lines+markers")
    fig.add_trace(go.Scatter(y=result.frame_scores, name="frame-level p<sub>t</sub>",
                             line=dict(color=COLORS["frame"], width=1.8), marker=dict(size=5),
                             hovertemplate="p=%{y:.3f}<extra>frame-level</extra>", **common))
    fig.add_trace(go.Scatter(y=result.attention, name="attention g<sub>t</sub>",
                             line=dict(color=COLORS["attention"], width=1.8), marker=dict(size=5),
                             hovertemplate="g=%{y:.3f}<extra>attention</extra>", **common))
    if teacher and result.frame_probs is not None:
        top = result.labels[0]["label"] if result.labels else "?"
        fig.add_trace(go.Scatter(y=result.teacher_curve(), name=f"teacher: P({top})",
                                 line=dict(color=COLORS["teacher"], width=1.6, dash="dash"), marker=dict(size=4),
                                 hovertemplate="teacher=%{y:.3f}<extra>teacher</extra>", **common))
    fig.add_trace(go.Scatter(y=result.fused, name=f"fused s<sub>t</sub> (λ={result.lam:.2f})",
                             line=dict(color=COLORS["fused"], width=3), marker=dict(size=6),
                             hovertemplate="%{customdata}<br>s=%{y:.3f}<extra>fused</extra>", **common))

    ranks = selection_ranks(result)
    sel = sorted(ranks)
    fig.add_trace(go.Scatter(
        x=x[sel], y=result.fused[sel], mode="markers+text", name=f"selected (K={result.k})",
        marker=dict(symbol="circle", size=15, color="rgba(124,58,237,0.18)",
                    line=dict(color=COLORS["fused"], width=2.5)),
        text=[f"#{ranks[i]}" for i in sel], textposition="top center",
        textfont=dict(color=COLORS["fused"], size=12),
        hovertemplate="selected, rank %{text}<extra></extra>"))
    for i in sel:
        fig.add_vline(x=float(x[i]), line=dict(color=COLORS["fused"], width=1, dash="dot"), opacity=0.5,
                      layer="below")
    lo, hi = float(x[0]), float(x[-1])
    duration = (result.video or {}).get("duration_s")
    if has_time and duration:  # show the whole clip, not just the preview span
        lo, hi = min(lo, 0.0), max(hi, float(duration))
        span = hi - lo
    pad = 0.02 * span if span > 0 else 0.5
    fig.update_xaxes(range=[lo - pad, hi + pad])
    return fig
