"""Thin Gradio callbacks: validate the input, call nsnet, hand the result to the views.

Every callback returns a dict ``{output name: value}`` whose names are fields of
``app.ui.Layout``; ``app.wiring`` maps the names to components. A name left out is an
output that does not change (the browser keeps what it shows), so a K/λ move re-sends
only what would look different. ``RESULT_OUTPUTS`` names everything a run can send.

Every failure reaches the user as a ``gr.Error`` with one line: expected ones (a bad
clip, bad T/K/lam, a broken checkpoint) with nsnet's own message, unexpected ones with
a short message while the traceback goes to the log (``app.errors.user_errors``: plain
text for the API, escaped for the page; no server path). The app keeps serving.

Files: each session writes its preview JPEGs and downloads into its own folder of the
bounded ``app.storage.ExportArea`` (evicted by size and age, removed when the session ends).

Per-user data lives in a ``Session`` held in ``gr.State``; the callbacks never mutate
module-level state. The pipelines come from the read-only ``ModelStore``.
"""
# No ``from __future__ import annotations``: Gradio reads these signatures at runtime
# (``gr.Progress`` defaults, ``gr.SelectData`` hints).
import dataclasses
import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import numpy as np
from gradio.components.plot import PlotData

from nsnet import limits
from nsnet.config import PipelineConfig
from nsnet.data.records import VIDEO_EXTENSIONS
from nsnet.inference import PipelineResult
from nsnet.inference import methods
from nsnet.video import probe

from . import plots, views
from .dataset_store import DatasetStore
from .errors import error_text, finite_number, shown, user_errors, whole_number
from .exports import public_dict, write_csv, write_frame_images, write_json
from .model_info import banner_classes, banner_markdown, describe
from .models import CachedRun, CheckpointOption, ExampleClip, ModelStore, ResultCache, match_example
from .runtime import IN_PROCESS, Runner
from .settings import AppSettings
from .storage import ExportArea, FramePool

__all__ = ["AppContext", "Session", "Analysis", "Callbacks", "RESULT_OUTPUTS", "user_errors", "cleanup_session",
           "plot_value", "banner_value"]

log = logging.getLogger(__name__)

# What a run sends (``Callbacks.render``); a K/λ move sends a subset. Names of ``app.ui.Layout`` fields.
RESULT_OUTPUTS = ("summary", "plot", "gallery", "labels", "compare", "cost", "frame_slider", "frame_image",
                  "frame_caption", "csv_button", "json_button", "session", "banner")


@dataclass(frozen=True)
class AppContext:
    """Everything the callbacks read; built once by ``app.demo.build_demo``."""

    store: ModelStore
    settings: AppSettings
    examples: tuple[ExampleClip, ...] = ()
    cache: ResultCache = dataclasses.field(default_factory=ResultCache)
    export_root: Path = Path(tempfile.gettempdir()) / "nsnet-explorer"
    runner: Runner = IN_PROCESS       # how the network-running function is called (``app.runtime``)
    exports: Optional[ExportArea] = None  # the bounded files area; default: one at ``export_root``
    dataset: Optional[DatasetStore] = None   # dataset mode (``--data``): its videos' ground truth, its rows
    frame_pool: Optional[FramePool] = None   # the sessions' decoded previews; default: --session-frames-mb

    def __post_init__(self) -> None:
        if self.exports is None:  # opened (start-up clean) on first use
            object.__setattr__(self, "exports", ExportArea(self.export_root, self.settings.export_bytes,
                                                           self.settings.export_max_age_s))
        if self.frame_pool is None:
            object.__setattr__(self, "frame_pool", FramePool(self.settings.session_frames_bytes))


@dataclass(frozen=True)
class Session:
    """One user's analysis: the dense run, its decoded previews and the current (K, lam) view."""

    base: PipelineResult              # dense result as computed (re-ranked from, never modified)
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

    @property
    def frames(self) -> Optional[np.ndarray]:
        """The decoded previews, or None once the memory bound (``--session-frames-mb``) dropped them."""
        return self.pool.get(self.frames_key) if self.pool is not None and self.frames_key else None


@dataclass(frozen=True)
class Analysis:
    """What ``Callbacks.analyze`` produced for one request."""

    frames: np.ndarray                # (T, H, W, 3) uint8 previews
    base: PipelineResult              # the dense run (possibly from the example cache)
    result: PipelineResult            # re-ranked to the requested K / lam
    model_name: str
    example: Optional[ExampleClip]
    cached: bool


