"""On-disk tensor caches: decoded previews and frozen-backbone features.

:class:`FeatureCache` stores one small safetensors file per key (a JSON-able dict such as
``{"video": path, "mtime_ns": ..., "bytes": ..., "t": 16, "size": 224, "backbone": name}``):

* resumable: an interrupted build keeps every finished per-video file;
* atomic: files are written to a temp name and ``os.replace``-d into place;
* self-checking: each file records its full key and a CRC-32 of its tensor bytes; a
  truncated, corrupt or mismatched file is logged, deleted and reported as a miss, so
  :meth:`FeatureCache.get_or_compute` recomputes it.

Keys built with :func:`video_key` include the file's size and modification time, so an
edited video is never served stale features. :mod:`nsnet.data.features` (frozen-backbone
features for training and evaluation) and :class:`~nsnet.data.dataset.VideoDataset`
(decoded previews for fine-tuning) are its two users.
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

__all__ = ["FeatureCache", "video_key"]

log = logging.getLogger(__name__)


def video_key(path: str | os.PathLike, **extra) -> dict:
    """Cache key of a video file: absolute path, size, mtime (ns) plus ``extra`` fields.

    Raises ``FileNotFoundError`` (an ``OSError``) when the file does not exist.
    """
    try:
        p = Path(path).resolve()
    except RuntimeError:  # a symlink loop (Python < 3.13 raises RuntimeError, not OSError)
        raise OSError(f"{path}: symbolic link loop") from None
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
