"""Events of the Dataset tab, the two-checkpoint comparison, the model banner and the ``/dataset`` and
``/compare`` endpoints (``app.wiring`` wires the single-clip view; ``app.demo`` calls both).

Same rules as ``app.wiring``: components by ``Layout`` name, callbacks return ``{name: value}``,
network-running events share the ``inference`` concurrency group, everything else skips the queue.
"""
from __future__ import annotations

import gradio as gr

from .callbacks import RESULT_OUTPUTS, Callbacks, user_errors
from .compare_callbacks import COMPARE_OUTPUTS, CompareCallbacks
from .dataset_callbacks import DATASET_OUTPUTS, DatasetCallbacks
from .settings import AppSettings
from .ui import Layout
from .wiring import named

__all__ = ["wire_extras"]


def wire_extras(layout: Layout, cb: Callbacks, settings: AppSettings) -> None:
    """Connect the events beyond the single-clip view (inside the ``gr.Blocks`` that holds ``layout``)."""
    ui = layout
    dcb, ccb = DatasetCallbacks(cb.ctx), CompareCallbacks(cb.ctx)
    quiet = dict(queue=False, show_progress="hidden", api_visibility="private")
    inference = dict(concurrency_limit=settings.concurrency, concurrency_id="inference")

    # The banner names the model of the result on the page; moving the picker says how to switch.
    ui.checkpoint.change(named(ui, user_errors(ccb.pick)), ui.pick("session", "checkpoint"), ui.pick("banner"),
                         api_name="pick_checkpoint", **quiet)

    # Two checkpoints on one clip: decode once, both pipelines; K and λ re-rank both.
    compare_out = ui.pick(*COMPARE_OUTPUTS)
    ui.cmp_button.click(named(ui, user_errors(ccb.compare)),
                        ui.pick("clip", "t_slider", "k_slider", "lam_slider", "checkpoint", "hub_id",
                                "cmp_checkpoint_b", "cmp_hub_b", "cmp_detail"),
                        compare_out, api_name="compare_ui", api_visibility="private", show_progress_on=[ui.cmp_plot],
                        **inference)
    gr.on([ui.k_slider.change, ui.lam_slider.change], named(ui, user_errors(ccb.rerank_pair)),
          inputs=ui.pick("cmp_state", "k_slider", "lam_slider", "cmp_detail"), outputs=compare_out,
          trigger_mode="always_last", api_name="compare_rerank", **quiet)
    ui.cmp_detail.change(named(ui, user_errors(ccb.redraw_pair)), ui.pick("cmp_state", "cmp_detail"),
                         ui.pick("cmp_plot"), api_name="compare_redraw", **quiet)

    # The Dataset tab: rows computed lazily on first open (polled while they come), filters, a row -> a Run.
    view_in = ui.pick("ds_class", "ds_outcome", "ds_text", "ds_sort", "ds_version")
    view_out = ui.pick(*DATASET_OUTPUTS)
    ui.ds_tab.select(named(ui, user_errors(dcb.open_tab)), view_in, view_out, api_name="dataset_open", **quiet)
    ui.ds_timer.tick(named(ui, user_errors(dcb.tick)), view_in, view_out, api_name="dataset_tick", **quiet)
    gr.on([ui.ds_class.change, ui.ds_outcome.change, ui.ds_text.change, ui.ds_sort.change],
          named(ui, user_errors(dcb.filter)), inputs=ui.pick("ds_class", "ds_outcome", "ds_text", "ds_sort"),
          outputs=ui.pick("ds_table", "ds_count"),
          trigger_mode="always_last", api_name="dataset_filter", **quiet)
    ui.ds_table.select(named(ui, user_errors(dcb.open_row)), None, ui.pick("clip", "tabs"), api_name="open_row", **quiet
                       ).success(named(ui, user_errors(cb.run)),
                                 ui.pick("clip", "t_slider", "k_slider", "lam_slider", "checkpoint", "hub_id",
                                         "teacher", "frame_slider", "session"),
                                 ui.pick(*RESULT_OUTPUTS), api_name="run_row", api_visibility="private",
                                 show_progress_on=[ui.plot],
                                 **inference)

    # The API.
    ui.api_ds_button.click(named(ui, user_errors(dcb.dataset_api, api=True)),
                           ui.pick("api_ds_class", "api_ds_outcome", "api_ds_text", "api_ds_sort", "api_ds_desc"),
                           ui.pick("api_ds_result"), api_name="dataset", concurrency_limit=None,
                           api_description="The Dataset tab's rows as JSON: class_name (ground truth; '' = any), "
                                           "outcome (e.g. 'NSNet wrong, dense right'; default all), text (id or "
                                           "label words), sort_by (a row key, e.g. 'saliency_ap'), descending.")
    ui.api_cmp_button.click(named(ui, user_errors(ccb.compare_api, api=True)),
                            ui.pick("api_cmp_clip", "api_cmp_a", "api_cmp_b", "api_cmp_t", "api_cmp_k",
                                    "api_cmp_lam"),
                            ui.pick("api_cmp_result"), api_name="compare", **inference,
                            api_description="Two checkpoints on one clip (decoded once): clip, checkpoint_a and "
                                            "checkpoint_b (picker labels; '' = the default; hub ids where allowed), "
                                            "num_frames, k, lam in; a list of two `predict --json` objects out.")
