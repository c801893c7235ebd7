"""Pipelines by name in one module-level store, and a run that takes plain data.

Hugging Face ZeroGPU runs a function decorated with ``spaces.GPU`` in a GPU worker forked
from the main process, and sends it each call's arguments through a multiprocessing queue
(pickled with ``ForkingPickler``). A pipeline cannot travel that way (its CUDA tensors
cannot be pickled outside CUDA's IPC), and need not: the main process puts its pipelines in
:data:`STORE` at start-up, a forked worker inherits them, and the GPU function takes plain
data (a name, decoded frames as a numpy array, K, lambda, ...) and calls :func:`run_frames`,
which looks the pipeline up by name. A checkpoint offered after the workers were forked is
named together with its ``source`` (a checkpoint folder or hub id): the worker that does not
have it loads it there, once, and keeps it.

Decoding needs no GPU: :func:`decode` runs it in the caller's process (outside the GPU slot),
and its :class:`~nsnet.video.Clip` (numpy arrays and a small record) pickles.

Nothing here imports the app or ``spaces``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from typing import Callable

import numpy as np

from ..video import Clip, read_clip
from .pipeline import PRECISIONS, Pipeline
from .result import PipelineResult

__all__ = ["PipelineStore", "STORE", "run_frames", "decode"]

log = logging.getLogger(__name__)

MAX_NAME = 200


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise KeyError(f"a pipeline name must be a non-empty string of at most {MAX_NAME} characters, "
                       f"got {str(name)[:60]!r}")
    return name


class PipelineStore:
    """Pipelines by name: the ones :meth:`add`-ed stay; the ones loaded on demand by :meth:`get`
    (from a ``source``) are kept up to ``max_loaded``, the least recently used going first.

    ``device`` and ``precision`` are what on-demand loads use. Thread-safe; a name is loaded
    at most once at a time.
    """

    def __init__(self, device: str = "auto", precision: str = "auto", max_loaded: int = 3) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if not 1 <= int(max_loaded) <= 64:
            raise ValueError(f"max_loaded must be in 1..64, got {max_loaded!r}")
        self.device, self.precision, self.max_loaded = device, precision, int(max_loaded)
        self._added: dict[str, Pipeline] = {}
        self._loaded: OrderedDict[str, Pipeline] = OrderedDict()
        self._lock = threading.Lock()
        _STORES.add(self)

    def configure(self, *, device: str | None = None, precision: str | None = None) -> None:
        """Set what on-demand loads use (call at start-up, before the workers fork)."""
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = self.device if device is None else device
        self.precision = self.precision if precision is None else precision

    def add(self, name: str, pipeline: Pipeline) -> Pipeline:
        """Keep ``pipeline`` under ``name`` (replacing one of that name); returns it."""
        _check_name(name)
        with self._lock:
            self._loaded.pop(name, None)
            self._added[name] = pipeline
        return pipeline

    def __contains__(self, name: object) -> bool:
        return name in self._added or name in self._loaded

    def names(self) -> list[str]:
        with self._lock:
            return [*self._added, *self._loaded]

    def loaded_names(self) -> list[str]:
        """The names loaded on demand and still kept, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def name_of(self, pipeline: Pipeline) -> str | None:
        """The name ``pipeline`` is kept under (None: not here, or no longer)."""
        with self._lock:
            for name, kept in [*self._added.items(), *self._loaded.items()]:
                if kept is pipeline:
                    return name
        return None

    def remove(self, name: str) -> None:
        with self._lock:
            self._added.pop(name, None)
            self._loaded.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._added.clear()
            self._loaded.clear()

    def get(self, name: str, source: str | os.PathLike | None = None, *,
            load: Callable[[], Pipeline] | None = None) -> Pipeline:
        """The pipeline called ``name``; one not here is loaded (``load()`` when given, else
        ``Pipeline.from_pretrained(source)``) and kept.

        Raises:
            KeyError: an unknown name without a ``source`` or ``load`` (one line naming the known ones).
            CheckpointError, ConfigError, BackboneError: what loading raises.
        """
        _check_name(name)
        with self._lock:
            if name in self._added:
                return self._added[name]
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            if source is None and load is None:
                known = ", ".join(repr(n) for n in [*self._added, *self._loaded][:5]) or "none"
                raise KeyError(f"no pipeline called {name!r} in this process (known: {known}) and no source to load "
                               "it from")
            start = time.perf_counter()
            if load is not None:
                pipe = load()
            else:
                pipe = Pipeline.from_pretrained(source, device=self.device, precision=self.precision)
            log.info("loaded %r in %.1f s (pid %d)", name, time.perf_counter() - start, os.getpid())
            self._loaded[name] = pipe
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
            return pipe


_STORES: "weakref.WeakSet[PipelineStore]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked worker gets fresh store locks: the parent may have held one (loading) at the fork."""
    for store in list(_STORES):
        store._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: The process's store: fill it at start-up; forked workers (ZeroGPU) inherit it.
STORE = PipelineStore()


def decode(path: str | os.PathLike, num_frames: int, size: int, *,
           time_budget_s: float | None = 30.0) -> tuple[Clip, float]:
    """Decode ``num_frames`` previews at ``size`` (no network, no GPU): (clip, milliseconds).

    ``size`` is the recognizer's input size of the pipeline(s) the frames are for (the larger
    one when two share a decode). Raises ``nsnet.video.VideoError`` for a file that cannot be used.
    """
    start = time.perf_counter()
    clip = read_clip(path, num_frames=num_frames, size=size, time_budget_s=time_budget_s)
    return clip, (time.perf_counter() - start) * 1e3


def run_frames(name: str, frames: np.ndarray, k: int | None = None, lam: float | None = None, *,
               source: str | None = None, dense: bool = True, timestamps_s: np.ndarray | None = None,
               video: dict | None = None, decode_ms: float = 0.0, repeated: bool = False,
               store: PipelineStore | None = None) -> PipelineResult:
    """Run the pipeline called ``name`` (:meth:`PipelineStore.get`) on uint8 frames (T, H, W, 3).

    Every argument is plain data, so a call pickles with ``ForkingPickler`` and so does the
    result (numpy arrays, lists, dicts). ``dense=True`` (the default) also runs the recognizer
    on the other T - K previews, as the explorer needs.
    """
    pipe = (store or STORE).get(name, source)
    return pipe(frames, k, lam, dense=dense, timestamps_s=timestamps_s, video=video, decode_ms=decode_ms,
                repeated=repeated)
