"""``build_demo(pipeline_or_store, settings) -> gr.Blocks``: the explorer, laid out and wired.

The returned Blocks already has its queue configured (concurrency limit and maximum
size from the settings). Launch it with ``demo.launch(**launch_kwargs(settings))``;
``app.py`` does that under ``__main__``. How inference runs (in process, or under
``spaces.GPU`` on ZeroGPU) is decided here, from the settings and the pipeline's device.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from nsnet.inference import Pipeline

from .callbacks import AppContext, Callbacks
from .dataset import ALL
from .dataset_callbacks import DatasetCallbacks
from .dataset_store import DatasetStore
from .models import CheckpointOption, ExampleClip, ModelStore, ResultCache, load_examples
from .runtime import choose_runner
from .settings import AppSettings
from .storage import ExportArea
from .ui import CSS, THEME, TITLE, build_layout
from .wiring import wire
from .wiring_extras import wire_extras

__all__ = ["build_demo", "launch_kwargs", "dataset_paths"]

log = logging.getLogger(__name__)


def _store_from(pipeline_or_store: Pipeline | ModelStore, settings: AppSettings) -> ModelStore:
    if isinstance(pipeline_or_store, ModelStore):
        return pipeline_or_store
    trained = bool(pipeline_or_store.config.trained)
    option = CheckpointOption("Serving model" if trained else "Untrained model", "")
    return ModelStore(pipeline_or_store, option, device=settings.device, allow_hub=settings.allow_hub,
                      hub_allow=settings.hub_allow, hub_max_bytes=settings.hub_max_bytes)


def build_demo(pipeline_or_store: Pipeline | ModelStore, settings: AppSettings | None = None, *,
               examples: list[ExampleClip] | None = None, cache: ResultCache | None = None,
               export_root: Path | None = None, dataset: DatasetStore | None = None) -> gr.Blocks:
    """The explorer UI around a loaded pipeline (or a ``ModelStore`` of several).

    ``examples`` defaults to the clips in ``settings.examples_dir``; ``dataset`` (dataset mode)
    to ``settings.data`` / ``settings.results`` when set. The export area (``export_root``,
    default ``settings.export_dir``) is opened now: what earlier runs left there is removed;
    this instance's files go at exit (``app.storage``), each session's when it ends.
    """
    settings = settings or AppSettings()
    store = _store_from(pipeline_or_store, settings)
    if examples is None:
        examples = load_examples(settings.examples_dir)
    if dataset is None and (settings.data or settings.results):
        dataset = DatasetStore.open(settings.data, settings.video_root, settings.subset, settings.results)
    runner = choose_runner(settings.zero_gpu, store.default.device)
    area = ExportArea(export_root or settings.export_dir, settings.export_bytes, settings.export_max_age_s).open()
    ctx = AppContext(store=store, settings=settings, examples=tuple(examples), cache=cache or ResultCache(),
                     export_root=area.root, runner=runner, dataset=dataset, exports=area)
    first = DatasetCallbacks(ctx).everything(None, ALL, "") if dataset is not None else None

    age_s = max(60, int(settings.export_max_age_s))  # Gradio's own copies (uploads, served files): the same age
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(min(age_s, 3600), age_s)) as demo:
        layout = build_layout(store, settings, examples, dataset=first,
                              dataset_classes=dataset.class_names if dataset is not None else ())
        cb = Callbacks(ctx)
        wire(layout, cb, settings)
        demo.unload(cb.forget_session)  # the visitor closed the tab: their files go now
        wire_extras(layout, cb, settings)

    demo.queue(max_size=settings.max_queue, default_concurrency_limit=settings.concurrency)
    log.info("explorer built: %d checkpoint option(s), %d example clip(s), queue max %d, concurrency %d, "
             "inference %s", len(store.options), len(examples), settings.max_queue, settings.concurrency, runner.mode)
    return demo


def launch_kwargs(settings: AppSettings, **overrides: Any) -> dict[str, Any]:
    """Arguments for ``demo.launch``: server, limits, theme and an offline-safe page."""
    kw = dict(server_name=settings.host, server_port=settings.port, max_file_size=settings.max_upload_bytes,
              theme=THEME, css=CSS, ssr_mode=False, show_error=True, footer_links=["api"], run_history=False,
              enable_monitoring=False, allowed_paths=[str(settings.examples_dir.resolve())]
              if settings.examples_dir.is_dir() else None)
    dataset_dirs = dataset_paths(settings)  # dataset mode: a clicked row hands its video to the clip input
    if dataset_dirs:
        kw["allowed_paths"] = (kw["allowed_paths"] or []) + dataset_dirs
    kw.update(overrides)
    return kw


def dataset_paths(settings: AppSettings) -> list[str]:
    """Folders whose videos dataset mode serves: ``--video-root`` and the annotation file's folder."""
    out = []
    for path in (settings.video_root, settings.data):
        if path is not None:
            folder = path if path.is_dir() else path.parent
            if folder.is_dir():
                out.append(str(folder.resolve()))
    return out
