"""Sections of the explorer's layout beyond the single-clip view: the Dataset tab, the two-checkpoint
comparison and the hidden inputs of the ``/dataset`` and ``/compare`` endpoints.

Each ``build_*`` places its components inside the caller's Gradio context and returns them
as ``{Layout field name: component}``; ``app.ui.build_layout`` puts them into the ``Layout``.
No events here (``app.wiring``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import gradio as gr

from nsnet.data.records import VIDEO_EXTENSIONS

from . import dataset as ds
from . import plots
from .dataset_callbacks import POLL_S
from .models import ModelStore

__all__ = ["build_dataset_panel", "build_compare_panel", "build_api_panel", "examples_label", "count_videos",
           "EXAMPLES_PER_PAGE"]

EXAMPLES_PER_PAGE = 8


def count_videos(folder: Path | None) -> int:
    """Video files directly in ``folder`` (what ``load_examples`` looks at)."""
    if folder is None or not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def examples_label(shown: int, total: int) -> str:
    pages = f", {EXAMPLES_PER_PAGE} a page" if shown > EXAMPLES_PER_PAGE else ""
    cut = (f" (the first {shown} of {total} clips in the folder; serve the folder as a dataset, "
           "--data DIR, to search them all)" if total > shown else f" ({shown} clip{'s' * (shown != 1)}{pages})")
    return f"Examples{cut}; results cached after first use"


def _value(update: Any) -> Any:
    """The value inside a ``gr.update(...)`` dict (initial values come from the same callbacks)."""
    return update.get("value") if isinstance(update, dict) and "__type__" in update else update


def build_dataset_panel(initial: Mapping[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    """The Dataset tab's contents: status, summary (accuracy, confusion, accuracy vs K), filters, table."""
    status = gr.Markdown(_value(initial.get("ds_status", "")), elem_id="ds-status")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            summary = gr.Markdown(_value(initial.get("ds_summary", "")), elem_id="ds-summary")
        with gr.Column(scale=3, min_width=300):
            confusion = gr.Plot(_value(initial.get("ds_confusion")), show_label=False, elem_id="ds-confusion")
        with gr.Column(scale=3, min_width=300):
            kcurve = gr.Plot(_value(initial.get("ds_kcurve")), show_label=False, elem_id="ds-kcurve")
    with gr.Row(equal_height=True):
        ds_class = gr.Dropdown([ds.ANY_CLASS, *class_names], value=ds.ANY_CLASS, label="Ground-truth class",
                               elem_id="ds-class", scale=2)
        ds_outcome = gr.Dropdown(list(ds.OUTCOMES), value=ds.ALL, label="Outcome", elem_id="ds-outcome", scale=2,
                                 info="NSNet / dense / uniform right or wrong against the ground truth")
        ds_text = gr.Textbox(label="Search", placeholder="video id or label (every word must match)", max_lines=1,
                             elem_id="ds-search", scale=2)
        ds_sort = gr.Dropdown(list(ds.SORTS), value=ds.DATASET_ORDER, label="Sort", elem_id="ds-sort", scale=2,
                              info="or any column from its ⋮ menu")
    count = gr.Markdown(_value(initial.get("ds_count", "")), elem_id="ds-count")
    table = gr.Dataframe(value=_value(initial.get("ds_table")) or None, headers=ds.TABLE_HEADERS,
                         datatype=ds.TABLE_TYPES, interactive=False, max_height=620, elem_id="ds-table",
                         show_label=False, pinned_columns=1, buttons=["fullscreen", "copy"], wrap=False)
    gr.Markdown("Click a row to open that video in the analysis tab, with its ground truth beside the prediction "
                "and its segments shaded. ✓ right, ✗ wrong, blank: no ground truth.", elem_id="ds-help")
    timer = gr.Timer(POLL_S, active=False)
    version = gr.State(initial.get("ds_version", -1))
    return dict(ds_status=status, ds_summary=summary, ds_confusion=confusion, ds_kcurve=kcurve, ds_class=ds_class,
                ds_outcome=ds_outcome, ds_text=ds_text, ds_sort=ds_sort, ds_count=count, ds_table=table, ds_timer=timer,
                ds_version=version)


def build_compare_panel(store: ModelStore, allow_hub: bool) -> dict[str, Any]:
    """Checkpoint B, the Compare button, the shared chart and both results side by side."""
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
            with gr.Column(min_width=260):
                side_a = gr.Markdown(elem_id="cmp-side-a")
                labels_a = gr.Label(num_top_classes=5, label="A: top-5 labels", elem_id="cmp-labels-a")
                cost_a = gr.Markdown(elem_id="cmp-cost-a")
            with gr.Column(min_width=260):
                side_b = gr.Markdown(elem_id="cmp-side-b")
                labels_b = gr.Label(num_top_classes=5, label="B: top-5 labels", elem_id="cmp-labels-b")
                cost_b = gr.Markdown(elem_id="cmp-cost-b")
    state = gr.State(None, time_to_live=3 * 3600)
    return dict(cmp_checkpoint_b=checkpoint_b, cmp_hub_b=hub_b, cmp_detail=detail, cmp_button=button,
                cmp_overlap=overlap, cmp_plot=plot, cmp_side_a=side_a, cmp_labels_a=labels_a, cmp_cost_a=cost_a,
                cmp_side_b=side_b, cmp_labels_b=labels_b, cmp_cost_b=cost_b, cmp_state=state)


def build_api_panel(t0: int, k0: int, lam0: float) -> dict[str, Any]:
    """Hidden inputs and outputs of ``/dataset`` and ``/compare`` (call inside an invisible row)."""
    return dict(
        api_ds_class=gr.Textbox("", label="class_name"),
        api_ds_outcome=gr.Textbox(ds.ALL, label="outcome"),
        api_ds_text=gr.Textbox("", label="text"),
        api_ds_sort=gr.Textbox("", label="sort_by"),
        api_ds_desc=gr.Checkbox(False, label="descending"),
        api_ds_result=gr.JSON(label="rows"),
        api_ds_button=gr.Button("dataset"),
        api_cmp_clip=gr.File(label="clip", type="filepath"),
        api_cmp_a=gr.Textbox("", label="checkpoint_a"),
        api_cmp_b=gr.Textbox("", label="checkpoint_b"),
        api_cmp_t=gr.Number(t0, label="num_frames"),   # no precision: 2.5 is refused, not rounded
        api_cmp_k=gr.Number(k0, label="k"),
        api_cmp_lam=gr.Number(lam0, label="lam"),
        api_cmp_result=gr.JSON(label="results"),
        api_cmp_button=gr.Button("compare"),
    )
