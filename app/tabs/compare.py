"""The comparison room: two checkpoints on the analysis room's clip, side by side; ``/compare``.

``build(ctx, analysis)`` lays the room out (below the analysis room, in its tab: it shares that
room's clip, T, K, λ and checkpoint A), wires its events and returns its components as a
``CompareTab``. A comparison decodes the clip once and runs both pipelines
densely on the same previews (``ctx.runner.analyze_pair``); K and λ then re-rank both from
their cached per-frame outputs (``app.state.session.CompareState``), no decode, no network.
Callbacks (``Comparison``) return ``{CompareTab field: value}``.
"""
# No ``from __future__ import annotations``: Gradio reads these signatures at runtime (``gr.Progress``).
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from ..state.context import AppContext
from ..state.session import CompareState
from ..views import compare as views
from ..views import plots
from ..views.exports import public_dict
from .base import QUIET, Panel, named, plot_value
from .errors import finite_number, user_errors, whole_number
from .request import check_clip, check_params

if TYPE_CHECKING:  # annotations only: the shell hands over the analysis room
    from .analyze import AnalyzeTab

__all__ = ["CompareTab", "Comparison", "build", "COMPARE_OUTPUTS"]

log = logging.getLogger(__name__)

COMPARE_OUTPUTS = ("cmp_overlap", "cmp_plot", "cmp_side_a", "cmp_labels_a", "cmp_cost_a", "cmp_side_b",
                   "cmp_labels_b", "cmp_cost_b", "cmp_state")


@dataclass(frozen=True)
class CompareTab(Panel):
    """The comparison room's components by name."""

    cmp_checkpoint_b: gr.Dropdown
    cmp_hub_b: gr.Textbox
    cmp_detail: gr.Checkbox
    cmp_button: gr.Button
    cmp_overlap: gr.Markdown
    cmp_plot: gr.Plot
    cmp_side_a: gr.Markdown
    cmp_labels_a: gr.Label
    cmp_cost_a: gr.Markdown
    cmp_side_b: gr.Markdown
    cmp_labels_b: gr.Label
    cmp_cost_b: gr.Markdown
    cmp_state: gr.State
    # the API-only /compare endpoint (hidden)
    api_cmp_clip: gr.File
    api_cmp_a: gr.Textbox
    api_cmp_b: gr.Textbox
    api_cmp_t: gr.Number
    api_cmp_k: gr.Number
    api_cmp_lam: gr.Number
    api_cmp_result: gr.JSON
    api_cmp_button: gr.Button


