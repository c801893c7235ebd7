"""The one record type every dataset reader returns, and helpers shared by the readers.

A :class:`VideoRecord` says where a video is and what it is: its video-level label, its
subset and, where the dataset has temporal annotations, its ground-truth segments.
Segments are for *evaluation only* (saliency AP, pseudo-label precision / recall);
nothing in training may read them.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["VideoRecord", "DatasetError", "Problems", "normalise_subset", "segments_mask", "VIDEO_EXTENSIONS"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp", ".gif")

_SUBSET_ALIASES = {"train": "training", "training": "training", "val": "validation", "valid": "validation",
                   "validate": "validation", "validation": "validation", "test": "testing", "testing": "testing"}


class DatasetError(ValueError):
    """An annotation file or dataset folder that cannot be read at all (one-line message)."""


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    video_id: unique within the dataset (ActivityNet id, ``{youtube_id}_{start:06d}_{end:06d}``
        for Kinetics, the path relative to the root without extension for folder trees).
    path: where the video file is, or is expected to be (it may be missing: readers log a
        count; :class:`~nsnet.data.dataset.VideoDataset` skips it).
    label / label_index: the video-level class, ``None`` / ``-1`` when unlabelled (e.g.
        ActivityNet ``testing`` entries without annotations).
    subset: ``"training"``, ``"validation"``, ``"testing"`` (aliases such as ``train`` /
        ``val`` / ``test`` are normalised), another string, or ``None`` when unknown.
    duration: seconds, when the annotation says.
    segments: ground-truth action segments ``((start_s, end_s), ...)`` sorted by start,
        or ``None`` when the dataset has no temporal annotation for this video.
        Evaluation only.
    """

    video_id: str
    path: Path
    label: str | None
    label_index: int
    subset: str | None
    duration: float | None = None
    segments: tuple[tuple[float, float], ...] | None = None


def normalise_subset(subset: str | None) -> str | None:
    if subset is None:
        return None
    s = str(subset).strip().lower()
    return _SUBSET_ALIASES.get(s, s) or None


def segments_mask(timestamps_s, segments) -> np.ndarray:
    """``(T,)`` bool: timestamp inside any ``[start, end]`` segment (closed interval)."""
    ts = np.asarray(timestamps_s, dtype=np.float64)
    mask = np.zeros(ts.shape, dtype=bool)
    for start, end in segments or ():
        mask |= (ts >= start) & (ts <= end)
    return mask


class Problems:
    """Counts malformed entries per reason and logs one summary (never one line per row)."""

    def __init__(self, source: str, logger: logging.Logger) -> None:
        self.source, self.log = source, logger
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.first.setdefault(reason, where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, seen: int, what: str = "entries") -> None:
        if not self.counts:
            return
        parts = "; ".join(f"{n} {reason} (first: {self.first[reason]})" for reason, n in self.counts.most_common())
        self.log.warning("%s: skipped %d of %d %s: %s", self.source, self.total, seen, what, parts)