def cleanup_session(session: Optional[Session]) -> None:
    """``gr.State`` delete callback: remove the session's folder and let go of its frames."""
    if isinstance(session, Session) and session.pool is not None:
        session.pool.drop(session.frames_key)
    if isinstance(session, Session) and session.export_dir:
        shutil.rmtree(session.export_dir, ignore_errors=True)  # preview JPEGs and downloads


def plot_value(spec: dict) -> PlotData:
    """A figure dict from ``app.plots`` as ``gr.Plot`` sends it (skips building a ``go.Figure``)."""
    return PlotData(type="plotly", plot=json.dumps(spec, allow_nan=False, separators=(",", ":")))


def banner_value(config: PipelineConfig, option: CheckpointOption) -> Any:
    """The model banner for a checkpoint (``app.model_info``): text and its CSS classes."""
    info = describe(config, option.label, option.source)
    return gr.update(value=banner_markdown(info), elem_classes=banner_classes(info))


def _gallery_key(result: PipelineResult) -> tuple:
    """What the gallery shows of a result: which previews, with which captions."""
    return tuple(sorted(int(i) for i in result.selected)), [c for _, c in views.gallery_items(result, range(result.num_frames))]


def _images(session: "Session") -> Any:
    """The session's preview JPEGs, or its in-memory frames once the export area evicted its folder."""
    if session.frame_files and (not session.export_dir or Path(session.export_dir).is_dir()):
        return session.frame_files
    frames = session.frames
    if frames is None:
        raise gr.Error("The previews of this run are no longer kept (this server bounds the disk and memory each "
                       "visitor may use); press Run to analyse the clip again.", title="Previews expired")
    return frames


def _clamp_frame(frame: Any, t: int) -> int:
    try:
        f = int(float(frame))
    except (TypeError, ValueError):
        f = 1
    return min(max(f, 1), t)


