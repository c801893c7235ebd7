"""Encode frames to an H.264 MP4 atomically (temp file + ``os.replace``).

Encoding is single-threaded (parallelism is across videos) and every frame carries an
explicit timestamp and time base, so the bytes depend only on the frames: the same seed
gives byte-identical files. (Observed here: without frame time bases, with the
encoder's implicit RGB -> YUV conversion, or with x264's macroblock-tree rate control
(``mbtree``), single-threaded libx264 output varied from run to run, so all three are
avoided.)
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["write_mp4", "rgb_to_yuv420p", "GENERATOR_TAG", "is_benchmark_video"]

#: The container comment of every video ``make-synthetic`` writes (how a reader tells one).
GENERATOR_TAG = "nsnet make-synthetic"
#: What x264 records (in its SEI) of the settings below: videos written before the tag have these.
_X264_SETTINGS = (b"threads=1 lookahead_threads=1 sliced_threads=0", b"mbtree=0", b"crf=26.0")


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(H * 3 // 2, W)`` uint8 planar YUV 4:2:0 (BT.601, limited range).

    Done here rather than by the encoder's implicit conversion, which was observed to
    give run-to-run different pixels: this keeps the output bytes a function of the frames.
    """
    x = rgb.astype(np.float32)  # (H, W, 3)
    h, w = x.shape[:2]
    y = x @ np.array([65.481, 128.553, 24.966], np.float32) / 255.0 + 16.0  # (H, W)
    q = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) * 0.25  # (H/2, W/2, 3)
    u = q @ np.array([-37.797, -74.203, 112.0], np.float32) / 255.0 + 128.0
    v = q @ np.array([112.0, -93.786, -18.214], np.float32) / 255.0 + 128.0
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.rint(planes).clip(0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: int,
    *,
    gop_s: float = 2.0,
    crf: int = 26,
    preset: str = "veryfast",
    comment: str | None = None,
) -> int:
    """Write ``(H, W, 3)`` uint8 RGB frames (H, W even) to ``path`` as h264/yuv420p; returns the count.

    ``comment`` goes into the container's metadata (the generator writes :data:`GENERATOR_TAG`).

    The file appears only when complete: frames go to ``.<name>.part`` next to ``path``,
    which is renamed over ``path`` at the end and removed if anything fails.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    n = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            if comment:
                container.metadata["comment"] = comment
            stream = None
            for arr in frames:
                if stream is None:
                    h, w = arr.shape[:2]
                    stream = container.add_stream(
                        "libx264", rate=int(fps),
                        options={"preset": preset, "crf": str(crf),
                                 "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0"})
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                    stream.codec_context.gop_size = max(1, int(round(gop_s * fps)))
                    stream.codec_context.thread_count = 1
                    stream.codec_context.time_base = Fraction(1, int(fps))
                frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(arr), format="yuv420p")
                frame.pts, frame.time_base = n, Fraction(1, int(fps))
                for packet in stream.encode(frame):
                    container.mux(packet)
                n += 1
            if stream is None:
                raise ValueError("no frames to encode")
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def is_benchmark_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` may be a video of the synthetic benchmark (False for anything unreadable).

    True when its container carries :data:`GENERATOR_TAG`, or (files written before the tag)
    when it has the generator's layout: an MP4 with one H.264 track and no audio whose first
    packet records the generator's x264 settings (single-threaded, no macroblock tree, CRF 26).
    Cameras, phones and editors write none of these, so a real clip reads False.
    """
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if container.metadata.get("comment") == GENERATOR_TAG:
                return True
            videos = container.streams.video
            if (container.streams.audio or len(videos) != 1 or "mp4" not in container.format.name
                    or videos[0].codec_context.name != "h264"):
                return False
            for packet in container.demux(videos[0]):
                if packet.size:
                    head = bytes(packet)[:4096]   # x264 writes its settings into the first access unit
                    return all(setting in head for setting in _X264_SETTINGS)
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return False
    return False
