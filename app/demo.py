"""``build_demo(pipeline_or_store, settings) -> gr.Blocks``: the explorer, laid out and wired.

The returned Blocks already has its queue configured (concurrency limit and maximum
size from the settings). Launch it with ``demo.launch(**launch_kwargs(settings))``;
``app.py`` does that under ``__main__``. How inference runs (in process, or under
``spaces.GPU`` on ZeroGPU) is decided here, from the settings and the pipeline's device.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from nsnet.inference import Pipeline

from .callbacks import AppContext, Callbacks
from .models import CheckpointOption, ExampleClip, ModelStore, ResultCache, load_examples
from .runtime import choose_runner
from .settings import AppSettings
from .ui import CSS, THEME, TITLE, build_layout
from .wiring import wire

__all__ = ["build_demo", "launch_kwargs"]

log = logging.getLogger(__name__)


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
    runner = choose_runner(settings.zero_gpu, store.default.device)
    ctx = AppContext(store=store, settings=settings, examples=tuple(examples), cache=cache or ResultCache(),
                     export_root=export_root or Path(tempfile.gettempdir()) / "nsnet-explorer", runner=runner)

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        layout = build_layout(store, settings, examples)
        wire(layout, Callbacks(ctx), settings)

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
    kw.update(overrides)
    return kw
