"""Torch datasets over :class:`~nsnet.data.records.VideoRecord` lists.

:class:`VideoDataset` decodes ``T`` TSN-style previews per video with
:func:`nsnet.video.read_clip`. An item is a dict::

    frames        uint8 (T, S, S, 3) RGB (shorter side resized to S, centre crop;
                  crop=False keeps (T, S, W', 3) and then batches need equal aspect ratios)
    label         int, the video-level class index (-1 when unlabelled)
    timestamps_s  float64 (T,) seconds of the returned frames
    video_id      str
    index         int, position in the dataset
    gt_mask       bool (T,), preview inside a ground-truth segment; present only when
                  the record has segments. EVALUATION ONLY: training must not read it.

**Bad videos never end a run.** Missing or unreadable videos make ``__getitem__`` return
``None`` (each failure is logged once per video, then summarised by :meth:`report`; with
``log_failures=False`` nothing is logged and the caller reports ``failures`` itself, as
training does: one line and a file for all ranks).

With ``cache_dir`` the decoded previews are cached on disk (key: path, size, mtime, T,
S, crop), so each video is decoded once (uint8: T*S*S*3 bytes a video, 2.4 MB at T=16,
S=224). This is what ``train --finetune`` reads; with frozen backbones training and
evaluation cache features instead (:mod:`nsnet.data.features`, ~50x smaller).
"""
from __future__ import annotations

import logging
import os

import av
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import one_line
from ..video import VideoError, VideoNotFoundError, read_clip
from .cache import FeatureCache, video_key
from .records import VideoRecord, segments_mask

__all__ = ["VideoDataset"]

log = logging.getLogger(__name__)


#: What an unreadable video raises: nsnet.video errors, OS errors, raw FFmpeg errors.
BAD_VIDEO_ERRORS: tuple[type[BaseException], ...] = (VideoError, OSError, av.FFmpegError)


def _center_crop(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) -> (T, S, S, 3) with S = min(H, W), centred (same rounding as preprocess)."""
    h, w = frames.shape[1:3]
    s = min(h, w)
    top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
    return np.ascontiguousarray(frames[:, top : top + s, left : left + s])


class VideoDataset(Dataset):
    """Previews of each record's video (see the module docstring for the item layout)."""

    def __init__(
        self,
        records: list[VideoRecord],
        class_names: list[str],
        num_frames: int = 16,
        size: int = 224,
        cache_dir: str | os.PathLike | None = None,
        *,
        crop: bool = True,
        time_budget_s: float | None = 30.0,
        log_failures: bool = True,
    ) -> None:
        if num_frames < 1 or size < 1:
            raise ValueError(f"num_frames and size must be >= 1, got {num_frames}, {size}")
        self.records = list(records)
        self.class_names = list(class_names)
        self.num_frames, self.size, self.crop = int(num_frames), int(size), bool(crop)
        self.time_budget_s = time_budget_s
        self.cache = FeatureCache(cache_dir) if cache_dir is not None else None
        self.failures: dict[str, str] = {}   # video_id -> one-line reason (this process)
        self.log_failures = log_failures

    def __len__(self) -> int:
        return len(self.records)

    # ---------------------------------------------------------------------------- keys
    def _key(self, i: int, **extra) -> dict | None:
        try:
            return video_key(self.records[i].path, t=self.num_frames, size=self.size, crop=self.crop, **extra)
        except OSError:
            return None

    def preview_key(self, i: int) -> dict | None:
        """Cache key of record ``i``'s decoded previews (``None`` when the file is missing)."""
        return self._key(i, kind="previews")


    # -------------------------------------------------------------------------- decode
    def _fail(self, rec: VideoRecord, reason: str) -> None:
        if rec.video_id not in self.failures:
            self.failures[rec.video_id] = reason
            if self.log_failures:
                log.warning("skipping video %s (%d unreadable so far): %s", rec.video_id, len(self.failures),
                            reason)

    def _decode(self, rec: VideoRecord) -> dict[str, Tensor]:
        clip = read_clip(rec.path, num_frames=self.num_frames, size=self.size, time_budget_s=self.time_budget_s)
        frames = _center_crop(clip.frames) if self.crop else clip.frames  # (T, S, S, 3) uint8
        return {"frames": torch.from_numpy(np.ascontiguousarray(frames)),
                "timestamps_s": torch.from_numpy(np.asarray(clip.timestamps_s, dtype=np.float64))}

    def load(self, i: int) -> dict[str, Tensor]:
        """Frames and timestamps of record ``i``; raises ``VideoError`` / ``OSError`` on failure."""
        rec = self.records[i]
        if self.cache is None:
            return self._decode(rec)
        key = self.preview_key(i)
        if key is None:
            raise VideoNotFoundError(rec.path, "no such file")
        return self.cache.get_or_compute(key, lambda: self._decode(rec))

    def __getitem__(self, i: int) -> dict | None:
        rec = self.records[i]
        try:
            data = self.load(i)
        except BAD_VIDEO_ERRORS as e:
            self._fail(rec, one_line(e))
            return None
        item = {"frames": data["frames"], "label": rec.label_index, "timestamps_s": data["timestamps_s"],
                "video_id": rec.video_id, "index": i}
        if rec.segments is not None:
            item["gt_mask"] = torch.from_numpy(segments_mask(data["timestamps_s"].numpy(), rec.segments))
        return item

    def report(self) -> None:
        """Log one summary of the videos skipped so far in this process."""
        if self.failures:
            log.warning("%d of %d videos were skipped as unreadable (first: %s: %s)", len(self.failures),
                        len(self.records), *next(iter(self.failures.items())))