def build(ctx: AppContext, analysis: "AnalyzeTab") -> CompareTab:
    """Checkpoint B, the Compare button, the shared chart and both results side by side (inside the caller's
    ``gr.Blocks``, where the accordion goes), and the hidden ``/compare`` inputs; events wired."""
    store, allow_hub = ctx.store, ctx.settings.allow_hub
    others = [label for label in store.labels if label != store.default_option.label]
    usable = bool(others) or allow_hub
    with gr.Accordion("Compare with a second checkpoint (same clip, same frames)", open=usable,
                      elem_id="cmp-accordion"):
        if not usable:
            gr.Markdown("Only one checkpoint is offered on this server: start it with `--models-dir DIR` "
                        "(every checkpoint folder in it) or `--allow-hub` to compare two.", elem_id="cmp-none")
        with gr.Row(equal_height=False):
            checkpoint_b = gr.Dropdown(store.labels, value=others[0] if others else None, label="Checkpoint B",
                                       info="A is the checkpoint picked on the left", elem_id="cmp-checkpoint-b",
                                       interactive=len(store.labels) > 1, scale=2)
            hub_b = gr.Textbox(label="…or B from a Hugging Face Hub id", placeholder="user/nsnet-checkpoint",
                               visible=allow_hub, max_lines=1, scale=2)
            detail = gr.Checkbox(False, label="Also frame-level and attention curves", elem_id="cmp-detail", scale=1)
            button = gr.Button("Compare", variant="primary", elem_id="cmp-button", scale=1, interactive=usable)
        overlap = gr.Markdown("Decodes the clip once and runs both checkpoints on the same previews; K and λ then "
                              "re-rank both instantly.", elem_id="cmp-overlap")
        plot = gr.Plot(plots.empty_figure("Press Compare to see both checkpoints on this clip.", height=300),
                       show_label=False, elem_id="cmp-plot")
        with gr.Row(equal_height=False):
            sides = {}
            for side in ("a", "b"):
                with gr.Column(min_width=260):
                    sides[f"cmp_side_{side}"] = gr.Markdown(elem_id=f"cmp-side-{side}")
                    sides[f"cmp_labels_{side}"] = gr.Label(num_top_classes=5, label=f"{side.upper()}: top-5 labels",
                                                           elem_id=f"cmp-labels-{side}")
                    sides[f"cmp_cost_{side}"] = gr.Markdown(elem_id=f"cmp-cost-{side}")
    state = gr.State(None, time_to_live=3 * 3600)
    cfg = store.default.config
    t0 = min(cfg.num_frames, ctx.settings.max_frames)
    with gr.Row(visible=False):   # no precision on the numbers: 2.5 is refused, not rounded
        api = dict(api_cmp_clip=gr.File(label="clip", type="filepath"), api_cmp_a=gr.Textbox("", label="checkpoint_a"),
                   api_cmp_b=gr.Textbox("", label="checkpoint_b"), api_cmp_t=gr.Number(t0, label="num_frames"),
                   api_cmp_k=gr.Number(min(cfg.k, t0), label="k"), api_cmp_lam=gr.Number(float(cfg.lam), label="lam"),
                   api_cmp_result=gr.JSON(label="results"), api_cmp_button=gr.Button("compare"))
    tab = CompareTab(cmp_checkpoint_b=checkpoint_b, cmp_hub_b=hub_b, cmp_detail=detail, cmp_button=button,
                     cmp_overlap=overlap, cmp_plot=plot, cmp_state=state, **sides, **api)
    wire(tab, Comparison(ctx), ctx, analysis)
    return tab


def wire(tab: CompareTab, cb: "Comparison", ctx: AppContext, analysis: "AnalyzeTab") -> None:
    """Connect the room's events; its inputs A, the clip, T, K and λ are the analysis room's."""
    inference = dict(concurrency_limit=ctx.settings.concurrency, concurrency_id="inference")
    outputs = tab.pick(*COMPARE_OUTPUTS)
    # Two checkpoints on one clip: decode once, both pipelines; K and λ re-rank both.
    tab.cmp_button.click(named(tab, user_errors(cb.compare)),
                         analysis.pick("clip", "t_slider", "k_slider", "lam_slider", "checkpoint", "hub_id")
                         + tab.pick("cmp_checkpoint_b", "cmp_hub_b", "cmp_detail"), outputs,
                         api_name="compare_ui", api_visibility="private", show_progress_on=[tab.cmp_plot], **inference)
    gr.on([analysis.k_slider.change, analysis.lam_slider.change], named(tab, user_errors(cb.rerank_pair)),
          inputs=[tab.cmp_state, analysis.k_slider, analysis.lam_slider, tab.cmp_detail], outputs=outputs,
          trigger_mode="always_last", api_name="compare_rerank", **QUIET)
    tab.cmp_detail.change(named(tab, user_errors(cb.redraw_pair)), tab.pick("cmp_state", "cmp_detail"),
                          tab.pick("cmp_plot"), api_name="compare_redraw", **QUIET)
    tab.api_cmp_button.click(named(tab, user_errors(cb.compare_api, api=True)),
                             tab.pick("api_cmp_clip", "api_cmp_a", "api_cmp_b", "api_cmp_t", "api_cmp_k",
                                      "api_cmp_lam"), tab.pick("api_cmp_result"), api_name="compare", **inference,
                             api_description="Two checkpoints on one clip (decoded once): clip, checkpoint_a and "
                                             "checkpoint_b (picker labels; '' = the default; hub ids where allowed), "
                                             "num_frames, k, lam in; a list of two `predict --json` objects out.")


