"""The NSNet saliency explorer: a Gradio page on top of the ``nsnet`` library, one room per part of the page.

* ``app.shell``: the page around the rooms (title, model banner, tabs, theme, launch) and start-up;
  ``build_demo(pipeline_or_store, settings) -> gr.Blocks``.
* ``app.tabs``: one module per room, each with its layout (``build(ctx, ...)`` returns its components as
  a named record), its events and its callbacks: ``analyze`` (one clip, ``/analyze``), ``compare`` (two
  checkpoints on that clip, ``/compare``), ``dataset`` (dataset mode, ``/dataset``); with what they share:
  ``request`` (a visitor's request checked, then run), ``base`` (components by name), ``errors``.
* ``app.state``: what the rooms read: the shared, read-only ``context`` (settings, ``models``, the
  ``examples`` and their cache, the ``dataset`` and its ``rows``) and the per-visitor ``session``.
* ``app.views``: pure functions (no Gradio): figures, tables, banner text, exports.
* ``app.server``: settings, storage (the export area, the frames pool), Hub input checks, the ZeroGPU runner.
* ``app.bench``: latency benchmarks of the page (``python -m app.bench``); no runtime module imports it.

Importing this package (or any of its packages) has no side effects. ``nsnet`` never imports it.
``python app.py`` (repo root) serves it.
"""
