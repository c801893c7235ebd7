"""The Dataset tab's table, pure: its columns (one list), the ``/dataset`` rows, filters and sorting.

A *row* is one video's analysis, the line format ``nsnet analyze`` writes (``app.state.rows``).
``COLUMNS`` is the one definition of what the table and the ``/dataset`` endpoint show: each
column has its ``/dataset`` key and value and, when the page shows it, its header, type and
cell. Adding a column is one entry here; the tab (``app.tabs.dataset``) reads the headers
and types from this module. With a second result set (``--compare-results``; rows joined by
``DatasetStore.joined_rows``, which adds ``b_nsnet`` and ``overlap``), ``B_COLUMNS`` follow (B's
label and mark, the overlap of the two selections), and the outcomes ``COMPARE_OUTCOMES`` and
sorts ``COMPARE_SORTS`` are offered too: every ``compare=True`` below. No Gradio, no network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from nsnet.evaluation.stats import finite

__all__ = ["Column", "COLUMNS", "API_KEYS", "TABLE_HEADERS", "TABLE_TYPES", "OUTCOMES", "ANY_CLASS", "ALL",
           "SORT_KEYS", "SORTS", "DATASET_ORDER", "PENDING", "api_row", "table_row", "filter_rows", "sort_rows",
           "outcome_of", "mark", "B_COLUMNS", "COMPARE_OUTCOMES", "COMPARE_SORTS", "A_RIGHT_B_WRONG",
           "B_RIGHT_A_WRONG", "headers", "types", "outcomes", "sorts", "sort_keys"]

RIGHT, WRONG = "✓", "✗"
PENDING = "… pending"
ANY_CLASS = "any class"
ALL = "all videos"
DATASET_ORDER = "dataset order"


def mark(correct: bool | None) -> str:
    """✓ / ✗, or an empty string when unknown (no ground truth, not analysed)."""
    return "" if correct is None else RIGHT if correct else WRONG


def _method(row: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = row.get(name)
    return value if isinstance(value, dict) else {}


def _ok(row: Mapping[str, Any], method: str) -> bool | None:
    return _method(row, method).get("correct")


def _rounded(key: str, digits: int) -> Callable[[Mapping[str, Any]], float | None]:
    def value(row: Mapping[str, Any]) -> float | None:
        x = finite(row.get(key))
        return None if x is None else round(x, digits)

    return value


def _nsnet_cell(row: Mapping[str, Any], api: Mapping[str, Any]) -> str:
    if row.get("error"):
        return f"⚠ {row['error']}"
    if row.get("pending"):
        return PENDING
    return api["nsnet_label"] or ""


@dataclass(frozen=True)
class Column:
    """One column: its ``/dataset`` key and value; with a header, also a column of the page's table."""

    key: str                                              # the ``/dataset`` row key
    value: Callable[[Mapping[str, Any]], Any]             # row -> its ``/dataset`` value
    header: str | None = None                             # None: in ``/dataset`` only
    dtype: str = "str"                                    # the table's datatype: "str" or "number"
    cell: Callable[[Mapping[str, Any], Mapping[str, Any]], Any] | None = None  # (row, /dataset row) -> cell


def _label(method: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: _method(r, method).get("label")


def _correct(method: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda r: _method(r, method).get("correct")


def _mark_of(key: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], str]:
    return lambda row, api: mark(api[key])


def _text_of(key: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], str]:
    return lambda row, api: api[key] or ""


# The table and ``/dataset``, in order (``/dataset`` rows have every key; the page shows those with a header).
COLUMNS: tuple[Column, ...] = (
    Column("id", lambda r: r["id"], "Video", cell=lambda row, api: api["id"]),
    Column("gt", lambda r: r.get("gt"), "Ground truth", cell=_text_of("gt")),
    Column("nsnet_label", _label("nsnet"), "NSNet", cell=_nsnet_cell),
    Column("nsnet_correct", _correct("nsnet"), "NSNet ✓", cell=_mark_of("nsnet_correct")),
    Column("dense_label", _label("dense"), "Dense", cell=_text_of("dense_label")),
    Column("dense_correct", _correct("dense"), "Dense ✓", cell=_mark_of("dense_correct")),
    Column("uniform_label", _label("uniform")),
    Column("uniform_correct", _correct("uniform"), "Uniform ✓", cell=_mark_of("uniform_correct")),
    Column("saliency_ap", _rounded("saliency_ap", 4), "Saliency AP", "number", cell=lambda row, api: api["saliency_ap"]),
    Column("duration_s", _rounded("duration_s", 2), "Duration (s)", "number", cell=lambda row, api: api["duration_s"]),
)
_SHOWN = tuple(c for c in COLUMNS if c.header is not None)


