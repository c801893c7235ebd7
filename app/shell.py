"""The page around the rooms: title, model banner, tabs, theme and launch settings; start-up.

* ``build_demo(pipeline_or_store, settings) -> gr.Blocks``: the explorer, queue configured.
  The tab "Analyse a clip" holds the analysis room (``app.tabs.analyze``) and, below it, the
  comparison room (``app.tabs.compare``); the "Dataset" tab the dataset room
  (``app.tabs.dataset``, shown in dataset mode). Each room lays itself out and wires its own
  events; the shell only places them and keeps the banner naming the model of the result shown.
* ``launch_kwargs(settings)``: the arguments of ``demo.launch`` (server, limits, theme, offline page).
* ``create_demo(settings)`` / ``main(argv)``: what ``python app.py`` runs (load the models once,
  build, launch). How inference runs (in process, or under ``spaces.GPU`` on ZeroGPU) is
  decided when the demo is built, from the settings and the pipeline's device.
"""
from __future__ import annotations

import functools
import logging
import signal
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from nsnet.inference import Pipeline

from .server.runtime import choose_runner, configure_environment, import_spaces
from .server.settings import DEFAULT_PORT, AppSettings, parse_settings
from .server.storage import ExportArea
from .state.context import AppContext
from .state.dataset import DatasetStore
from .state.examples import ExampleClip, ResultCache, load_examples
from .state.models import CheckpointOption, ModelStore, load_default, scan_checkpoints
from .state.session import Session
from .tabs import analyze, compare
from .tabs import dataset as dataset_room
from .tabs.base import QUIET, banner_value, named
from .tabs.errors import user_errors
from .views.banner import banner_classes, banner_markdown, describe
from .views.plots import saliency_spec

__all__ = ["build_demo", "open_dataset", "launch_kwargs", "create_demo", "main", "warmup", "THEME", "CSS", "TITLE",
           "INTRO"]

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


def _store_from(pipeline_or_store: Pipeline | ModelStore, settings: AppSettings) -> ModelStore:
    if isinstance(pipeline_or_store, ModelStore):
        return pipeline_or_store
    trained = bool(pipeline_or_store.config.trained)
    option = CheckpointOption("Serving model" if trained else "Untrained model", "")
    return ModelStore(pipeline_or_store, option, device=settings.device, allow_hub=settings.allow_hub,
                      hub_allow=settings.hub_allow, hub_max_bytes=settings.hub_max_bytes)


def open_dataset(settings: AppSettings) -> DatasetStore:
    """Dataset mode's store as the settings give it: ``--data``, ``--video-root``, ``--subset``, ``--results``
    and ``--compare-results`` (B attached here, so a bad B is a start-up error, not a page's)."""
    return DatasetStore.open(settings.data, settings.video_root, settings.subset, settings.results,
                             compare=settings.compare_results)


def build_demo(pipeline_or_store: Pipeline | ModelStore, settings: AppSettings | None = None, *,
               examples: list[ExampleClip] | None = None, cache: ResultCache | None = None,
               export_root: Path | None = None, dataset: DatasetStore | None = None) -> gr.Blocks:
    """The explorer UI around a loaded pipeline (or a ``ModelStore`` of several).

    ``examples`` defaults to the clips in ``settings.examples_dir``; ``dataset`` (dataset mode)
    to ``settings.data`` / ``settings.results`` when set. The export area (``export_root``,
    default ``settings.export_dir``) is opened now: what earlier runs left there is removed;
    this instance's files go at exit (``app.server.storage``), each session's when it ends.
    """
    settings = settings or AppSettings()
    store = _store_from(pipeline_or_store, settings)
    if examples is None:
        examples = load_examples(settings.examples_dir)
    if dataset is None and (settings.data or settings.results):
        dataset = open_dataset(settings)
    runner = choose_runner(settings.zero_gpu, store.default.device, store)
    area = ExportArea(export_root or settings.export_dir, settings.export_bytes, settings.export_max_age_s).open()
    ctx = AppContext(store=store, settings=settings, examples=tuple(examples), cache=cache or ResultCache(),
                     export_root=area.root, runner=runner, dataset=dataset, exports=area)

    age_s = max(60, int(settings.export_max_age_s))  # Gradio's own copies (uploads, served files): the same age
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(min(age_s, 3600), age_s)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="title")
        info = describe(store.default.config, store.default_option.label, store.default_option.source)
        banner = gr.Markdown(banner_markdown(info), elem_id="model-banner", elem_classes=banner_classes(info))
        with gr.Tabs(selected="analysis", elem_id="main-tabs") as tabs:
            with gr.Tab("Analyse a clip", id="analysis", elem_id="tab-analysis"):
                analysis = analyze.build(ctx, banner)
                compare.build(ctx, analysis)
            dataset_room.build(ctx, analysis.clip, tabs, functools.partial(analyze.run_after, analysis, ctx))
        # The banner names the model of the result on the page; moving the picker says how to switch.
        analysis.checkpoint.change(named(analysis, user_errors(functools.partial(pick_banner, ctx))),
                                   analysis.pick("session", "checkpoint"), analysis.pick("banner"),
                                   api_name="pick_checkpoint", **QUIET)
        demo.unload(analyze.Analysis(ctx).forget_session)  # the visitor closed the tab: their files go now

    demo.queue(max_size=settings.max_queue, default_concurrency_limit=settings.concurrency)
    log.info("explorer built: %d checkpoint option(s), %d example clip(s), queue max %d, concurrency %d, "
             "inference %s", len(store.options), len(examples), settings.max_queue, settings.concurrency, runner.mode)
    return demo


