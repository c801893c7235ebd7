"""The NSNet saliency explorer: a Gradio UI on top of the ``nsnet`` library.

* ``app.ui.build_demo(pipeline_or_store, settings) -> gr.Blocks``: layout and event wiring.
* ``app.callbacks``: thin callbacks (validate -> call nsnet -> hand results to views).
* ``app.plots`` / ``app.views`` / ``app.exports``: pure functions of a ``PipelineResult``.
* ``app.models``: the read-only pipelines (loaded once) and the lazy example cache.
* ``app.settings``: flags and environment variables.

``nsnet`` never imports this package. ``python app.py`` (repo root) serves it.
"""
import os

# The explorer works offline: no telemetry or version checks unless the host opts in.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
