"""Dataset mode's rows as data: one video's analysis as one JSON object, read, merged, computed.

A *row* is the line format ``nsnet analyze`` writes (and ``--results`` reads): ``id``, ``path``,
``subset``, ``gt`` (label or null), ``segments`` ([[start_s, end_s], ...] or []), ``duration_s``,
``timestamps_s``, ``frame_scores``, ``attention``, ``fused``, ``selected``, ``teacher`` (recognizer
confidence of the predicted class on every preview), one ``{label, score, correct}`` per method of
``nsnet.inference.methods.CLIP_METHODS`` (``correct`` null without ground truth), ``saliency_ap``
(null without segments), ``gflops``, ``timings_ms``, ``error`` (one line or null). Rows this app
computes itself also keep ``frame_probs`` ([T][C], the recognizer on every preview), which the
accuracy-vs-K curve needs; a results file may carry it too.

Rows computed here are made by ``nsnet.evaluation.rows.make_row``, the function ``nsnet analyze``
uses, from a dense ``PipelineResult``; their statistics are ``nsnet.evaluation.stats``'. Nothing
here re-implements frame selection. No Gradio, no network.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nsnet.data.records import VideoRecord
from nsnet.evaluation.jsonl import read_rows, skipped_message
from nsnet.evaluation.rows import VideoInfo, VideoOutputs, make_row
from nsnet.evaluation.stats import finite, saliency_ap
from nsnet.inference import PipelineResult
from nsnet.inference.methods import CLIP_METHODS

__all__ = ["ResultsFile", "result_row", "error_row", "pending_row", "read_results", "merge_record", "row_segments",
           "selection_overlap", "run_classes"]

log = logging.getLogger(__name__)


def row_segments(row: Mapping[str, Any]) -> list[tuple[float, float]]:
    """The row's ground-truth segments as (start_s, end_s) pairs (malformed pairs dropped)."""
    out = []
    for seg in row.get("segments") or ():
        if isinstance(seg, (list, tuple)) and len(seg) == 2:
            s, e = finite(seg[0]), finite(seg[1])
            if s is not None and e is not None and e > s:
                out.append((s, e))
    return out


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
    duration = finite((result.video or {}).get("duration_s")) or finite(record.duration)
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
            "duration_s": finite(record.duration), **{m: None for m in CLIP_METHODS}, "saliency_ap": None}


def error_row(record: VideoRecord, message: str, *, path: str | None = None) -> dict:
    """A video that could not be analysed (``error`` holds the one-line reason; ``path``, when given, replaces
    the record's path: how the page names it)."""
    row = dict(_base_row(record), error=message)
    if path is not None:
        row["path"] = path
    return row


def pending_row(record: VideoRecord) -> dict:
    """A video not analysed yet (computed lazily)."""
    return dict(_base_row(record), error=None, pending=True)


#: Most rows read from a ``--results`` file (Kinetics-400's validation set is about 20,000 videos).
MAX_RESULT_ROWS = 500_000


@dataclass(frozen=True)
class ResultsFile:
    """What ``read_results`` found: the rows by id and how many lines it skipped (with their line numbers)."""

    rows: dict[str, dict]
    skipped: int = 0
    has_frame_probs: bool = False
    bad_lines: tuple[int, ...] = ()


def read_results(path: str | Path, max_rows: int = MAX_RESULT_ROWS, flag: str = "--results") -> ResultsFile:
    """Read a ``nsnet analyze`` JSONL file (``nsnet.evaluation.jsonl.read_rows``: each row checked field by field,
    size and nesting bounded). A malformed row is skipped; one warning names the skipped lines, so the server
    always starts. Raises ``jsonl.ResultFileError`` (one line) for a missing or non-regular file (a FIFO...)."""
    name = Path(path).name
    found = read_rows(path, id_types=(str, int), max_rows=max_rows, what=f"{flag} {name}")
    message = skipped_message(f"{flag} {name}", found)
    if message:
        log.warning("%s", message)
    if found.truncated:
        log.warning("%s %s: read the first %d rows only (the app's bound)", flag, name, max_rows)
    rows: dict[str, dict] = {}
    for row in found.rows:
        if row.get("frame_probs") is not None:
            row["frame_probs"] = np.asarray(row["frame_probs"], dtype=np.float32)
        rows[str(row["id"])] = row
    return ResultsFile(rows, found.skipped_count, any(r.get("frame_probs") is not None for r in rows.values()),
                       tuple(found.bad_lines))


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
        out["duration_s"] = finite(record.duration)
    return out


def selection_overlap(a: Any, b: Any) -> float | None:
    """Intersection over union of two rows' selected preview indices, |A ∩ B| / |A ∪ B|; None when either
    row has no selection (not analysed, an error, or missing)."""
    if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) or not a or not b:
        return None
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb)


def run_classes(run: Mapping[str, Any]) -> list[str] | None:
    """The class names a run file records (``classes``: what ``class_scores`` / ``frame_probs`` score), or None."""
    names = run.get("classes") if isinstance(run, Mapping) else None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None
