"""``ExportArea``: the one bounded folder where the explorer writes files.

Every file the explorer writes (the preview JPEGs of a run, the CSV / JSON a visitor
downloads) lives in a per-session folder of one instance folder::

    <export dir>/instance-XXXX/          this process (held by an flock on instance-XXXX.lock)
                 instance-XXXX.lock
                 instance-XXXX/session-<id>/frames-*/frame_001.jpg, clip_T16_K4_lam0.50.csv, ...

* **Start-up** (``open``): instance folders whose process is gone (their lock is free),
  and session folders of older versions lying directly in the export dir, are removed.
  Several explorers may share an export dir; none removes another live one's files.
* **Bounded**: after each write (``record``) the session folders over ``max_age_s`` since
  their last write go, then the oldest ones until the area is under ``max_bytes``; the
  folder just written is kept. A session whose previews were evicted falls back to its
  decoded frames in memory, while the ``FramePool`` still holds them.
* **Sessions end**: ``remove`` (the ``gr.State`` delete callback and ``demo.unload``).
* **Shutdown** (``close``, also registered with ``atexit``): the instance folder is removed.

``file_sha256`` hashes a file (how an upload is matched to an example or a dataset video).

``FramePool`` is the memory side: the decoded previews of every live session in one LRU
bounded by ``--session-frames-mb``, so a crowd of visitors cannot fill the server's memory
(a session whose frames were dropped, and whose JPEGs were evicted too, is asked to run again).
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: no stale-instance detection, the rest works
    fcntl = None  # type: ignore[assignment]

__all__ = ["ExportArea", "FramePool", "folder_bytes", "file_sha256"]

log = logging.getLogger(__name__)

INSTANCE_PREFIX = "instance-"
SESSION_PREFIX = "session-"


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(bytes, files) under ``folder``, symlinks not followed; (0, 0) when it is gone."""
    total = files = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's content (how an upload is recognised as an example or a dataset video)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _rmtree(path: Path) -> None:
    if path.is_symlink():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