class Callbacks:
    """Event handlers bound to one ``AppContext``; ``app.wiring`` connects them to the layout."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ validation
    def check_clip(self, clip: Any) -> Path:
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
        if size > self.ctx.settings.max_upload_bytes:
            raise gr.Error(f"The clip is {size / 2**20:.1f} MB; this server accepts up to "
                           f"{self.ctx.settings.max_upload_mb:g} MB.", title="File too large")
        if size == 0:
            raise gr.Error(f"'{name}' is empty.", title="Cannot analyse this input")
        return path

    def check_params(self, t: Any, k: Any, lam: Any) -> tuple[int, int, float]:
        """Whole numbers T and K, a finite λ, T within this server's limit, then nsnet's own check."""
        t, k, lam = whole_number(t, "T"), whole_number(k, "K"), finite_number(lam, "λ")
        if t > self.ctx.settings.max_frames:
            raise gr.Error(f"T={shown(t)} is above this server's limit of {self.ctx.settings.max_frames} previews.")
        PipelineConfig.validate(t, k, lam)  # ConfigError -> one-line gr.Error via user_errors
        return t, k, lam

    def check_pixels(self, path: Path) -> None:
        """``--max-frame-pixels`` below the library's ceiling: probe the headers first (else nsnet checks)."""
        limit = self.ctx.settings.max_frame_pixels
        if limit >= limits.MAX_SOURCE_PIXELS:
            return
        info = probe(path, time_budget_s=self.ctx.settings.time_budget_s)
        if info.width * info.height > limit:
            shown_limit = f"{limit / 1e6:.1f} Mpx" if limit >= 1e6 else f"{limit} pixels"
            raise gr.Error(f"{error_text(path.name)}: frames of {info.width}x{info.height} pixels are above this "
                           f"server's limit of {shown_limit}.", title="Video too large")

    # ------------------------------------------------------------ analysis
    def analyze(self, clip: Any, t: Any, k: Any, lam: Any, checkpoint: Optional[str], hub_id: Optional[str],
                progress: Optional[Callable[[str, float], None]], *, by_name: bool = False) -> Analysis:
        """Decode and run a clip densely (or take an example's cached run), at the requested K / λ.

        ``by_name``: ``checkpoint`` is a picker label or (where allowed) a Hub id (``/analyze``).
        """
        path = self.check_clip(clip)
        t, k, lam = self.check_params(t, k, lam)
        store = self.ctx.store
        pipe, option = store.get_by_name(checkpoint) if by_name else store.get(checkpoint, hub_id)
        example = match_example(path, self.ctx.examples) if self.ctx.examples else None
        if example is None and self.ctx.dataset is not None:
            example = self.ctx.dataset.match(path)  # a dataset video: its ground truth, its cache entry
        key = (option.source, example.sha256, t) if example else None
        run = self.ctx.cache.get(key) if key else None
        cached = run is not None
        if run is None:
            self.check_pixels(path)
            start = time.perf_counter()
            runner = self.ctx.runner
            clip_data, base = runner.analyze(pipe, str(path), t, k, lam, self.ctx.settings.time_budget_s,
                                             progress if runner.reports_progress else None)
            log.info("analysed %s (T=%d, K=%d) in %.0f ms", path.name, t, k, (time.perf_counter() - start) * 1e3)
            run = CachedRun(clip_data.frames, base)
            if key:
                self.ctx.cache.put(key, run)
        base = run.result
        result = base if (base.k == k and math.isclose(base.lam, lam)) else methods.rerank(base, k, lam)
        return Analysis(run.frames, base, result, option.label, example, cached)

    def run(self, clip, t, k, lam, checkpoint, hub_id, teacher, frame, session, progress=gr.Progress(),
            request: gr.Request = None):
        """The Run button: decode, sample, recognise (dense) and draw everything."""
        def report(stage: str, frac: float) -> None:
            progress(min(max(frac, 0.0), 1.0), desc=stage)

        a = self.analyze(clip, t, k, lam, checkpoint, hub_id, report)
        clip_name = a.example.path.name if a.example else Path(str(clip)).name
        area = self.ctx.exports
        export_dir = session.export_dir if isinstance(session, Session) and session.export_dir else ""
        if not export_dir or not area.owns(export_dir) or not Path(export_dir).is_dir():
            export_dir = str(area.session_folder(getattr(request, "session_hash", None)))
        # Keep the previous run's previews (a late K/λ event may still show them); drop older ones.
        keep = {Path(session.frame_files[0]).parent} if isinstance(session, Session) and session.frame_files else set()
        for old in Path(export_dir).glob("frames-*"):
            if old not in keep:
                shutil.rmtree(old, ignore_errors=True)
        frame_files = tuple(write_frame_images(a.frames, tempfile.mkdtemp(prefix="frames-", dir=export_dir)))
        area.record(export_dir)  # within the area's size and age bounds (older sessions may go)
        pool = self.ctx.frame_pool
        if isinstance(session, Session) and session.pool is not None:
            session.pool.drop(session.frames_key)  # this visitor's previous run: its JPEGs stay for late events
        new = Session(base=a.base, result=a.result, clip_name=clip_name, model_name=a.model_name,
                      frames_key=pool.put(a.frames), pool=pool, segments=tuple(a.example.segments) if a.example else (), cached=a.cached,
                      export_dir=export_dir, frame_files=frame_files, gt_label=a.example.label if a.example else None)
        ranks = views.selection_ranks(a.result)
        best = min(ranks, key=ranks.get)  # show the most salient frame first
        pipe, option = self.ctx.store.get(checkpoint, hub_id)  # loaded by analyze: the model of this result
        return dict(self.render(new, teacher, best + 1, reset_frame=True), banner=banner_value(pipe.config, option))

    def rerank(self, session, k, lam, teacher, frame):
        """K or λ moved: re-rank the cached per-frame outputs (no decode, no network, no files)."""
        if not isinstance(session, Session):
            return {}
        k, lam = whole_number(k, "K"), finite_number(lam, "λ")
        if k > session.base.num_frames:
            raise gr.Error(f"K={k} is larger than the T={session.base.num_frames} previews of the last run; "
                           "press Run to decode more previews.", title="K too large")
        result = methods.rerank(session.base, k, lam)
        return self.render(dataclasses.replace(session, result=result), teacher, frame, reset_frame=False,
                           previous=session.result)

    def render(self, session: Session, teacher: bool, frame: Any, *, reset_frame: bool,
               previous: Optional[PipelineResult] = None) -> dict[str, Any]:
        """The result outputs for a session (names from ``RESULT_OUTPUTS``).

        With ``previous`` (the result the page shows now), outputs whose content would not
        change are left out, so the browser redraws only what moved. After a run
        (``reset_frame``) every output is sent and the download buttons are enabled.
        """
        r = session.result
        images = _images(session)
        out: dict[str, Any] = {
            "summary": views.summary_markdown(r, session.clip_name, session.model_name, cached=session.cached,
                                              segments=session.segments, gt_label=session.gt_label),
            "plot": plot_value(plots.saliency_spec(r, segments=session.segments, teacher=bool(teacher))),
            "session": session,
        }

        def changed(view: Callable[[PipelineResult], Any]) -> bool:
            return previous is None or view(previous) != view(r)

        if changed(_gallery_key):
            out["gallery"] = gr.update(value=views.gallery_items(r, images), columns=min(max(r.k, 2), 8))
        if changed(views.label_scores):
            out["labels"] = views.label_scores(r)
        if changed(views.comparison_rows):
            out["compare"] = gr.update(value=views.comparison_rows(r), headers=views.COMPARISON_HEADERS)
        if changed(views.cost_markdown):
            out["cost"] = views.cost_markdown(r)
        if reset_frame:  # (after a K / λ move the viewed frame is unchanged; its caption follows in a chained event)
            frame_index = _clamp_frame(frame, r.num_frames)
            image, caption = views.frame_view(r, frame_index - 1, session.segments, images)
            out.update(frame_slider=gr.update(maximum=r.num_frames, value=frame_index, interactive=True),
                       frame_image=image, frame_caption=caption,
                       csv_button=gr.update(interactive=True), json_button=gr.update(interactive=True))
        return out

    def redraw_plot(self, session, teacher):
        if not isinstance(session, Session):
            return {}
        return {"plot": plot_value(plots.saliency_spec(session.result, segments=session.segments,
                                                       teacher=bool(teacher)))}

    def show_frame(self, session, frame):
        if not isinstance(session, Session):
            return {}
        r = session.result
        image, caption = views.frame_view(r, _clamp_frame(frame, r.num_frames) - 1, session.segments,
                                          _images(session))
        return {"frame_image": image, "frame_caption": caption}

    def show_caption(self, session, frame):
        """The viewed frame's caption (after K / λ moved, its rank may have changed)."""
        if not isinstance(session, Session):
            return {}
        r = session.result
        return {"frame_caption": views.frame_caption(r, _clamp_frame(frame, r.num_frames) - 1, session.segments)}

    def select_gallery_frame(self, session, evt: gr.SelectData):
        """Clicking a gallery thumbnail shows that frame in the viewer (1-based slider value)."""
        if not isinstance(session, Session) or evt is None or evt.index is None:
            return {}
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        selected = sorted(int(i) for i in session.result.selected)
        if not 0 <= int(index) < len(selected):
            return {}
        return {"frame_slider": selected[int(index)] + 1}

    def limit_k(self, t, k):
        """Keep K <= T on the sliders."""
        try:
            t, k = int(t), int(k)
        except (TypeError, ValueError):
            return {}
        return {"k_slider": gr.update(maximum=t, value=min(k, t))}

    # ------------------------------------------------------------ downloads
    def _export(self, session: Any, write: Callable[[Session, Path], Path], suffix: str) -> Path:
        if not isinstance(session, Session) or not session.export_dir:
            raise gr.Error("Run a clip first; then its results can be downloaded.", title="Nothing to download")
        folder = Path(session.export_dir)
        area = self.ctx.exports
        if not area.owns(folder):  # a session of another area: write into this one
            folder = area.session_folder(None)
        path = write(session, folder)  # (re-creates a folder the area evicted)
        for old in folder.glob(f"*{suffix}"):  # Gradio served its own copy of earlier downloads
            if old != path:
                old.unlink(missing_ok=True)
        area.record(folder)
        return path

    def forget_session(self, request: gr.Request = None):
        """``demo.unload``: the visitor left; remove the session's folder now (not at its state's expiry)."""
        key = getattr(request, "session_hash", None)
        if key:
            self.ctx.exports.remove(self.ctx.exports.folder_of(key))

    def download_csv(self, session):
        """The CSV button: write the per-frame table of the current K / λ now; returns it for download."""
        path = self._export(session, lambda s, d: write_csv(s.result, d, s.clip_name, s.segments), ".csv")
        return {"csv_file": str(path)}

    def download_json(self, session):
        """The JSON button: write the ``predict --json`` object of the current K / λ now."""
        path = self._export(session, lambda s, d: write_json(s.result, d, s.clip_name), ".json")
        return {"json_file": str(path)}

    # ------------------------------------------------------------ API
    def analyze_api(self, clip, num_frames, k, lam, checkpoint=None):
        """Analyse a clip; the ``predict --json`` object as ``api_result``.

        ``checkpoint`` (optional): a label of the checkpoint picker, or, only with
        ``--allow-hub``, a Hub id ``owner/name[@revision]``; empty: the default model.
        ``video.path`` is ``null``: the server's temp path is meaningless to a client, and
        gradio_client would take any dict with a string ``path`` for a file to download.
        """
        a = self.analyze(clip, num_frames, k, lam, checkpoint, None, None, by_name=True)
        return {"api_result": public_dict(a.result, None)}
