"""What every room of the page shares to talk to Gradio: components by name, and small value helpers.

* ``Panel``: the base of each tab's record of components (a frozen dataclass). Callbacks return
  ``{field name: value}``; ``panel.by_name`` hands Gradio ``{component: value}``, so the order of
  components on the page or in an output list never matters, and ``panel.pick(*names)`` lists
  a callback's inputs or outputs. A name left out of a callback's dict is an output that does
  not change (the browser keeps what it shows).
* ``named(panel, fn)``: an event handler from such a callback (a generator callback, which
  sends its outputs in steps, stays a generator).
* ``plot_value`` (a figure dict as ``gr.Plot`` sends it), ``banner_value`` (the model banner of
  a checkpoint), ``DOWNLOAD_JS`` and ``QUIET`` (the settings of events that skip the queue).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from typing import Any, Callable, ClassVar, Mapping

import gradio as gr
from gradio.blocks import Block
from gradio.components.plot import PlotData

from nsnet.config import PipelineConfig

from ..views.banner import banner_classes, banner_markdown, describe

__all__ = ["Panel", "named", "plot_value", "banner_value", "DOWNLOAD_JS", "QUIET"]

# Events that change nothing but the page skip the queue, show no progress and stay out of the API page.
QUIET = dict(queue=False, show_progress="hidden", api_visibility="private")

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


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


class Panel:
    """Components of one room by name (mixed into a frozen dataclass; see the module docstring)."""

    #: Fields that are not components a callback may write (e.g. a ``gr.Examples``).
    NOT_OUTPUTS: ClassVar[frozenset[str]] = frozenset()

    def pick(self, *names: str) -> list[Block]:
        """The components of these names, in this order."""
        return [self.component(name) for name in names]

    def by_name(self, values: Mapping[str, Any]) -> Any:
        """``{name: value}`` from a callback as ``{component: value}`` (what Gradio takes).

        Unknown names raise; no names at all is ``gr.skip()`` (nothing changes).
        """
        if not values:
            return gr.skip()
        return {self.component(name): value for name, value in values.items()}

    def component(self, name: str) -> Block:
        if name not in _field_names(type(self)) or name in self.NOT_OUTPUTS:
            raise ValueError(f"the {type(self).__name__} has no output component named {name!r}")
        return getattr(self, name)


def named(panel: Panel, fn: Callable) -> Callable:
    """``fn`` returns (or yields) ``{output name: value}``; the handler returns ``{component: value}``.

    ``functools.wraps`` keeps ``fn``'s signature visible to Gradio (``gr.Progress`` defaults,
    ``gr.SelectData`` hints); a generator function stays one, so Gradio streams its steps.
    """
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            for values in fn(*args, **kwargs):
                yield panel.by_name(values)

        return steps

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        return panel.by_name(fn(*args, **kwargs))

    return handler


def plot_value(spec: dict) -> PlotData:
    """A figure dict from ``app.views`` as ``gr.Plot`` sends it (skips building a ``go.Figure``)."""
    return PlotData(type="plotly", plot=json.dumps(spec, allow_nan=False, separators=(",", ":")))


def banner_value(config: PipelineConfig, label: str, source: str, note: str = "") -> Any:
    """The model banner for a checkpoint (``app.views.banner``): text (plus ``note``) and its CSS classes."""
    info = describe(config, label, source)
    return gr.update(value=banner_markdown(info) + note, elem_classes=banner_classes(info))
