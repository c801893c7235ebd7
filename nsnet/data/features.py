"""Cached backbone features of a dataset's previews: what training and evaluation run on.

With frozen backbones every video is decoded and embedded once; the features go to an
on-disk cache keyed by video, T, input sizes, backbone (name plus a fingerprint of
its weights) and autocast dtype (``--precision``), so later epochs, runs and evaluations never decode again. Videos that
cannot be read (any per-video failure: missing, damaged, lying metadata, a symlink loop)
are counted, logged once and skipped; :func:`write_skipped` lists them next to a run's
outputs.

The cache lives in one user folder by default (:func:`default_cache_dir`), shared by
``train``, ``eval`` and ``ablate``: keys hold each video's absolute path, size and mtime,
so datasets never collide, and evaluating a model on the data it was validated on during
training decodes nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import one_line
from ..inference import Pipeline
from ..models.backbones import backbone_fingerprint
from .. import distributed as dist_utils
from ..progress import RateLog, show_bar
from ..video import VideoError, read_clip
from .cache import FeatureCache, video_key
from .formats import load_dataset
from .records import normalise_subset, segments_mask

log = logging.getLogger(__name__)

__all__ = ["FeatureSet", "load_records", "map_labels", "build_feature_set", "default_cache_dir",
           "backbone_fingerprint", "write_skipped"]


@dataclass(frozen=True)
class FeatureSet:
    """Per-video preview features. ``gt_mask`` is for evaluation only: training never reads it."""

    video_ids: list[str]
    class_names: list[str]
    sampler: Tensor          # (N, T, Ds) float32
    recognizer: Tensor       # (N, T, Dr) float32
    labels: Tensor           # (N,) int64
    timestamps_s: Tensor     # (N, T) float64
    gt_mask: Tensor | None   # (N, T) bool, preview inside a ground-truth segment; None without segments
    skipped: dict[str, tuple[str, str]] = field(default_factory=dict)  # video id -> (path, one-line reason)

    def __len__(self) -> int:
        return len(self.video_ids)


def default_cache_dir() -> Path:
    """The feature / preview cache of ``train``, ``eval`` and ``ablate`` when ``--cache-dir`` is not given:
    ``$NSNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/nsnet``, else ``~/.cache/nsnet``."""
    explicit = os.environ.get("NSNET_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "nsnet"


@contextmanager
def _readers_quiet(quiet: bool = True):
    """The annotation readers' warnings off (they were reported by an earlier read, or by rank 0)."""
    logger = logging.getLogger("nsnet.data.formats")
    was = logger.disabled
    logger.disabled = was or quiet
    try:
        yield
    finally:
        logger.disabled = was


def _subset_counts(data: str | Path, video_root) -> str:
    """``"training (242), validation (80)"``: the subsets a dataset has (for an error message)."""
    with _readers_quiet():
        records, _ = load_dataset(data, video_root=video_root, subset=None)
    counts = Counter(r.subset or "(none)" for r in records)
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items())) or "none"


def load_records(data: str | Path, subset: str | None, *, video_root: str | Path | None = None,
                 max_videos: int | None = None, quiet: bool = False):
    """Records and class names of one subset of a dataset (any format ``nsnet.data`` reads).

    Fails with one line (``FileNotFoundError``) when the subset is empty, naming the subsets
    the dataset has, or when none of its video files exists, with a hint about ``--video-root``;
    both before any model is built. ``quiet`` silences the readers' warnings (malformed
    entries, missing files): for a second read of the same file, or on ranks other than 0.
    """
    with _readers_quiet(quiet):
        records, class_names = load_dataset(data, video_root=video_root, subset=subset)
    if not records and subset not in (None, "all"):
        raise FileNotFoundError(f"no videos in subset {subset!r} of {data} (normalised: "
                                f"{normalise_subset(subset)!r}); its subsets: {_subset_counts(data, video_root)}, "
                                "or 'all'")
    unlabelled = sum(r.label_index < 0 for r in records)
    if unlabelled:
        log.warning("skipping %d unlabelled videos of subset %r", unlabelled, subset)
        records = [r for r in records if r.label_index >= 0]
    if not records:
        raise FileNotFoundError(f"no labelled videos found for subset {subset!r} in {data}")
    if max_videos is not None:
        records = records[:max_videos]
    if not any(r.path.is_file() for r in records):
        where = f"under --video-root {video_root}" if video_root else "beside the annotations"
        raise FileNotFoundError(f"no video found: none of the {len(records)} videos of subset {subset!r} of {data} "
                                f"exists {where} (first expected at {records[0].path}); pass --video-root with "
                                "the folder that holds them")
    return records, class_names