class Comparison:
    """The room's callbacks, bound to one ``AppContext``."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def resolve(self, name: Optional[str], hub_id: Optional[str] = None):
        """(pipeline, option) for a picker label, "" (the default), or a hub id (where allowed)."""
        if isinstance(hub_id, str) and hub_id.strip():
            return self.ctx.store.get(None, hub_id)
        return self.ctx.store.get_by_name(name)

    def compute(self, clip: Any, t: Any, k: Any, lam: Any, a: tuple, b: tuple, progress=None) -> CompareState:
        settings = self.ctx.settings
        path = check_clip(settings, clip)   # the same clip and T / K / λ checks as a Run
        t, k, lam = check_params(settings, t, k, lam)
        if not (b[0] or (b[1] or "").strip()):
            raise gr.Error("Pick a second checkpoint to compare with.", title="No second checkpoint")
        pipe_a, opt_a = self.resolve(*a)
        pipe_b, opt_b = self.resolve(*b)
        if opt_a.source == opt_b.source and opt_a.label == opt_b.label:
            raise gr.Error(f"A and B are the same checkpoint ({opt_a.label}); pick two different ones.",
                           title="Same checkpoint")
        runner = self.ctx.runner
        start = time.perf_counter()
        _, ra, rb = runner.analyze_pair(pipe_a, pipe_b, str(path), t, k, lam, settings.time_budget_s,
                                        progress if runner.reports_progress else None)
        total_ms = (time.perf_counter() - start) * 1e3
        log.info("compared %s and %s on %s (T=%d) in %.0f ms", opt_a.label, opt_b.label, path.name, t, total_ms)
        known = self.ctx.known_clip(path)
        return CompareState(ra, rb, ra, rb, opt_a.label, opt_b.label, known.path.name if known else path.name,
                            tuple(known.segments) if known else (), known.label if known else None,
                            decode_ms=float(ra.timings_ms["decode"]), total_ms=total_ms)

    def render(self, state: CompareState, detail: bool) -> dict[str, Any]:
        ra, rb = state.result_a, state.result_b
        return {
            "cmp_overlap": views.overlap_markdown(state),
            "cmp_plot": plot_value(views.compare_spec(state, detail=bool(detail))),
            "cmp_side_a": views.side_markdown(ra, state.name_a, "A", state.gt_label),
            "cmp_labels_a": {d["label"]: float(d["score"]) for d in ra.labels},
            "cmp_cost_a": views.cost_markdown(ra),
            "cmp_side_b": views.side_markdown(rb, state.name_b, "B", state.gt_label),
            "cmp_labels_b": {d["label"]: float(d["score"]) for d in rb.labels},
            "cmp_cost_b": views.cost_markdown(rb),
            "cmp_state": state,
        }

    def compare(self, clip, t, k, lam, checkpoint, hub_id, checkpoint_b, hub_b, detail, progress=gr.Progress()):
        """The Compare button: decode once, both checkpoints densely on the same previews, draw both."""
        def report(stage: str, frac: float) -> None:
            progress(min(max(frac, 0.0), 1.0), desc=stage)

        state = self.compute(clip, t, k, lam, (checkpoint, hub_id), (checkpoint_b, hub_b), report)
        return self.render(state, detail)

    def rerank_pair(self, state, k, lam, detail):
        """K or λ moved: both checkpoints re-ranked from their cached outputs (nothing if no comparison yet)."""
        if not isinstance(state, CompareState):
            return {}
        try:
            k, lam = whole_number(k, "K"), finite_number(lam, "λ")
        except gr.Error:
            return {}   # the analysis room says why
        if k > state.base_a.num_frames:
            return {}   # the analysis view says why; the comparison keeps its last K
        return self.render(state.rerank(k, lam), detail)

    def redraw_pair(self, state, detail):
        if not isinstance(state, CompareState):
            return {}
        return {"cmp_plot": plot_value(views.compare_spec(state, detail=bool(detail)))}

    def compare_api(self, clip, checkpoint_a, checkpoint_b, num_frames, k, lam):
        """``/compare``: two ``predict --json`` objects (A, then B) for the same clip, ``video.path`` null."""
        state = self.compute(clip, num_frames, k, lam, (checkpoint_a or None, None), (checkpoint_b or None, None))
        return {"api_cmp_result": [public_dict(state.result_a, None), public_dict(state.result_b, None)]}
