"""Thin Gradio callbacks: validate the input, call nsnet, hand the result to the views.

Every failure reaches the user as a ``gr.Error`` with one line: expected ones (a bad
clip, bad T/K/lam, a broken checkpoint) with nsnet's own message, unexpected ones with
a short message while the traceback goes to the log. The app keeps serving.

Per-user data lives in a ``Session`` held in ``gr.State``; the callbacks never mutate
module-level state. The pipelines come from the read-only ``ModelStore``.
"""
# No ``from __future__ import annotations``: Gradio reads these signatures at runtime
# (``gr.Progress`` defaults, ``gr.SelectData`` hints).
import dataclasses
import functools
import html
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
from gradio.components.plot import PlotData

from nsnet.config import ConfigError, PipelineConfig
from nsnet.pipeline import CheckpointError, PipelineResult

from . import plots, views
from .exports import public_dict, write_exports, write_frame_images
from .models import VIDEO_EXTENSIONS, ExampleClip, ModelStore, ResultCache, match_example
from .settings import AppSettings

__all__ = ["AppContext", "Session", "Callbacks", "gpu", "user_errors", "cleanup_session"]

log = logging.getLogger(__name__)


def _video_error_types() -> tuple[type[BaseException], ...]:
    try:
        from nsnet.video import VideoError
    except ImportError:  # pragma: no cover - nsnet.video is part of the library
        return ()
    return (VideoError,)


def _identity(fn: Callable) -> Callable:
    return fn


def _spaces_gpu() -> Callable[[Callable], Callable]:
    """``spaces.GPU`` on Hugging Face ZeroGPU (when the package imports), else the identity."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return _identity
    log.info("spaces package found: inference runs under spaces.GPU")
    return spaces.GPU


gpu = _spaces_gpu()
# Under spaces.GPU the call may run in another process: pass it nothing but plain data
# and the (read-only) pipeline, so no progress callback there.
ON_SPACES_GPU = gpu is not _identity and bool(os.environ.get("SPACES_ZERO_GPU"))


@gpu
def infer(pipe, path: str, num_frames: int, k: int, lam: float, time_budget_s: float,
          progress: Optional[Callable[[str, float], None]] = None) -> PipelineResult:
    """The one function that runs networks (the ZeroGPU unit of work): dense analysis of a clip."""
    return pipe.analyze(path, num_frames=num_frames, k=k, lam=lam, dense=True, time_budget_s=time_budget_s,
                        progress=progress)


def user_errors(fn: Callable) -> Callable:
    """Turn every exception into a one-line ``gr.Error``; log the unexpected ones with traceback."""
    known = (ConfigError, CheckpointError) + _video_error_types()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except known as exc:
            log.info("rejected input in %s: %s", fn.__name__, exc)
            raise gr.Error(html.escape(_one_line(_user_message(exc))), title="Cannot analyse this input", print_exception=False) from None
        except ValueError as exc:
            log.warning("value error in %s", fn.__name__, exc_info=True)
            raise gr.Error(html.escape(_one_line(exc)), title="Cannot analyse this input", print_exception=False) from None
        except Exception as exc:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(html.escape(f"Unexpected error ({type(exc).__name__}: {_one_line(exc)}). "
                                       "Details are in the server log."), title="Something went wrong") from None

    return wrapper


def _user_message(exc: BaseException) -> str:
    """A video error names the upload by its file name, not by the server's temp path."""
    path, problem = getattr(exc, "path", None), getattr(exc, "problem", None)
    if isinstance(path, str) and isinstance(problem, str):
        return f"{Path(path).name}: {problem}"
    return str(exc)


def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class AppContext:
    """Everything the callbacks read; built once by ``build_demo``."""

    store: ModelStore
    settings: AppSettings
    examples: tuple[ExampleClip, ...] = ()
    cache: ResultCache = dataclasses.field(default_factory=ResultCache)
    export_root: Path = Path(tempfile.gettempdir()) / "nsnet-explorer"


@dataclass(frozen=True)
class Session:
    """One user's analysis: the dense run plus the current (K, lam) view of it."""

    base: PipelineResult              # dense result as computed (reranked from, never modified)
    result: PipelineResult            # the current K / lam
    clip_name: str
    model_name: str
    segments: tuple = ()
    cached: bool = False
    export_dir: str = ""
    frame_files: tuple = ()           # JPEG of every preview (written once per run)


def cleanup_session(session: Optional[Session]) -> None:
    """``gr.State`` delete callback: remove the session's export folder."""
    if isinstance(session, Session) and session.export_dir:
        shutil.rmtree(session.export_dir, ignore_errors=True)  # exports and preview JPEGs


def _as_int(value: Any, name: str) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise gr.Error(f"{name} must be a whole number, got {value!r}")
    return int(f)


