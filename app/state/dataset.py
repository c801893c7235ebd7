"""Dataset mode, shared state: the dataset's records and their rows, filled lazily.

``DatasetStore.open(data, video_root, subset, results)`` reads the annotations with
``nsnet.data.formats.load_dataset`` and, with ``--results``, the rows ``nsnet analyze`` wrote
(``app.state.rows.read_results``). Rows not in the results file are computed lazily: the first
time the Dataset tab is opened, ``start(compute)`` analyses the missing videos one by one in
a background thread and caches each row here (shared by every visitor; bounded by the
dataset). ``match(path)`` tells which of the dataset's videos a clip is (size, then content
hash), so its ground truth shows wherever it is analysed. A folder of plain videos (no class
folders) is an unlabelled dataset. ``attach_compare(B.jsonl)`` (``--compare-results``) adds a second
results file: ``joined_rows()`` are the rows with B's NSNet outcome (``b_nsnet``, matched by video id)
and the ``overlap`` (IoU) of the two selections.

What dataset mode serves: exactly the dataset's videos. Each record's file is resolved once,
here, when the dataset loads (symlinks followed) and kept only if it is a regular video file
(``VIDEO_EXTENSIONS``) inside the dataset's root (``dataset_roots``: ``--video-root``, else the
dataset's folder, else the results file's folder); ``served(video_id)`` hands out only those
resolved files. Any other record (a symlink pointing outside, an id such as ``../x`` or an
absolute path, a results row whose ``path`` is outside or not a video) is an error row and is
never served. Messages name videos relative to the root (``shown_name``), never by server path.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

from nsnet.data.formats import load_dataset
from nsnet.data.records import VIDEO_EXTENSIONS, VideoRecord
from nsnet.errors import one_line
from nsnet.evaluation.jsonl import ResultFileError, read_run, run_path

from ..server.storage import file_sha256
from .rows import (ResultsFile, error_row, merge_record, pending_row, read_results, row_segments, run_classes,
                   selection_overlap)

__all__ = ["DatasetStore", "dataset_roots", "check_video", "VideoRefused"]

log = logging.getLogger(__name__)


def _record_from_row(row: dict) -> VideoRecord:
    segs = tuple(row_segments(row)) if row.get("gt") else None
    return VideoRecord(str(row["id"]), Path(str(row.get("path") or "")), row.get("gt"), -1, row.get("subset"),
                       row.get("duration_s"), segs)


def _run_settings(results_path: str) -> dict:
    """What ``nsnet analyze`` recorded about the run beside its rows (``OUT.run.json``: checkpoint, t, k, lam,
    seed; read bounded by ``jsonl.read_run``); {} when absent or not a run file (logged)."""
    path = run_path(results_path)
    if not path.exists():
        return {}
    try:
        return read_run(path)
    except ResultFileError as exc:
        log.warning("%s", str(exc).replace(str(path), path.name))
        return {}


class VideoRefused(ValueError):
    """A dataset video this server does not hand out (one line, naming it relative to the dataset).
    ``missing``: the file is simply not there (its results row, if any, still shows)."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def dataset_roots(data: str | Path | None, video_root: str | Path | None = None,
                  results: str | Path | None = None) -> list[Path]:
    """The folder(s) whose videos dataset mode may serve, resolved: ``--video-root`` when given, else the
    dataset's folder (the annotation file's folder, or the dataset folder itself), else (``--results``
    alone) the results file's folder."""
    if video_root:
        return [Path(video_root).expanduser().resolve()]
    if data:
        data = Path(data).expanduser()
        return [(data if data.is_dir() else data.parent).resolve()]
    if results:
        return [Path(results).expanduser().absolute().parent.resolve()]
    return []


def _inside(path: Path, roots: Iterable[Path]) -> Path | None:
    return next((root for root in roots if path == root or path.is_relative_to(root)), None)


def shown_name(path: str | Path, roots: Iterable[Path], fallback: str) -> str:
    """How a visitor sees a video: its path relative to the dataset's root (lexically, symlinks not
    followed), else ``fallback`` (the video id); never a server path."""
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    root = _inside(absolute, roots)
    if root is not None and absolute != root:
        return absolute.relative_to(root).as_posix()
    return absolute.name if os.path.isabs(fallback) or fallback.startswith("~") else fallback


