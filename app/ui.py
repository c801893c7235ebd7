"""The explorer's layout: every component, by name, and nothing about events.

``build_layout(store, settings, examples)`` (called inside a ``gr.Blocks`` context)
places the components and returns them as a ``Layout``, whose field names are the names
callbacks use for their outputs (``app.callbacks``) and events use for their inputs
(``app.wiring``). Moving a component on the page changes nothing else.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import gradio as gr
from gradio.blocks import Block

from nsnet.data.records import VIDEO_EXTENSIONS

from . import plots, views
from .callbacks import cleanup_session
from .model_info import banner_classes, banner_markdown, describe
from .models import ExampleClip, ModelStore
from .settings import AppSettings
from .ui_panels import (EXAMPLES_PER_PAGE, build_api_panel, build_compare_panel, build_dataset_panel, count_videos,
                        examples_label)

__all__ = ["Layout", "build_layout", "THEME", "CSS", "TITLE", "INTRO"]

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="blue", neutral_hue="slate",
                       font=SYSTEM_FONTS, font_mono=MONO_FONTS).set(
    button_primary_background_fill="*primary_600", button_primary_background_fill_hover="*primary_700",
    button_large_text_size="*text_lg")

CSS = """
.gradio-container { max-width: 1480px !important; }
#title h1 { margin-bottom: 0.1em; }
#title p { color: var(--body-text-color-subdued); margin-top: 0; }
#model-banner.untrained { background: #fffbeb; border: 1px solid #f59e0b; border-radius: 8px; padding: 8px 14px; }
#model-banner.untrained p { color: #78350f; margin: 0; }
#model-banner.trained p { margin: 0 0 4px 0; color: var(--body-text-color-subdued); }
#model-banner.synthetic { background: #eff6ff; border: 1px solid #93c5fd; border-radius: 8px; padding: 8px 14px; }
#model-banner.synthetic p { color: #1e3a8a; }
#model-banner details { margin: 2px 0 4px 0; font-size: 0.9em; }
#model-banner summary { cursor: pointer; }
#ds-status p, #ds-count p, #ds-help p { margin: 2px 0; font-size: 0.9em; }
#ds-summary table { font-size: 0.92em; }
#cmp-overlap p { font-size: 0.92em; margin: 2px 0; }
#summary h3 { margin: 0 0 2px 0; font-size: 1.5em; }
#summary p { margin: 2px 0; }
#frame-caption p { font-size: 0.92em; margin: 2px 0; }
#limits p, #dense-note p { font-size: 0.85em; color: var(--body-text-color-subdued); }
#cost table { font-size: 0.92em; }
#selected-gallery .caption-label { max-width: 97%; font-size: 12px; padding: 1px 6px; opacity: 0.92; }
"""

TITLE = "NSNet saliency explorer"
INTRO = ("NSNet (ECCV 2022) previews **T** frames of a video with a light sampler, scores each one at two "
         "granularities (a frame-level head trained from pseudo labels and a video-level attention), fuses "
         "them with weight **λ**, and lets a heavy recognizer name the action from only the **K** most salient "
         "frames.")


@dataclass(frozen=True)
class Layout:
    """Every component of the page by name (the names callbacks and events use)."""

    # inputs
    clip: gr.File
    examples: Optional[gr.Examples]
    t_slider: gr.Slider
    k_slider: gr.Slider
    lam_slider: gr.Slider
    checkpoint: gr.Dropdown
    hub_id: gr.Textbox
    teacher: gr.Checkbox
    run_button: gr.Button
    # results
    summary: gr.Markdown
    plot: gr.Plot
    gallery: gr.Gallery
    frame_slider: gr.Slider
    frame_image: gr.Image
    frame_caption: gr.Markdown
    labels: gr.Label
    cost: gr.Markdown
    csv_button: gr.Button          # visible; its click writes the CSV into csv_file
    json_button: gr.Button
    csv_file: gr.DownloadButton    # hidden holders of the file just written, downloaded from the page
    json_file: gr.DownloadButton
    compare: gr.Dataframe
    session: gr.State
    # the API-only /analyze endpoint (hidden)
    api_clip: gr.File
    api_t: gr.Number
    api_k: gr.Number
    api_lam: gr.Number
    api_checkpoint: gr.Textbox     # optional: a picker label, or (with --allow-hub) a Hub id
    api_result: gr.JSON
    api_button: gr.Button
    # the page: the model banner (names the model of the result shown) and the top-level tabs
    banner: gr.Markdown
    tabs: gr.Tabs
    ds_tab: gr.Tab
    # the Dataset tab (dataset mode; ``app.ui_panels.build_dataset_panel``)
    ds_status: gr.Markdown
    ds_summary: gr.Markdown
    ds_confusion: gr.Plot
    ds_kcurve: gr.Plot
    ds_class: gr.Dropdown
    ds_outcome: gr.Dropdown
    ds_text: gr.Textbox
    ds_sort: gr.Dropdown
    ds_count: gr.Markdown
    ds_table: gr.Dataframe
    ds_timer: gr.Timer
    ds_version: gr.State
    # two checkpoints on one clip (``app.ui_panels.build_compare_panel``)
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
    # the API-only /dataset and /compare endpoints (hidden)
    api_ds_class: gr.Textbox
    api_ds_outcome: gr.Textbox
    api_ds_text: gr.Textbox
    api_ds_sort: gr.Textbox
    api_ds_desc: gr.Checkbox
    api_ds_result: gr.JSON
    api_ds_button: gr.Button
    api_cmp_clip: gr.File
    api_cmp_a: gr.Textbox
    api_cmp_b: gr.Textbox
    api_cmp_t: gr.Number
    api_cmp_k: gr.Number
    api_cmp_lam: gr.Number
    api_cmp_result: gr.JSON
    api_cmp_button: gr.Button

    def pick(self, *names: str) -> list[Block]:
        """The components of these names, in this order."""
        return [self._component(name) for name in names]

    def by_name(self, values: Mapping[str, Any]) -> Any:
        """``{name: value}`` from a callback as ``{component: value}`` (what Gradio takes).

        Unknown names raise; no names at all is ``gr.skip()`` (nothing changes).
        """
        if not values:
            return gr.skip()
        return {self._component(name): value for name, value in values.items()}

    def _component(self, name: str) -> Block:
        if name not in _FIELD_NAMES or name == "examples":
            raise ValueError(f"the layout has no output component named {name!r}")
        return getattr(self, name)


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Layout))


def _example_label(e: ExampleClip) -> str:
    return f"{e.name}" + (f" · {e.label}" if e.label else "")


def build_layout(store: ModelStore, settings: AppSettings, examples: Sequence[ExampleClip], *,
                 dataset: Optional[Mapping[str, Any]] = None, dataset_classes: Sequence[str] = ()) -> Layout:
    """Place every component (inside the caller's ``gr.Blocks``) and return them by name.

    ``dataset``: the Dataset tab's first values (``app.dataset_callbacks.DatasetCallbacks.everything``);
    without it the tab is hidden.
    """
    pipe = store.default
    cfg = pipe.config
    t0 = min(cfg.num_frames, settings.max_frames)
    k0 = min(cfg.k, t0)
    session = gr.State(None, time_to_live=3 * 3600, delete_callback=cleanup_session)

    gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="title")
    info = describe(cfg, store.default_option.label, store.default_option.source)
    banner = gr.Markdown(banner_markdown(info), elem_id="model-banner", elem_classes=banner_classes(info))

    with gr.Tabs(selected="analysis", elem_id="main-tabs") as tabs:
        with gr.Tab("Analyse a clip", id="analysis", elem_id="tab-analysis"), gr.Row(equal_height=False):
            # ------------------------------------------------------------ inputs
            with gr.Column(scale=1, min_width=300):
                clip = gr.File(label="Video clip", file_types=list(VIDEO_EXTENSIONS), type="filepath",
                               elem_id="clip-input", height=120)
                ex = gr.Examples(
                    examples=[[str(e.path)] for e in examples], inputs=[clip],
                    example_labels=[_example_label(e) for e in examples],
                    label=examples_label(len(examples), max(len(examples), count_videos(settings.examples_dir))),
                    examples_per_page=EXAMPLES_PER_PAGE) if examples else None
                t_slider = gr.Slider(2, settings.max_frames, value=t0, step=1, label="Preview frames T",
                                     elem_id="t-slider", info="decoded and scored by the sampler")
                k_slider = gr.Slider(1, t0, value=k0, step=1, label="Selected frames K", elem_id="k-slider",
                                     info="sent to the recognizer; moving it re-ranks instantly")
                lam_slider = gr.Slider(0.0, 1.0, value=float(cfg.lam), step=0.05, label="Fusion weight λ",
                                       elem_id="lam-slider", info="1 = frame-level head only, 0 = attention only")
                checkpoint = gr.Dropdown(store.labels, value=store.default_option.label, label="Checkpoint",
                                         interactive=len(store.labels) > 1)
                hub_id = gr.Textbox(label="…or a Hugging Face Hub id", placeholder="user/nsnet-checkpoint",
                                    visible=settings.allow_hub, max_lines=1)
                teacher = gr.Checkbox(False, label="Show teacher curve",
                                      info="recognizer confidence of the predicted class on every preview")
                run_button = gr.Button("Run", variant="primary", elem_id="run-button")
                gr.Markdown(
                    f"Accepts {', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS)} up to "
                    f"{settings.max_upload_mb:g} MB; decoding stops after {settings.time_budget_s:g} s. "
                    "Each run also puts all T previews through the recognizer (the *dense* pass, about "
                    "T/K times the recognizer cost) so that K and λ re-rank instantly and the comparison "
                    "table and teacher curve are exact; the cost panel shows both.", elem_id="limits")

            # ------------------------------------------------------------ results
            with gr.Column(scale=3, min_width=480):
                summary = gr.Markdown("### No clip analysed yet\n\nUpload a clip or pick an example, "
                                      "then press **Run**.", elem_id="summary")
                plot = gr.Plot(plots.empty_figure(), label="Saliency over time", elem_id="saliency-plot",
                               show_label=False)
                gallery = gr.Gallery(label="Selected frames, in time order (#rank · time · fused score)",
                                     columns=4, height=250, object_fit="contain", allow_preview=False,
                                     elem_id="selected-gallery", buttons=[])
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        frame_slider = gr.Slider(1, t0, value=1, step=1, label="Inspect any preview frame",
                                                 interactive=False, elem_id="frame-slider")
                        frame_image = gr.Image(type="numpy", interactive=False, show_label=False, height=250,
                                               elem_id="frame-image", buttons=[])
                        frame_caption = gr.Markdown(elem_id="frame-caption")
                    with gr.Column(scale=1, min_width=300):
                        labels = gr.Label(num_top_classes=5, label="Top-5 labels", elem_id="labels")
                        cost = gr.Markdown("**Cost** appears here after a run.", elem_id="cost")
                        with gr.Row():
                            csv_button = gr.Button("Per-frame table (CSV)", interactive=False, size="sm",
                                                   elem_id="download-csv")
                            json_button = gr.Button("Full result (JSON)", interactive=False, size="sm",
                                                    elem_id="download-json")
                            csv_file = gr.DownloadButton(visible="hidden", elem_id="csv-file")
                            json_file = gr.DownloadButton(visible="hidden", elem_id="json-file")
                compare = gr.Dataframe(value=None, headers=views.COMPARISON_HEADERS, interactive=False,
                                       label="Same clip, same K: NSNet vs baselines", elem_id="compare",
                                       datatype=["str", "str", "str", "number", "number", "number"])
                compare_parts = build_compare_panel(store, settings.allow_hub)
        with gr.Tab("Dataset", id="dataset", elem_id="tab-dataset", visible=dataset is not None) as ds_tab:
            dataset_parts = build_dataset_panel(dataset or {}, dataset_classes)

    # ------------------------------------------------------------ API-only
    with gr.Row(visible=False):
        api_clip = gr.File(label="clip", type="filepath")
        # precision=None: a 2.5 reaches the callback and is refused there (precision=0 would round it)
        api_t = gr.Number(t0, label="num_frames")
        api_k = gr.Number(k0, label="k")
        api_lam = gr.Number(float(cfg.lam), label="lam")
        api_checkpoint = gr.Textbox("", label="checkpoint")
        api_result = gr.JSON(label="result")
        api_button = gr.Button("analyze")
        api_parts = build_api_panel(t0, k0, float(cfg.lam))

    return Layout(
        clip=clip, examples=ex, t_slider=t_slider, k_slider=k_slider, lam_slider=lam_slider, checkpoint=checkpoint,
        hub_id=hub_id, teacher=teacher, run_button=run_button, summary=summary, plot=plot, gallery=gallery,
        frame_slider=frame_slider, frame_image=frame_image, frame_caption=frame_caption, labels=labels, cost=cost,
        csv_button=csv_button, json_button=json_button, csv_file=csv_file, json_file=json_file, compare=compare,
        session=session, api_clip=api_clip, api_t=api_t, api_k=api_k, api_lam=api_lam, api_result=api_result,
        api_checkpoint=api_checkpoint,
        api_button=api_button, banner=banner, tabs=tabs, ds_tab=ds_tab, **dataset_parts, **compare_parts, **api_parts)
