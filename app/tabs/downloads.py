"""The analysis room's download buttons: per-frame CSV, ``predict --json``, the figure (PNG) and the highlight clip (MP4).

Each file is written when its button is pressed, for the K and λ on the page, into the visitor's
folder of the export area (``app.server.storage.ExportArea.write_download``: bounded, replacing the
visitor's earlier file of that kind), then saved by the page (``DOWNLOAD_JS``). Nothing is rendered
on a run or a K / λ move. The figure and the clip are ``nsnet.export``'s (what ``nsnet export``
writes); they take seconds (a headless browser; the clip decoded again), so they are queued, one at
a time, where the CSV and JSON skip the queue.
"""
# No ``from __future__ import annotations``: Gradio reads the callbacks' signatures.
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from nsnet.export import ExportError

from ..views import exports
from .base import DOWNLOAD_JS, QUIET, named
from .errors import user_errors

__all__ = ["Downloads", "wire_downloads"]


def _is_run(session: Any) -> bool:
    """Whether ``session`` is a visitor's ``app.state.session.Session`` with a run to download (duck-typed,
    so this module stays a leaf below the analysis room)."""
    return bool(getattr(session, "export_dir", None)) and hasattr(session, "result")


class Downloads:
    """The download callbacks of ``app.tabs.analyze.Analysis`` (which sets ``self.ctx``)."""

    def _export(self, session: Any, write: Callable[[Any, Path], Path], suffix: str) -> Path:
        if not _is_run(session):
            raise gr.Error("Run a clip first; then its results can be downloaded.", title="Nothing to download")
        return self.ctx.exports.write_download(session.export_dir, lambda folder: write(session, folder), suffix)

    def download_csv(self, session):
        """The CSV button: write the per-frame table of the current K / λ now; returns it for download."""
        path = self._export(session, lambda s, d: exports.write_csv(s.result, d, s.clip_name, s.segments), ".csv")
        return {"csv_file": str(path)}

    def download_json(self, session):
        """The JSON button: write the ``predict --json`` object of the current K / λ now."""
        path = self._export(session, lambda s, d: exports.write_json(s.result, d, s.clip_name), ".json")
        return {"json_file": str(path)}

    def download_png(self, session):
        """The PNG button: the figure of the current K / λ (``nsnet.export``'s), rendered now."""
        try:
            path = self._export(session, lambda s, d: exports.write_figure(s.result, d, s.clip_name, s.segments),
                                ".png")
        except ExportError as exc:   # no browser on this server: say so in one line
            raise gr.Error(str(exc), title="Figure unavailable", print_exception=False) from None
        return {"png_file": str(path)}

    def download_mp4(self, session):
        """The MP4 button: the highlight clip of the current K / λ, cut from the clip of this run now."""
        source = (session.base.video or {}).get("path") if _is_run(session) else None
        if _is_run(session) and not (source and Path(source).is_file()):
            raise gr.Error("The clip of this run is no longer on the server; press Run to analyse it again.",
                           title="Clip expired")
        path = self._export(session, lambda s, d: exports.write_highlight_clip(s.result, source, d, s.clip_name),
                            ".highlights.mp4")
        return {"mp4_file": str(path)}


def wire_downloads(tab: Any, cb: Downloads) -> None:
    """Connect the download buttons (inside the ``gr.Blocks`` that holds the room)."""
    for button, write, holder in ((tab.csv_button, cb.download_csv, "csv_file"),
                                  (tab.json_button, cb.download_json, "json_file")):
        button.click(named(tab, user_errors(write)), tab.pick("session"), tab.pick(holder), **QUIET
                     ).success(None, tab.pick(holder), None, js=DOWNLOAD_JS, **QUIET)
    # The figure and the highlight clip take seconds (a headless browser; the video decoded again): queued, one at a time.
    for button, write, holder in ((tab.png_button, cb.download_png, "png_file"),
                                  (tab.mp4_button, cb.download_mp4, "mp4_file")):
        button.click(named(tab, user_errors(write)), tab.pick("session"), tab.pick(holder), concurrency_limit=1,
                     concurrency_id="media-export", show_progress="minimal", api_visibility="private"
                     ).success(None, tab.pick(holder), None, js=DOWNLOAD_JS, **QUIET)