def check_video(path: str | Path, roots: Iterable[Path]) -> Path:
    """``path`` resolved (symlinks followed), if it is a regular video file inside one of ``roots``;
    else ``VideoRefused`` with the reason (no path in it)."""
    try:
        resolved = Path(os.path.abspath(Path(path).expanduser())).resolve(strict=True)
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        raise VideoRefused("video file not found", missing=True) from None
    except (OSError, RuntimeError):  # a symlink loop, a permission...
        raise VideoRefused("video file cannot be read") from None
    if _inside(resolved, roots) is None:
        raise VideoRefused("outside the dataset's video folder: not served")
    if not stat.S_ISREG(mode):
        raise VideoRefused("not a regular file: not served")
    if resolved.suffix.lower() not in VIDEO_EXTENSIONS:
        raise VideoRefused("not a video file: not served")
    return resolved


class DatasetStore:
    """The dataset's records (in file order) and one row per record (computed, read, or pending)."""

    def __init__(self, records: Iterable[VideoRecord], class_names: Iterable[str] = (), *, source: str = "",
                 results: ResultsFile | None = None, results_path: str | None = None,
                 roots: Iterable[Path] = ()) -> None:
        self.records: list[VideoRecord] = list(records)
        self.roots = [Path(r) for r in roots]   # what may be served (``dataset_roots``); none: nothing is
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
                log.warning("--results %s: %d result row(s) are not videos of %s (ignored)",
                            Path(results_path or "").name, skipped, Path(source).name)
        # Every video this store may hand out, resolved once now; anything else is an error row.
        self._served: dict[str, Path] = {}
        refused = 0
        for record in self.records:
            try:
                self._served[record.video_id] = check_video(record.path, self.roots)
            except VideoRefused as exc:
                if not exc.missing:   # a missing file: its results row still shows; computing it says so
                    self._rows[record.video_id] = error_row(record, f"{self.shown_name(record)}: {exc}",
                                                            path=self.shown_name(record))
                    refused += 1
        if refused:
            log.warning("dataset: %d video(s) are outside %s or not video files: not served (error rows)", refused,
                        " / ".join(str(r) for r in self.roots) or "any video folder")
        self._lock = threading.Lock()
        self._version = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sizes: dict[int, list[VideoRecord]] | None = None
        self._hashes: dict[str, str] = {}
        self.model_label = ""          # who computed the lazy rows (set by ``start``)
        self.results_settings: dict = _run_settings(results_path) if results_path else {}
        self.compare_path: str | None = None   # ``--compare-results``: B's rows by video id, merged with the records
        self.compare_settings: dict = {}
        self._compare: dict[str, dict] = {}
        self._joined: tuple[int, list[dict]] = (-1, [])   # joined_rows() of one version

    @classmethod
    def open(cls, data: str | Path | None, video_root: str | Path | None = None, subset: str | None = None,
             results: str | Path | None = None, compare: str | Path | None = None) -> "DatasetStore":
        """Records from ``data`` (ActivityNet JSON, Kinetics CSV, a folder per class or of plain videos), rows from
        ``results`` and, with ``compare``, a second results file (``attach_compare``).

        Raises ``nsnet.data.records.DatasetError`` (one line) for a dataset it cannot read, and
        ``jsonl.ResultFileError`` for a results file that is not one.
        """
        records, names = (load_dataset(data, video_root=video_root, subset=subset, unlabelled_ok=True)
                          if data else ([], []))
        res = read_results(results) if results else None
        store = cls(records, names, source=str(data) if data else "", results=res,
                    results_path=str(results) if results else None, roots=dataset_roots(data, video_root, results))
        if compare:
            store.attach_compare(compare)
        log.info("dataset %s: %d videos, %d rows from %s", data or results, len(store.records), len(store._rows),
                 results or "nowhere (computed lazily)")
        return store

    # ------------------------------------------------------------------ a second result set (B)
    def attach_compare(self, path: str | Path) -> None:
        """Read ``nsnet analyze`` rows of another run (``--compare-results``; bounded like ``--results``) and keep
        those of this dataset's videos, re-marked against its ground truth. Raises ``jsonl.ResultFileError``
        (one line) when the file cannot be read or holds no row of this dataset."""
        found = read_results(path, flag="--compare-results")
        name = Path(path).name
        rows = {vid: merge_record(row, self._by_id[vid]) for vid, row in found.rows.items() if vid in self._by_id}
        if found.rows and not rows:
            raise ResultFileError(f"--compare-results {name}: none of its {len(found.rows)} rows is a video of "
                                  f"{self.source_name}")
        if len(rows) < len(found.rows):
            log.warning("--compare-results %s: %d row(s) are not videos of %s (ignored)", name,
                        len(found.rows) - len(rows), self.source_name)
        with self._lock:
            self._compare = rows
            self.compare_path = str(path)
            self.compare_settings = _run_settings(path)
            self._version += 1

    compared = property(lambda self: self.compare_path is not None, doc="Whether a second result set (B) is loaded.")
    compare_name = property(lambda self: Path(self.compare_path or "").name, doc="B's file name, as the page shows it.")

    def compare_rows(self) -> list[dict]:
        """B's rows, in dataset order (videos B does not have are left out)."""
        with self._lock:
            return [self._compare[r.video_id] for r in self.records if r.video_id in self._compare]

    def joined_rows(self) -> list[dict]:
        """``rows()``; with B loaded, each a copy with ``b_nsnet`` (B's NSNet ``{label, score, correct}``, None
        where B has no usable row) and ``overlap`` (IoU of the two ``selected``, None when either is missing)."""
        if not self.compared:
            return self.rows()
        with self._lock:   # built once per version (a row added, B attached): filters and pages reuse it
            version, joined = self._joined
            if version == self._version:
                return joined
            version = self._version
            rows = [self._rows.get(r.video_id) or pending_row(r) for r in self.records]
            b_rows = [self._compare.get(str(r["id"])) for r in rows]
        out = []
        for row, b in zip(rows, b_rows):
            ok = b is not None and not b.get("error") and isinstance(b.get("nsnet"), dict)
            usable_a = not row.get("error") and not row.get("pending")
            out.append(dict(row, b_nsnet=b["nsnet"] if ok else None,
                            overlap=selection_overlap(row.get("selected"), b.get("selected"))
                            if ok and usable_a else None))
        with self._lock:
            self._joined = (version, out)
        return out

    @property
    def score_classes(self) -> list[str] | None:
        """The classes the results file's vectors score (its run file's ``classes``), or None."""
        return run_classes(self.results_settings)

    # ------------------------------------------------------------------ what is served
    def served(self, video_id: str) -> Path:
        """The resolved file of a dataset video that may be served (checked at load); ``VideoRefused`` otherwise."""
        path = self._served.get(str(video_id))
        if path is None:
            raise VideoRefused(f"{video_id}: not a video this server serves")
        return path

    def shown_name(self, record: VideoRecord) -> str:
        """The record's video relative to the dataset's root (else its id): what messages show."""
        return shown_name(record.path, self.roots, record.video_id)

    def hide_paths(self, record: VideoRecord, message: str) -> str:
        """``message`` with the record's server paths replaced by its name relative to the dataset."""
        name = self.shown_name(record)
        for path in sorted({str(self._served.get(record.video_id, "")), os.path.abspath(record.path),
                            str(record.path)} - {""}, key=len, reverse=True):
            message = message.replace(path, name)
        return message

    @property
    def source_name(self) -> str:
        """The results file's (else the dataset's) name, as the page shows it."""
        return Path(self.results_path or self.source).name

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
                row = error_row(record, self.hide_paths(record, one_line(exc)), path=self.shown_name(record))
            self.put(row)
            done += 1
        log.info("dataset: analysed %d video(s) in %.1f s", done, time.perf_counter() - start)

    # ------------------------------------------------------------------ matching files
    def _size_index(self) -> dict[int, list[VideoRecord]]:
        if self._sizes is None:
            sizes: dict[int, list[VideoRecord]] = defaultdict(list)
            for r in self.records:
                if r.video_id not in self._served:
                    continue
                try:
                    sizes[self._served[r.video_id].stat().st_size].append(r)
                except OSError:
                    continue
            self._sizes = dict(sizes)
        return self._sizes

    def match(self, path: str | Path) -> VideoRecord | None:
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
            if Path(path).resolve() == self._served[r.video_id]:
                return r
            digest = digest or file_sha256(path)
            if self.sha256(r) == digest:
                return r
        return None

    def sha256(self, record: VideoRecord) -> str:
        """The content hash of a dataset video (computed once)."""
        path = self.served(record.video_id)
        key = str(path)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(path)
        return self._hashes[key]
