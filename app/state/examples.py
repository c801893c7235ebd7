"""The bundled example clips, and the cache of their runs (shared by every visitor, read-mostly).

* ``ExampleClip`` / ``load_examples``: the example clips and their ground-truth segments (an
  ActivityNet-style ``annotations.json``, read by ``nsnet.data.formats``); a dataset video is
  described the same way (``ExampleClip.from_record``).
* ``match_example``: the example an uploaded file is a copy of (size, then content hash).
* ``ResultCache``: the lazily filled cache of example runs, keyed by (checkpoint, example, T).
  It holds immutable ``CachedRun`` values (the decoded previews and the dense result) and is
  the one deliberate piece of shared mutable state (bounded, behind a lock); it is owned by
  the app instance (``app.state.context.AppContext``), not a module global.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from nsnet.data.formats import read_activitynet
from nsnet.data.records import VIDEO_EXTENSIONS, DatasetError, VideoRecord
from nsnet.inference import PipelineResult

from ..server.storage import file_sha256
from ..views.result import Segment

__all__ = ["ExampleClip", "load_examples", "read_example_annotations", "match_example", "count_videos",
           "examples_label", "EXAMPLES_PER_PAGE", "CachedRun", "ResultCache"]

log = logging.getLogger(__name__)

EXAMPLES_PER_PAGE = 8


@dataclass(frozen=True)
class ExampleClip:
    """A clip whose facts the server knows: a bundled example, or a dataset video."""

    name: str
    path: Path
    size: int
    sha256: str
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    label: str | None = None          # ground-truth class from annotations.json, if any

    @classmethod
    def from_record(cls, record: VideoRecord, sha256: str = "") -> "ExampleClip":
        """A dataset video (its ground-truth label and segments, for the analysis view)."""
        size = record.path.stat().st_size if record.path.is_file() else 0
        return cls(record.video_id, record.path, size, sha256, _annotated_segments(record), record.label)


def _annotated_segments(record: VideoRecord) -> tuple[Segment, ...]:
    return tuple(Segment(float(start), float(end), record.label or "") for start, end in record.segments or ())


def read_example_annotations(ann_file: Path, folder: Path) -> dict[str, VideoRecord]:
    """The records of an ActivityNet-style ``annotations.json`` by video id ({} if unreadable).

    ``nsnet.data.formats.read_activitynet`` does the parsing (malformed entries are
    counted, logged and skipped; without a ``classes.txt`` the classes are its labels).
    """
    try:
        records, _ = read_activitynet(ann_file, video_root=folder)
    except DatasetError as exc:
        log.warning("ignoring the example annotations: %s", exc)
        return {}
    return {r.video_id: r for r in records}


def load_examples(folder: Path | None, limit: int = 96) -> list[ExampleClip]:
    """Example clips in ``folder`` (sorted by name) with their annotations when present.

    A clip ``walk.mp4`` or ``v_walk.mp4`` takes the annotation of id ``walk`` or ``v_walk``.
    At most ``limit`` clips (each is hashed at start-up); the page pages them and says how
    many the folder holds; a larger set is better served as a dataset (``--data``).
    """
    if folder is None or not folder.is_dir():
        return []
    annotations: dict[str, VideoRecord] = {}
    if (folder / "annotations.json").is_file():
        annotations = read_example_annotations(folder / "annotations.json", folder)
    clips = []
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if len(paths) > limit:
        log.warning("%s: %d example clips, showing the first %d; serve the folder with --data to search them all",
                    folder, len(paths), limit)
    for path in paths[:limit]:
        stem = path.stem
        record = annotations.get(stem) or annotations.get(stem.removeprefix("v_")) or annotations.get(f"v_{stem}")
        segments = _annotated_segments(record) if record else ()
        label = record.label if record else None
        clips.append(ExampleClip(stem, path.resolve(), path.stat().st_size, file_sha256(path), segments, label))
    return clips


def match_example(path: str | Path, examples: Iterable[ExampleClip]) -> ExampleClip | None:
    """The bundled example a file is a copy of (size, then content hash), if any."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return None
    candidates = [e for e in examples if e.size == size]
    if not candidates:
        return None
    digest = file_sha256(path)
    return next((e for e in candidates if e.sha256 == digest), None)


def count_videos(folder: Path | None) -> int:
    """Video files directly in ``folder`` (what ``load_examples`` looks at)."""
    if folder is None or not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def examples_label(shown: int, total: int) -> str:
    """The examples list's title: how many clips, how many a page, and what to do with a larger folder."""
    pages = f", {EXAMPLES_PER_PAGE} a page" if shown > EXAMPLES_PER_PAGE else ""
    cut = (f" (the first {shown} of {total} clips in the folder; serve the folder as a dataset, "
           "--data DIR, to search them all)" if total > shown else f" ({shown} clip{'s' * (shown != 1)}{pages})")
    return f"Examples{cut}; results cached after first use"


@dataclass(frozen=True)
class CachedRun:
    """One example's dense run: the decoded previews (T, H, W, 3) uint8 and the result."""

    frames: np.ndarray
    result: PipelineResult


class ResultCache:
    """Bounded LRU of dense example runs: (checkpoint source, example sha256, T) -> ``CachedRun``."""

    def __init__(self, max_items: int = 32) -> None:
        self._items: OrderedDict[tuple, CachedRun] = OrderedDict()
        self._max = max_items
        self._lock = threading.Lock()

    def get(self, key: tuple) -> CachedRun | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: tuple, run: CachedRun) -> None:
        with self._lock:
            self._items[key] = run
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
