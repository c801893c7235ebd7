"""Cached backbone features of a dataset's previews: what training and evaluation run on.

With frozen backbones every video is decoded and embedded once; the features go to an
on-disk cache keyed by video, T, input sizes and backbone (name plus a fingerprint of
its weights), so later epochs, runs and evaluations never decode again. Videos that
cannot be read (any per-video failure: missing, damaged, lying metadata, a symlink loop)
are counted, logged once and skipped; :func:`write_skipped` lists them next to a run's
outputs.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..errors import one_line
from ..inference import Pipeline
from .. import distributed as dist_utils
from ..video import VideoError, read_clip
from .cache import FeatureCache, video_key
from .formats import load_dataset
from .records import segments_mask

log = logging.getLogger(__name__)

__all__ = ["FeatureSet", "load_records", "build_feature_set", "default_cache_dir", "backbone_fingerprint",
           "write_skipped"]


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


def default_cache_dir(data: str | Path) -> Path:
    p = Path(data)
    return (p if p.is_dir() else p.parent) / ".nsnet-cache"


def load_records(data: str | Path, subset: str | None, *, video_root: str | Path | None = None,
                 max_videos: int | None = None):
    """Records and class names of one subset of a dataset (any format ``nsnet.data`` reads)."""
    records, class_names = load_dataset(data, video_root=video_root, subset=subset)
    unlabelled = sum(r.label_index < 0 for r in records)
    if unlabelled:
        log.warning("skipping %d unlabelled videos of subset %r", unlabelled, subset)
        records = [r for r in records if r.label_index >= 0]
    if not records:
        raise FileNotFoundError(f"no videos found for subset {subset!r} in {data}")
    if max_videos is not None:
        records = records[:max_videos]
    return records, class_names


def backbone_fingerprint(module: nn.Module) -> str:
    """Short hash of a module's weights: the cache never mixes up two sets of weights."""
    h = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes()[:4096])
        h.update(np.float64(tensor.detach().double().sum().item()).tobytes())
    return h.hexdigest()[:12]


def _cache_key(record, pipe: Pipeline, num_frames: int, fingerprints: tuple[str, str]) -> dict:
    cfg = pipe.config
    return video_key(record.path, t=num_frames,
                     sampler=f"{cfg.sampler.backbone}@{cfg.sampler.input_size}#{fingerprints[0]}",
                     recognizer=f"{cfg.recognizer.backbone}@{cfg.recognizer.input_size}#{fingerprints[1]}")


def build_feature_set(records, class_names: list[str], pipe: Pipeline, num_frames: int, cache_dir: str | Path,
                      *, dist: dist_utils.DistInfo | None = None, progress: bool = True) -> FeatureSet:
    """Decode, embed and cache every record's previews; return the stacked features.

    Under DDP each rank fills its shard of the cache, then every rank reads all of it.
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
    done: dict[str, dict[str, Tensor]] = {}

    def fetch(record) -> None:
        try:
            done[record.video_id] = cache.get_or_compute(_cache_key(record, pipe, num_frames, prints),
                                                         lambda: compute(record))
        except (VideoError, OSError) as exc:
            failed[record.video_id] = one_line(exc)
        except Exception as exc:  # one bad video never ends a run: lying metadata, a loop, ...
            failed[record.video_id] = f"{record.path}: {type(exc).__name__}: {one_line(exc)}"
            log.debug("video %s failed", record.video_id, exc_info=True)

    for record in tqdm(records[dist.rank::dist.world_size], desc="features", unit="video",
                       disable=not (progress and dist.is_main)):
        fetch(record)
    dist_utils.barrier(dist)
    for record in records:  # other ranks' shares (read back from the cache)
        if record.video_id not in done and record.video_id not in failed:
            fetch(record)
    kept = [r for r in records if r.video_id in done]
    items = [done[r.video_id] for r in kept]
    if failed and dist.is_main:
        first = next(iter(failed.items()))
        log.warning("skipped %d of %d videos that could not be read (first: %s: %s)",
                    len(failed), len(records), *first)
    if not kept:
        first = next(iter(failed.values()), "no videos")
        raise FileNotFoundError(f"none of the {len(records)} videos could be read (first: {first})")
    ts = torch.stack([it["timestamps_s"] for it in items])
    has_segments = all(getattr(r, "segments", None) is not None for r in kept)
    gt = (torch.from_numpy(np.stack([segments_mask(ts[i].numpy(), r.segments) for i, r in enumerate(kept)]))
          if has_segments else None)
    return FeatureSet(video_ids=[r.video_id for r in kept], class_names=list(class_names),
                      sampler=torch.stack([it["sampler"] for it in items]).float(),
                      recognizer=torch.stack([it["recognizer"] for it in items]).float(),
                      labels=torch.tensor([r.label_index for r in kept], dtype=torch.long),
                      timestamps_s=ts, gt_mask=gt,
                      skipped={r.video_id: (str(r.path), failed[r.video_id]) for r in records if r.video_id in failed})


def write_skipped(path: str | Path, skipped: dict[str, tuple[str, str]]) -> Path | None:
    """Write ``video_id<TAB>path<TAB>reason`` lines (nothing, and None, when no video was skipped)."""
    if not skipped:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["video_id\tpath\treason"] + [f"{vid}\t{p}\t{why}" for vid, (p, why) in skipped.items()]
    path.write_text("\n".join(lines) + "\n")
    log.warning("the %d skipped videos are listed in %s", len(skipped), path)
    return path