class ExportArea:
    """Per-session folders under ``root``, bounded in size and age (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, max_bytes: int, max_age_s: float) -> None:
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("an export area needs a positive size and age bound")
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self.folder: Path | None = None        # this instance's folder, once open
        self._lock_fd: int | None = None
        self._lock_path: Path | None = None
        self._sizes: dict[Path, int] = {}      # session folder -> bytes when last recorded
        self._mutex = threading.RLock()

    # ------------------------------------------------------------ life cycle
    def open(self) -> "ExportArea":
        """Remove what dead instances left, then create (and lock) this instance's folder."""
        with self._mutex:
            if self.folder is not None:
                return self
            self.root.mkdir(parents=True, exist_ok=True)
            removed = self.remove_stale()
            while True:
                fd, lock = tempfile.mkstemp(prefix=INSTANCE_PREFIX, suffix=".lock", dir=self.root)
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                try:  # another explorer starting at this instant may have taken the free lock for stale
                    if os.path.samestat(os.fstat(fd), os.stat(lock)):
                        break
                except OSError:
                    pass
                os.close(fd)
            folder = Path(lock[: -len(".lock")])
            folder.mkdir()
            self._lock_fd, self._lock_path, self.folder = fd, Path(lock), folder
            atexit.register(self.close)
            if removed:
                log.info("export area %s: removed %d folder(s) left by earlier runs", self.root, removed)
            return self

    def remove_stale(self) -> int:
        """Remove instance folders of processes that are gone, and old-style session folders."""
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return 0
        locks = {e.name[: -len(".lock")] for e in entries if e.name.startswith(INSTANCE_PREFIX)
                 and e.name.endswith(".lock")}
        for name in sorted(locks):
            lock = self.root / f"{name}.lock"
            if self._lock_path is not None and lock == self._lock_path:
                continue
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:
                continue
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: its process is gone
                else:
                    continue
            except OSError:
                continue  # held: a live explorer
            finally:
                os.close(fd)
            _rmtree(self.root / name)
            lock.unlink(missing_ok=True)
            removed += 1
        for e in entries:
            lockless_instance = (e.name.startswith(INSTANCE_PREFIX) and not e.name.endswith(".lock")
                                 and e.name not in locks)
            if (lockless_instance or e.name.startswith(SESSION_PREFIX)) and e.is_dir(follow_symlinks=False):
                _rmtree(Path(e.path))
                removed += 1
        return removed

    def close(self) -> None:
        """Remove this instance's folder and lock (idempotent)."""
        with self._mutex:
            folder, fd, lock = self.folder, self._lock_fd, self._lock_path
            self.folder, self._lock_fd, self._lock_path = None, None, None
            self._sizes.clear()
        if folder is not None:
            _rmtree(folder)
        if lock is not None:
            lock.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)
        if folder is not None:
            try:
                atexit.unregister(self.close)
            except Exception:  # noqa: BLE001  (atexit is best effort)
                pass

    # ------------------------------------------------------------ sessions
    def session_folder(self, key: str | None = None) -> Path:
        """The folder of one session (created): named from ``key`` (Gradio's session hash), else random."""
        with self._mutex:
            base = self.open().folder
            assert base is not None
            tag = hashlib.sha256(key.encode()).hexdigest()[:24] if key else secrets.token_hex(12)
            folder = base / f"{SESSION_PREFIX}{tag}"
            folder.mkdir(exist_ok=True)
            return folder

    def folder_of(self, key: str) -> Path | None:
        """Where ``session_folder(key)`` is (or would be); None before the area is open."""
        if self.folder is None:
            return None
        return self.folder / f"{SESSION_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:24]}"

    def owns(self, folder: str | os.PathLike) -> bool:
        return self.folder is not None and Path(folder).parent == self.folder

    def remove(self, folder: str | os.PathLike | None) -> None:
        """Remove one session folder of this area (anything else is left alone)."""
        if not folder or not self.owns(folder):
            return
        with self._mutex:
            self._sizes.pop(Path(folder), None)
        _rmtree(Path(folder))

    def record(self, folder: str | os.PathLike) -> None:
        """A session folder was written: measure it, then evict to stay within the bounds."""
        folder = Path(folder)
        if not self.owns(folder):
            return
        size, _ = folder_bytes(folder)
        with self._mutex:
            self._sizes[folder] = size
        self.enforce(keep=folder)

    def enforce(self, keep: Path | None = None) -> int:
        """Evict sessions over the age bound, then the least recently written over the size bound."""
        with self._mutex:
            if self.folder is None:
                return 0
            now = time.time()
            sessions = []
            try:
                entries = list(os.scandir(self.folder))
            except OSError:
                return 0
            for e in entries:
                if not e.is_dir(follow_symlinks=False):
                    continue
                path = Path(e.path)
                try:
                    mtime = e.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                if path not in self._sizes:
                    self._sizes[path] = folder_bytes(path)[0]
                sessions.append((mtime, path))
            sessions.sort()
            total = sum(self._sizes[p] for _, p in sessions)
            evicted = 0
            for mtime, path in sessions:
                if path == keep:
                    continue
                if now - mtime > self.max_age_s or total > self.max_bytes:
                    total -= self._sizes.pop(path, 0)
                    _rmtree(path)
                    evicted += 1
            for gone in [p for p in self._sizes if not p.exists()]:
                del self._sizes[gone]
            if evicted:
                log.info("export area: evicted %d session folder(s); %.1f MB in use", evicted, total / 2**20)
            return evicted

    def write_download(self, folder: str | os.PathLike, write, suffix: str) -> Path:
        """Write one download with ``write(folder) -> path`` into a session folder of this area (``folder``, or a
        new one when ``folder`` is another area's), replacing the session's earlier ``suffix`` downloads."""
        folder = Path(folder)
        if not self.owns(folder):
            folder = self.session_folder(None)
        path = write(folder)  # (re-creates a folder the area evicted)
        for old in folder.glob(f"*{suffix}"):  # Gradio served its own copy of earlier downloads
            if old != path:
                old.unlink(missing_ok=True)
        self.record(folder)
        return path

    def usage(self) -> tuple[int, int]:
        """(bytes, files) in this instance's folder."""
        return folder_bytes(self.folder) if self.folder is not None else (0, 0)


class FramePool:
    """Decoded frames of the live sessions by key, least recently used dropped past ``max_bytes``.

    ``put`` returns a key (a frame array larger than the whole bound is not kept: its key
    finds nothing); ``get`` gives the frames or None once dropped; ``drop`` forgets a key.
    Thread-safe; the arrays are never copied or modified.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, frames: np.ndarray) -> str:
        key = uuid.uuid4().hex
        size = int(frames.nbytes)
        with self._lock:
            if size > self.max_bytes:
                log.warning("previews of %.0f MB not kept in memory: over the bound of %.0f MB (--session-frames-mb)",
                            size / 2**20, self.max_bytes / 2**20)
                return key
            self._items[key] = frames
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= int(old.nbytes)
        return key

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            frames = self._items.get(key)
            if frames is not None:
                self._items.move_to_end(key)
            return frames

    def drop(self, key: str) -> None:
        with self._lock:
            frames = self._items.pop(key, None)
            if frames is not None:
                self._bytes -= int(frames.nbytes)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
