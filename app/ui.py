"""``build_demo(pipeline_or_store, settings) -> gr.Blocks``: the explorer's layout and wiring.

The returned Blocks already has its queue configured (concurrency limit and maximum
size from the settings). Launch it with ``demo.launch(**launch_kwargs(settings))``;
``app.py`` does that under ``__main__``.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from nsnet.pipeline import Pipeline

from . import plots, views
from .callbacks import AppContext, Callbacks, cleanup_session, user_errors
from .models import VIDEO_EXTENSIONS, CheckpointOption, ExampleClip, ModelStore, ResultCache, load_examples
from .settings import AppSettings

__all__ = ["build_demo", "launch_kwargs", "THEME", "CSS"]

log = logging.getLogger(__name__)

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
#model-banner.trained p { margin: 0; color: var(--body-text-color-subdued); }
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


def _store_from(pipeline_or_store: Pipeline | ModelStore, settings: AppSettings) -> ModelStore:
    if isinstance(pipeline_or_store, ModelStore):
        return pipeline_or_store
    trained = bool(pipeline_or_store.config.trained)
    option = CheckpointOption("Serving model" if trained else "Untrained model", "")
    return ModelStore(pipeline_or_store, option, device=settings.device, allow_hub=settings.allow_hub)


def build_demo(pipeline_or_store: Pipeline | ModelStore, settings: AppSettings | None = None, *,
               examples: list[ExampleClip] | None = None, cache: ResultCache | None = None,
               export_root: Path | None = None) -> gr.Blocks:
    """The explorer UI around a loaded pipeline (or a ``ModelStore`` of several).

    ``examples`` defaults to the clips in ``settings.examples_dir``.
    """
    settings = settings or AppSettings()
    store = _store_from(pipeline_or_store, settings)
    if examples is None:
        examples = load_examples(settings.examples_dir)
    ctx = AppContext(store=store, settings=settings, examples=tuple(examples), cache=cache or ResultCache(),
                     export_root=export_root or Path(tempfile.gettempdir()) / "nsnet-explorer")
    cb = Callbacks(ctx)
    pipe = store.default
    cfg = pipe.config
    t0 = min(cfg.num_frames, settings.max_frames)
    k0 = min(cfg.k, t0)

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        session = gr.State(None, time_to_live=3 * 3600, delete_callback=cleanup_session)

        gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="title")
        pretrained = cfg.sampler.backbone_pretrained and cfg.recognizer.backbone_pretrained
        gr.Markdown(views.model_banner(cfg.trained, store.default_option.label, len(pipe.class_names), pretrained),
                    elem_id="model-banner", elem_classes=["trained" if cfg.trained else "untrained"])

        with gr.Row(equal_height=False):
            # ------------------------------------------------------------ inputs
            with gr.Column(scale=1, min_width=300):
                clip = gr.File(label="Video clip", file_types=list(VIDEO_EXTENSIONS), type="filepath",
                               elem_id="clip-input", height=120)
                if examples:
                    ex = gr.Examples(
                        examples=[[str(e.path)] for e in examples], inputs=[clip],
                        example_labels=[f"{e.name}" + (f" · {e.label}" if e.label else "") for e in examples],
                        label="Examples (results cached after first use)", examples_per_page=8)
                else:
                    ex = None
                t_slider = gr.Slider(2, settings.max_frames, value=t0, step=1, label="Preview frames T", elem_id="t-slider",
                                     info="decoded and scored by the sampler")
                k_slider = gr.Slider(1, t0, value=k0, step=1, label="Selected frames K", elem_id="k-slider",
                                     info="sent to the recognizer; moving it re-ranks instantly")
                lam_slider = gr.Slider(0.0, 1.0, value=float(cfg.lam), step=0.05, label="Fusion weight λ", elem_id="lam-slider",
                                       info="1 = frame-level head only, 0 = attention only")
                checkpoint = gr.Dropdown(store.labels, value=store.default_option.label, label="Checkpoint",
                                         interactive=len(store.labels) > 1)
                hub_id = gr.Textbox(label="…or a Hugging Face Hub id", placeholder="user/nsnet-checkpoint",
                                    visible=settings.allow_hub, max_lines=1)
                teacher = gr.Checkbox(False, label="Show teacher curve",
                                      info="recognizer confidence of the predicted class on every preview")
                run_btn = gr.Button("Run", variant="primary", elem_id="run-button")
                gr.Markdown(
                    f"Accepts {', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS)} up to "
                    f"{settings.max_upload_mb:g} MB; decoding stops after {settings.time_budget_s:g} s. "
                    "Each run also puts all T previews through the recognizer (the *dense* pass, about "
                    "T/K times the recognizer cost) so that K and λ re-rank instantly and the comparison "
                    "table and teacher curve are exact; the cost panel shows both.", elem_id="limits")

            # ------------------------------------------------------------ outputs
            with gr.Column(scale=3, min_width=480):
                summary = gr.Markdown("### No clip analysed yet\n\nUpload a clip or pick an example, then press **Run**.",
                                      elem_id="summary")
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
                            csv_file = gr.DownloadButton("Per-frame table (CSV)", interactive=False, size="sm",
                                                         elem_id="download-csv")
                            json_file = gr.DownloadButton("Full result (JSON)", interactive=False, size="sm",
                                                          elem_id="download-json")
                compare = gr.Dataframe(value=None, headers=views.COMPARISON_HEADERS, interactive=False,
                                       label="Same clip, same K: NSNet vs baselines", elem_id="compare",
                                       datatype=["str", "str", "str", "number", "number", "number"])

        # ------------------------------------------------------------ API-only
        with gr.Row(visible=False):
            api_clip = gr.File(label="clip", type="filepath")
            api_t = gr.Number(t0, label="num_frames", precision=0)
            api_k = gr.Number(k0, label="k", precision=0)
            api_lam = gr.Number(float(cfg.lam), label="lam")
            api_out = gr.JSON(label="result")
            api_btn = gr.Button("analyze")

        outputs = [summary, plot, gallery, labels, compare, cost, frame_slider, frame_image, frame_caption,
                   csv_file, json_file, session]

        def run_outputs(*values: Any) -> tuple:  # enable the download buttons once they have files
            values = list(values)
            for i in (9, 10):
                values[i] = gr.update(value=values[i], interactive=True) if isinstance(values[i], str) else values[i]
            return tuple(values)

        def run(*args, progress=gr.Progress()):
            return run_outputs(*user_errors(cb.run)(*args, progress=progress))

        def rerank(*args):
            return run_outputs(*user_errors(cb.rerank)(*args))

        run_inputs = [clip, t_slider, k_slider, lam_slider, checkpoint, hub_id, teacher, frame_slider, session]
        # The progress bar (decode, sampler, recognizer) is drawn over the chart only, not over all twelve outputs.
        run_kw = dict(fn=run, inputs=run_inputs, outputs=outputs, concurrency_limit=settings.concurrency,
                      concurrency_id="inference", api_visibility="undocumented", show_progress_on=[plot])
        run_btn.click(api_name="run", **run_kw)
        if ex is not None:
            ex.load_input_event.then(api_name="run_example", **run_kw)

        gr.on([k_slider.change, lam_slider.change], rerank, inputs=[session, k_slider, lam_slider, teacher,
                                                                    frame_slider],
              outputs=outputs, trigger_mode="always_last", show_progress="hidden", queue=False,
              api_name="rerank", api_visibility="undocumented"
              ).then(user_errors(cb.show_caption), [session, frame_slider], [frame_caption], queue=False,
                     show_progress="hidden", api_visibility="private")
        t_slider.change(cb.limit_k, [t_slider, k_slider], [k_slider], queue=False, show_progress="hidden",
                        api_visibility="private")
        teacher.change(user_errors(cb.redraw_plot), [session, teacher], [plot], show_progress="hidden",
                       api_visibility="private", queue=False)
        frame_slider.change(user_errors(cb.show_frame), [session, frame_slider], [frame_image, frame_caption],
                            trigger_mode="always_last", show_progress="hidden", api_visibility="private",
                            queue=False)
        gallery.select(cb.select_gallery_frame, [session], [frame_slider], show_progress="hidden",
                       api_visibility="private", queue=False)

        api_btn.click(user_errors(cb.analyze_api), [api_clip, api_t, api_k, api_lam], [api_out],
                      api_name="analyze", concurrency_limit=settings.concurrency, concurrency_id="inference",
                      api_description="Analyse a clip with the default model: clip, num_frames (T), k (K), lam "
                                      "in; the `python -m nsnet predict --json` object out.")

    demo.queue(max_size=settings.max_queue, default_concurrency_limit=settings.concurrency)
    log.info("explorer built: %d checkpoint option(s), %d example clip(s), queue max %d, concurrency %d",
             len(store.options), len(examples), settings.max_queue, settings.concurrency)
    return demo


def launch_kwargs(settings: AppSettings, **overrides: Any) -> dict[str, Any]:
    """Arguments for ``demo.launch``: server, limits, theme and an offline-safe page."""
    kw = dict(server_name=settings.host, server_port=settings.port, max_file_size=settings.max_upload_bytes,
              theme=THEME, css=CSS, ssr_mode=False, show_error=True, footer_links=["api"], run_history=False,
              enable_monitoring=False, allowed_paths=[str(settings.examples_dir.resolve())]
              if settings.examples_dir.is_dir() else None)
    kw.update(overrides)
    return kw
