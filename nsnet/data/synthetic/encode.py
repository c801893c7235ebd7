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

__all__ = ["write_mp4", "rgb_to_yuv420p"]


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
) -> int:
    """Write ``(H, W, 3)`` uint8 RGB frames (H, W even) to ``path`` as h264/yuv420p; returns the count.

    The file appears only when complete: frames go to ``.<name>.part`` next to ``path``,
    which is renamed over ``path`` at the end and removed if anything fails.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    n = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
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
