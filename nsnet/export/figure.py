"""The saliency chart as a static image (PNG, SVG): the page's Plotly figure, rendered by kaleido.

:func:`paper_spec` is :func:`nsnet.viz.saliency_spec` (the figure the explorer shows)
with a title naming the clip and the recognizer's top labels, a fixed width and no hover
machinery. :class:`FigureRenderer` renders figure dicts with kaleido (Plotly's own static
image exporter), which drives a headless Chromium over the DevTools protocol: no display,
no X server, no network (plotly.js comes from the installed ``plotly`` package and MathJax
is off). kaleido finds the browser through ``BROWSER_PATH`` when set, else a Chrome or
Chromium on ``PATH`` (Debian: ``apt-get install chromium``). Starting the browser takes a
few seconds, so the renderer starts it in a background thread as soon as it is made and
the caller does other work (decoding, the networks) meanwhile.
"""
from __future__ import annotations

import asyncio
import html
import logging
import threading
from concurrent.futures import Future
from typing import Any, Sequence

from ..errors import one_line
from ..inference.result import PipelineResult
from ..viz import Segment, saliency_spec

__all__ = ["FORMATS", "WIDTH", "HEIGHT", "SCALE", "ExportError", "paper_spec", "FigureRenderer"]

log = logging.getLogger(__name__)

FORMATS = ("png", "svg")
WIDTH, HEIGHT = 1000, 440   # CSS pixels; PNG at SCALE x (3000 x 1320: 300 dpi at 10 x 4.4 in)
SCALE = 3
START_TIMEOUT_S = 60.0      # to start the browser
RENDER_TIMEOUT_S = 60.0     # to render one image


class ExportError(RuntimeError):
    """An export step that cannot be done here (one line): no browser, a render that failed."""


def paper_spec(result: PipelineResult, *, name: str | None = None, segments: Sequence[Segment] = (),
               width: int = WIDTH, height: int = HEIGHT) -> dict[str, Any]:
    """The explorer's saliency chart with a title (clip, top labels, T / K / lambda), sized for a page."""
    spec = saliency_spec(result, segments=segments, height=height)
    layout = spec["layout"]
    labels = " · ".join(f"{html.escape(d['label'])} {100 * d['score']:.1f}%" for d in result.labels[:3])
    title = html.escape(name or str((result.video or {}).get("path") or "clip"))
    layout.update(width=width, hovermode=False, margin=dict(l=64, r=24, t=96, b=56),
                  title=dict(text=f"<b>{title}</b><br><span style='font-size:13px'>NSNet: {labels} "
                                  f"(K = {result.k} of T = {result.num_frames}, λ = {result.lam:.2f})</span>",
                             x=0.01, xanchor="left", y=0.97, yanchor="top", font=dict(size=16)))
    layout["legend"].update(y=1.0, yanchor="bottom")
    for trace in spec["data"]:
        trace.pop("hovertemplate", None)
        trace.pop("customdata", None)
    return spec


class FigureRenderer:
    """A headless Chromium driven by kaleido, started in a background thread; ``close()`` ends it.

    ``render(spec, fmt)`` waits for the browser, then returns the image bytes. Every
    failure (no browser, a crash, a timeout) is an :class:`ExportError` with one line.
    """

    def __init__(self, *, start_timeout_s: float = START_TIMEOUT_S, render_timeout_s: float = RENDER_TIMEOUT_S):
        self.start_timeout_s, self.render_timeout_s = start_timeout_s, render_timeout_s
        self._kaleido = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nsnet-kaleido", daemon=True)
        self._thread.start()
        self._started: Future = asyncio.run_coroutine_threadsafe(self._open(), self._loop)

    async def _open(self) -> None:
        import kaleido

        k = kaleido.Kaleido(n=1, timeout=self.render_timeout_s, mathjax=False)
        await k.open()
        self._kaleido = k

    def _wait_started(self) -> None:
        try:
            self._started.result(timeout=self.start_timeout_s)
        except Exception as exc:
            name = type(exc).__name__
            if name == "ChromeNotFoundError":
                raise ExportError("the PNG/SVG export needs Chrome or Chromium (kaleido drives it headless): install "
                                  "one (Debian: apt-get install chromium) or set BROWSER_PATH to its executable") from None
            raise ExportError(f"could not start the browser that renders the figure: {name}: {one_line(exc)}") from None

    def render(self, spec: dict[str, Any], fmt: str = "png", *, scale: float = SCALE) -> bytes:
        """The figure as ``fmt`` bytes (``png`` or ``svg``) at its layout's width and height."""
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self._wait_started()
        layout = spec.get("layout", {})
        opts = {"format": fmt, "width": layout.get("width", WIDTH), "height": layout.get("height", HEIGHT),
                "scale": scale if fmt == "png" else 1}
        future = asyncio.run_coroutine_threadsafe(self._kaleido.calc_fig(spec, opts=opts), self._loop)
        try:
            data = future.result(timeout=self.render_timeout_s + 5)
        except Exception as exc:
            raise ExportError(f"rendering the figure as {fmt} failed: {type(exc).__name__}: {one_line(exc)}") from None
        if not data:
            raise ExportError(f"rendering the figure as {fmt} gave no data")
        return data

    def close(self) -> None:
        """End the browser and the thread (waits for the start if it is still under way)."""
        if self._thread is None:
            return
        try:
            self._started.result(timeout=self.start_timeout_s)
        except Exception:  # never started: nothing to close but the loop
            pass
        if self._kaleido is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._kaleido.close(), self._loop).result(timeout=30)
            except Exception as exc:  # a browser that is already gone
                log.debug("closing the browser: %s", one_line(exc))
            self._kaleido = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._thread = None

    def __enter__(self) -> "FigureRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
