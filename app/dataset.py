"""Dataset mode, pure part: per-video rows, the table, filters, sorting and the summary.

A *row* is one video's analysis as one JSON object, the line format ``nsnet analyze``
writes (and ``--results`` reads): ``id``, ``path``, ``subset``, ``gt`` (label or null),
``segments`` ([[start_s, end_s], ...] or []), ``duration_s``, ``timestamps_s``,
``frame_scores``, ``attention``, ``fused``, ``selected``, ``teacher`` (recognizer confidence
of the predicted class on every preview), one ``{label, score, correct}`` per method of
``nsnet.inference.methods.CLIP_METHODS`` (``correct`` null without ground truth),
``saliency_ap`` (null without segments), ``gflops``, ``timings_ms``, ``error`` (one line or
null). Rows this app computes itself also keep ``frame_probs`` ([T][C], the recognizer on
every preview), which the accuracy-vs-K curve needs; a results file may carry it too.

Rows computed here are made by ``nsnet.evaluation.rows.make_row``, the function ``nsnet analyze``
uses, from a dense ``PipelineResult``; the accuracy-vs-K curve uses ``nsnet.inference.methods``
(``select``, ``video_scores``, per-video random seeds ``video_seed``). Nothing here
re-implements frame selection. No Gradio, no network.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from nsnet.data.records import VideoRecord, segments_mask
from nsnet.metrics import average_precision, mean_average_precision
from nsnet.evaluation.jsonl import parse_row
from nsnet.evaluation.rows import VideoInfo, VideoOutputs, make_row
from nsnet.inference import PipelineResult
from nsnet.inference.methods import CLIP_METHODS, select, video_scores, video_seed

__all__ = ["API_KEYS", "TABLE_HEADERS", "TABLE_TYPES", "OUTCOMES", "ANY_CLASS", "ALL", "SORT_KEYS", "SORTS",
           "DATASET_ORDER", "ResultsFile",
           "result_row", "error_row", "pending_row", "read_results", "merge_record", "api_row", "table_row",
           "filter_rows", "sort_rows", "outcome_of", "DatasetSummary", "summarise", "accuracy_by_k", "mark",
           "row_segments"]

log = logging.getLogger(__name__)

# The ``/dataset`` endpoint's row keys, in table order.
API_KEYS = ("id", "gt", "nsnet_label", "nsnet_correct", "dense_label", "dense_correct", "uniform_label",
            "uniform_correct", "saliency_ap", "duration_s")
TABLE_HEADERS = ["Video", "Ground truth", "NSNet", "NSNet ✓", "Dense", "Dense ✓", "Uniform ✓", "Saliency AP",
                 "Duration (s)"]
TABLE_TYPES = ["str", "str", "str", "str", "str", "str", "str", "number", "number"]
RIGHT, WRONG = "✓", "✗"
PENDING = "… pending"
ANY_CLASS = "any class"
ALL = "all videos"
SORT_KEYS = API_KEYS   # ``sort_rows`` accepts any of these
DATASET_ORDER = "dataset order"
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


def mark(correct: bool | None) -> str:
    """✓ / ✗, or an empty string when unknown (no ground truth, not analysed)."""
    return "" if correct is None else RIGHT if correct else WRONG


# ------------------------------------------------------------------------------- rows
def _finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def row_segments(row: Mapping[str, Any]) -> list[tuple[float, float]]:
    """The row's ground-truth segments as (start_s, end_s) pairs (malformed pairs dropped)."""
    out = []
    for seg in row.get("segments") or ():
        if isinstance(seg, (list, tuple)) and len(seg) == 2:
            s, e = _finite(seg[0]), _finite(seg[1])
            if s is not None and e is not None and e > s:
                out.append((s, e))
    return out


