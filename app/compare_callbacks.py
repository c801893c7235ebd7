"""Callbacks for comparing two checkpoints on one clip, the ``/compare`` endpoint, and the model
banner when the checkpoint picker moves.

A comparison decodes the clip once and runs both pipelines densely on the same previews
(``AppContext.runner.analyze_pair``); K and λ then re-rank both from their cached per-frame
outputs (``app.compare.CompareState.rerank``), with no decode and no network. Callbacks return
``{layout field name: value}`` like ``app.callbacks``.
"""
# No ``from __future__ import annotations``: Gradio reads these signatures at runtime (``gr.Progress``).
import logging
import time
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from nsnet.config import PipelineConfig
from nsnet.inference import CheckpointError

from . import compare as cmp
from .callbacks import AppContext, Callbacks, Session, banner_value, plot_value
from .exports import public_dict
from .model_info import banner_classes, banner_markdown, describe
from .models import CheckpointOption, match_example

__all__ = ["CompareCallbacks", "COMPARE_OUTPUTS"]

log = logging.getLogger(__name__)

COMPARE_OUTPUTS = ("cmp_overlap", "cmp_plot", "cmp_side_a", "cmp_labels_a", "cmp_cost_a", "cmp_side_b",
                   "cmp_labels_b", "cmp_cost_b", "cmp_state")


class CompareCallbacks:
    """Event handlers of the comparison, bound to one ``AppContext``."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.checks = Callbacks(ctx)   # the same clip and T / K / λ checks as a Run

    # ------------------------------------------------------------------ checkpoints
    def resolve(self, name: Optional[str], hub_id: Optional[str] = None):
        """(pipeline, option) for a picker label, "" (the default), or a hub id (where allowed)."""
        if isinstance(hub_id, str) and hub_id.strip():
            return self.ctx.store.get(None, hub_id)
        return self.ctx.store.get_by_name(name)

    # ------------------------------------------------------------------ comparing
    def compute(self, clip: Any, t: Any, k: Any, lam: Any, a: tuple, b: tuple, progress=None) -> cmp.CompareState:
        path = self.checks.check_clip(clip)
        t, k, lam = self.checks.check_params(t, k, lam)
        if not (b[0] or (b[1] or "").strip()):
            raise gr.Error("Pick a second checkpoint to compare with.", title="No second checkpoint")
        pipe_a, opt_a = self.resolve(*a)
        pipe_b, opt_b = self.resolve(*b)
        if opt_a.source == opt_b.source and opt_a.label == opt_b.label:
            raise gr.Error(f"A and B are the same checkpoint ({opt_a.label}); pick two different ones.",
                           title="Same checkpoint")
        runner = self.ctx.runner
        start = time.perf_counter()
        _, ra, rb = runner.analyze_pair(pipe_a, pipe_b, str(path), t, k, lam, self.ctx.settings.time_budget_s,
                                        progress if runner.reports_progress else None)
        total_ms = (time.perf_counter() - start) * 1e3
        log.info("compared %s and %s on %s (T=%d) in %.0f ms", opt_a.label, opt_b.label, path.name, t, total_ms)
        example = match_example(path, self.ctx.examples) if self.ctx.examples else None
        if example is None and self.ctx.dataset is not None:
            example = self.ctx.dataset.match(path)
        return cmp.CompareState(ra, rb, ra, rb, opt_a.label, opt_b.label,
                                example.path.name if example else Path(str(clip)).name,
                                tuple(example.segments) if example else (), example.label if example else None,
                                decode_ms=float(ra.timings_ms["decode"]), total_ms=total_ms)

    def render(self, state: cmp.CompareState, detail: bool) -> dict[str, Any]:
        ra, rb = state.result_a, state.result_b
        return {
            "cmp_overlap": cmp.overlap_markdown(state),
            "cmp_plot": plot_value(cmp.compare_spec(state, detail=bool(detail))),
            "cmp_side_a": cmp.side_markdown(ra, state.name_a, "A", state.gt_label),
            "cmp_labels_a": {d["label"]: float(d["score"]) for d in ra.labels},
            "cmp_cost_a": cmp.cost_markdown(ra),
            "cmp_side_b": cmp.side_markdown(rb, state.name_b, "B", state.gt_label),
            "cmp_labels_b": {d["label"]: float(d["score"]) for d in rb.labels},
            "cmp_cost_b": cmp.cost_markdown(rb),
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
        if not isinstance(state, cmp.CompareState):
            return {}
        try:
            k, lam = int(k), float(lam)
        except (TypeError, ValueError):
            return {}
        if k > state.base_a.num_frames:
            return {}   # the analysis view says why; the comparison keeps its last K
        return self.render(state.rerank(k, lam), detail)

    def redraw_pair(self, state, detail):
        if not isinstance(state, cmp.CompareState):
            return {}
        return {"cmp_plot": plot_value(cmp.compare_spec(state, detail=bool(detail)))}

    def compare_api(self, clip, checkpoint_a, checkpoint_b, num_frames, k, lam):
        """``/compare``: two ``predict --json`` objects (A, then B) for the same clip, ``video.path`` null."""
        state = self.compute(clip, num_frames, k, lam, (checkpoint_a or None, None), (checkpoint_b or None, None))
        return {"api_cmp_result": [public_dict(state.result_a, None), public_dict(state.result_b, None)]}

    # ------------------------------------------------------------------ the banner follows the page's model
    def _config_for(self, label: str) -> Optional[tuple[PipelineConfig, CheckpointOption]]:
        store = self.ctx.store
        if not label or label == store.default_option.label:
            return store.default.config, store.default_option
        if label.startswith("hub:"):
            try:
                pipe, option = store.get(None, label[4:])   # loaded when that result was made
            except CheckpointError:
                return None
            return pipe.config, option
        option = next((o for o in store.options if o.label == label), None)
        if option is None:
            return None
        try:   # config.json only: the weights load when the picked model runs
            return PipelineConfig.load(Path(option.source) / "config.json"), option
        except Exception as exc:
            log.info("cannot read the config of %s: %s", option.source, exc)
            return None

    def pick(self, session, checkpoint):
        """The picker moved. Before any result: the banner describes the picked model. With a result on the
        page the banner keeps naming the result's model (header and result always agree) and says how
        to switch."""
        shown = session.model_name if isinstance(session, Session) else (checkpoint or "")
        found = self._config_for(shown)
        if found is None:
            return {}
        config, option = found
        value = banner_value(config, option)
        if isinstance(session, Session) and checkpoint and checkpoint != session.model_name:
            info = describe(config, option.label, option.source)
            note = (f"\n\n🔁 Picked **{checkpoint}**: press **Run** to analyse this clip with it "
                    f"(the result below is from **{session.model_name}**).")
            value = gr.update(value=banner_markdown(info) + note, elem_classes=banner_classes(info))
        return {"banner": value}