def _as_float(value: Any, name: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise gr.Error(f"{name} must be a finite number, got {value!r}")
    return f


class Callbacks:
    """Event handlers bound to one ``AppContext``. Outputs are listed in ``app.ui``."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ validation
    def check_clip(self, clip: Any) -> Path:
        if clip is None or clip == "":
            raise gr.Error("Upload a clip or pick an example first.", title="No clip")
        path = Path(str(clip))
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise gr.Error(html.escape(f"'{path.name}' is not a supported video file: use "
                                       f"{', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS)}."),
                           title="Unsupported file")
        if not path.is_file():
            raise gr.Error("The uploaded file is gone; please upload it again.", title="No clip")
        size = path.stat().st_size
        if size > self.ctx.settings.max_upload_bytes:
            raise gr.Error(f"The clip is {size / 2**20:.1f} MB; this server accepts up to "
                           f"{self.ctx.settings.max_upload_mb:g} MB.", title="File too large")
        if size == 0:
            raise gr.Error(html.escape(f"'{path.name}' is empty."), title="Cannot analyse this input")
        return path

    def check_params(self, t: Any, k: Any, lam: Any) -> tuple[int, int, float]:
        t, k, lam = _as_int(t, "T"), _as_int(k, "K"), _as_float(lam, "λ")
        if t > self.ctx.settings.max_frames:
            raise gr.Error(f"T={t} is above this server's limit of {self.ctx.settings.max_frames} previews.")
        PipelineConfig.validate(t, k, lam)  # ConfigError -> one-line gr.Error via user_errors
        return t, k, lam

    # ------------------------------------------------------------ analysis
    def _analyze(self, clip: Any, t: Any, k: Any, lam: Any, checkpoint: Optional[str], hub_id: Optional[str],
                 progress: Optional[Callable[[str, float], None]]) -> tuple[PipelineResult, PipelineResult, str,
                                                                            Optional[ExampleClip], bool]:
        path = self.check_clip(clip)
        t, k, lam = self.check_params(t, k, lam)
        pipe, option = self.ctx.store.get(checkpoint, hub_id)
        example = match_example(path, self.ctx.examples) if self.ctx.examples else None
        key = (option.source, example.sha256, t) if example else None
        base = self.ctx.cache.get(key) if key else None
        cached = base is not None
        if base is None:
            start = time.perf_counter()
            base = infer(pipe, str(path), t, k, lam, self.ctx.settings.time_budget_s,
                         None if ON_SPACES_GPU else progress)
            log.info("analysed %s (T=%d, K=%d) in %.0f ms", path.name, t, k, (time.perf_counter() - start) * 1e3)
            if key:
                self.ctx.cache.put(key, base)
        result = base if (base.k == k and math.isclose(base.lam, lam)) else base.rerank(k, lam)
        return base, result, option.label, example, cached

    def run(self, clip, t, k, lam, checkpoint, hub_id, teacher, frame, session, progress=gr.Progress()):
        """The Run button: decode, sample, recognise (dense) and draw everything."""
        def report(stage: str, frac: float) -> None:
            progress(min(max(frac, 0.0), 1.0), desc=stage)

        base, result, model_name, example, cached = self._analyze(clip, t, k, lam, checkpoint, hub_id, report)
        clip_name = example.path.name if example else Path(str(clip)).name
        export_dir = session.export_dir if isinstance(session, Session) and session.export_dir else ""
        if not export_dir or not Path(export_dir).is_dir():
            self.ctx.export_root.mkdir(parents=True, exist_ok=True)
            export_dir = tempfile.mkdtemp(prefix="session-", dir=self.ctx.export_root)
        # Keep the previous run's previews (a late K/λ event may still show them); drop older ones.
        keep = {Path(session.frame_files[0]).parent} if isinstance(session, Session) and session.frame_files else set()
        for old in Path(export_dir).glob("frames-*"):
            if old not in keep:
                shutil.rmtree(old, ignore_errors=True)
        frame_files = tuple(write_frame_images(base.frames, tempfile.mkdtemp(prefix="frames-", dir=export_dir)))
        new = Session(base=base, result=result, clip_name=clip_name, model_name=model_name,
                      segments=tuple(example.segments) if example else (), cached=cached, export_dir=export_dir,
                      frame_files=frame_files)
        ranks = views.selection_ranks(result)
        best = min(ranks, key=ranks.get)  # show the most salient frame first
        return self.render(new, teacher, best + 1, reset_frame=True)

    def rerank(self, session, k, lam, teacher, frame):
        """K or λ moved: re-rank the cached per-frame outputs (no decode, no network)."""
        if not isinstance(session, Session):
            return (gr.skip(),) * len(OUTPUT_NAMES)
        k, lam = _as_int(k, "K"), _as_float(lam, "λ")
        if k > session.base.num_frames:
            raise gr.Error(f"K={k} is larger than the T={session.base.num_frames} previews of the last run; "
                           "press Run to decode more previews.", title="K too large")
        result = session.base.rerank(k, lam)
        return self.render(dataclasses.replace(session, result=result), teacher, frame, reset_frame=False,
                           previous=session.result)

    def render(self, session: Session, teacher: bool, frame: Any, *, reset_frame: bool,
               previous: Optional[PipelineResult] = None) -> tuple:
        """All result outputs for a session (see ``OUTPUT_NAMES``).

        With ``previous`` (the result the page shows now), outputs whose content would not
        change are skipped, so the browser redraws only what moved.
        """
        r = session.result
        images = session.frame_files or None
        fig = plot_value(plots.saliency_spec(r, segments=session.segments, teacher=bool(teacher)))
        frame_index = _clamp_frame(frame, r.num_frames)
        image, caption = views.frame_view(r, frame_index - 1, session.segments, images)
        csv_path, json_path = write_exports(r, session.export_dir, session.clip_name, session.segments)
        for old in [*Path(session.export_dir).glob("*.csv"), *Path(session.export_dir).glob("*.json")]:
            if old not in (csv_path, json_path):  # Gradio already served its own copy of older exports
                old.unlink(missing_ok=True)
        if reset_frame:
            slider = gr.update(maximum=r.num_frames, value=frame_index, interactive=True)
        else:  # K / λ moved: the viewed frame is unchanged; its caption follows in a chained event
            slider, image, caption = gr.skip(), gr.skip(), gr.skip()  # (reading the slider then, not now)

        def changed(view: Callable[[PipelineResult], Any]) -> bool:
            return previous is None or view(previous) != view(r)

        return (
            views.summary_markdown(r, session.clip_name, session.model_name, cached=session.cached,
                                   segments=session.segments),
            fig,
            gr.update(value=views.gallery_items(r, images), columns=min(max(r.k, 2), 8))
            if changed(_gallery_key) else gr.skip(),
            views.label_scores(r) if changed(views.label_scores) else gr.skip(),
            gr.update(value=views.comparison_rows(r), headers=views.COMPARISON_HEADERS)
            if changed(views.comparison_rows) else gr.skip(),
            views.cost_markdown(r) if changed(views.cost_markdown) else gr.skip(),
            slider,
            image,
            caption,
            str(csv_path),
            str(json_path),
            session,
        )

    def redraw_plot(self, session, teacher):
        if not isinstance(session, Session):
            return gr.skip()
        return plot_value(plots.saliency_spec(session.result, segments=session.segments, teacher=bool(teacher)))

    def show_frame(self, session, frame):
        if not isinstance(session, Session):
            return gr.skip(), gr.skip()
        r = session.result
        return views.frame_view(r, _clamp_frame(frame, r.num_frames) - 1, session.segments,
                                session.frame_files or None)

    def show_caption(self, session, frame):
        """The viewed frame's caption (after K / λ moved, its rank may have changed)."""
        if not isinstance(session, Session):
            return gr.skip()
        r = session.result
        return views.frame_caption(r, _clamp_frame(frame, r.num_frames) - 1, session.segments)

    def select_gallery_frame(self, session, evt: gr.SelectData):
        """Clicking a gallery thumbnail shows that frame in the viewer (1-based slider value)."""
        if not isinstance(session, Session) or evt is None or evt.index is None:
            return gr.skip()
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        selected = sorted(int(i) for i in session.result.selected)
        if not 0 <= int(index) < len(selected):
            return gr.skip()
        return selected[int(index)] + 1

    def limit_k(self, t, k):
        """Keep K <= T on the sliders."""
        try:
            t, k = int(t), int(k)
        except (TypeError, ValueError):
            return gr.skip()
        return gr.update(maximum=t, value=min(k, t))

    # ------------------------------------------------------------ API
    def analyze_api(self, clip, num_frames, k, lam):
        """Analyse a clip with the default model; returns the ``predict --json`` object.

        ``video.path`` is ``null``: the server's temp path is meaningless to a client, and
        gradio_client would take any dict with a string ``path`` for a file to download.
        """
        _, result, _, _, _ = self._analyze(clip, num_frames, k, lam, None, None, None)
        return public_dict(result, None)


OUTPUT_NAMES = ("summary", "plot", "gallery", "labels", "compare", "cost", "frame_slider", "frame_image",
                "frame_caption", "csv_file", "json_file", "session")


def _gallery_key(result: PipelineResult) -> tuple:
    """What the gallery shows of a result: which previews, with which captions."""
    return tuple(sorted(int(i) for i in result.selected)), [c for _, c in views.gallery_items(result, range(result.num_frames))]


def plot_value(spec: dict) -> PlotData:
    """A figure dict from ``app.plots`` as ``gr.Plot`` sends it (skips building a ``go.Figure``)."""
    return PlotData(type="plotly", plot=json.dumps(spec, allow_nan=False, separators=(",", ":")))


def _clamp_frame(frame: Any, t: int) -> int:
    try:
        f = int(float(frame))
    except (TypeError, ValueError):
        f = 1
    return min(max(f, 1), t)
