"""A visitor's request to analyse a clip: checked before anything is decoded, then run. Shared by the rooms.

``check_clip`` (a video file of an accepted type, present, non-empty, within ``--max-upload-mb``),
``check_params`` (whole T and K, a finite λ, T within ``--max-frames``, then the library's one
range check, ``nsnet.config.parse_params``), ``check_pixels`` (``--max-frame-pixels``, from the
headers) and ``make_request``: those checks, the pipeline the visitor named and what the server
knows of the clip (an example or a dataset video: its ground truth, its cache entry). Every
problem is a ``gr.Error`` of one line (``app.tabs.errors.user_errors`` escapes it for the page).

Runs go through ``ctx.runner`` (in process, or under ``spaces.GPU``): ``first_result`` (a known
clip's cached dense run, else decode and NSNet alone), ``complete`` (its dense pass, then cached)
and ``dense_result`` (both in one go, for ``/analyze``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import gradio as gr

from nsnet import limits
from nsnet.config import ConfigError, parse_params
from nsnet.data.records import VIDEO_EXTENSIONS
from nsnet.inference import Pipeline, PipelineResult
from nsnet.video import probe

from ..server.settings import AppSettings
from ..state.examples import CachedRun
from .errors import error_text

if TYPE_CHECKING:  # annotations only (the context is built by app.shell)
    from ..state.context import AppContext
    from ..state.examples import ExampleClip
    from ..state.models import CheckpointOption

__all__ = ["check_clip", "check_params", "check_pixels", "Request", "make_request", "first_result", "complete",
           "dense_result"]

log = logging.getLogger(__name__)


def check_clip(settings: AppSettings, clip: Any) -> Path:
    """The uploaded clip's path, or a ``gr.Error`` saying what is wrong with it."""
    if clip is None or clip == "":
        raise gr.Error("Upload a clip or pick an example first.", title="No clip")
    path = Path(str(clip))
    name = error_text(path.name)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise gr.Error(f"'{name}' is not a supported video file: use "
                       f"{', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS)}.", title="Unsupported file")
    if not path.is_file():
        raise gr.Error("The uploaded file is gone; please upload it again.", title="No clip")
    size = path.stat().st_size
    if size > settings.max_upload_bytes:
        raise gr.Error(f"The clip is {size / 2**20:.1f} MB; this server accepts up to "
                       f"{settings.max_upload_mb:g} MB.", title="File too large")
    if size == 0:
        raise gr.Error(f"'{name}' is empty.", title="Cannot analyse this input")
    return path


def check_params(settings: AppSettings, t: Any, k: Any, lam: Any) -> tuple[int, int, float]:
    """Whole numbers T and K, a finite λ, T within this server's limit, then nsnet's own check."""
    try:
        return parse_params(t, k, lam, max_frames=settings.max_frames, limit_name="this server's limit")
    except ConfigError as exc:
        raise gr.Error(str(exc)) from None


def check_pixels(settings: AppSettings, path: Path) -> None:
    """``--max-frame-pixels`` below the library's ceiling: probe the headers first (else nsnet checks)."""
    limit = settings.max_frame_pixels
    if limit >= limits.MAX_SOURCE_PIXELS:
        return
    info = probe(path, time_budget_s=settings.time_budget_s)
    if info.width * info.height > limit:
        shown_limit = f"{limit / 1e6:.1f} Mpx" if limit >= 1e6 else f"{limit} pixels"
        raise gr.Error(f"{error_text(path.name)}: frames of {info.width}x{info.height} pixels are above this "
                       f"server's limit of {shown_limit}.", title="Video too large")


@dataclass(frozen=True)
class Request:
    """A checked request: the clip, T / K / λ, the pipeline and what the server knows of the clip."""

    path: Path
    t: int
    k: int
    lam: float
    pipe: Pipeline
    option: "CheckpointOption"
    known: Optional["ExampleClip"]    # an example or dataset video: its ground truth, its cache entry

    @property
    def cache_key(self) -> Optional[tuple]:
        """The example cache's key of this run (known clips only)."""
        return (self.option.source, self.known.sha256, self.t) if self.known else None

    @property
    def clip_name(self) -> str:
        return self.known.path.name if self.known else self.path.name


def make_request(ctx: "AppContext", clip: Any, t: Any, k: Any, lam: Any, checkpoint: Optional[str],
                 hub_id: Optional[str] = None, *, by_name: bool = False) -> Request:
    """Check a request and find its pipeline (``by_name``: ``checkpoint`` is a picker label or, where
    allowed, a Hub id, as ``/analyze`` takes it; else the picker's label and the hub box)."""
    path = check_clip(ctx.settings, clip)
    t, k, lam = check_params(ctx.settings, t, k, lam)
    pipe, option = ctx.store.get_by_name(checkpoint) if by_name else ctx.store.get(checkpoint, hub_id)
    return Request(path, t, k, lam, pipe, option, ctx.known_clip(path))


def first_result(ctx: "AppContext", req: Request, progress: Optional[Callable[[str, float], None]] = None
                 ) -> tuple[Any, PipelineResult, bool]:
    """(previews (T, H, W, 3) uint8, result, cached): a known clip's cached dense run, else the first pass
    (decode, then NSNet alone; ``complete`` adds the dense pass)."""
    cached = ctx.cache.get(req.cache_key) if req.cache_key else None
    if cached is not None:
        return cached.frames, cached.result, True
    check_pixels(ctx.settings, req.path)
    start = time.perf_counter()
    runner = ctx.runner
    clip, result = runner.first(req.pipe, str(req.path), req.t, req.k, req.lam, ctx.settings.time_budget_s,
                                progress if runner.reports_progress else None)
    log.info("first result of %s (T=%d, K=%d) in %.0f ms", req.path.name, req.t, req.k,
             (time.perf_counter() - start) * 1e3)
    return clip.frames, result, False


def complete(ctx: "AppContext", req: Request, frames: Any, result: PipelineResult) -> PipelineResult:
    """The dense pass of a first result (cached for a known clip)."""
    start = time.perf_counter()
    dense = ctx.runner.dense(req.pipe, frames, result)
    log.info("dense pass of %s in %.0f ms", req.path.name, (time.perf_counter() - start) * 1e3)
    if req.cache_key:
        ctx.cache.put(req.cache_key, CachedRun(frames, dense))
    return dense


def dense_result(ctx: "AppContext", req: Request) -> PipelineResult:
    """Decode, NSNet and the dense pass in one go (a known clip's from the cache, and cached)."""
    run = ctx.cache.get(req.cache_key) if req.cache_key else None
    if run is None:
        check_pixels(ctx.settings, req.path)
        clip, result = ctx.runner.analyze(req.pipe, str(req.path), req.t, req.k, req.lam,
                                          ctx.settings.time_budget_s, None)
        run = CachedRun(clip.frames, result)
        if req.cache_key:
            ctx.cache.put(req.cache_key, run)
    return run.result