def map_labels(records, class_names: list[str]):
    """Re-index ``records`` to ``class_names`` by label name (e.g. a checkpoint's classes).

    Returns ``(records, unknown)``: the records whose label is in ``class_names``, with
    ``label_index`` pointing into it, and ``{label: count}`` of the labels it does not know
    (those records are left out).
    """
    index = {name: i for i, name in enumerate(class_names)}
    kept, unknown = [], Counter()
    for r in records:
        if r.label in index:
            kept.append(r if r.label_index == index[r.label] else dataclasses.replace(r, label_index=index[r.label]))
        else:
            unknown[str(r.label)] += 1
    return kept, dict(sorted(unknown.items()))


def _cache_key(record, pipe: Pipeline, num_frames: int, fingerprints: tuple[str, str]) -> dict:
    cfg = pipe.config
    amp = "" if pipe.amp_dtype is None else f"~{str(pipe.amp_dtype).removeprefix('torch.')}"  # float32: as before
    return video_key(record.path, t=num_frames,
                     sampler=f"{cfg.sampler.backbone}@{cfg.sampler.input_size}#{fingerprints[0]}{amp}",
                     recognizer=f"{cfg.recognizer.backbone}@{cfg.recognizer.input_size}#{fingerprints[1]}{amp}")


def build_feature_set(records, class_names: list[str], pipe: Pipeline, num_frames: int, cache_dir: str | Path,
                      *, dist: dist_utils.DistInfo | None = None, progress: bool = True, log_every: int = 50,
                      report_skipped: bool = True, what: str = "features") -> FeatureSet:
    """Decode, embed and cache every record's previews; return the stacked features.

    Under DDP each rank fills its shard of the cache; the failures are shared, then one process
    per machine (local rank 0) streams every kept video's features from the cache into one stack file per part
    (``CACHE/stacks/<hash>.{sampler,recognizer,timestamps}``, named by the kept videos' cache
    keys, written atomically, reused while nothing changes) and every rank maps those files
    read-only (:func:`_map_stack`): the features are in host memory once per machine (the
    page cache), not once per rank, and no process holds a second copy while stacking. The main
    process draws a bar when ``progress`` and stderr is a terminal, and logs a line every
    ``log_every`` videos of its shard either way. Unreadable videos end up in ``skipped``;
    ``report_skipped`` logs their count once (callers that write them with
    :func:`write_skipped` say it there instead).
    """
    dist = dist or dist_utils.DistInfo()
    cache = FeatureCache(Path(cache_dir))
    prints = (backbone_fingerprint(pipe.sampler.backbone), backbone_fingerprint(pipe.recognizer.backbone))
    size = pipe.config.recognizer.input_size

    def compute(record) -> dict[str, Tensor]:
        clip = read_clip(record.path, num_frames=num_frames, size=size)
        s, r = pipe.extract_features(clip.frames)
        return {"sampler": s, "recognizer": r, "timestamps_s": torch.from_numpy(clip.timestamps_s)}

    failed: dict[str, str] = {}

    def fetch(record) -> dict[str, Tensor] | None:
        try:
            return cache.get_or_compute(_cache_key(record, pipe, num_frames, prints), lambda: compute(record))
        except (VideoError, OSError) as exc:
            failed[record.video_id] = one_line(exc)
        except Exception as exc:  # one bad video never ends a run: lying metadata, a loop, ...
            failed[record.video_id] = f"{record.path}: {type(exc).__name__}: {one_line(exc)}"
            log.debug("video %s failed", record.video_id, exc_info=True)
        return None

    mine = records[dist.rank::dist.world_size]
    rate = RateLog(log, what, len(mine), log_every, scale=dist.world_size, enabled=dist.is_main)
    for record in tqdm(mine, desc=what, unit="video", disable=not show_bar(progress, dist.is_main)):
        try:
            cached = _cache_key(record, pipe, num_frames, prints) in cache
        except OSError:   # the video is gone: fetch says why
            cached = False
        if not cached:
            fetch(record)   # into the cache; nothing is held here
        rate.update()
    rate.finish(" (this rank's shard)" if dist.enabled else "")
    dist_utils.barrier(dist)
    for part in dist_utils.all_gather(failed, dist):   # every rank's failures: nobody decodes them again
        failed.update(part)
    kept = [r for r in records if r.video_id not in failed]
    stack, problem = None, None
    if kept:
        stack = cache.root / "stacks" / _stack_name([cache.path_for(_cache_key(r, pipe, num_frames, prints))
                                                     for r in kept])
        if dist.local_rank == 0:   # one writer per machine: a node-local cache gets its own stack
            try:
                _write_stack(stack, kept, fetch)
            except _StackError as exc:
                problem = str(exc)
        problem = next((p for p in dist_utils.all_gather(problem, dist) if p), None)   # and a barrier
    if problem:
        raise FileNotFoundError(problem)
    if failed and dist.is_main and report_skipped:
        first = next(iter(failed.items()))
        log.warning("skipped %d of %d videos that could not be read (first: %s: %s)",
                    len(failed), len(records), *first)
    if not kept:
        first = next(iter(failed.values()), "no videos")
        raise FileNotFoundError(f"none of the {len(records)} videos could be read (first: {first})")
    sampler, recognizer, ts = _map_stack(stack, len(kept))
    has_segments = all(getattr(r, "segments", None) is not None for r in kept)
    gt = (torch.from_numpy(np.stack([segments_mask(ts[i].numpy(), r.segments) for i, r in enumerate(kept)]))
          if has_segments else None)
    return FeatureSet(video_ids=[r.video_id for r in kept], class_names=list(class_names),
                      sampler=sampler, recognizer=recognizer,
                      labels=torch.tensor([r.label_index for r in kept], dtype=torch.long),
                      timestamps_s=ts, gt_mask=gt,
                      skipped={r.video_id: (str(r.path), failed[r.video_id]) for r in records if r.video_id in failed})