def _b(row: Mapping[str, Any]) -> Mapping[str, Any]:
    value = row.get("b_nsnet")
    return value if isinstance(value, dict) else {}


# With a second result set (B): its NSNet label and mark, and the IoU of the two selections.
B_COLUMNS: tuple[Column, ...] = (
    Column("b_label", lambda r: _b(r).get("label"), "B: NSNet", cell=_text_of("b_label")),
    Column("b_correct", lambda r: _b(r).get("correct"), "B ✓", cell=_mark_of("b_correct")),
    Column("overlap", _rounded("overlap", 3), "Overlap A∩B / A∪B", "number", cell=lambda row, api: api["overlap"]),
)


def _columns(compare: bool) -> tuple[Column, ...]:
    return COLUMNS + B_COLUMNS if compare else COLUMNS


def headers(compare: bool = False) -> list[str]:
    """The table's headers (with B's columns when ``compare``)."""
    return [c.header for c in _columns(compare) if c.header is not None]


def types(compare: bool = False) -> list[str]:
    return [c.dtype for c in _columns(compare) if c.header is not None]

API_KEYS = tuple(c.key for c in COLUMNS)                # the ``/dataset`` endpoint's row keys, in table order
TABLE_HEADERS = [c.header for c in _SHOWN]
TABLE_TYPES = [c.dtype for c in _SHOWN]
SORT_KEYS = API_KEYS   # ``sort_rows`` accepts any of these (and, with B, ``B_COLUMNS``' keys)
# The Sort dropdown: name -> (``API_KEYS`` column or None, descending). Failures sort first ("✗ before ✓").
SORTS: dict[str, tuple[str | None, bool]] = {
    DATASET_ORDER: (None, False),
    "NSNet wrong first": ("nsnet_correct", False),
    "dense wrong first": ("dense_correct", False),
    "uniform wrong first": ("uniform_correct", False),
    "saliency AP, lowest first": ("saliency_ap", False),
    "saliency AP, highest first": ("saliency_ap", True),
    "duration, longest first": ("duration_s", True),
    "video id": ("id", False),
    "ground truth": ("gt", False),
    "NSNet label": ("nsnet_label", False),
}


COMPARE_SORTS: dict[str, tuple[str | None, bool]] = {
    "B wrong first": ("b_correct", False),
    "overlap, lowest first": ("overlap", False),
    "overlap, highest first": ("overlap", True),
}


def sorts(compare: bool = False) -> dict[str, tuple[str | None, bool]]:
    """The Sort menu's choices (B's too when ``compare``)."""
    return {**SORTS, **COMPARE_SORTS} if compare else dict(SORTS)


def sort_keys(compare: bool = False) -> tuple[str, ...]:
    return tuple(c.key for c in _columns(compare))


PAGE_ROWS = 500   # rows of the Dataset tab's table sent at once (a page); /dataset returns every row


