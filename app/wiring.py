"""The explorer's events: which callback runs on which trigger, with which inputs and outputs.

Components are named through ``app.ui.Layout``; callbacks return ``{name: value}``
(``app.callbacks``) and ``named`` hands Gradio ``{component: value}``, so the order of
components on the page or in an output list never matters. What a run may send is
``callbacks.RESULT_OUTPUTS``; anything a callback leaves out stays as it is on the page.
"""
from __future__ import annotations

import functools
from typing import Callable

import gradio as gr

from .callbacks import RESULT_OUTPUTS, Callbacks, user_errors
from .settings import AppSettings
from .ui import Layout

__all__ = ["wire", "named", "DOWNLOAD_JS"]

# Runs in the page after a download button's callback wrote the file into a hidden
# gr.DownloadButton: saves that file. (A DownloadButton saves the value it had when it
# was clicked, so it cannot itself hand out a file its own click callback writes.)
DOWNLOAD_JS = """(file) => {
  if (!file || !file.url) return;
  const a = document.createElement('a');
  a.href = file.url;
  a.download = file.orig_name || '';
  document.body.appendChild(a);
  a.click();
  a.remove();
}"""


def named(layout: Layout, fn: Callable) -> Callable:
    """``fn`` returns ``{output name: value}``; the event handler returns ``{component: value}``.

    ``functools.wraps`` keeps ``fn``'s signature visible to Gradio (``gr.Progress``
    defaults, ``gr.SelectData`` hints).
    """
    @functools.wraps(fn)
    def handler(*args, **kwargs):
        return layout.by_name(fn(*args, **kwargs))

    return handler


def wire(layout: Layout, cb: Callbacks, settings: AppSettings) -> None:
    """Connect every event of ``layout`` to ``cb`` (inside the ``gr.Blocks`` that holds the layout)."""
    ui = layout
    results = ui.pick(*RESULT_OUTPUTS)
    quiet = dict(queue=False, show_progress="hidden", api_visibility="private")

    # Run (button or example click): the one event that decodes and runs networks, queued.
    # Its progress bar (decode, sampler, recognizer) is drawn over the chart only.
    run = dict(fn=named(ui, user_errors(cb.run)),
               inputs=ui.pick("clip", "t_slider", "k_slider", "lam_slider", "checkpoint", "hub_id", "teacher",
                              "frame_slider", "session"),
               outputs=results, concurrency_limit=settings.concurrency, concurrency_id="inference",
               api_visibility="undocumented", show_progress_on=[ui.plot])
    ui.run_button.click(api_name="run", **run)
    if ui.examples is not None:
        ui.examples.load_input_event.then(api_name="run_example", **run)

    # K or λ: re-rank the session's dense result (no decode, no network, no files); then the
    # viewed frame's caption, read from the frame slider once the re-rank is on the page.
    gr.on([ui.k_slider.change, ui.lam_slider.change], named(ui, user_errors(cb.rerank)),
          inputs=ui.pick("session", "k_slider", "lam_slider", "teacher", "frame_slider"), outputs=results,
          trigger_mode="always_last", show_progress="hidden", queue=False, api_name="rerank",
          api_visibility="undocumented"
          ).then(named(ui, user_errors(cb.show_caption)), ui.pick("session", "frame_slider"),
                 ui.pick("frame_caption"), **quiet)
    ui.t_slider.change(named(ui, cb.limit_k), ui.pick("t_slider", "k_slider"), ui.pick("k_slider"), **quiet)
    ui.teacher.change(named(ui, user_errors(cb.redraw_plot)), ui.pick("session", "teacher"), ui.pick("plot"),
                      **quiet)
    ui.frame_slider.change(named(ui, user_errors(cb.show_frame)), ui.pick("session", "frame_slider"),
                           ui.pick("frame_image", "frame_caption"), trigger_mode="always_last", **quiet)
    ui.gallery.select(named(ui, cb.select_gallery_frame), ui.pick("session"), ui.pick("frame_slider"), **quiet)

    # Downloads: the file is written now, for the K and λ on the page, then saved by the page.
    for button, write, holder in ((ui.csv_button, cb.download_csv, "csv_file"),
                                  (ui.json_button, cb.download_json, "json_file")):
        button.click(named(ui, user_errors(write)), ui.pick("session"), ui.pick(holder), **quiet
                     ).success(None, ui.pick(holder), None, js=DOWNLOAD_JS, **quiet)

    # The API: /analyze (clip, T, K, lam[, checkpoint] -> the ``predict --json`` object), queued with the
    # runs. Its errors are plain text (``api=True``); the page's are HTML-escaped for Gradio's toasts.
    ui.api_button.click(named(ui, user_errors(cb.analyze_api, api=True)),
                        ui.pick("api_clip", "api_t", "api_k", "api_lam", "api_checkpoint"),
                        ui.pick("api_result"), api_name="analyze", concurrency_limit=settings.concurrency,
                        concurrency_id="inference",
                        api_description="Analyse a clip: clip, num_frames (T), k (K), lam and optionally checkpoint "
                                        "(a name of the checkpoint picker, or with --allow-hub a Hub id "
                                        "owner/name[@revision]; default: the default model) in; the "
                                        "`python -m nsnet predict --json` object out.")