def saliency_ap(fused: Sequence[float], timestamps_s: Sequence[float], segments) -> float | None:
    """AP of the fused score against the previews inside a ground-truth segment (``nsnet eval``'s rule).

    None without segments, or when every preview (or none) is inside one.
    """
    if not segments:
        return None
    mask = segments_mask(timestamps_s, segments)
    if not 0 < int(mask.sum()) < len(mask):
        return None
    return _finite(average_precision(np.asarray(fused, dtype=np.float64), mask))


def result_row(record: VideoRecord, result: PipelineResult, *, seed: int = 0, keep_probs: bool = True) -> dict:
    """The row of one video from a dense ``PipelineResult``: ``nsnet analyze``'s row (``make_row``) plus
    ``frame_probs``. A ground-truth label the model does not know makes every method wrong."""
    if result.frame_probs is None:
        raise ValueError("a dataset row needs a dense result (frame_probs)")
    names = list(result.class_names)
    index = names.index(record.label) if record.label in names else -1
    info = VideoInfo(record.video_id, str(record.path), record.subset, record.label, index, record.segments)
    out = VideoOutputs(torch.as_tensor(result.frame_scores, dtype=torch.float32),
                       torch.as_tensor(result.attention, dtype=torch.float32),
                       torch.as_tensor(result.frame_probs, dtype=torch.float32))
    duration = _finite((result.video or {}).get("duration_s")) or _finite(record.duration)
    row = make_row(info, out, result.timestamps_s, duration, k=result.k, lam=result.lam, seed=seed,
                   cost=result.gflops, class_names=names, timings_ms=result.timings_ms)
    if record.label is not None and index < 0:
        for m in CLIP_METHODS:
            row[m]["correct"] = False
    if keep_probs:
        row["frame_probs"] = np.asarray(result.frame_probs, dtype=np.float32)
    return row


def _base_row(record: VideoRecord) -> dict:
    return {"id": record.video_id, "path": str(record.path), "subset": record.subset, "gt": record.label,
            "segments": [[float(s), float(e)] for s, e in (record.segments or ())],
            "duration_s": _finite(record.duration), **{m: None for m in CLIP_METHODS}, "saliency_ap": None}


def error_row(record: VideoRecord, message: str) -> dict:
    """A video that could not be analysed (``error`` holds the one-line reason)."""
    return dict(_base_row(record), error=message)


def pending_row(record: VideoRecord) -> dict:
    """A video not analysed yet (computed lazily)."""
    return dict(_base_row(record), error=None, pending=True)


@dataclass(frozen=True)
class ResultsFile:
    """What ``read_results`` found: the rows by id and how many lines it skipped."""

    rows: dict[str, dict]
    skipped: int = 0
    has_frame_probs: bool = False


def read_results(path: str | Path) -> ResultsFile:
    """Read a ``nsnet analyze`` JSONL file; malformed lines are counted, logged once and skipped."""
    rows: dict[str, dict] = {}
    skipped, first_bad = 0, None
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = parse_row(line, id_types=(str, int))
            if row is None:
                skipped += 1
                first_bad = first_bad or lineno
                continue
            row["id"] = str(row["id"])
            if row.get("frame_probs") is not None:
                row["frame_probs"] = np.asarray(row["frame_probs"], dtype=np.float32)
            rows[row["id"]] = row
    if skipped:
        log.warning("%s: skipped %d malformed line(s) (first: line %d)", path, skipped, first_bad)
    return ResultsFile(rows, skipped, any(r.get("frame_probs") is not None for r in rows.values()))


def merge_record(row: dict, record: VideoRecord | None) -> dict:
    """A results row with the dataset's ground truth (the annotation file wins over the row)."""
    if record is None:
        return row
    out = dict(row, path=str(record.path), subset=record.subset if record.subset is not None else row.get("subset"))
    if record.label is not None or not row.get("gt"):
        out["gt"] = record.label
        out["segments"] = [[float(s), float(e)] for s, e in (record.segments or ())]
        for m in CLIP_METHODS:  # re-mark against the dataset's label
            if isinstance(row.get(m), dict):
                out[m] = dict(row[m], correct=None if record.label is None else row[m].get("label") == record.label)
        if out.get("fused") and out.get("timestamps_s"):
            out["saliency_ap"] = saliency_ap(out["fused"], out["timestamps_s"], out["segments"])
    if out.get("duration_s") is None:
        out["duration_s"] = _finite(record.duration)
    return out


