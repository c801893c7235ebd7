"""On-disk tensor caches: decoded previews and frozen-backbone features.

:class:`FeatureCache` stores one small safetensors file per key (a JSON-able dict such as
``{"video": path, "mtime_ns": ..., "bytes": ..., "t": 16, "size": 224, "backbone": name}``):

* resumable: an interrupted build keeps every finished per-video file;
* atomic: files are written to a temp name and ``os.replace``-d into place;
* self-checking: each file records its full key and a CRC-32 of its tensor bytes; a
  truncated, corrupt or mismatched file is logged, deleted and reported as a miss, so
  :meth:`FeatureCache.get_or_compute` recomputes it.

Keys built with :func:`video_key` include the file's size and modification time, so an
edited video is never served stale features. :func:`cache_features` fills a cache with a
frozen extractor over a :class:`~nsnet.data.dataset.VideoDataset`, in batches, with a
progress bar.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["FeatureCache", "video_key", "cache_features"]

log = logging.getLogger(__name__)


def video_key(path: str | os.PathLike, **extra) -> dict:
    """Cache key of a video file: absolute path, size, mtime (ns) plus ``extra`` fields.

    Raises ``FileNotFoundError`` (an ``OSError``) when the file does not exist.
    """
    p = Path(path).resolve()
    st = p.stat()
    return {"video": str(p), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, **extra}


def _canonical(key: dict) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


def _crc(tensors: dict[str, Tensor]) -> str:
    crc = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        crc = zlib.crc32(name.encode(), crc)
        crc = zlib.crc32(str((str(t.dtype), tuple(t.shape))).encode(), crc)
        if t.numel():
            crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy().tobytes(), crc)
    return f"{crc:08x}"


def _on_cpu(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


class FeatureCache:
    """A folder of per-key safetensors files (see the module docstring).

    ``get`` / ``put`` / ``get_or_compute`` take the key dict and a ``dict[str, Tensor]``.
    Counters ``hits``, ``misses`` and ``corrupt`` are kept per instance.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.hits = self.misses = self.corrupt = 0

    def path_for(self, key: dict) -> Path:
        h = hashlib.sha256(_canonical(key).encode()).hexdigest()[:32]
        return self.root / h[:2] / f"{h}.safetensors"

    def __contains__(self, key: dict) -> bool:
        return self.path_for(key).is_file()

    def _discard(self, path: Path, why: str) -> None:
        self.corrupt += 1
        log.warning("cache file %s is unusable (%s); it will be recomputed", path, why)
        try:
            path.unlink()
        except OSError:
            pass

    def get(self, key: dict) -> dict[str, Tensor] | None:
        """The cached tensors of ``key``, or ``None`` (absent, or corrupt and now deleted)."""
        path = self.path_for(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            tensors = load_file(str(path))
            with open(path, "rb") as f:  # the metadata lives in the JSON header
                n = int.from_bytes(f.read(8), "little")
                meta = json.loads(f.read(n)).get("__metadata__", {})
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            self.misses += 1
            self._discard(path, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            return None
        if meta.get("key") != _canonical(key):
            self.misses += 1
            self._discard(path, "it belongs to another key")
            return None
        if meta.get("crc32") != _crc(tensors):
            self.misses += 1
            self._discard(path, "checksum mismatch")
            return None
        self.hits += 1
        return tensors

    def put(self, key: dict, tensors: dict[str, Tensor]) -> Path:
        """Store ``tensors`` under ``key`` atomically; returns the file path."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = _on_cpu(tensors)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
        try:
            save_file(tensors, str(tmp), metadata={"key": _canonical(key), "crc32": _crc(tensors)})
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def get_or_compute(self, key: dict, fn: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor]:
        """Cached tensors of ``key``; on a miss call ``fn()``, store and return its result.

        The result is always on the CPU (as a hit would be). Exceptions from ``fn``
        propagate and nothing is stored.
        """
        tensors = self.get(key)
        if tensors is None:
            tensors = _on_cpu(fn())
            self.put(key, tensors)
        return tensors


def cache_features(
    dataset,
    extract_fn: Callable[[Tensor], Tensor],
    cache: FeatureCache,
    name: str,
    batch: int = 64,
    progress: bool = True,
) -> dict[str, int]:
    """Embed every readable video of ``dataset`` with ``extract_fn`` and cache the result.

    ``extract_fn`` maps uint8 frames ``(N, H, W, 3)`` to features ``(N, D)`` (it does its
    own preprocessing; it runs under ``torch.inference_mode``). Frames of several videos
    are batched together, about ``batch`` frames per call. Each video's entry, under
    ``dataset.feature_key(i, name)``, holds ``features`` ``(T, D)`` float32 and
    ``timestamps_s`` ``(T,)`` float64. Videos already cached are not decoded; unreadable
    ones are skipped (the dataset logs them). Returns counts ``computed``, ``cached``,
    ``failed``.
    """
    counts = {"computed": 0, "cached": 0, "failed": 0}
    pending: list[tuple[dict, dict]] = []

    def flush() -> None:
        if not pending:
            return
        frames = torch.cat([item["frames"] for _, item in pending])  # (sum T, H, W, 3)
        with torch.inference_mode():
            feats = extract_fn(frames).float().cpu()  # (sum T, D)
        if feats.ndim != 2 or feats.shape[0] != frames.shape[0]:
            raise ValueError(f"extract_fn must return (N, D) for N={frames.shape[0]} frames, "
                             f"got {tuple(feats.shape)}")
        start = 0
        for key, item in pending:
            t = item["frames"].shape[0]
            cache.put(key, {"features": feats[start : start + t].clone(), "timestamps_s": item["timestamps_s"]})
            start += t
            counts["computed"] += 1
        pending.clear()

    for i in tqdm(range(len(dataset)), desc=f"features {name}", unit="video", disable=not progress):
        key = dataset.feature_key(i, name)
        if key is not None and cache.get(key) is not None:  # verified, not just present
            counts["cached"] += 1
            continue
        item = dataset[i] if key is not None else None
        if item is None:
            counts["failed"] += 1
            continue
        pending.append((key, item))
        if sum(it["frames"].shape[0] for _, it in pending) >= batch:
            flush()
    flush()
    if counts["failed"]:
        log.warning("features %s: %d of %d videos could not be read and were skipped",
                    name, counts["failed"], len(dataset))
    return counts
