"""Per-visitor state, held in ``gr.State`` (never in a module global): one analysis, one comparison.

* ``Session``: one visitor's analysis of a clip: the run as computed (``base``), its current
  K / λ view (``result``), its decoded previews (in the shared, bounded ``FramePool``) and its
  files (a folder of the bounded export area). A Run first shows NSNet's own result; while
  the dense pass that completes it is under way, ``dense`` (a ``DensePass``) holds it.
* ``DensePass``: the dense pass of one run: what the page asked for meanwhile (K, λ, the
  teacher curve, the viewed frame), and the completed result once it lands, so an event
  that needs it waits for it and the run's last outputs follow the page's latest choices.
* ``CompareState``: one comparison: both dense results as computed and at the current K / λ.
* ``start_session`` (a run's previews into the pool and the visitor's folder) and
  ``cleanup_session`` (the ``gr.State`` delete callback: the session's folder and frames go).
"""
from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nsnet.inference import PipelineResult
from nsnet.inference.methods import rerank

from ..server.storage import ExportArea, FramePool
from ..views.exports import write_frame_images

__all__ = ["Session", "DensePass", "CompareState", "start_session", "cleanup_session", "at"]


def at(base: PipelineResult, k: int, lam: float) -> PipelineResult:
    """``base`` at another K / λ (itself when they are its own): a re-ranking, no network."""
    return base if (base.k == k and math.isclose(base.lam, lam)) else rerank(base, k, lam)


class DensePass:
    """The dense pass of a run under way (see the module docstring). Thread-safe."""

    def __init__(self, **view: Any) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._view = dict(view)                       # k, lam, teacher, frame: the page's latest choices
        self.result: Optional[PipelineResult] = None  # the completed (dense) run; None until then, or if it failed

    def note(self, **view: Any) -> None:
        """The page moved (K, λ, teacher, frame) before the pass landed: its last outputs follow."""
        with self._lock:
            self._view.update(view)

    def finish(self, result: Optional[PipelineResult]) -> dict[str, Any]:
        """The pass is done (``result``; None: it failed or was cancelled); returns the page's latest choices."""
        with self._lock:
            if not self._done.is_set():
                self.result = result
                self._done.set()
            return dict(self._view)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> Optional[PipelineResult]:
        """The completed run (waits up to ``timeout`` seconds); None if it failed or is still running."""
        self._done.wait(timeout)
        return self.result


@dataclass(frozen=True)
class Session:
    """One user's analysis: the run, its decoded previews and the current (K, lam) view."""

    base: PipelineResult              # the run as computed (re-ranked from, never modified); dense once complete
    result: PipelineResult            # the current K / lam
    clip_name: str
    model_name: str
    frames_key: str = ""              # its decoded previews (T, H, W, 3) uint8 in ``pool``, while it keeps them
    pool: Optional[FramePool] = dataclasses.field(default=None, repr=False, compare=False)
    segments: tuple = ()
    cached: bool = False
    export_dir: str = ""              # this session's folder: preview JPEGs, downloads
    frame_files: tuple = ()           # JPEG of every preview (written once per run)
    gt_label: Optional[str] = None    # the clip's ground-truth label (an annotated example or dataset video)
    video_id: Optional[str] = None    # a known clip's id (random-K is seeded with it, as its row); None: an upload
    dense: Optional[DensePass] = dataclasses.field(default=None, repr=False, compare=False)  # while it runs

    @property
    def frames(self) -> Optional[np.ndarray]:
        """The decoded previews, or None once the memory bound (``--session-frames-mb``) dropped them."""
        return self.pool.get(self.frames_key) if self.pool is not None and self.frames_key else None

    @property
    def complete(self) -> bool:
        """The run has its dense pass (re-ranking, the baselines and the teacher curve need it)."""
        return self.base.frame_probs is not None

    def completed(self, timeout: float) -> Optional["Session"]:
        """This session with its dense pass (waited for up to ``timeout`` s while under way); None if it failed."""
        if self.complete:
            return self
        base = self.dense.wait(timeout) if self.dense is not None else None
        if base is None:
            return None
        return dataclasses.replace(self, base=base, result=at(base, self.result.k, self.result.lam), dense=None)


@dataclass(frozen=True)
class CompareState:
    """One comparison: both dense results as computed and both at the current K / λ."""

    base_a: PipelineResult
    base_b: PipelineResult
    result_a: PipelineResult
    result_b: PipelineResult
    name_a: str
    name_b: str
    clip_name: str
    segments: tuple = ()
    gt_label: str | None = None
    decode_ms: float = 0.0
    total_ms: float = 0.0                   # wall time of the comparison (decode once + both pipelines)

    def rerank(self, k: int, lam: float) -> "CompareState":
        """Both results at another K / λ (no decode, no network)."""
        return dataclasses.replace(self, result_a=at(self.base_a, k, lam), result_b=at(self.base_b, k, lam))


def start_session(previous: Any, area: ExportArea, pool: FramePool, visitor: Optional[str], frames: np.ndarray,
                  base: PipelineResult, result: PipelineResult, **facts: Any) -> Session:
    """A visitor's new run as a ``Session``: its previews in the shared pool and, as JPEGs, in the visitor's
    folder of the export area (``visitor``: Gradio's session hash). ``previous`` (the visitor's last
    session, if any) lets go of its frames; its JPEGs stay for late events, older ones go. ``facts``:
    the other ``Session`` fields (clip_name, model_name, segments, cached, gt_label, video_id, dense)."""
    old = previous if isinstance(previous, Session) else None
    export_dir = old.export_dir if old is not None and old.export_dir else ""
    if not export_dir or not area.owns(export_dir) or not Path(export_dir).is_dir():
        export_dir = str(area.session_folder(visitor))
    keep = {Path(old.frame_files[0]).parent} if old is not None and old.frame_files else set()
    for folder in Path(export_dir).glob("frames-*"):
        if folder not in keep:
            shutil.rmtree(folder, ignore_errors=True)
    frame_files = tuple(write_frame_images(frames, tempfile.mkdtemp(prefix="frames-", dir=export_dir)))
    area.record(export_dir)  # within the area's size and age bounds (older sessions may go)
    if old is not None and old.pool is not None:
        old.pool.drop(old.frames_key)
    return Session(base=base, result=result, frames_key=pool.put(frames), pool=pool, export_dir=export_dir,
                   frame_files=frame_files, **facts)


def cleanup_session(session: Optional[Session]) -> None:
    """``gr.State`` delete callback: remove the session's folder and let go of its frames."""
    if isinstance(session, Session) and session.pool is not None:
        session.pool.drop(session.frames_key)
    if isinstance(session, Session) and session.export_dir:
        shutil.rmtree(session.export_dir, ignore_errors=True)  # preview JPEGs and downloads
