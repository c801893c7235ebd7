"""Field-by-field check of one results row (the JSONL row of ``nsnet analyze``, README "Rows").

:func:`validate_row` says why a parsed row cannot be used, or None: every field it holds
has its type (strings, numbers, lists of numbers, ``{label, score, correct}``), every
number is finite, the per-preview vectors all have one length ``T`` (at most
:data:`~nsnet.limits.MAX_FRAMES`), ``selected`` holds distinct preview indices, and
``frame_probs`` is a ``T x C`` table whose ``C`` agrees with ``class_scores``. Keys it does
not know are ignored, and keys a row lacks are allowed (results files of older versions
have no ``frame_probs``), except ``id``. Callers that know the run's ``T``, ``K`` and number
of classes pass them, and the row must agree.

Numbers are checked in C where it matters (``set(map(type, ...))`` and ``sum``), so a row of
a large model (``frame_probs`` of 16 x 700 numbers) costs well under a millisecond.
"""
from __future__ import annotations

import math
from typing import Any

from ..config import MAX_CLASSES
from ..inference.methods import CLIP_METHODS
from ..limits import MAX_FRAMES

__all__ = ["MAX_ROW_BYTES", "VECTOR_KEYS", "validate_row"]

#: Longest row line read (T = 256 previews of 1000 classes is about 3 MB).
MAX_ROW_BYTES = 64 << 20

#: The per-preview vectors of a row, each ``T`` long.
VECTOR_KEYS = ("timestamps_s", "frame_scores", "attention", "fused", "teacher")

_NUMBER_TYPES = {int, float}


def _finite(x: Any) -> bool:
    try:
        return type(x) in _NUMBER_TYPES and math.isfinite(x)
    except OverflowError:  # an integer too large for a float
        return False


def _numbers(value: Any, n: int | None = None) -> str | None:
    """Why ``value`` is not a list of ``n`` finite numbers (None when it is)."""
    if type(value) is not list:
        return f"not a list but {type(value).__name__}"
    if n is not None and len(value) != n:
        return f"{len(value)} values, not {n}"
    if not set(map(type, value)) <= _NUMBER_TYPES:
        return "holds something other than numbers"
    try:
        ok = math.isfinite(sum(value))
    except OverflowError:
        ok = False
    if not ok and not all(map(_finite, value)):  # a sum can overflow although every value is finite
        return "holds a number that is not finite"
    return None


def _optional(row: dict, key: str, kinds: tuple[type, ...]) -> str | None:
    value = row.get(key)
    if value is None or (type(value) in kinds):
        return None
    names = " or ".join(k.__name__ for k in kinds)
    return f"{key}: not {names} or null but {type(value).__name__}"


def _method(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if type(value) is not dict:
        return f"{name}: not an object"
    if "label" in value and type(value["label"]) is not str:
        return f"{name}.label: not a string but {type(value['label']).__name__}"
    if value.get("score") is not None and not _finite(value["score"]):
        return f"{name}.score: not a finite number"
    if value.get("correct") is not None and type(value["correct"]) is not bool:
        return f"{name}.correct: not true, false or null"
    return None


def _number_map(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if type(value) is not dict:
        return f"{name}: not an object"
    bad = next((k for k, v in value.items() if not _finite(v)), None)
    return None if bad is None else f"{name}.{bad}: not a finite number"


def validate_row(row: Any, *, id_types: tuple[type, ...] = (str,), t: int | None = None, k: int | None = None,
                 num_classes: int | None = None) -> str | None:
    """Why ``row`` is not a usable results row (``"field: problem"``, one line), or None.

    ``t`` / ``k`` / ``num_classes``: the run's T, K and number of classes, when known; a row
    that analysed its video must then have T previews, K selected and C class scores.
    """
    if type(row) is not dict:
        return "not a JSON object"
    vid = row.get("id")
    if not isinstance(vid, id_types) or isinstance(vid, bool):
        return "id: missing, or not a string"
    for key in ("path", "subset", "gt", "error"):
        problem = _optional(row, key, (str,))
        if problem:
            return problem
    failed = bool(row.get("error"))
    n = None if failed else t
    for key in VECTOR_KEYS:
        value = row.get(key)
        if value is None or (failed and value == []):
            continue
        if type(value) is list and n is not None and len(value) != n:
            return f"{key}: {len(value)} values, not T = {n}"
        problem = _numbers(value)
        if problem:
            return f"{key}: {problem}"
        n = len(value)
    if n is not None and n > MAX_FRAMES:
        return f"timestamps_s: {n} previews, more than {MAX_FRAMES}"
    selected = row.get("selected")
    if selected is not None and not (failed and selected == []):
        if type(selected) is not list or not set(map(type, selected)) <= {int}:
            return "selected: not a list of integers"
        if n is None or not all(0 <= i < n for i in selected) or len(set(selected)) != len(selected):
            return f"selected: not distinct preview indices in [0, {n})"
        if k is not None and not failed and len(selected) != k:
            return f"selected: {len(selected)} indices, not K = {k}"
    segments = row.get("segments")
    if segments is not None:
        if type(segments) is not list or not all(_numbers(s, 2) is None for s in segments):
            return "segments: not a list of [start, end] pairs of numbers"
    for key in ("duration_s", "saliency_ap"):
        if row.get(key) is not None and not _finite(row[key]):
            return f"{key}: not a finite number or null"
    for m in CLIP_METHODS:
        problem = _method(row.get(m), m)
        if problem:
            return problem
    for key in ("gflops", "timings_ms"):
        problem = _number_map(row.get(key), key)
        if problem:
            return problem
    c = num_classes
    scores = row.get("class_scores")
    if scores is not None:
        if type(scores) is not dict:
            return "class_scores: not an object"
        for m, values in scores.items():
            problem = _numbers(values, c)
            if problem:
                return f"class_scores.{m}: {problem}"
            c = len(values)
    probs = row.get("frame_probs")
    if probs is not None and not (failed and probs == []):
        if type(probs) is not list:
            return f"frame_probs: not a list but {type(probs).__name__}"
        if n is not None and len(probs) != n:
            return f"frame_probs: {len(probs)} rows, not T = {n}"
        for i, p in enumerate(probs):
            problem = _numbers(p, c)
            if problem:
                return f"frame_probs[{i}]: {problem}"
            c = len(p)
    if c is not None and not 0 < c <= MAX_CLASSES:
        return f"class_scores: {c} classes, not 1 to {MAX_CLASSES}"
    return None
