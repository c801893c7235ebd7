"""JSON a user gave, read safely: a size bound, a nesting bound, one-line errors.

``json.loads`` recurses once a nesting level, so ``[[[[...]]]]`` 100 000 deep ends in a
``RecursionError`` traceback, and a multi-gigabyte file is read whole before anything
looks at it. Every JSON file or line the library reads from a user (results rows and run
files of ``nsnet analyze``, a checkpoint's ``config.json``, annotation files) goes
through :func:`loads` or :func:`load_file` instead:

* the nesting depth is measured before ``json.loads`` runs (a linear scan in C: strings
  are cut out first, so a bracket inside a string never counts) and refused past
  :data:`MAX_DEPTH` (the deepest file the project writes is 6 levels);
* the size is bounded (``max_bytes``); a file is opened without blocking and checked to be
  a regular file first (:func:`check_regular`), so a FIFO or a device is refused, never
  waited on;
* every problem is one line, ``"<what>: <problem>"``, raised as ``error`` (default
  :class:`InputError`, a ``ValueError``), so callers can raise their own error type.
"""
from __future__ import annotations

import json
import os
import re
import stat
from typing import Any

import numpy as np

__all__ = ["MAX_DEPTH", "InputError", "check_regular", "nesting_depth", "loads", "load_file"]

#: Deepest nesting accepted anywhere (objects and arrays together).
MAX_DEPTH = 64

_KEEP = b'[]{}"'
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
_STRINGS = re.compile(rb'"[^"]*"')


class InputError(ValueError):
    """A JSON text or input file refused: not a regular file, too large, too deep, or not valid JSON."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: str | os.PathLike, what: str, *, must_exist: bool = True,
                  error: type[Exception] = InputError) -> os.stat_result | None:
    """Raise ``error("<what>: is a folder, not a file")`` (a FIFO, a device, a socket...) unless
    ``path`` is a regular file (symlinks followed). A missing path raises when ``must_exist``,
    else returns None; otherwise returns the ``os.stat`` result. Never opens the path."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if must_exist:
            raise error(f"{what}: no such file") from None
        return None
    except OSError as exc:
        raise error(f"{what}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what}: is {_kind(st.st_mode)}, not a regular file")
    return st


def nesting_depth(data: str | bytes) -> int:
    """The deepest nesting of objects and arrays in a JSON text (0 for a scalar).

    Brackets inside strings do not count. Linear time, done in C (bytes operations and
    numpy), so a hostile 100 MB line costs well under a second.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")  # escaped backslashes, then escaped quotes
    kept = raw.translate(None, _DELETE)  # only [ ] { } and quotes are left
    if b'"' in kept:
        kept = _STRINGS.sub(b"", kept).replace(b'"', b"")  # string contents (and an unterminated quote)
    if not kept:
        return 0
    a = np.frombuffer(kept, dtype=np.uint8)
    steps = np.where((a == ord("[")) | (a == ord("{")), 1, -1).astype(np.int64)
    return max(0, int(np.cumsum(steps).max()))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def loads(text: str | bytes, what: str, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH,
          strict: bool = False, error: type[Exception] = InputError) -> Any:
    """``json.loads(text)`` with a size and a depth bound; ``strict`` also refuses NaN / Infinity.

    Raises ``error`` with one line ``"<what>: ..."`` for text over ``max_bytes`` (characters
    or bytes), nested deeper than ``max_depth``, or not valid JSON; never RecursionError.
    """
    if max_bytes is not None and len(text) > max_bytes:
        raise error(f"{what}: larger than {max_bytes} bytes")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{what}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant) if strict else json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError:
        raise error(f"{what}: not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # a rejected constant; recursion: a backstop only
        raise error(f"{what}: not valid JSON ({exc})") from None


def load_file(path: str | os.PathLike, what: str | None = None, *, max_bytes: int, max_depth: int = MAX_DEPTH,
              strict: bool = False, error: type[Exception] = InputError) -> Any:
    """The JSON value in a file, read safely (see :func:`loads`); ``what`` names it in errors
    (default: the path). A UTF-8 byte-order mark is accepted.

    The file is opened without blocking and must be a regular file of at most ``max_bytes``
    bytes, so a FIFO, a device or a huge file is refused before anything is read.
    """
    what = str(path) if what is None else what
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"{what}: no such file") from None
    except OSError as exc:
        raise error(f"{what}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what}: is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise error(f"{what}: larger than {max_bytes} bytes ({st.st_size})")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{what}: cannot read ({exc.strerror or type(exc).__name__})") from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:  # grew since fstat
        raise error(f"{what}: larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{what}: not UTF-8 text") from None
    return loads(text, what, max_depth=max_depth, strict=strict, error=error)
