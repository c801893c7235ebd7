"""The NSNet saliency explorer: a Gradio UI on top of the ``nsnet`` library.

* ``app.demo.build_demo(pipeline_or_store, settings) -> gr.Blocks``: layout + events, queue set.
* ``app.ui``: the layout, every component by name (``Layout``); no events.
* ``app.wiring``: the events: which callback, which inputs, which named outputs.
* ``app.callbacks``: thin callbacks (validate -> call nsnet -> views), returning ``{name: value}``.
* ``app.plots`` / ``app.views`` / ``app.exports``: pure functions of a ``PipelineResult``.
* ``app.models``: the read-only pipelines (loaded once) and the lazy example cache.
* ``app.runtime``: explicit process set-up (offline environment defaults, ``spaces``) and
  how inference runs (in process, or under ``spaces.GPU``).
* ``app.settings``: flags and environment variables, the resource ceilings among them.
* ``app.hub``: Hub ids typed by visitors (syntax only, never a path; the allow-list).
* ``app.storage``: ``ExportArea``, the one bounded folder the explorer writes into.
* ``app.errors``: the one-line error text (plain for the API, escaped for the page).

Importing this package has no side effects. ``nsnet`` never imports it. ``python app.py``
(repo root) serves it.
"""
