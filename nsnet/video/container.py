"""Opening a file and reading what its headers say: checks, stream choice, timing, results.

Everything here works on an open PyAV container without decoding a frame (a container
without a stated duration gets one demux-only pass, ``timing``). The result types,
``VideoInfo`` and ``Clip``, follow the conventions in the ``nsnet.video`` docstring.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from fractions import Fraction

import av
import numpy as np

from .. import limits
from .errors import (Cancelled, CorruptVideoError, DecodeTimeoutError, EmptyVideoError, NoDecodableFramesError,
                     NotAVideoError, NoVideoStreamError, StillImageError, TruncatedVideoError,
                     UnsupportedCodecError, UnsupportedGeometryError, VideoError, VideoNotFoundError)

log = logging.getLogger(__name__)

__all__ = [
    "VideoInfo", "Clip", "Deadline", "RAW_DEMUXERS", "open_container", "video_stream", "thread_count",
    "memory_cap", "check_index_within_file", "codec_options", "display_width", "check_geometry", "timing",
    "fingerprint",
]

RAW_DEMUXERS = ("h264", "hevc", "mpegvideo", "m4v", "rawvideo")   # elementary streams: no timestamps
_DECODER_MEMORY_BYTES = 256 << 20   # cap on (threads x full-size frame) for the default thread count
_MAX_DURATION_S = 1e7               # ~4 months: a longer stated duration is a lie (and overflows stream ticks)
_FINGERPRINT_BYTES = 256 << 10      # bytes read from each end of a file for its fingerprint
_TAIL_PACKETS = 2000                # packets demuxed after the last indexed keyframe to find where the data ends
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
    decoded pixel format, ``container`` FFmpeg's demuxer name (``mov,mp4,m4a,3gp,3g2,mj2``),
    ``fingerprint`` what identifies the file's content (:func:`fingerprint`: a copy or a
    renamed file has the same one).
    ``duration_s`` and ``fps`` are always finite and positive (headers that say otherwise
    are not believed), and ``width``/``height`` are within ``nsnet.limits``.
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
    fingerprint: str | None = None   # ``fingerprint(path)``: what identifies the file's content

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


def fingerprint(path: str | os.PathLike) -> str:
    """``"sha256:<16 hex>"`` of a file's size and its first and last _FINGERPRINT_BYTES: the same
    content gives the same value wherever it lies and whatever its name (an upload, a copy, a
    dataset file), another video another one. Reads at most 2 x _FINGERPRINT_BYTES."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h.update(f"{size}:".encode())
        h.update(fh.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            fh.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            h.update(fh.read(_FINGERPRINT_BYTES))
    return "sha256:" + h.hexdigest()[:16]


def _check_file(path: str) -> None:
    try:
        st = os.stat(path)
    except (OSError, ValueError) as err:   # ValueError: a NUL byte in the path
        code = getattr(err, "errno", None)
        if code == errno.ELOOP:
            raise VideoNotFoundError(path, "no such file (symbolic link loop)") from None
        if code == errno.EACCES:
            raise VideoError(path, "cannot be read (permission denied)") from None
        if code == errno.ENAMETOOLONG:
            raise VideoNotFoundError(path, "no such file (name too long)") from None
        raise VideoNotFoundError(path, "no such file") from None
    if not os.path.isfile(path):
        raise VideoNotFoundError(path, "not a regular file")
    if st.st_size == 0:
        raise EmptyVideoError(path, "empty file (0 bytes)")


def _sniff_container(path: str) -> str | None:
    """Name of a video container recognised from the file's first bytes, else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
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


def codec_options() -> dict[str, str]:
    """Options of every decoder: it refuses a picture beyond MAX_SOURCE_PIXELS (say, a size change mid-stream).

    Not given to ``av.open``: FFmpeg's stream probing would then report a GIF's canvas as 0x0
    instead of its size, and ``check_geometry`` could not name it.
    """
    return {"max_pixels": str(int(limits.MAX_SOURCE_PIXELS))}


def display_width(width: int, sar) -> int:
    """Width of a stored picture `width` pixels wide once its sample aspect ratio `sar` is applied."""
    if sar and sar > 0 and sar != 1:
        return max(1, int(round(width * sar)))
    return width


def _mpx(pixels: float) -> str:
    return f"{pixels / 1e6:.1f} Mpx" if pixels < 1e9 else f"{pixels / 1e9:.1f} Gpx"


def check_geometry(path: str, width: int, height: int, sar=None, *, frames: int | None = None,
                   gif: bool = False) -> None:
    """Refuse a picture outside ``nsnet.limits`` before anything of its size is allocated.

    `width` x `height` is the stored picture (what a decoder allocates; unknown when 0),
    `sar` its sample aspect ratio (stretching it to the display size; a 90-degree rotation
    does not change the aspect ratio); an animated GIF (`gif`) decodes its whole canvas for
    each of its `frames` (when known), so their product is bounded too.
    """
    if not width or not height or width < 0 or height < 0:
        return
    if width * height > limits.MAX_SOURCE_PIXELS:
        raise UnsupportedGeometryError(
            path, f"frames of {width}x{height} pixels are too large to decode "
                  f"({_mpx(width * height)}, limit {_mpx(limits.MAX_SOURCE_PIXELS)})")
    shown = display_width(width, sar)
    long, short = max(shown, height), min(shown, height)
    if long > limits.MAX_ASPECT_RATIO * short:
        ratio = long / short
        stored = f" (stored {width}x{height})" if shown != width else ""
        raise UnsupportedGeometryError(
            path, f"unsupported geometry: {shown}x{height} pixels{stored}, aspect ratio "
                  f"{ratio:.{0 if ratio >= 100 else 1}f}:1 is beyond the {limits.MAX_ASPECT_RATIO:g}:1 limit")
    if gif and frames and frames > 0 and width * height * frames > limits.MAX_GIF_PIXELS:
        raise UnsupportedGeometryError(
            path, f"animated GIF too large to decode: {width}x{height} pixels x {frames} frames "
                  f"({_mpx(width * height * frames)}, limit {_mpx(limits.MAX_GIF_PIXELS)})")


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


def timing(path: str, stream, container, deadline: Deadline,
           start_s: float = 0.0) -> tuple[float, float, int | None]:
    """(fps, duration_s, num_frames) from the headers, else from one pass over the packets.

    `start_s` is the presentation time of the video's first frame in stream seconds (its
    0): a stated duration that counts from another 0 (a Matroska segment, a container whose
    audio starts first) is turned into the video's own span from that frame.

    The durations the headers state (stream, Matroska DURATION tag, container) are used
    only when every one is plausible (finite, above half a frame and below
    ``_MAX_DURATION_S``), they agree with one another, the index does not reach far past
    them and (Matroska, whose cues are written after all the data) the packets after the
    last indexed keyframe do not end far before them; otherwise the packets are scanned
    (demux only) for their timestamps. A stated duration far beyond the data elsewhere
    reads as a truncated file (``check_coverage``).
    """
    fps = _nominal_fps(stream, container)
    num_frames = stream.frames if stream.frames and stream.frames > 0 else None
    raw = container.format.name in RAW_DEMUXERS   # an elementary stream's duration is a guess
    stated = [] if raw else _stated_durations(stream, container, start_s)
    duration = _trusted_duration(path, stream, container, stated, fps, deadline) if stated else None
    if duration is None and not stated and num_frames and fps:
        duration = num_frames / fps if num_frames / fps <= _MAX_DURATION_S else None
    if duration is None:
        why = "the stated duration is not credible" if stated else "the container states no duration"
        duration, num_frames, scanned_fps = _scan_packets(path, deadline, why)
        fps = fps or scanned_fps
    fps = fps or (num_frames / duration if num_frames and duration else 25.0)
    if not (math.isfinite(duration) and 0 < duration <= _MAX_DURATION_S and math.isfinite(fps) and fps > 0):
        raise CorruptVideoError(path, f"implausible timestamps: the video track spans {duration:g} s at {fps:g} fps")
    _check_avi_length(path, container, num_frames, fps, duration)
    return fps, max(float(duration), 1.0 / fps), num_frames


def _stated_durations(stream, container, start_s: float = 0.0) -> list[tuple[str, float]]:
    """(source, seconds) of every duration the headers state: stream, then its DURATION tag, then the container.

    Each is the span from the video's first frame (shown at `start_s`, stream seconds) to
    its end. FFmpeg states the stream's duration from the stream's start, the container's
    from the container's start (the earliest stream's); a Matroska segment's duration is
    where the data ends, counted from 0, and so is the DURATION tag FFmpeg writes (other
    muxers write the track's own length there: the one closer to the segment's is taken).
    """
    stated = []
    matroska = container.format.name.startswith("matroska")
    end = None          # where the container says the data ends, in stream seconds
    if container.duration:
        origin = 0.0 if matroska or container.start_time is None else container.start_time / av.time_base
        end = origin + container.duration / av.time_base
    if stream.duration and stream.time_base:
        stated.append(("stream", float(stream.duration * stream.time_base)))
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:   # Matroska writes "HH:MM:SS.nnnnnnnnn" per track
        try:
            hours, minutes, seconds = tag.split(":")
            seconds = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            if matroska and start_s > 0 and (end is None or abs(seconds - end) < abs(seconds + start_s - end)):
                seconds -= start_s   # an end time, as FFmpeg writes it
            stated.append(("DURATION tag", seconds))
        except (ValueError, OverflowError):
            pass
    if end is not None:
        stated.append(("container", end - start_s))
    return stated


def _trusted_duration(path: str, stream, container, stated: list[tuple[str, float]], fps: float | None,
                      deadline: Deadline) -> float | None:
    """The first stated duration if the headers can be believed, else None (log why): scan the packets."""
    frame = 1.0 / (fps or 25.0)
    for source, seconds in stated:
        if not (math.isfinite(seconds) and 0.5 * frame <= seconds <= _MAX_DURATION_S):
            log.info("%s: the %s states an implausible duration (%s s); distrusting the headers", path, source, seconds)
            return None
    source, duration = stated[0]
    for other, seconds in stated[1:]:
        lo, hi = sorted((duration, seconds))
        if hi > 1.5 * lo and hi - lo > 2 * frame:
            log.info("%s: the %s states %.3f s but the %s %.3f s; distrusting the headers",
                     path, source, duration, other, seconds)
            return None
    entries = stream.index_entries
    if len(entries) < 2 or not stream.time_base or stream.time_base <= 0:
        return duration
    first, last = entries[0].timestamp, entries[len(entries) - 1].timestamp
    span = float((last - first) * stream.time_base)
    if span > 1.25 * duration + 2 * frame:
        log.info("%s: the %s states %.3f s but the index reaches %.3f s; distrusting the headers",
                 path, source, duration, span)
        return None
    if duration > 1.25 * span + 2 * frame and container.format.name.startswith("matroska"):
        end = _tail_end(path, stream.index, last, deadline)
        if end is not None and duration > 1.25 * float((end - first) * stream.time_base) + 2 * frame:
            log.info("%s: the %s states %.3f s but the packets end at %.3f s; distrusting the headers",
                     path, source, duration, float((end - first) * stream.time_base))
            return None
    return duration


def _tail_end(path: str, stream_index: int, start: int, deadline: Deadline) -> int | None:
    """Stream timestamp where the packets from the keyframe at `start` on end (a bounded, demux-only
    look at the end of the file); None when that takes over _TAIL_PACKETS packets, finds none, or fails."""
    end, count = None, 0
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams[stream_index]
            container.seek(start, stream=stream, backward=True)
            for packet in container.demux(stream):
                deadline.check()
                if packet.size == 0 or packet.is_discard or packet.pts is None:
                    continue
                count += 1
                if count > _TAIL_PACKETS:
                    return None
                stop = packet.pts + max(packet.duration or 0, 0)
                end = stop if end is None else max(end, stop)
            stream = None
    except (av.FFmpegError, OSError, IndexError) as err:
        log.debug("%s: no look at the end of the file (%s)", path, err)
        return None
    return end


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


def _scan_packets(path: str, deadline: Deadline, why: str = "the container states no duration"
                  ) -> tuple[float, int, float | None]:
    """One demux-only pass (no decoding) over the video packets: (duration_s, count, fps)."""
    log.info("%s: %s; scanning its packets once", path, why)
    with av.open(path, metadata_errors="ignore") as container:
        stream = video_stream(path, container)
        tb = stream.time_base if stream.time_base and stream.time_base > 0 else Fraction(1, 1000)
        count, first, last, last_dur = 0, None, None, 0
        for packet in container.demux(stream):
            deadline.check()
            if packet.size == 0 or packet.is_discard:   # discard: outside an MP4 edit list
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
    step = float(last_dur * tb) if last_dur > 0 else (float((last - first) * tb) / max(count - 1, 1))
    duration = float((last - first) * tb) + step
    return duration, count, fps or (count / duration)
