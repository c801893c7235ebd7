"""Pure plotting: ``PipelineResult`` -> a Plotly figure (no Gradio, no network).

The saliency chart is the library's one definition, ``nsnet.viz.saliency_spec`` (the same
figure ``nsnet export`` writes as PNG/SVG): the frame-level scores ``p_t``, the video-level
attention ``g_t``, the fused saliency ``s_t``, the K selected frames marked with their rank,
ground-truth segments shaded when known, and optionally the teacher curve. It is re-exported
here as ``saliency_spec`` for the app.

Each chart exists in two forms: ``*_spec`` builds the figure as a plain JSON-able dict
in Plotly's figure schema (``{"data": [...], "layout": {...}}``, no template), which the
explorer sends to the browser as is; ``*_figure`` wraps the same dict in a validated
``plotly.graph_objects.Figure`` for notebooks and tests. Building the dict takes well
under a millisecond where ``go.Figure`` validation takes tens, and that matters when K
or λ move.
"""
from __future__ import annotations

import html
from typing import Sequence

import plotly.graph_objects as go

from nsnet.inference import PipelineResult
from nsnet.viz import COLORS, FONT, Segment, chart_layout, saliency_spec

__all__ = ["COLORS", "FONT", "saliency_spec", "saliency_figure", "empty_spec", "empty_figure", "removal_spec", "removal_figure"]


def empty_spec(message: str = "Upload a clip or pick an example, then press Run.", height: int = 380) -> dict:
    """A placeholder chart with a centred message (figure dict)."""
    layout = chart_layout("time (s)", height)
    layout["xaxis"]["visible"] = False
    layout["yaxis"]["visible"] = False
    layout["annotations"] = [dict(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                                  font=dict(size=15, color="#6b7280"))]
    return {"data": [], "layout": layout}


def empty_figure(message: str = "Upload a clip or pick an example, then press Run.", height: int = 380) -> go.Figure:
    """``empty_spec`` as a validated ``go.Figure``."""
    return go.Figure(empty_spec(message, height))


def saliency_figure(result: PipelineResult, *, segments: Sequence[Segment] = (), teacher: bool = False,
                    height: int = 380) -> go.Figure:
    """``saliency_spec`` as a validated ``go.Figure`` (same arguments)."""
    return go.Figure(saliency_spec(result, segments=segments, teacher=teacher, height=height))


def removal_spec(result: PipelineResult, height: int = 260) -> dict:
    """The one-clip removal curve (``nsnet.evaluation.faithfulness.removal_curve``), figure dict: the probability
    of the full clip's label as the previews are removed one by one, most salient first (violet) and least
    salient first (grey). A faithful saliency makes the violet curve fall first. Needs a dense result."""
    from nsnet.evaluation.faithfulness import removal_curve

    if result.frame_probs is None:
        return empty_spec("The removal curve appears after the dense pass.", height)
    layout = chart_layout("previews removed", height)
    layout["yaxis"]["title"]["text"] = "P(full-clip label)"
    layout["margin"] = dict(l=56, r=16, t=64, b=44)   # room for the title above the legend
    data = []
    for most, name, color, width in ((True, "most salient removed first", COLORS["fused"], 3),
                                     (False, "least salient removed first", COLORS["teacher"], 1.8)):
        curve = removal_curve(result, most_first=most)
        hover = [f"{'all previews' if frame is None else f'removed frame {frame + 1}'}<br>top: {label} ({score:.2f})"
                 for frame, label, score in zip(curve["frame"], curve["label"], curve["score"])]
        data.append(dict(type="scatter", x=curve["removed"], y=curve["full_label_prob"], customdata=hover,
                         mode="lines+markers", name=name, line=dict(color=color, width=width), marker=dict(size=5),
                         hovertemplate=f"%{{customdata}}<br>P({curve['full_label']})=%{{y:.3f}}<extra></extra>"))
    layout["title"] = dict(text=f"Removing previews: what the recognizer says (label of the full clip: "
                                f"{html.escape(curve['full_label'])})", x=0.01, xanchor="left", font=dict(size=13))
    layout["title"].update(y=0.97, yanchor="top")
    layout["legend"].update(y=1.0, yanchor="bottom")
    layout["hovermode"] = "closest"
    return {"data": data, "layout": layout}


def removal_figure(result: PipelineResult, height: int = 260) -> go.Figure:
    """``removal_spec`` as a validated ``go.Figure``."""
    return go.Figure(removal_spec(result, height))
