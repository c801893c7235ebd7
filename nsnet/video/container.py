"""Opening a file and reading what its headers say: checks, stream choice, timing, results.

Everything here works on an open PyAV container without decoding a frame (a container
without a stated duration gets one demux-only pass, ``timing``). The result types,
``VideoInfo`` and ``Clip``, follow the conventions in the ``nsnet.video`` docstring.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from fractions import Fraction

import av
import numpy as np

from .errors import (Cancelled, DecodeTimeoutError, EmptyVideoError, NoDecodableFramesError, NotAVideoError,
                     NoVideoStreamError, StillImageError, TruncatedVideoError, UnsupportedCodecError, VideoError,
                     VideoNotFoundError)

log = logging.getLogger(__name__)

__all__ = [
    "VideoInfo", "Clip", "Deadline", "RAW_DEMUXERS", "open_container", "video_stream", "thread_count",
    "memory_cap", "check_index_within_file", "timing",
]

RAW_DEMUXERS = ("h264", "hevc", "mpegvideo", "m4v", "rawvideo")   # elementary streams: no timestamps
_DECODER_MEMORY_BYTES = 256 << 20   # cap on (threads x full-size frame) for the default thread count
_MAGIC = (  # (offset, bytes, name) of containers we recognise even when FFmpeg cannot open them
    (4, b"ftyp", "MP4/MOV"), (4, b"moov", "MOV"), (4, b"mdat", "MOV"), (4, b"wide", "MOV"),
    (4, b"free", "MOV"), (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"), (8, b"AVI ", "AVI"),
    (0, b"GIF8", "GIF"), (0, b"FLV", "FLV"), (0, b"\x00\x00\x01\xba", "MPEG-PS"),
)

# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns without decoding the whole file.

    ``width``/``height`` are the display size (rotation and sample aspect ratio applied);
    ``rotation`` is the clockwise turn in degrees (0/90/180/270) applied to the stored
    picture to show it upright; ``duration_s`` is in seconds (from the container, else
    estimated, see ``probe``); ``num_frames`` is ``None`` when the container does not say;
    ``codec`` is FFmpeg's codec name (``h264``, ``hevc``, ``av1``...), ``pix_fmt`` the
    decoded pixel format, ``container`` FFmpeg's demuxer name (``mov,mp4,m4a,3gp,3g2,mj2``).
    """

    path: str
    duration_s: float
    fps: float
    width: int
    height: int
    num_frames: int | None
    rotation: int
    codec: str
    pix_fmt: str
    has_audio: bool
    container: str

    def to_dict(self) -> dict:
        """JSON-safe dict of all fields."""
        return asdict(self)


@dataclass(frozen=True)
class Clip:
    """``T`` sampled frames.

    frames: ``(T, H, W, 3)`` uint8 RGB 0..255, upright (see the ``nsnet.video`` docstring for size).
    timestamps_s: ``(T,)`` float64, presentation time of each returned frame in seconds
        from the first frame (0); non-decreasing.
    repeated: True when fewer than ``T`` distinct frames were available, so some frames
        appear more than once (very short videos, long still stretches in a VFR video,
        damaged stretches that were skipped).
    """

    frames: np.ndarray
    timestamps_s: np.ndarray
    info: VideoInfo
    repeated: bool

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


# ----------------------------------------------------------------------------- time budget


class Deadline:
    """Raise DecodeTimeoutError once `budget_s` seconds have passed since construction.

    Shared by the parallel workers of one call; ``cancel()`` makes every later ``check()``
    raise ``Cancelled`` (one worker failed: the others stop at their next packet).
    """

    def __init__(self, path: str, budget_s: float | None):
        self.path, self.budget_s = path, budget_s
        self.end = None if budget_s is None else time.monotonic() + budget_s
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled(self.path, "stopped: another decoder failed")
        if self.end is not None and time.monotonic() > self.end:
            raise DecodeTimeoutError(
                self.path, f"decoding took longer than the {self.budget_s:g} s time budget "
                           "(try a shorter or lower-resolution video)")


# ----------------------------------------------------------------------------- opening


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoNotFoundError(path, "no such file")
    if not os.path.isfile(path):
        raise VideoNotFoundError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise EmptyVideoError(path, "empty file (0 bytes)")


