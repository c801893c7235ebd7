"""app.views.plots: PipelineResult -> plotly Figure, checked as data (no Gradio, no browser)."""
from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from nsnet.inference.methods import rerank, teacher_curve
from test_app_views import fake_result


def _trace(fig: go.Figure, prefix: str):
    found = [t for t in fig.data if (t.name or "").startswith(prefix)]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def test_three_curves_over_time():
    from app.views.plots import saliency_figure

    r = fake_result()
    fig = saliency_figure(r)
    assert isinstance(fig, go.Figure)
    for prefix, values in (("frame-level", r.frame_scores), ("attention", r.attention), ("fused", r.fused)):
        tr = _trace(fig, prefix)
        assert np.allclose(tr.x, r.timestamps_s) and np.allclose(tr.y, values)
    assert "λ=0.50" in _trace(fig, "fused").name
    assert fig.layout.xaxis.title.text == "time (s)"
    lo, hi = fig.layout.xaxis.range
    assert lo < 0 and hi > 60.0  # whole clip (duration 60 s), not just the preview span
    assert not any(t.name and t.name.startswith("teacher") for t in fig.data)
    json.loads(fig.to_json())  # what gr.Plot sends


def test_selected_frames_marked_with_rank():
    from app.views.plots import saliency_figure
    from app.views.result import selection_ranks

    r = fake_result(k=5)
    fig = saliency_figure(r)
    sel = sorted(int(i) for i in r.selected)
    marks = _trace(fig, "selected")
    assert marks.name == "selected (K=5)"
    assert np.allclose(marks.x, r.timestamps_s[sel]) and np.allclose(marks.y, r.fused[sel])
    ranks = selection_ranks(r)
    assert list(marks.text) == [f"#{ranks[i]}" for i in sel]
    vlines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.x0 for s in vlines) == pytest.approx(sorted(r.timestamps_s[sel]))


def test_ground_truth_segments_shaded_only_when_given():
    from app.views.plots import saliency_figure
    from app.views.result import Segment

    r = fake_result()
    fig = saliency_figure(r, segments=[Segment(10, 20, "jump"), Segment(40, 45, "jump")])
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(s.x0, s.x1) for s in rects] == [(10, 20), (40, 45)]
    assert _trace(fig, "ground truth")
    plain = saliency_figure(r)
    assert not [s for s in plain.layout.shapes if s.type == "rect"]
    assert not any(t.name == "ground truth" for t in plain.data)


def test_teacher_curve_optional_and_needs_dense():
    from app.views.plots import saliency_figure

    r = fake_result()
    tr = _trace(saliency_figure(r, teacher=True), "teacher")
    assert np.allclose(tr.y, teacher_curve(r))
    assert r.labels[0]["label"] in tr.name
    fig = saliency_figure(fake_result(dense=False), teacher=True)  # silently skipped, no error
    assert not any(t.name and t.name.startswith("teacher") for t in fig.data)


def test_follows_rerank():
    from app.views.plots import saliency_figure

    r = rerank(fake_result(), 2, 0.0)
    fig = saliency_figure(r)
    assert _trace(fig, "selected").name == "selected (K=2)" and "λ=0.00" in _trace(fig, "fused").name
    assert np.allclose(_trace(fig, "fused").y, r.fused)


def test_without_timestamps_uses_frame_index():
    from app.views.plots import saliency_figure

    r = fake_result(t=8, k=2, duration=None)
    r = type(r)(**{**r.__dict__, "timestamps_s": np.arange(8, dtype=np.float64),
                   "video": {"path": None, "duration_s": None}})
    fig = saliency_figure(r)
    assert fig.layout.xaxis.title.text == "preview frame"


def test_empty_figure_placeholder():
    from app.views.plots import empty_figure

    fig = empty_figure("hello")
    assert fig.layout.annotations[0].text == "hello" and not fig.data


def test_spec_is_plain_json_and_a_valid_plotly_figure():
    """What the explorer sends (the dict) is strict JSON and exactly what go.Figure validates."""
    from app.views.plots import empty_spec, saliency_figure, saliency_spec
    from app.views.result import Segment

    r = fake_result(k=5)
    segments = [Segment(10, 20, "jump")]
    spec = saliency_spec(r, segments=segments, teacher=True)
    text = json.dumps(spec, allow_nan=False)  # no numpy types, no NaN
    assert json.loads(text) == spec
    fig = go.Figure(spec)  # raises on any property Plotly does not know
    assert [t.name for t in fig.data] == [t["name"] for t in spec["data"]]
    assert np.allclose(_trace(fig, "fused").y, r.fused)
    assert saliency_figure(r, segments=segments, teacher=True).to_dict()["data"] == fig.to_dict()["data"]
    go.Figure(empty_spec("x"))

    broken = type(r)(**{**r.__dict__, "attention": np.where(np.arange(16) == 3, np.nan, r.attention)})
    attention = [t for t in saliency_spec(broken)["data"] if t["name"].startswith("attention")][0]
    assert attention["y"][3] is None and json.dumps(saliency_spec(broken), allow_nan=False)


def test_saliency_chart_is_the_librarys():
    """The app shows the library's one chart (``nsnet.viz.saliency_spec``, what ``nsnet export`` renders)."""
    import nsnet.viz
    from app.views import plots

    assert plots.saliency_spec is nsnet.viz.saliency_spec


def test_removal_curve_by_hand():
    """Most salient first: the full clip's label's mean probability over the previews left, recomputed naively."""
    from app.views.plots import removal_figure, removal_spec

    r = fake_result(t=10, k=3, c=5, lam=0.3, seed=4)
    spec = removal_spec(r)
    assert json.loads(json.dumps(spec, allow_nan=False)) == spec
    most, least = removal_figure(r).data
    probs = np.asarray(r.frame_probs, dtype=np.float64)
    full = int(np.argmax(probs.mean(0)))
    by_fused = sorted(range(10), key=lambda i: (-float(r.fused[i]), i))
    for trace, order in ((most, by_fused), (least, by_fused[::-1])):
        expected = [probs[[i for i in range(10) if i not in order[:n]], full].mean() for n in range(10)]
        assert list(trace.x) == list(range(10))
        assert np.allclose(trace.y, expected, atol=1e-6)
    assert f"class_{full}" in spec["layout"]["title"]["text"]
    assert "after the dense pass" in removal_spec(fake_result(dense=False))["layout"]["annotations"][0]["text"]