def page_of(rows: Sequence[Any], page: Any, size: int = PAGE_ROWS) -> tuple[list[Any], int]:
    """Page ``page`` (1-based, clamped to the pages there are; anything not a number is page 1) of ``rows``."""
    try:
        page = int(page)
    except (TypeError, ValueError, OverflowError):
        page = 1
    pages = max(1, -(-len(rows) // size))
    page = min(max(page, 1), pages)
    return list(rows[(page - 1) * size: page * size]), page


def api_row(row: Mapping[str, Any], compare: bool = False) -> dict:
    """One ``/dataset`` row: ``API_KEYS`` (then ``b_label``, ``b_correct``, ``overlap`` when ``compare``)."""
    return {c.key: c.value(row) for c in _columns(compare)}


def table_row(row: Mapping[str, Any], compare: bool = False) -> list[Any]:
    """One row of the Dataset tab's table (``TABLE_HEADERS``, or ``headers(compare)``)."""
    api = api_row(row, compare)
    return [c.cell(row, api) for c in _columns(compare) if c.header is not None]


def _both(a: str, want_a: bool, b: str, want_b: bool) -> Callable[[Mapping[str, Any]], bool]:
    return lambda r: _ok(r, a) is want_a and _ok(r, b) is want_b


# Outcome filters by name (the dropdown's choices and the API's ``outcome`` values).
OUTCOMES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    ALL: lambda r: True,
    "NSNet wrong": lambda r: _ok(r, "nsnet") is False,
    "NSNet right": lambda r: _ok(r, "nsnet") is True,
    "NSNet wrong, dense right": _both("nsnet", False, "dense", True),
    "NSNet right, dense wrong": _both("nsnet", True, "dense", False),
    "NSNet wrong, uniform right": _both("nsnet", False, "uniform", True),
    "NSNet right, uniform wrong": _both("nsnet", True, "uniform", False),
    "all wrong": lambda r: all(_ok(r, m) is False for m in ("nsnet", "dense", "uniform")),
    "all right": lambda r: all(_ok(r, m) is True for m in ("nsnet", "dense", "uniform")),
    "not analysed (error or pending)": lambda r: bool(r.get("error") or r.get("pending")),
}


A_RIGHT_B_WRONG = "A right, B wrong"
B_RIGHT_A_WRONG = "B right, A wrong"
# With a second result set: A is this table's NSNet, B the ``--compare-results`` NSNet.
COMPARE_OUTCOMES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    A_RIGHT_B_WRONG: lambda r: _ok(r, "nsnet") is True and _b(r).get("correct") is False,
    B_RIGHT_A_WRONG: lambda r: _ok(r, "nsnet") is False and _b(r).get("correct") is True,
    "A and B wrong": lambda r: _ok(r, "nsnet") is False and _b(r).get("correct") is False,
    "not in B": lambda r: not _b(r),
}


def outcomes(compare: bool = False) -> dict[str, Callable[[Mapping[str, Any]], bool]]:
    """The Outcome menu's filters (B's too when ``compare``)."""
    return {**OUTCOMES, **COMPARE_OUTCOMES} if compare else dict(OUTCOMES)


def outcome_of(row: Mapping[str, Any]) -> str:
    """A short word for the row (for logs and tests): right / wrong / unknown / error / pending."""
    if row.get("error"):
        return "error"
    if row.get("pending"):
        return "pending"
    return {True: "right", False: "wrong", None: "unknown"}[_ok(row, "nsnet")]


def filter_rows(rows: Iterable[Mapping[str, Any]], class_name: str | None = None, outcome: str | None = None,
                text: str | None = None) -> list[Mapping[str, Any]]:
    """Rows whose ground truth is ``class_name`` (``None``, "" or ``ANY_CLASS``: any), whose methods'
    right/wrong marks match ``outcome`` (a key of ``OUTCOMES`` or ``COMPARE_OUTCOMES``; ``None`` or "": all), and
    whose id or
    labels contain ``text`` (case-insensitive; every whitespace-separated word must occur).

    Raises ``ValueError`` for an unknown outcome.
    """
    outcome = outcome or ALL
    known = outcomes(compare=True)
    if outcome not in known:
        raise ValueError(f"unknown outcome {outcome!r} (choose from: {', '.join(known)})")
    keep = known[outcome]
    cls = None if class_name in (None, "", ANY_CLASS) else class_name
    words = (text or "").lower().split()
    out = []
    for r in rows:
        if cls is not None and r.get("gt") != cls:
            continue
        if not keep(r):
            continue
        if words:
            hay = " ".join(str(x or "") for x in (r.get("id"), r.get("gt"), _method(r, "nsnet").get("label"),
                                                   _method(r, "dense").get("label"),
                                                   _method(r, "uniform").get("label"), _b(r).get("label"))).lower()
            if not all(w in hay for w in words):
                continue
        out.append(r)
    return out


def sort_rows(rows: Sequence[Mapping[str, Any]], key: str | None = None, descending: bool = False
              ) -> list[Mapping[str, Any]]:
    """Rows sorted by one ``API_KEYS`` column (unknown values last either way); stable.

    For the ``*_correct`` columns ascending puts wrong first ("sort by failure").
    """
    if not key:
        return list(rows)
    every = COLUMNS + B_COLUMNS
    if key not in sort_keys(compare=True):
        raise ValueError(f"unknown sort column {key!r} (choose from: {', '.join(c.key for c in every)})")
    value = next(c.value for c in every if c.key == key)
    keyed = [(value(r), r) for r in rows]
    known = [(v, r) for v, r in keyed if v is not None]
    unknown = [r for v, r in keyed if v is None]
    known.sort(key=lambda vr: (str(vr[0]).lower() if isinstance(vr[0], str) else vr[0]), reverse=descending)
    return [r for _, r in known] + unknown