# ------------------------------------------------------------------------------ table
def _method(row: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = row.get(name)
    return value if isinstance(value, dict) else {}


def api_row(row: Mapping[str, Any]) -> dict:
    """One ``/dataset`` row: ``API_KEYS``."""
    ap = _finite(row.get("saliency_ap"))
    dur = _finite(row.get("duration_s"))
    return {"id": row["id"], "gt": row.get("gt"),
            "nsnet_label": _method(row, "nsnet").get("label"), "nsnet_correct": _method(row, "nsnet").get("correct"),
            "dense_label": _method(row, "dense").get("label"), "dense_correct": _method(row, "dense").get("correct"),
            "uniform_label": _method(row, "uniform").get("label"),
            "uniform_correct": _method(row, "uniform").get("correct"),
            "saliency_ap": None if ap is None else round(ap, 4), "duration_s": None if dur is None else round(dur, 2)}


def table_row(row: Mapping[str, Any]) -> list[Any]:
    """One row of the Dataset tab's table (``TABLE_HEADERS``)."""
    a = api_row(row)
    if row.get("error"):
        nsnet = f"⚠ {row['error']}"
    elif row.get("pending"):
        nsnet = PENDING
    else:
        nsnet = a["nsnet_label"] or ""
    return [a["id"], a["gt"] or "", nsnet, mark(a["nsnet_correct"]), a["dense_label"] or "", mark(a["dense_correct"]),
            mark(a["uniform_correct"]), a["saliency_ap"], a["duration_s"]]


def _ok(row: Mapping[str, Any], method: str) -> bool | None:
    return _method(row, method).get("correct")


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
    right/wrong marks match ``outcome`` (a key of ``OUTCOMES``; ``None`` or "": all), and whose id or
    labels contain ``text`` (case-insensitive; every whitespace-separated word must occur).

    Raises ``ValueError`` for an unknown outcome.
    """
    outcome = outcome or ALL
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r} (choose from: {', '.join(OUTCOMES)})")
    keep = OUTCOMES[outcome]
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
                                                   _method(r, "uniform").get("label"))).lower()
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
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort column {key!r} (choose from: {', '.join(SORT_KEYS)})")
    keyed = [(api_row(r)[key], r) for r in rows]
    known = [(v, r) for v, r in keyed if v is not None]
    unknown = [r for v, r in keyed if v is None]
    known.sort(key=lambda vr: (str(vr[0]).lower() if isinstance(vr[0], str) else vr[0]), reverse=descending)
    return [r for _, r in known] + unknown


# ---------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class DatasetSummary:
    """What the Dataset tab shows above the table."""

    total: int                                   # rows
    analysed: int                                # rows with a result
    with_gt: int                                 # analysed rows with a ground-truth label
    pending: int
    errors: int
    accuracy: dict[str, float | None]            # method -> top-1 over ``with_gt``
    map: dict[str, float | None]                 # method -> mAP from the rows' ``class_scores`` (None without)
    correct: dict[str, int]
    saliency_ap: float | None                    # mean over rows that have one
    confusion: dict[tuple[str, str], int]        # (gt, NSNet label) -> count, analysed rows with gt
    k_curve: dict | None                         # ``accuracy_by_k``


def summarise(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str] | None = None, lam: float = 0.5,
              seed: int = 0) -> DatasetSummary:
    """Per-method accuracy, NSNet's confusion and the accuracy-vs-K curve of a set of rows."""
    analysed = [r for r in rows if not r.get("error") and not r.get("pending") and isinstance(r.get("nsnet"), dict)]
    judged = [r for r in analysed if r.get("gt")]
    correct = {m: sum(1 for r in judged if _ok(r, m) is True) for m in CLIP_METHODS}
    accuracy = {m: (correct[m] / len(judged) if judged else None) for m in CLIP_METHODS}
    aps = [a for r in analysed if (a := _finite(r.get("saliency_ap"))) is not None]
    confusion = Counter((r["gt"], _method(r, "nsnet").get("label")) for r in judged)
    return DatasetSummary(
        total=len(rows), analysed=len(analysed), with_gt=len(judged),
        pending=sum(1 for r in rows if r.get("pending")), errors=sum(1 for r in rows if r.get("error")),
        accuracy=accuracy, correct=correct, map=_maps(judged, class_names or ()),
        saliency_ap=float(np.mean(aps)) if aps else None,
        confusion=dict(confusion), k_curve=accuracy_by_k(judged, class_names, lam, seed) if class_names else None)


def _maps(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, float | None]:
    """Per-method mAP (``nsnet eval``'s) from the rows' ``class_scores``, over rows whose label the model knows."""
    index = {c: i for i, c in enumerate(class_names)}
    usable = [r for r in rows if r.get("gt") in index and isinstance(r.get("class_scores"), dict)
              and all(len(r["class_scores"].get(m) or ()) == len(index) for m in CLIP_METHODS)]
    if not usable:
        return {m: None for m in CLIP_METHODS}
    labels = np.asarray([index[r["gt"]] for r in usable])
    return {m: _finite(mean_average_precision(np.asarray([r["class_scores"][m] for r in usable], dtype=np.float32),
                                              labels)) for m in CLIP_METHODS}


def accuracy_by_k(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str], lam: float = 0.5, seed: int = 0
                  ) -> dict | None:
    """Top-1 of NSNet-K, uniform-K, random-K for K = 1..T and of dense-T, from the rows' cached
    per-frame outputs (``frame_scores``, ``attention``, ``frame_probs``): no network runs.

    Uses the rows with ground truth and ``frame_probs`` over ``class_names`` at the most common
    T; returns None when there are none. Random-K seeds each video with ``video_seed(seed, id)``,
    like ``nsnet analyze``.
    """
    usable = [r for r in rows if r.get("gt") and r.get("frame_probs") is not None and r.get("frame_scores")
              and np.shape(r["frame_probs"]) == (len(r["frame_scores"]), len(class_names))]
    if not usable:
        return None
    t = Counter(len(r["frame_scores"]) for r in usable).most_common(1)[0][0]
    usable = [r for r in usable if len(r["frame_scores"]) == t]
    scores = torch.tensor([r["frame_scores"] for r in usable], dtype=torch.float32)
    attention = torch.tensor([r["attention"] for r in usable], dtype=torch.float32)
    probs = torch.from_numpy(np.stack([np.asarray(r["frame_probs"], dtype=np.float32) for r in usable]))
    names = np.asarray(list(class_names), dtype=object)
    gt = np.asarray([r["gt"] for r in usable], dtype=object)

    def top1(idx: torch.Tensor) -> float:
        pred = names[video_scores(probs, idx).argmax(1).numpy()]
        return float(np.mean(pred == gt))

    curve: dict[str, Any] = {"t": t, "n": len(usable), "k": list(range(1, t + 1)), "lam": float(lam)}
    for method in ("nsnet", "uniform"):
        curve[method] = [top1(select(method, scores, attention, k, lam)) for k in range(1, t + 1)]
    seeds = [video_seed(seed, str(r["id"])) for r in usable]
    curve["random"] = [top1(select("random", scores, attention, k, lam, seed=seeds)) for k in range(1, t + 1)]
    curve["dense"] = top1(select("dense", scores, attention, t, lam))
    return curve