def pick_banner(ctx: AppContext, session: Any, checkpoint: Any) -> dict[str, Any]:
    """The picker moved. Before any result: the banner describes the picked model. With a result on the
    page the banner keeps naming the result's model (header and result always agree) and says how to switch."""
    shown = session.model_name if isinstance(session, Session) else (checkpoint or "")
    found = ctx.store.config_for(shown)
    if found is None:
        return {}
    config, option = found
    note = ""
    if isinstance(session, Session) and checkpoint and checkpoint != session.model_name:
        note = (f"\n\n🔁 Picked **{checkpoint}**: press **Run** to analyse this clip with it "
                f"(the result below is from **{session.model_name}**).")
    return {"banner": banner_value(config, option.label, option.source, note)}


def launch_kwargs(settings: AppSettings, **overrides: Any) -> dict[str, Any]:
    """Arguments for ``demo.launch``: server, limits, theme and an offline-safe page."""
    kw = dict(server_name=settings.host, server_port=settings.port or None, max_file_size=settings.max_upload_bytes,
              theme=THEME, css=CSS, ssr_mode=False, show_error=True, footer_links=["api"], run_history=False,
              enable_monitoring=False, allowed_paths=[str(settings.examples_dir.resolve())]
              if settings.examples_dir.is_dir() else None)
    # Dataset mode adds no folder: a clicked row hands a copy of its checked video to the clip input
    # (``app.state.dataset``: resolved at load, inside the dataset's root, a video file).
    kw.update(overrides)
    return kw


def warmup(pipe: Pipeline, num_frames: int | None = None) -> float:
    """Run the pipeline once on blank frames (kernel init, GFLOPs count, the chart's code path).

    Returns the seconds it took. The first real request then pays only for its own work.
    """
    start = time.perf_counter()
    t = num_frames or pipe.config.num_frames
    size = pipe.config.recognizer.input_size
    frames = np.zeros((t, size, size, 3), dtype=np.uint8)
    result = pipe(frames, min(pipe.config.k, t), pipe.config.lam, dense=True)
    saliency_spec(result, teacher=True)
    return time.perf_counter() - start


def create_demo(settings: AppSettings) -> gr.Blocks:
    """Load the models once, find the example clips and build the Blocks (no launch)."""
    if settings.zero_gpu:
        import_spaces()  # ZeroGPU: `spaces` wants to be imported before torch initialises CUDA
    pipe, option = load_default(settings.checkpoint, settings.device)
    store = ModelStore(pipe, option, scan_checkpoints(settings.models_dir), device=settings.device,
                       allow_hub=settings.allow_hub, hub_allow=settings.hub_allow,
                       hub_max_bytes=settings.hub_max_bytes)
    if settings.zero_gpu:  # the main process has no GPU: a warm-up here would only spend CPU time at start-up
        log.info("ZeroGPU: no warm-up in the main process")
    else:
        log.info("warm-up run took %.1f s", warmup(pipe))
    examples = load_examples(settings.examples_dir)
    log.info("model %r on %s (trained=%s); %d other checkpoint(s); %d example clip(s)", option.label,
             pipe.device, pipe.config.trained, len(store.options) - 1, len(examples))
    data = None
    if settings.data or settings.results:  # dataset mode
        from nsnet.data.records import DatasetError

        try:
            data = open_dataset(settings)
        except (DatasetError, OSError, ValueError) as exc:   # ValueError: jsonl.ResultFileError (FIFO, missing)
            raise SystemExit(f"app.py: cannot load the dataset: {exc}") from None
    return build_demo(store, settings, examples=examples, dataset=data)


def main(argv: list[str] | None = None) -> int:
    """``python app.py [flags]``: settings (flags, then environment), models, page, launch."""
    configure_environment()  # offline defaults first: no analytics, no telemetry unless the host opts in
    settings, args = parse_settings(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # SIGTERM (a Space or container stopping) ends the server like Ctrl-C, so the normal exit
    # runs and removes this instance's export folder (``app.server.storage``; atexit).
    signal.signal(signal.SIGTERM, _interrupt)
    demo = create_demo(settings)
    if not settings.port:
        _scan_from_default_port()
    demo.launch(**launch_kwargs(settings))
    return 0


def _scan_from_default_port() -> None:
    """Port 0 means the first free one from 7860. Gradio reads ``GRADIO_SERVER_PORT`` once, on import, as the
    start of its scan: set to 0 it would bind a random port and announce (and check) port 0."""
    from gradio import http_server

    if http_server.INITIAL_PORT_VALUE == 0:
        http_server.INITIAL_PORT_VALUE = DEFAULT_PORT


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
