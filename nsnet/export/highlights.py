"""A highlight clip: the neighbourhood of each selected preview, in time order, as H.264 MP4.

For each of the K selected previews (time ``t``), the clip shows the source video from
``t - window`` to ``t + window`` seconds (clipped to the video), one segment after the
other in time order. Each frame carries a label with the frame's rank (1 = highest fused
saliency), ``K``, and the frame's time in the source, plus a timeline at the bottom
marking every selected time and where this frame is; the frame nearest to the selected
preview is framed in the saliency colour. Every segment is an MP4 chapter titled
``#rank · time``, so players list them and readers find them
(``av.open(path).chapters()``).

Frames come from the project's decoder (:mod:`nsnet.video`: rotation applied, damaged
packets skipped, seek-or-decode-forward, a time budget), resized so the shorter side is
at most ``size`` (never up), at the source frame rate up to ``max_fps``. Frames are
drawn with Pillow and encoded with libx264 through PyAV (``yuv420p``, CRF 23, preset
``veryfast``, ``+faststart``), one segment at a time, so memory holds one segment's frames.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import one_line
from ..inference.result import PipelineResult
from ..video import VideoError
from ..video.decoder import Decoder
from ..video.sampling import output_size, sample
from ..viz import COLORS, fmt_time, selection_ranks

__all__ = ["WINDOW_S", "MAX_WINDOW_S", "SIZE", "MIN_SIZE", "MAX_SIZE", "MAX_FPS", "HighlightSegment", "plan_segments",
           "write_highlights"]

WINDOW_S = 1.0          # seconds shown on each side of a selected preview
MAX_WINDOW_S = 10.0
SIZE = 480              # shorter side of the clip (never scaled up)
MIN_SIZE, MAX_SIZE = 64, 1080
MAX_FPS = 30.0
TIME_BUDGET_S = 120.0   # decoding all segments


@dataclass(frozen=True)
class HighlightSegment:
    """One segment of the highlight clip: which preview, its rank and time, the span shown and its frames."""

    rank: int         # 1 = highest fused saliency
    frame: int        # preview index
    time_s: float     # the preview's time in the source
    start_s: float    # span shown, in the source
    end_s: float
    frames: int       # frames in the clip

    def title(self) -> str:
        return f"#{self.rank} · {fmt_time(self.time_s)}"


def plan_segments(result: PipelineResult, duration_s: float | None, window_s: float, fps: float
                  ) -> list[HighlightSegment]:
    """The K segments in time order: ``[t - window, t + window]`` clipped to ``[0, duration]``."""
    if not 0 < window_s <= MAX_WINDOW_S:
        raise ValueError(f"window must be in (0, {MAX_WINDOW_S:g}] seconds, got {window_s}")
    ranks = selection_ranks(result)
    times = np.asarray(result.timestamps_s, dtype=np.float64)
    end_of_video = float(duration_s) if duration_s and math.isfinite(duration_s) else float(np.max(times)) + window_s
    segments = []
    for i in sorted(ranks, key=lambda j: (times[j], j)):
        t = float(times[i])
        start, end = max(0.0, t - window_s), min(end_of_video, t + window_s)
        end = max(end, start + 1.0 / fps)
        segments.append(HighlightSegment(ranks[i], int(i), t, start, end, max(1, round((end - start) * fps))))
    return segments


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: its fixed bitmap font
        return ImageFont.load_default()


def _draw(rgb: np.ndarray, seg: HighlightSegment, k: int, t: float, duration_s: float,
          marks: list[float], exact: bool, font) -> np.ndarray:
    """The frame with its label (rank, K, time), a timeline of the selected times, and a frame when ``exact``."""
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img, "RGBA")
    w, h = img.size
    pad = max(4, h // 60)
    text = f"#{seg.rank} of {k}  ·  {fmt_time(t)}"
    box = draw.textbbox((0, 0), text, font=font)
    draw.rectangle([pad, pad, pad + box[2] - box[0] + 2 * pad, pad + box[3] - box[1] + 2 * pad],
                   fill=(17, 24, 39, 170))
    draw.text((2 * pad - box[0], 2 * pad - box[1]), text, font=font, fill=(255, 255, 255, 255))
    bar_h, y = max(3, h // 90), h - pad - max(3, h // 90)
    draw.rectangle([pad, y, w - pad, y + bar_h], fill=(255, 255, 255, 110))
    span = max(duration_s, 1e-6)

    def x_of(s: float) -> float:
        return pad + (w - 2 * pad) * min(max(s / span, 0.0), 1.0)

    for m in marks:
        draw.rectangle([x_of(m) - 1, y - bar_h, x_of(m) + 1, y + 2 * bar_h], fill=(124, 58, 237, 255))
    draw.ellipse([x_of(t) - bar_h, y - bar_h // 2, x_of(t) + bar_h, y + bar_h + bar_h // 2], fill=(255, 255, 255, 255))
    if exact:
        line = max(2, h // 120)
        draw.rectangle([0, 0, w - 1, h - 1], outline=COLORS["fused"], width=line)
    return np.asarray(img)


def write_highlights(path: str | os.PathLike, video_path: str | os.PathLike, result: PipelineResult, *,
                     window_s: float = WINDOW_S, size: int = SIZE, max_fps: float = MAX_FPS,
                     time_budget_s: float | None = TIME_BUDGET_S) -> list[HighlightSegment]:
    """Write the highlight clip of ``result`` (from ``video_path``) to ``path``; returns its segments.

    Raises ``VideoError`` (one line) when the video cannot be decoded, ``ValueError`` for
    bad arguments. ``path`` is written in place: callers that must not leave a partial
    file write to a temporary name and rename it (as ``nsnet export`` does).
    """
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"clip size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    video_path = os.fspath(video_path)
    try:
        with Decoder.probe(video_path, time_budget_s, threads=None) as video:
            info = video.info
            fps = float(min(info.fps, max_fps))
            short = min(info.width, info.height)
            frame_size = output_size(info, min(int(size), short))
            segments = plan_segments(result, info.duration_s, window_s, fps)
            _encode(path, video, segments, frame_size, fps, info.duration_s)
    except VideoError:
        raise
    except (av.FFmpegError, OSError, RuntimeError, ArithmeticError) as exc:
        raise VideoError(video_path, f"cannot make the highlight clip: {one_line(exc)}") from None
    return segments


def _encode(path, video: Decoder, segments: list[HighlightSegment], frame_size: tuple[int, int], fps: float,
            duration_s: float) -> None:
    w, h = frame_size[0] - frame_size[0] % 2, frame_size[1] - frame_size[1] % 2  # yuv420p needs even sides
    rate = Fraction(fps).limit_denominator(1001)
    font = _font(max(12, h // 22))
    marks = [s.time_s for s in segments]
    chapters, n = [], 0
    with av.open(os.fspath(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for seg in segments:
            targets = seg.start_s + np.arange(seg.frames, dtype=np.float64) / fps
            with video.sibling(video.threads) as dec:
                sampler = sample(dec, targets, frame_size)
            frames, times = sampler.frames, sampler.times
            last = next((f for f in frames if f is not None), None)
            if last is None:
                raise VideoError(video.path, f"no frame could be decoded near {fmt_time(seg.time_s)}")
            exact = int(np.argmin(np.abs(targets - seg.time_s)))
            for j, (frame, t) in enumerate(zip(frames, times)):
                last = frame if frame is not None else last
                rgb = _draw(np.ascontiguousarray(last[:h, :w]), seg, len(segments), float(t), duration_s, marks,
                            j == exact, font)
                vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                vf.pts = n
                n += 1
                for packet in stream.encode(vf):
                    out.mux(packet)
            del frames, sampler
            chapters.append({"id": len(chapters) + 1, "start": n - seg.frames, "end": n,
                             "time_base": 1 / rate, "metadata": {"title": seg.title()}})
        for packet in stream.encode():
            out.mux(packet)
        out.set_chapters(chapters)
