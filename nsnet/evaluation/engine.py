"""The dataset engine of ``nsnet analyze``: decoding in worker processes, networks batched across videos.

A :class:`torch.utils.data.DataLoader` over the videos decodes ``T`` previews per video
in worker processes, overlapped with the networks in the main process. Each batch of
videos goes through both backbones with
:func:`nsnet.inference.features.backbone_features` (on CUDA all of the batch's previews
together, from pinned memory, under autocast, channels-last), then each video's heads and
methods run with the code ``eval`` uses (:mod:`nsnet.evaluation.rows`), and its row is
written as soon as its batch is done. A video that cannot be decoded, or that makes a
network fail, becomes a row with ``error``; the run goes on.

``backbone_features`` is also what fills ``eval``'s feature cache
(:meth:`Pipeline.extract_features`), so ``analyze`` and ``eval`` compute the same
features and the same numbers, bit for bit, with the same device and thread count
(``tests/test_analyze.py`` checks it).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import one_line
from ..inference.features import backbone_features
from ..progress import RateLog, show_bar
from ..video import VideoError, read_clip
from .rows import VideoInfo, error_row, head_outputs, make_row

__all__ = ["DecodeDataset", "collate", "default_workers", "run"]

log = logging.getLogger(__name__)


def default_workers(device: torch.device) -> int:
    """Decoding processes per rank: on CUDA the cores left after the main process (1..8); on
    CPU none up to 2 cores (the networks use both: a decoding process only competes with
    them, measured in the README), else a quarter of the cores (1..8)."""
    cores = (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if device.type == "cuda":
        return max(1, min(8, cores - 1))
    return 0 if cores <= 2 else max(1, min(8, cores // 4))


def _failure(path, exc: BaseException) -> str:
    if isinstance(exc, (VideoError, OSError)):
        text = one_line(exc)
        return text if str(path) in text else f"{path}: {text}"
    return f"{path}: {type(exc).__name__}: {one_line(exc)}"


class DecodeDataset(Dataset):
    """Decoded previews of each video; an item is a dict, never an exception.

    Item keys: ``index`` (position in ``infos``), ``decode_ms``, and either ``error`` (one
    line) or ``frames`` uint8 (T, H, W, 3), ``timestamps_s`` float64 (T,), ``duration_s``.
    """

    def __init__(self, infos: Sequence[VideoInfo], num_frames: int, size: int, *, time_budget_s: float | None = 30.0,
                 threads: int | None = None) -> None:
        self.infos, self.num_frames, self.size = list(infos), int(num_frames), int(size)
        self.time_budget_s, self.threads = time_budget_s, threads

    def __len__(self) -> int:
        return len(self.infos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        info = self.infos[i]
        start = time.perf_counter()
        try:
            clip = read_clip(info.path, num_frames=self.num_frames, size=self.size,
                             time_budget_s=self.time_budget_s, threads=self.threads)
            item = {"index": i, "frames": torch.from_numpy(clip.frames), "timestamps_s": clip.timestamps_s,
                    "duration_s": clip.info.duration_s}
        except Exception as exc:  # one bad video never ends a run
            item = {"index": i, "error": _failure(info.path, exc)}
        item["decode_ms"] = (time.perf_counter() - start) * 1e3
        return item


def collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Videos differ in aspect ratio: a batch stays a list of items."""
    return items


def _outputs(pipe, items, chunk):
    """Features of a batch, falling back to one video at a time when the batch fails."""
    try:
        feats, ms = backbone_features(pipe, [it["frames"] for it in items], chunk)
        n = len(items)
        return [(f, ms["sampler"] / n, ms["recognizer"] / n, None) for f in feats]
    except Exception as exc:
        if len(items) == 1:
            return [(None, 0.0, 0.0, exc)]
        log.warning("a batch of %d videos failed (%s); retrying them one by one", len(items), one_line(exc))
        return [r for it in items for r in _outputs(pipe, [it], chunk)]


def run(pipe, infos: Sequence[VideoInfo], write: Callable[[dict], None], *, num_frames: int, k: int, lam: float,
        seed: int = 0, batch_size: int = 8, workers: int = 1, time_budget_s: float | None = 30.0,
        chunk: int | None = None, progress: bool = False, log_every: int = 100, is_main: bool = True,
        scale: int = 1) -> int:
    """Analyse ``infos`` and ``write`` one row per video, in order within each batch; returns the count.

    ``chunk``: previews per backbone call on CUDA (default 256), sampler previews per call
    on CPU (default 64, as :meth:`Pipeline.extract_features`). ``progress``: a bar on a
    terminal; the main process also logs a line every ``log_every`` videos (rate times
    ``scale``, the number of processes sharing the work).
    """
    from tqdm.auto import tqdm

    if not infos:
        return 0
    cuda = pipe.device.type == "cuda"
    chunk = chunk or (256 if cuda else 64)
    data = DecodeDataset(infos, num_frames, pipe.config.recognizer.input_size, time_budget_s=time_budget_s,
                         threads=1 if workers > 0 else None)
    loader = DataLoader(data, batch_size=max(1, batch_size), num_workers=max(0, workers), collate_fn=collate,
                        pin_memory=cuda, prefetch_factor=2 if workers > 0 else None)
    cost = pipe.gflops_per_video(num_frames, k)
    pipe.sampler.eval()
    pipe.recognizer.eval()
    written = 0
    rate = RateLog(log, "analyze", len(data), log_every, scale=scale, enabled=is_main)
    with tqdm(total=len(data), desc="analyze", unit="video", disable=not show_bar(progress, is_main)) as bar:
        for batch in loader:
            good = [it for it in batch if "error" not in it]
            results = dict(zip((it["index"] for it in good), _outputs(pipe, good, chunk))) if good else {}
            for it in batch:
                info = infos[it["index"]]
                timings = {"decode": it["decode_ms"], "sampler": 0.0, "recognizer": 0.0}
                feats, s_ms, r_ms, exc = results.get(it["index"], (None, 0.0, 0.0, None))
                timings.update(sampler=s_ms, recognizer=r_ms)
                timings["total"] = sum(timings.values())
                if "error" in it or exc is not None:
                    row = error_row(info, it.get("error") or _failure(info.path, exc), timings)
                else:
                    try:
                        out = head_outputs(pipe, *feats)
                        row = make_row(info, out, it["timestamps_s"], it["duration_s"], k=k, lam=lam, seed=seed,
                                       cost=cost, class_names=pipe.class_names, timings_ms=timings)
                    except Exception as exc2:  # e.g. T > the video's previews, a bad duration
                        row = error_row(info, _failure(info.path, exc2), timings)
                write(row)
                written += 1
                bar.update(1)
                rate.update(1)
    return written