# ----------------------------------------------------------------------------- stack files
_PARTS = (("sampler", np.float32), ("recognizer", np.float32), ("timestamps_s", np.float64))


class _StackError(Exception):
    """A kept video could not be read back while stacking (its cache entry vanished and it failed again)."""


def _stack_name(entries: list[Path]) -> str:
    """Stack files' name: a hash of the kept videos' cache entries (named by their keys), in order; any change
    (a video, T, a backbone, the precision, the selection) gives a new name."""
    h = hashlib.sha256()
    for entry in entries:
        h.update(entry.name.encode() + b"\n")
    return h.hexdigest()[:32]


def _stack_files(stack: Path) -> dict[str, Path]:
    return {name: stack.with_name(f"{stack.name}.{name}") for name, _ in _PARTS}


def _header(stack: Path) -> dict | None:
    try:
        return json.loads(stack.with_name(stack.name + ".json").read_text())
    except (OSError, ValueError):
        return None


def _write_stack(stack: Path, kept, fetch) -> None:
    """Stream each kept video's features (read back from the cache, one video at a time) into the stack files.

    Atomic: temp files renamed into place, the header (shapes) last; a complete stack is reused."""
    files = _stack_files(stack)
    head = _header(stack)
    if head is not None and head.get("n") == len(kept) and all(p.is_file() for p in files.values()):
        return
    stack.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{socket.gethostname()}-{os.getpid()}"   # writers on several machines may share the cache
    tmp = {name: p.with_name(f"{p.name}.tmp-{tag}") for name, p in files.items()}
    shapes: dict[str, list[int]] = {}
    handles = {name: open(path, "wb") for name, path in tmp.items()}
    try:
        for record in kept:
            item = fetch(record)
            if item is None:
                raise _StackError(f"{record.video_id}: its cached features vanished and it cannot be read again")
            for name, dtype in _PARTS:
                arr = np.ascontiguousarray(item[name].detach().cpu().numpy().astype(dtype, copy=False))
                if shapes.setdefault(name, list(arr.shape)) != list(arr.shape):
                    raise _StackError(f"{record.video_id}: {name} shape {arr.shape} differs from {shapes[name]}")
                handles[name].write(arr.tobytes())
        for h in handles.values():
            h.close()
        for name, path in tmp.items():
            os.replace(path, files[name])
        header = stack.with_name(stack.name + ".json")
        part = header.with_name(f"{header.name}.tmp-{tag}")
        part.write_text(json.dumps({"n": len(kept), "shapes": shapes}))
        os.replace(part, header)
    finally:
        for h in handles.values():
            h.close()
        for path in tmp.values():
            path.unlink(missing_ok=True)


def _map_stack(stack: Path, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """The stack files as (N, T, Ds) and (N, T, Dr) float32 and (N, T) float64 tensors, memory-mapped
    copy-on-write (pages shared with every other process that maps them; nothing is read up front)."""
    head = _header(stack)
    if head is None or head.get("n") != n:
        raise FileNotFoundError(f"{stack.name}: the stacked features are missing or incomplete")
    out = []
    for name, dtype in _PARTS:
        shape = (n, *head["shapes"][name])
        out.append(torch.from_numpy(np.memmap(_stack_files(stack)[name], dtype=dtype, mode="c", shape=shape)))
    return out[0], out[1], out[2]


def write_skipped(path: str | Path, skipped: dict[str, tuple[str, str]], total: int | None = None) -> Path | None:
    """Write ``video_id<TAB>path<TAB>reason`` lines (nothing, and None, when no video was skipped).

    Logs one warning: with ``total`` (videos tried) the whole summary, ``skipped 2 of 12
    videos that could not be read (first: ...); listed in PATH``; without, where the list is.
    """
    if not skipped:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["video_id\tpath\treason"] + [f"{vid}\t{p}\t{why}" for vid, (p, why) in skipped.items()]
    path.write_text("\n".join(lines) + "\n")
    if total is None:
        log.warning("the %d skipped videos are listed in %s", len(skipped), path)
    else:
        vid, (_, why) = next(iter(skipped.items()))
        log.warning("skipped %d of %d videos that could not be read (first: %s: %s); listed in %s",
                    len(skipped), total, vid, why, path)
    return path
