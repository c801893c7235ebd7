"""Export a result as a per-frame CSV, the ``predict --json`` object, the figure (PNG) and the highlights (MP4).

The explorer writes an export only when the user asks to download it (``write_csv`` /
``write_json`` / ``write_figure`` / ``write_highlight_clip`` from the download buttons' click
callbacks), never on a run or a K/λ move. The figure and the highlight clip are the library's
(``nsnet.export``: the same files ``nsnet export`` writes).

Files are written atomically: each goes to a hidden temporary file in the target
folder and is then renamed over the final name (``os.replace``), so a reader never sees
a partial file. (No fsync: these are short-lived downloads, not data to survive a crash.)
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

from PIL import Image

from nsnet.inference import PipelineResult

from .result import PER_FRAME_HEADERS, Segment, per_frame_rows

__all__ = ["atomic_write_text", "write_frame_images", "per_frame_csv", "public_dict", "result_json", "export_stem",
           "write_csv", "write_json", "write_exports", "write_figure", "write_highlight_clip"]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def per_frame_csv(result: PipelineResult, segments: Sequence[Segment] = ()) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PER_FRAME_HEADERS)
    writer.writerows(per_frame_rows(result, segments))
    return buf.getvalue()


def public_dict(result: PipelineResult, video_path: str | None = None) -> dict:
    """``result.to_dict()`` (the ``predict --json`` schema) with ``video.path`` replaced.

    The server's temporary upload path means nothing to a visitor, so the explorer
    reports the clip's file name instead (or ``None``).
    """
    data = result.to_dict()
    data["video"] = dict(data.get("video") or {}, path=video_path)
    return data


def result_json(result: PipelineResult, video_path: str | None = None) -> str:
    """The ``python -m nsnet predict --json`` object, ``video.path`` set to ``video_path``."""
    return json.dumps(public_dict(result, video_path), indent=2) + "\n"


def export_stem(clip_name: str, result: PipelineResult) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(clip_name).stem).strip("._") or "clip"
    return f"{base[:60]}_T{result.num_frames}_K{result.k}_lam{result.lam:.2f}"


def write_csv(result: PipelineResult, out_dir: str | os.PathLike, clip_name: str,
              segments: Sequence[Segment] = ()) -> Path:
    """Write the per-frame table as ``<stem>.csv`` into ``out_dir``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out_dir / f"{export_stem(clip_name, result)}.csv", per_frame_csv(result, segments))


def write_json(result: PipelineResult, out_dir: str | os.PathLike, clip_name: str) -> Path:
    """Write the ``predict --json`` object as ``<stem>.json`` into ``out_dir``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out_dir / f"{export_stem(clip_name, result)}.json",
                             result_json(result, Path(clip_name).name))


def write_exports(result: PipelineResult, out_dir: str | os.PathLike, clip_name: str,
                  segments: Sequence[Segment] = ()) -> tuple[Path, Path]:
    """Write both exports (``write_csv`` and ``write_json``); returns both paths."""
    return write_csv(result, out_dir, clip_name, segments), write_json(result, out_dir, clip_name)


def _atomic_file(path: Path, write) -> Path:
    """``write(tmp)`` into a hidden temporary name next to ``path``, then renamed over it (none left on failure)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_figure(result: PipelineResult, out_dir: str | os.PathLike, clip_name: str,
                 segments: Sequence[Segment] = ()) -> Path:
    """The saliency chart as ``<stem>.png`` (``nsnet.export``'s paper figure: the explorer's chart with a title,
    3000 x 1320 pixels, rendered by kaleido in a headless Chromium); returns its path.

    Raises ``nsnet.export.ExportError`` (one line) when no browser can render it.
    """
    from nsnet.export.figure import FigureRenderer, paper_spec

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = paper_spec(result, name=Path(clip_name).name, segments=segments)
    with FigureRenderer() as renderer:
        data = renderer.render(spec, "png")
    return _atomic_file(out_dir / f"{export_stem(clip_name, result)}.png", lambda tmp: tmp.write_bytes(data))


def write_highlight_clip(result: PipelineResult, video_path: str | os.PathLike, out_dir: str | os.PathLike,
                         clip_name: str) -> Path:
    """The highlight clip (``nsnet.export.highlights``: the neighbourhood of each selected frame, in time order,
    rank and time drawn on it, H.264) as ``<stem>.highlights.mp4``; returns its path.

    Raises ``nsnet.video.VideoError`` (one line) when the video cannot be decoded.
    """
    from nsnet.export.highlights import write_highlights

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _atomic_file(out_dir / f"{export_stem(clip_name, result)}.highlights.mp4",
                        lambda tmp: write_highlights(tmp, video_path, result))


def write_frame_images(frames, out_dir: str | os.PathLike, quality: int = 90) -> list[str]:
    """Encode the (T, H, W, 3) uint8 previews once as JPEG files (atomically); returns their paths.

    The explorer does this once per run: the gallery and the frame viewer then hand
    Gradio file paths, so moving K or λ neither re-encodes nor writes images.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = out_dir / f"frame_{i + 1:03d}.jpg"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=out_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                Image.fromarray(frame).save(fh, format="JPEG", quality=quality)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(str(path))
    return paths
