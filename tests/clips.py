"""Write small test videos whose pixels encode the frame index, and read the index back.

Shared by the test files (``from clips import write_clip, frame_index``); pytest puts
``tests/`` on ``sys.path``. Nothing here downloads anything.

Frame layout (the *display* picture, i.e. upright, after any rotation metadata):
a ``4 x 6`` grid of equal cells. The four corner cells are orientation markers
(top-left ON, the other three OFF), so a frame that comes back rotated or mirrored is
rejected. The other 20 cells carry the frame index in binary (cell order: row-major,
skipping corners; least significant bit first), so indices up to ``2**20 - 1``.
ON cells are yellow ``(255, 255, 0)`` and OFF cells black: the index survives lossy
coding, chroma subsampling, gray pixel formats, palette GIFs and resizing, and the
yellow marker tells RGB from BGR (``channel_order``). Keep cells >= ~6 px (e.g. 64x48
frames) for lossy codecs.

``write_clip`` uses lossless or near-lossless settings where the encoder has them, so
``frame_index(decoded) == written index`` holds exactly.
"""
from __future__ import annotations

import io
import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

GRID_ROWS, GRID_COLS = 4, 6
ON = (255, 255, 0)    # yellow: bright in any gray conversion, R != B
OFF = (0, 0, 0)
_CORNERS = {(0, 0): True, (0, GRID_COLS - 1): False,
            (GRID_ROWS - 1, 0): False, (GRID_ROWS - 1, GRID_COLS - 1): False}
_DATA_CELLS = [(r, c) for r in range(GRID_ROWS) for c in range(GRID_COLS) if (r, c) not in _CORNERS]
MAX_INDEX = 2 ** len(_DATA_CELLS) - 1

# friendly codec name -> (PyAV encoder, default pix_fmt, lossless / high-quality options)
CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": ("libx264", "yuv420p", {"qp": "0", "preset": "veryfast"}),
    "hevc": ("libx265", "yuv420p", {"x265-params": "lossless=1:log-level=error"}),
    "vp9": ("libvpx-vp9", "yuv420p", {"lossless": "1", "deadline": "realtime", "cpu-used": "8"}),
    "av1": ("libsvtav1", "yuv420p", {"crf": "8", "preset": "12"}),
    "mpeg4": ("mpeg4", "yuv420p", {"qmin": "1", "qmax": "2"}),
    "mjpeg": ("mjpeg", "yuvj420p", {"qmin": "1", "qmax": "2"}),
    "prores": ("prores_ks", "yuv422p10le", {}),
    "gif": ("gif", "rgb8", {}),
    "ffv1": ("ffv1", "yuv420p", {}),
}
_AUDIO_CODEC = {".webm": "libopus", ".avi": "pcm_s16le"}   # others: aac


def _cell_box(shape: tuple[int, int], r: int, c: int, margin: float = 0.0) -> tuple[slice, slice]:
    """Pixel slices of grid cell (r, c) in an (H, W) picture, shrunk by `margin` per side."""
    h, w = shape
    y0, y1 = r * h / GRID_ROWS, (r + 1) * h / GRID_ROWS
    x0, x1 = c * w / GRID_COLS, (c + 1) * w / GRID_COLS
    dy, dx = (y1 - y0) * margin, (x1 - x0) * margin
    return (slice(int(round(y0 + dy)), max(int(round(y1 - dy)), int(round(y0 + dy)) + 1)),
            slice(int(round(x0 + dx)), max(int(round(x1 - dx)), int(round(x0 + dx)) + 1)))


