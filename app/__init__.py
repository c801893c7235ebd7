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
* Dataset mode (``--data``): ``app.dataset`` (pure rows, filters, sorting, summary, accuracy vs K),
  ``app.dataset_views`` (its markdown and charts), ``app.dataset_store`` (the shared rows, filled
  lazily), ``app.dataset_callbacks`` (the Dataset tab and ``/dataset``).
* Two checkpoints on one clip: ``app.compare`` (pure state and views), ``app.compare_callbacks``
  (Compare, its K/λ re-rank, ``/compare``, the banner when the picker moves).
* ``app.model_info``: what the model knows (label set, training data, validation numbers).
* ``app.ui_panels`` / ``app.wiring_extras``: the layout and events of the above.
* ``app.bench`` / ``app.bench_dataset``: latency benchmarks (not tests).

Importing this package has no side effects. ``nsnet`` never imports it. ``python app.py``
(repo root) serves it.
"""
