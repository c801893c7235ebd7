"""The dataset engine of ``nsnet analyze``: decoding in worker processes, networks batched across videos.

A :class:`torch.utils.data.DataLoader` over the videos decodes ``T`` previews per video
in worker processes, overlapped with the networks in the main process. Each batch of
videos goes through the sampler backbone and the recognizer backbone (:func:`batch_features`:
on CUDA all of the batch's previews together, from pinned memory, under autocast,
channels-last), then each video's heads and methods run with the code ``eval`` uses
(:mod:`nsnet.evaluation.rows`), and its row is written as soon as its batch is done. A
video that cannot be decoded, or that makes a network fail, becomes a row with
``error``; the run goes on.

On CPU the backbones see the calls of :meth:`Pipeline.extract_features`, which fills
``eval``'s feature cache, so ``analyze`` and ``eval`` compute the same features and the
same numbers, bit for bit (``tests/test_analyze.py`` checks it).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..errors import one_line
from ..video import VideoError, read_clip
from .rows import VideoInfo, error_row, head_outputs, make_row

__all__ = ["DecodeDataset", "collate", "batch_features", "run"]

log = logging.getLogger(__name__)


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def batch_features(pipe, items: list[dict[str, Any]], chunk: int = 64) -> tuple[list[tuple[Tensor, Tensor]], float, float]:
    """Backbone features of several videos' previews: ([(sampler (T, Ds), recognizer (T, Dr))], ms, ms).

    On CUDA each backbone sees the batch's previews together (``chunk`` at a time, pinned
    memory copied asynchronously, channels-last, autocast). On CPU every video goes through
    exactly the calls of :meth:`Pipeline.extract_features` (all its previews through the
    sampler, the recognizer in micro-batches of :attr:`Pipeline.CPU_MICRO_BATCH`): the
    fastest batching there, and the features ``eval`` caches, bit for bit.
    """
    dev, cfg = pipe.device, pipe.config
    nets = ((pipe.sampler.backbone, cfg.sampler.input_size, chunk),
            (pipe.recognizer.backbone, cfg.recognizer.input_size, pipe.CPU_MICRO_BATCH))
    sizes = [int(it["frames"].shape[0]) for it in items]
    _sync(dev)
    start = time.perf_counter()
    frames = [it["frames"].to(dev, non_blocking=True) for it in items]  # once, from pinned memory on CUDA
    feats, times = [], []
    for backbone, size, cpu_step in nets:
        outs = []
        if dev.type == "cuda":
            x = torch.cat([pipe.prepare(f, backbone, size) for f in frames])
            for i in range(0, x.shape[0], chunk):
                with pipe.autocast():
                    outs.append(backbone.forward_features(x[i:i + chunk]).float())
        else:
            for f in frames:
                for i in range(0, f.shape[0], cpu_step):
                    with pipe.autocast():
                        x = pipe.prepare(f[i:i + cpu_step], backbone, size)
                        x = x.contiguous(memory_format=torch.channels_last)  # as extract_features: ~1.5x faster
                        outs.append(backbone.forward_features(x).float().cpu())
        feats.append(torch.cat(outs).cpu().split(sizes))
        _sync(dev)
        times.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
    return list(zip(feats[0], feats[1])), times[0], times[1]


def _outputs(pipe, items, chunk):
    """Features of a batch, falling back to one video at a time when the batch fails."""
    try:
        feats, s_ms, r_ms = batch_features(pipe, items, chunk)
        n = len(items)
        return [(f, s_ms / n, r_ms / n, None) for f in feats]
    except Exception as exc:
        if len(items) == 1:
            return [(None, 0.0, 0.0, exc)]
        log.warning("a batch of %d videos failed (%s); retrying them one by one", len(items), one_line(exc))
        return [r for it in items for r in _outputs(pipe, [it], chunk)]


def run(pipe, infos: Sequence[VideoInfo], write: Callable[[dict], None], *, num_frames: int, k: int, lam: float,
        seed: int = 0, batch_size: int = 8, workers: int = 1, time_budget_s: float | None = 30.0,
        chunk: int | None = None, progress: bool = False) -> int:
    """Analyse ``infos`` and ``write`` one row per video, in order within each batch; returns the count.

    ``chunk``: previews per backbone call (default 256 on CUDA; 64 on CPU, per video, as
    :meth:`Pipeline.extract_features`).
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
    with tqdm(total=len(data), desc="analyze", unit="video", disable=not progress) as bar:
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
    return written