def make_frame(index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """The upright RGB picture for frame `index`: (H, W, 3) uint8, size = (W, H)."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index {index} outside 0..{MAX_INDEX}")
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    bits = {cell: bool(index >> k & 1) for k, cell in enumerate(_DATA_CELLS)}
    for cell, on in {**_CORNERS, **bits}.items():
        if on:
            img[_cell_box((h, w), *cell)] = ON
    return img


def _cells_on(frame: np.ndarray) -> dict[tuple[int, int], bool]:
    gray = np.asarray(frame, np.float32)
    gray = gray.mean(axis=2) if gray.ndim == 3 else gray
    return {(r, c): float(gray[_cell_box(gray.shape, r, c, margin=0.25)].mean()) > 85.0
            for r in range(GRID_ROWS) for c in range(GRID_COLS)}


def frame_index(frame: np.ndarray) -> int:
    """Read back the index written by `make_frame` from a decoded (H, W, 3) or (H, W) frame.

    Works at any resolution (the grid scales with the frame). Raises ValueError when the
    orientation markers are wrong, i.e. the frame is rotated, mirrored or not ours.
    """
    on = _cells_on(frame)
    bad = [cell for cell, want in _CORNERS.items() if on[cell] != want]
    if bad:
        raise ValueError(f"orientation markers wrong at cells {bad}: frame is rotated, mirrored or not a test frame")
    return sum(1 << k for k, cell in enumerate(_DATA_CELLS) if on[cell])


def channel_order(frame: np.ndarray) -> str:
    """'rgb', 'bgr' or 'gray', judged from the yellow top-left marker of an upright frame."""
    r, _, b = np.asarray(frame, np.float32)[_cell_box(frame.shape[:2], 0, 0, margin=0.25)].mean(axis=(0, 1))
    return "rgb" if r - b > 60 else "bgr" if b - r > 60 else "gray"


class _NonSeekable(io.RawIOBase):
    """Write-only pipe-like file: muxers cannot go back to write duration or an index."""

    def __init__(self, fh):
        self._fh = fh

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        return self._fh.write(data)


def _stream_format(ext: str) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4",
            ".avi": "avi", ".gif": "gif"}.get(ext)


def write_clip(
    path: str | os.PathLike,
    num_frames: int = 30,
    fps: float = 10.0,
    size: tuple[int, int] = (64, 48),
    codec: str = "h264",
    pix_fmt: str | None = None,
    *,
    rotation: int = 0,
    timestamps_s: Sequence[float] | None = None,
    gop: int | None = None,
    audio: bool = False,
    seekable: bool = True,
    first_index: int = 0,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    sample_aspect_ratio: Fraction | None = None,
) -> Path:
    """Write a clip whose frame i shows ``make_frame(first_index + i)``; return its path.

    - container from the extension (.mp4 .mov .mkv .webm .avi .gif ...);
    - codec: a key of ``CODECS`` (lossless / near-lossless settings) or any PyAV encoder;
    - size: the *display* size (W, H); with ``rotation`` (clockwise degrees a player must
      turn the stored picture, the phone "rotate" tag: 0/90/180/270) the stored picture is
      the display one turned back, and a display matrix is written (mp4/mov/mkv);
    - timestamps_s: per-frame presentation times (variable frame rate), default i / fps;
    - gop: keyframe interval in frames (encoder default when None);
    - audio: add a short tone track; seekable=False writes through a pipe-like file, so
      e.g. Matroska ends up with no duration and no index;
    - options / container_options: extra encoder / muxer options (e.g. ``{"movflags": "faststart"}``);
    - sample_aspect_ratio: anamorphic pixels (e.g. ``Fraction(2)``): the stored picture is
      ``size[0] / sar`` wide and players stretch it back to ``size`` (not with rotation).
    """
    path = Path(path)
    encoder, default_pix, default_opts = CODECS.get(codec, (codec, "yuv420p", {}))
    rate = Fraction(fps).limit_denominator(1001)
    w, h = size
    stored = (h, w) if rotation % 180 else (w, h)
    sar = Fraction(sample_aspect_ratio or 1)
    if sar != 1:
        if rotation % 360:
            raise ValueError("write_clip: sample_aspect_ratio with rotation is not supported")
        stored = (int(round(w / sar)), h)
    fmt = _stream_format(path.suffix.lower())
    os.environ.setdefault("SVT_LOG", "1")   # SVT-AV1 prints a banner unless told not to
    fh = open(path, "wb")
    try:
        target = fh if seekable else _NonSeekable(fh)
        with av.open(target, "w", format=fmt, options=container_options or {}) as container:
            stream = container.add_stream(encoder, rate=rate)
            stream.width, stream.height = stored
            stream.pix_fmt = pix_fmt or default_pix
            stream.options = {**default_opts, **(options or {})}
            if gop:
                stream.codec_context.gop_size = gop
            if sar != 1:
                stream.codec_context.sample_aspect_ratio = sar
            if timestamps_s is not None:
                stream.codec_context.time_base = Fraction(1, 90000)
            if rotation % 360:
                stream.set_display_rotation(-rotation)   # PyAV takes counter-clockwise degrees
            audio_stream = _add_audio(container, path.suffix.lower()) if audio else None
            container.start_encoding()   # headers get written even when num_frames == 0
            _encode_frames(container, stream, num_frames, rate, (w, h), stored, rotation, timestamps_s, first_index)
            if audio_stream is not None:
                duration = (timestamps_s[-1] if timestamps_s is not None else num_frames / float(rate))
                _encode_tone(container, audio_stream, duration)
    finally:
        fh.close()
    return path


def _encode_frames(container, stream, num_frames, rate, size, stored, rotation, timestamps_s, first_index):
    columns = (np.arange(stored[0]) * size[0] / stored[0]).astype(int)   # squeeze for anamorphic pixels
    for i in range(num_frames):
        display = make_frame(first_index + i, size)
        picture = np.rot90(display, k=(rotation // 90) % 4)   # undo the player's turn
        picture = np.ascontiguousarray(picture if rotation % 180 else picture[:, columns])
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        if timestamps_s is None:
            frame.pts, frame.time_base = i, 1 / rate
        else:
            frame.pts, frame.time_base = int(round(timestamps_s[i] * 90000)), Fraction(1, 90000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _add_audio(container, ext: str):
    codec = _AUDIO_CODEC.get(ext, "aac")
    stream = container.add_stream(codec, rate=48000)
    stream.layout = "mono"
    return stream


def _encode_tone(container, stream, duration_s: float) -> None:
    rate = stream.codec_context.sample_rate
    n = max(int(duration_s * rate), 1024)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
    fmt = stream.codec_context.format.name
    samples = (tone * 32767).astype(np.int16) if fmt.startswith("s16") else tone
    chunk = 960 if stream.codec_context.name == "libopus" else 1024
    for start in range(0, n - chunk + 1, chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + chunk], format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def encoder_available(codec: str) -> bool:
    """True when this PyAV build can write `codec` (a CODECS key or an encoder name)."""
    try:
        av.codec.Codec(CODECS.get(codec, (codec,))[0], "w")
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------- hostile headers
# Byte patches of files written by write_clip: the data stays valid, the headers lie.


def set_gif_canvas(path: str | os.PathLike, width: int, height: int) -> Path:
    """Rewrite a GIF's logical screen size (bytes 6..9, little endian) in place.

    FFmpeg reports the logical screen as the stream's width x height and decodes every
    frame onto a canvas that large, whatever the size of the frames' own image blocks.
    """
    path = Path(path)
    data = bytearray(path.read_bytes())
    if data[:4] != b"GIF8":
        raise ValueError(f"{path}: not a GIF")
    data[6:10] = struct.pack("<HH", width, height)
    path.write_bytes(bytes(data))
    return path


def set_mkv_duration(path: str | os.PathLike, *, segment_ms: float | None = None, tag: str | None = None,
                     drop_tag: bool = False) -> Path:
    """Rewrite what a Matroska file written by FFmpeg says about its length, in place.

    - segment_ms: the Segment Info Duration (EBML ID 0x4489, an 8-byte big-endian float in
      TimestampScale units, milliseconds in FFmpeg's files); any float, inf and NaN too;
    - tag: the video track's DURATION tag value (FFmpeg writes ``HH:MM:SS.nnnnnnnnn``), at
      most 18 characters, NUL padded;
    - drop_tag: rename the DURATION tag (``XURATION``) so readers fall back to the segment duration.
    """
    path = Path(path)
    data = bytearray(path.read_bytes())
    if segment_ms is not None:
        i = data.find(b"\x44\x89\x88")
        if i < 0:
            raise ValueError(f"{path}: no 8-byte Duration element")
        data[i + 3:i + 11] = struct.pack(">d", segment_ms)
    j = data.find(b"DURATION\x44\x87")   # TagName "DURATION", then the TagString element
    if (tag is not None or drop_tag) and j < 0:
        raise ValueError(f"{path}: no DURATION tag")
    if tag is not None:
        size = data[j + 10] & 0x7F          # one-byte EBML size of the TagString
        value = tag.encode()
        if len(value) > size:
            raise ValueError(f"tag value longer than the {size} bytes there")
        data[j + 11:j + 11 + size] = value.ljust(size, b"\0")
    if drop_tag:
        data[j:j + 1] = b"X"
    path.write_bytes(bytes(data))
    return path


def _mp4_box(data: bytes, name: bytes) -> int:
    i = data.find(name)
    if i < 0:
        raise ValueError(f"no {name.decode()} box")
    if data[i + 4] != 0:
        raise ValueError(f"{name.decode()} box of version {data[i + 4]}: only version 0 is patched")
    return i


def set_mp4_media_duration(path: str | os.PathLike, ticks: int) -> Path:
    """Rewrite the duration (in its own timescale's ticks) of the first ``mdhd`` box (the video track), in place."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    i = _mp4_box(data, b"mdhd")   # name, version+flags, creation, modification, timescale, duration
    data[i + 20:i + 24] = struct.pack(">I", ticks)
    path.write_bytes(bytes(data))
    return path


def mp4_edit(path: str | os.PathLike) -> tuple[int, int]:
    """(segment duration in movie ticks, media time in track ticks) of the first entry of the first ``elst`` box."""
    data = Path(path).read_bytes()
    i = _mp4_box(data, b"elst")   # name, version+flags, entry count, then the entries
    return struct.unpack(">Ii", data[i + 12:i + 20])


def set_mp4_edit(path: str | os.PathLike, segment: int, media_time: int) -> Path:
    """Rewrite the first entry of the first ``elst`` box: play `segment` movie ticks from `media_time` (track ticks)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    i = _mp4_box(data, b"elst")
    data[i + 12:i + 20] = struct.pack(">Ii", segment, media_time)
    path.write_bytes(bytes(data))
    return path