def _sniff_container(path: str) -> str | None:
    """Name of a video container recognised from the file's first bytes, else None."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    return next((name for off, magic, name in _MAGIC if head[off:off + len(magic)] == magic), None)


def open_container(path: str):
    """The open PyAV container of an existing, non-empty file, or the reason it cannot be opened."""
    _check_file(path)
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.PermissionError as err:
        raise VideoError(path, "cannot be read (permission denied)") from err
    except (av.FFmpegError, UnicodeDecodeError) as err:
        kind = _sniff_container(path)
        if kind:
            raise TruncatedVideoError(
                path, f"truncated or damaged {kind} file that cannot be opened (incomplete upload or copy?)") from err
        raise NotAVideoError(path, "not a video file (unrecognised format)") from err


def video_stream(path: str, container):
    """The video stream to decode (cover art does not count), or the reason there is none."""
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):   # png_pipe, jpeg_pipe, webp_pipe, ...
        raise StillImageError(path, f"a still image ({fmt.replace('_pipe', '').upper()}), not a video")
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        if container.streams.audio:
            raise NoVideoStreamError(path, "no video track (audio only)")
        raise NoVideoStreamError(path, "no video track")
    stream = streams[0]
    if stream.codec_context is None or not stream.codec_context.is_decoder:
        raise UnsupportedCodecError(path, "its video codec cannot be decoded by this FFmpeg build")
    return stream


def thread_count(stream, threads: int | None) -> int:
    """The thread budget: decoder threads of one decoder, or the number of parallel decoders."""
    if threads is not None:
        return max(1, int(threads))
    return max(1, min(os.cpu_count() or 1, 8, memory_cap(stream)))


def memory_cap(stream) -> int:
    """How many full-size frames fit in _DECODER_MEMORY_BYTES (caps threads and parallel decoders)."""
    cc = stream.codec_context
    frame_bytes = max(1, (cc.width or 1) * (cc.height or 1) * 3 // 2)
    return max(1, _DECODER_MEMORY_BYTES // frame_bytes)


def check_index_within_file(path: str, stream) -> None:
    """An index pointing past the end of the file means the file was cut short."""
    entries = stream.index_entries
    if len(entries) < 2:
        return
    last = entries[len(entries) - 1]
    size = os.path.getsize(path)
    if last.pos > 0 and last.pos + last.size > size:
        ends = float(last.timestamp * stream.time_base) if stream.time_base else 0.0
        raise TruncatedVideoError(
            path, f"truncated file: {size} bytes, but its index reaches byte {last.pos + last.size} "
                  f"(video up to {ends:.1f} s); incomplete upload or copy?")


# ----------------------------------------------------------------------------- timing


def timing(path: str, stream, container, deadline: Deadline) -> tuple[float, float, int | None]:
    """(fps, duration_s, num_frames) from the headers, else from one pass over the packets."""
    fps = _nominal_fps(stream, container)
    num_frames = stream.frames or None
    duration = _header_duration(stream, container)
    if container.format.name in RAW_DEMUXERS:
        duration = None            # FFmpeg guessed it from the bit rate
    if duration is None and num_frames and fps:
        duration = num_frames / fps
    if duration is None:
        duration, num_frames, scanned_fps = _scan_packets(path, deadline)
        fps = fps or scanned_fps
    fps = fps or (num_frames / duration if num_frames and duration else 25.0)
    _check_avi_length(path, container, num_frames, fps, duration)
    return fps, max(float(duration), 1.0 / fps), num_frames


def _nominal_fps(stream, container) -> float | None:
    """Frames per second stated by the container (average for VFR), None if it states nothing usable."""
    if container.format.name in RAW_DEMUXERS:   # their average_rate is a made-up default (25)
        rate = stream.guessed_rate or stream.average_rate
    else:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate and 0 < float(rate) < 1000 else None


def _check_avi_length(path: str, container, num_frames: int | None, fps: float, duration: float) -> None:
    """AVI headers state the frame count; FFmpeg measures the duration from the data actually there."""
    if container.format.name != "avi" or not num_frames:
        return
    stated = num_frames / fps
    if stated > 1.1 * duration + 1.0 / fps:
        raise TruncatedVideoError(
            path, f"truncated file: the header promises {stated:.1f} s but the data holds {duration:.1f} s "
                  "(incomplete upload or copy?)")


def _header_duration(stream, container) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:   # Matroska writes "HH:MM:SS.nnnnnnnnn" per track
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if container.duration:
        return container.duration / av.time_base
    return None


def _scan_packets(path: str, deadline: Deadline) -> tuple[float, int, float | None]:
    """One demux-only pass (no decoding) over the video packets: (duration_s, count, fps)."""
    log.info("%s: the container states no duration; scanning its packets once", path)
    with av.open(path, metadata_errors="ignore") as container:
        stream = video_stream(path, container)
        tb = stream.time_base or Fraction(1, 1000)
        count, first, last, last_dur = 0, None, None, 0
        for packet in container.demux(stream):
            deadline.check()
            if packet.size == 0:
                continue
            count += 1
            if packet.pts is not None:
                first = packet.pts if first is None else min(first, packet.pts)
                if last is None or packet.pts >= last:
                    last, last_dur = packet.pts, packet.duration or 0
        fps = _nominal_fps(stream, container)
        stream = None
    if count == 0:
        raise NoDecodableFramesError(path, "the video track has no frames")
    if first is None or last is None or last == first:
        return count / (fps or 25.0), count, fps
    step = float(last_dur * tb) if last_dur else (float((last - first) * tb) / max(count - 1, 1))
    duration = float((last - first) * tb) + step
    return duration, count, fps or (count / duration)
