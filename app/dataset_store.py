"""Dataset mode, shared state: the dataset's records and their rows, filled lazily.

``DatasetStore.open(data, video_root, subset, results)`` reads the annotations with
``nsnet.data.formats.load_dataset`` and, with ``--results``, the rows ``nsnet analyze`` wrote
(``app.dataset.read_results``). Rows not in the results file are computed lazily: the first
time the Dataset tab is opened, ``start(compute)`` analyses the missing videos one by one in
a background thread and caches each row here (shared by every visitor; bounded by the
dataset). ``match(path)`` tells whether a clip is one of the dataset's videos (size, then
content hash), so its ground truth shows wherever it is analysed.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

from nsnet.data.formats import load_dataset
from nsnet.data.records import VideoRecord
from nsnet.errors import one_line
from nsnet.evaluation.jsonl import run_path

from .dataset import ResultsFile, error_row, merge_record, pending_row, read_results, row_segments
from .models import ExampleClip, file_sha256
from .views import Segment

__all__ = ["DatasetStore"]

log = logging.getLogger(__name__)


def _record_from_row(row: dict) -> VideoRecord:
    segs = tuple(row_segments(row)) if row.get("gt") else None
    return VideoRecord(str(row["id"]), Path(str(row.get("path") or "")), row.get("gt"), -1, row.get("subset"),
                       row.get("duration_s"), segs)


def _run_settings(results_path: str) -> dict:
    """What ``nsnet analyze`` recorded about the run beside its rows (``OUT.run.json``: checkpoint, t, k, lam,
    seed); {} when absent or unreadable."""
    try:
        data = json.loads(run_path(results_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class DatasetStore:
    """The dataset's records (in file order) and one row per record (computed, read, or pending)."""

    def __init__(self, records: Iterable[VideoRecord], class_names: Iterable[str] = (), *, source: str = "",
                 results: ResultsFile | None = None, results_path: str | None = None) -> None:
        self.records: list[VideoRecord] = list(records)
        self.class_names = list(class_names)
        self.source = source
        self.results_path = results_path
        self._by_id = {r.video_id: r for r in self.records}
        self._rows: dict[str, dict] = {}
        if results is not None:
            for vid, row in results.rows.items():
                record = self._by_id.get(vid)
                if record is None:
                    if self.source:  # --data given: rows for other videos are not part of this dataset
                        continue
                    record = _record_from_row(row)
                    self.records.append(record)
                    self._by_id[vid] = record
                self._rows[vid] = merge_record(row, record)
            skipped = len(results.rows) - len(self._rows)
            if skipped:
                log.warning("%s: %d result row(s) are not videos of %s (ignored)", results_path, skipped, source)
        self._lock = threading.Lock()
        self._version = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sizes: dict[int, list[VideoRecord]] | None = None
        self._hashes: dict[str, str] = {}
        self.model_label = ""          # who computed the lazy rows (set by ``start``)
        self.results_settings: dict = _run_settings(results_path) if results_path else {}

    @classmethod
    def open(cls, data: str | Path | None, video_root: str | Path | None = None, subset: str | None = None,
             results: str | Path | None = None) -> "DatasetStore":
        """Records from ``data`` (ActivityNet JSON, Kinetics CSV or folder) and rows from ``results``.

        Raises ``nsnet.data.records.DatasetError`` (one line) for a dataset it cannot read.
        """
        records, names = (load_dataset(data, video_root=video_root, subset=subset) if data else ([], []))
        res = read_results(results) if results else None
        store = cls(records, names, source=str(data) if data else "", results=res,
                    results_path=str(results) if results else None)
        log.info("dataset %s: %d videos, %d rows from %s", data or results, len(store.records), len(store._rows),
                 results or "nowhere (computed lazily)")
        return store

    # ------------------------------------------------------------------ rows
    @property
    def from_file(self) -> bool:
        return self.results_path is not None

    @property
    def version(self) -> int:
        """Grows whenever a row is added (the page redraws only then)."""
        return self._version

    def rows(self) -> list[dict]:
        """One row per record, in dataset order; ``pending`` rows for videos not analysed yet."""
        with self._lock:
            return [self._rows.get(r.video_id) or pending_row(r) for r in self.records]

    def row(self, video_id: str) -> dict | None:
        with self._lock:
            return self._rows.get(video_id)

    def record(self, video_id: str) -> VideoRecord | None:
        return self._by_id.get(str(video_id))

    def put(self, row: dict) -> None:
        with self._lock:
            self._rows[str(row["id"])] = row
            self._version += 1

    def missing(self) -> list[VideoRecord]:
        with self._lock:
            return [r for r in self.records if r.video_id not in self._rows]

    def progress(self) -> tuple[int, int, bool, int]:
        """(rows done, records, computing now, rows with an error)."""
        with self._lock:
            done = sum(1 for r in self.records if r.video_id in self._rows)
            errors = sum(1 for row in self._rows.values() if row.get("error"))
        return done, len(self.records), self.computing, errors

    @property
    def computing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, compute: Callable[[VideoRecord], dict], model_label: str = "") -> bool:
        """Analyse the missing videos in a background thread (once; later calls are no-ops).

        ``compute(record) -> row``; an exception becomes an error row (its one-line message).
        Returns True when a computation was started.
        """
        with self._lock:
            if self._thread is not None or all(r.video_id in self._rows for r in self.records):
                return False
            self.model_label = model_label
            self._thread = threading.Thread(target=self._run, args=(compute,), name="nsnet-dataset", daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the lazy computation (if any); True when it is done."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.computing

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, compute: Callable[[VideoRecord], dict]) -> None:
        start, done = time.perf_counter(), 0
        for record in self.missing():
            if self._stop.is_set():
                return
            if self.row(record.video_id) is not None:  # analysed meanwhile (a visitor opened it)
                continue
            try:
                row = compute(record)
            except Exception as exc:  # one bad video never stops the others
                log.info("dataset video %s: %s", record.video_id, exc)
                row = error_row(record, one_line(exc))
            self.put(row)
            done += 1
        log.info("dataset: analysed %d video(s) in %.1f s", done, time.perf_counter() - start)

    # ------------------------------------------------------------------ matching files
    def clip_for(self, record: VideoRecord, sha256: str = "") -> ExampleClip:
        """The record as an ``ExampleClip`` (ground-truth label and segments for the analysis view)."""
        segments = tuple(Segment(float(s), float(e), record.label or "") for s, e in (record.segments or ()))
        size = record.path.stat().st_size if record.path.is_file() else 0
        return ExampleClip(record.video_id, record.path, size, sha256, segments, record.label)

    def _size_index(self) -> dict[int, list[VideoRecord]]:
        if self._sizes is None:
            sizes: dict[int, list[VideoRecord]] = defaultdict(list)
            for r in self.records:
                try:
                    sizes[r.path.stat().st_size].append(r)
                except OSError:
                    continue
            self._sizes = dict(sizes)
        return self._sizes

    def match(self, path: str | Path) -> ExampleClip | None:
        """The dataset video ``path`` is (a copy of), by size then content hash; None if none."""
        try:
            size = Path(path).stat().st_size
        except OSError:
            return None
        name = Path(path).name   # among files of one size, the one of the same name first (Gradio keeps names)
        candidates = sorted(self._size_index().get(size, []), key=lambda r: r.path.name != name)
        if not candidates:
            return None
        digest = None
        for r in candidates:
            if Path(path).resolve() == r.path.resolve():
                return self.clip_for(r, self._hash(r))
            digest = digest or file_sha256(path)
            if self._hash(r) == digest:
                return self.clip_for(r, digest)
        return None

    def _hash(self, record: VideoRecord) -> str:
        key = str(record.path)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(record.path)
        return self._hashes[key]
