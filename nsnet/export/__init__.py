"""``nsnet export``: one video's analysis as files for a paper or a lab meeting.

:func:`export_video` runs the pipeline once and writes, into a folder:

* ``<stem>.png`` (and ``<stem>.svg``): the saliency chart the explorer shows (the same
  Plotly figure, :func:`nsnet.viz.saliency_spec`) with the selected previews, their
  ranks and the top labels, rendered by kaleido in a headless Chromium
  (:mod:`.figure`), PNG at 3000 x 1320 pixels;
* ``<stem>.highlights.mp4``: the neighbourhood of each selected preview, in time order,
  with rank and time drawn on it, H.264 (:mod:`.highlights`);
* ``<stem>.json``: the ``predict --json`` object of the same run.

The browser starts in a background thread while the video is decoded and the networks
run. Everything is written to a hidden temporary folder inside the output folder and
renamed into place only when every file is done, so a failure leaves no partial file
(and removes the output folder if this call created it). Existing files are not
replaced unless ``overwrite`` is set.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..config import PipelineConfig
from ..inference.result import PipelineResult, model_info
from ..video import probe
from .figure import FORMATS, ExportError, FigureRenderer, paper_spec
from .highlights import MAX_SIZE, MAX_WINDOW_S, MIN_SIZE, SIZE, WINDOW_S, HighlightSegment, write_highlights

__all__ = ["ExportError", "ExportResult", "export_paths", "export_video"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """The files written (kind -> path), the pipeline's result, the highlight segments, and where the time went (ms)."""

    files: dict[str, Path]
    result: PipelineResult
    segments: list[HighlightSegment]
    timings_ms: dict[str, float] = field(default_factory=dict)


def export_paths(video: str | os.PathLike, out_dir: str | os.PathLike,
                 figure_formats: Sequence[str] = FORMATS) -> dict[str, Path]:
    """kind -> the path ``export_video`` writes: ``png``/``svg``, ``highlights``, ``json``."""
    stem, out = Path(video).stem or "video", Path(out_dir)
    paths = {fmt: out / f"{stem}.{fmt}" for fmt in figure_formats}
    paths["highlights"] = out / f"{stem}.highlights.mp4"
    paths["json"] = out / f"{stem}.json"
    return paths


def _check_out(paths: dict[str, Path], out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: not a folder")
    for path in paths.values():
        if path.is_dir() or (path.exists() and not path.is_file()):
            raise ExportError(f"{path}: exists and is not a regular file")
        if path.exists() and not overwrite:
            raise ExportError(f"{path} already exists: pass --overwrite to replace it, or choose another --out")


def export_video(pipe, video: str | os.PathLike, out_dir: str | os.PathLike, *, num_frames: int | None = None,
                 k: int | None = None, lam: float | None = None, window_s: float = WINDOW_S, clip_size: int = SIZE,
                 figure_formats: Sequence[str] = FORMATS, overwrite: bool = False,
                 time_budget_s: float | None = 30.0, checkpoint: str | os.PathLike | None = None) -> ExportResult:
    """Analyse ``video`` with ``pipe`` and write the export files into ``out_dir`` (see the module docstring).

    ``checkpoint``: where ``pipe`` was loaded from; it names the model in the JSON's ``model``,
    as ``predict`` does. Raises ``VideoError``, ``ConfigError`` / ``ValueError`` (bad T, K, lambda, window or size)
    or :class:`ExportError` (an output that exists, no browser), each one line, with
    nothing left behind.
    """
    started = time.perf_counter()
    figure_formats = tuple(dict.fromkeys(figure_formats))
    if any(f not in FORMATS for f in figure_formats):
        raise ValueError(f"figure formats must be among {', '.join(FORMATS)}, got {', '.join(figure_formats)}")
    out_dir = Path(out_dir)
    paths = export_paths(video, out_dir, figure_formats)
    _check_out(paths, out_dir, overwrite)
    t = pipe.config.num_frames if num_frames is None else num_frames
    PipelineConfig.validate(t, pipe.config.k if k is None else k, pipe.config.lam if lam is None else lam)
    if not 0 < window_s <= MAX_WINDOW_S:
        raise ValueError(f"--window-s must be in (0, {MAX_WINDOW_S:g}] seconds, got {window_s}")
    if not MIN_SIZE <= clip_size <= MAX_SIZE:
        raise ValueError(f"--clip-size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {clip_size}")
    probe(video, time_budget_s=time_budget_s)  # a bad file fails here, before a browser starts
    timings: dict[str, float] = {}
    renderer = FigureRenderer() if figure_formats else None
    created_dir, tmp = False, None
    try:
        mark = time.perf_counter()
        result = pipe.analyze(video, t, k, lam, **({} if time_budget_s is None else {"time_budget_s": time_budget_s}))
        result = dataclasses.replace(result, model=model_info(pipe.config, checkpoint))  # as predict --json
        timings["analyze"] = (time.perf_counter() - mark) * 1e3
        if not out_dir.exists():
            out_dir.mkdir(parents=True)
            created_dir = True
        tmp = Path(tempfile.mkdtemp(prefix=".nsnet-export-", dir=out_dir))
        staged = {kind: tmp / path.name for kind, path in paths.items()}
        staged["json"].write_text(json.dumps(result.to_dict()) + "\n", encoding="utf-8")
        mark = time.perf_counter()
        segments = write_highlights(staged["highlights"], video, result, window_s=window_s, size=clip_size)
        timings["highlights"] = (time.perf_counter() - mark) * 1e3
        if renderer is not None:
            mark = time.perf_counter()
            spec = paper_spec(result, name=Path(video).name)
            for fmt in figure_formats:
                staged[fmt].write_bytes(renderer.render(spec, fmt))
            timings["figure_wait_and_render"] = (time.perf_counter() - mark) * 1e3
        for kind, path in paths.items():
            os.replace(staged[kind], path)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if created_dir and not all(p.exists() for p in paths.values()):
            try:
                out_dir.rmdir()  # the folder this call made, when nothing else is in it
            except OSError:
                pass
        if renderer is not None:
            renderer.close()
    timings["total"] = (time.perf_counter() - started) * 1e3
    log.info("exported %s to %s in %.1f s (%s)", video, out_dir, timings["total"] / 1e3,
             ", ".join(f"{name} {ms / 1e3:.1f} s" for name, ms in timings.items() if name != "total"))
    return ExportResult(paths, result, segments, timings)
