"""The text of every error the explorer shows: one plain line, bounded, naming no server path.

* ``user_errors(fn, api=False)`` wraps a callback: every exception becomes a one-line
  ``gr.Error`` (expected ones with nsnet's message, unexpected ones with a short note while
  the traceback goes to the log). Gradio's page renders an error message as (sanitised)
  HTML, so for page events the text is HTML-escaped there, once; an API endpoint
  (``api=True``) gets the plain text (``'empty.mp4'``, never ``&#x27;empty.mp4&#x27;``).
* ``error_text(exc)``: that line. A ``VideoError`` names the upload by its base name; any
  other absolute path in a message is cut to its last component; at most ``MAX_CHARS``.
* ``shown(value)``: a visitor's value echoed short (``1e+308``, not 309 digits; ``nsnet.errors``).
* ``whole_number`` / ``finite_number``: T, K or λ from a form or an API call (``nsnet.config``'s,
  refusing ``2.5`` for T instead of rounding it) as a ``gr.Error``.
"""
# No ``from __future__ import annotations``: ``functools.wraps`` hands Gradio the wrapped signature.
import functools
import html
import inspect
import logging
import re
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from nsnet import config
from nsnet.config import ConfigError
from nsnet.errors import one_line, shown
from nsnet.inference import CheckpointError
from nsnet.video import VideoError

__all__ = ["MAX_CHARS", "user_errors", "error_text", "scrub_paths", "shown", "whole_number", "finite_number"]

log = logging.getLogger(__name__)

MAX_CHARS = 300          # longest error line
MAX_NAME_CHARS = 80      # longest file name in an error

# An absolute path (two or more components) not glued to a word: ``/tmp/gradio/ab12/clip.mov`` -> ``clip.mov``.
_ABS_PATH = re.compile(r"(?<![\w./~-])(?:~|[A-Za-z]:)?[/\\](?:[^\s/\\'\"(),;:]+[/\\])+([^\s/\\'\"(),;:]*)")


def scrub_paths(text: str) -> str:
    """Every absolute path in ``text`` replaced by its last component."""
    return _ABS_PATH.sub(lambda m: m.group(1) or "(folder)", text)


def _short_name(path: str) -> str:
    name = Path(path).name or "(file)"
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…"


def error_text(exc: BaseException | str) -> str:
    """The one plain line a visitor sees for ``exc`` (see the module docstring)."""
    path, problem = getattr(exc, "path", None), getattr(exc, "problem", None)
    if isinstance(exc, VideoError) and isinstance(path, str) and isinstance(problem, str):
        text = f"{_short_name(path)}: {problem}"
    else:
        text = exc if isinstance(exc, str) else str(exc) or type(exc).__name__
    return one_line(scrub_paths(one_line(text, limit=4 * MAX_CHARS)), limit=MAX_CHARS)


def whole_number(value: Any, name: str) -> int:
    """An integer from a form or API value (``8``, ``8.0``, ``"8"``); ``gr.Error`` for anything else.

    ``2.5`` is refused, never rounded; so are booleans, NaN and infinities (``nsnet.config.whole_number``).
    """
    try:
        return config.whole_number(value, name)
    except ConfigError as exc:
        raise gr.Error(str(exc)) from None


def finite_number(value: Any, name: str) -> float:
    """A finite float from a form or API value; ``gr.Error`` for anything else (``nsnet.config.finite_number``)."""
    try:
        return config.finite_number(value, name)
    except ConfigError as exc:
        raise gr.Error(str(exc)) from None


def user_errors(fn: Callable = None, *, api: bool = False) -> Callable:
    """Turn every exception of ``fn`` into a one-line ``gr.Error``; log the unexpected ones with traceback.

    ``api=True`` for an API endpoint: the message is plain text. Otherwise (page events)
    it is HTML-escaped, because Gradio's page renders ``gr.Error`` messages as HTML.
    Usable as ``user_errors(fn)`` or ``user_errors(fn, api=True)``; a generator function
    (a callback that sends its outputs in steps) stays one.
    """
    if fn is None:
        return functools.partial(user_errors, api=api)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                raise _as_gr_error(exc, fn.__name__, api) from None

        return steps

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise _as_gr_error(exc, fn.__name__, api) from None

    return wrapper


def _as_gr_error(exc: Exception, where: str, api: bool) -> gr.Error:
    """The one-line ``gr.Error`` a visitor sees for ``exc`` (raised in the callback ``where``)."""
    def finish(text: str) -> str:
        return text if api else html.escape(text, quote=False)

    if isinstance(exc, gr.Error):
        return gr.Error(finish(error_text(str(exc.message))), duration=exc.duration, visible=exc.visible,
                        title=exc.title, print_exception=False)
    if isinstance(exc, (ConfigError, CheckpointError, VideoError)):
        log.info("rejected input in %s: %s", where, exc)
        return gr.Error(finish(error_text(exc)), title="Cannot analyse this input", print_exception=False)
    if isinstance(exc, ValueError):
        log.warning("value error in %s", where, exc_info=exc)
        return gr.Error(finish(error_text(exc)), title="Cannot analyse this input", print_exception=False)
    log.error("unexpected error in %s", where, exc_info=exc)
    note = error_text(f"Unexpected error ({type(exc).__name__}: {error_text(exc)[:160]}). "
                      "Details are in the server log.")
    return gr.Error(finish(note), title="Something went wrong")
