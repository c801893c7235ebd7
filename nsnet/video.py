"""Video input: probe a file and sample ``T`` frames from it with PyAV.

Conventions (everything this module returns follows them):

- **Frames** are ``np.ndarray`` of shape ``(T, H, W, 3)``, dtype ``uint8``, RGB, values
  0..255, *upright*: rotation metadata (phones) is applied, and ``W x H`` is the display
  size (sample aspect ratio applied) scaled so the **shorter side equals ``size``**
  (aspect kept, rounded to whole pixels; small videos are scaled *up* too, so the output
  shape never depends on the input resolution; ``size=None`` keeps the display size).
- **Time** is in seconds, ``float64``, measured from the presentation time of the
  stream's first frame (which is 0). A frame's timestamp is its real presentation time,
  so variable-frame-rate videos report uneven timestamps.
- **Sampling** is TSN-style: the video ``[0, duration)`` is cut into ``T`` equal segments
  and for each segment centre ``(t + 0.5) * duration / T`` the frame *on screen* at that
  instant is returned (the last frame whose timestamp is <= the centre). For a
  constant-rate video of ``N`` frames that is frame ``floor((t + 0.5) * N / T)``.

Decoding cost: per gap between consecutive sample points the reader either decodes
forward or seeks to the keyframe before the next point, whichever decodes fewer frames
(known keyframe positions from the container index, else a guessed GOP). When the index
shows keyframes that split the sample points into runs no decoder would cross without
seeking anyway, the runs are sampled in parallel, each by a single-threaded decoder on its
own container (up to the thread budget; on few cores this beats frame threading), else one
frame-threaded decoder samples them all. H.264/HEVC decoders drop non-reference frames
while heading for a point that is still a safe margin away (``skip_frame="NONREF"``;
reference frames decode exactly as usual), and decode every frame near it; if a frame
near a point still did not come out, that stretch is decoded again without skipping. Only
the returned frames are converted to RGB, and each is resized as soon as it is decoded, so
a 4K or 8K video never holds more than a few full-size frames per decoder.

Robustness: a container without a duration gets one demux-only pass over its packets;
damaged packets/frames are skipped (a sample point whose frame is damaged shows the last
good frame before it); the whole call runs within ``time_budget_s``.

Bad input raises a ``VideoError`` subclass whose ``str()`` is one line,
``"<path>: <problem>"``; nothing stays open afterwards (files, decoder threads):
``VideoNotFoundError`` (also a ``FileNotFoundError``), ``EmptyVideoError``,
``NotAVideoError``, ``NoVideoStreamError`` (audio only), ``StillImageError``,
``TruncatedVideoError``, ``UnsupportedCodecError``, ``NoDecodableFramesError``,
``CorruptVideoError`` (over half the sample points damaged), ``DecodeTimeoutError``.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "VideoError", "VideoNotFoundError", "EmptyVideoError", "NotAVideoError", "NoVideoStreamError",
    "StillImageError", "TruncatedVideoError", "UnsupportedCodecError", "NoDecodableFramesError",
    "CorruptVideoError", "DecodeTimeoutError",
    "VideoInfo", "Clip", "probe", "read_clip", "segment_centres",
]

# ----------------------------------------------------------------------------- errors


class VideoError(Exception):
    """A file that cannot be used as a video. ``str(err)`` is ``"<path>: <problem>"``, one line."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(problem.split())   # one line, whatever the caller passed
        super().__init__(f"{self.path}: {self.problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class EmptyVideoError(VideoError):
    """The file has 0 bytes."""


class NotAVideoError(VideoError):
    """The bytes are not a container FFmpeg recognises."""


class NoVideoStreamError(VideoError):
    """A valid media file without a video track (audio only, or just cover art)."""


class StillImageError(VideoError):
    """A single picture (PNG, JPEG, ...), not a video."""


class TruncatedVideoError(VideoError):
    """The file ends early: an incomplete upload or copy."""


class UnsupportedCodecError(VideoError):
    """This FFmpeg build has no decoder for the video codec."""


class NoDecodableFramesError(VideoError):
    """There is a video track but not a single frame decodes."""


class CorruptVideoError(VideoError):
    """Too many damaged frames to sample the video faithfully."""


class DecodeTimeoutError(VideoError):
    """Decoding ran past the time budget."""


class _Cancelled(VideoError):
    """A parallel worker stopped because another one failed (never leaves this module)."""


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

    frames: ``(T, H, W, 3)`` uint8 RGB 0..255, upright (see the module docstring for size).
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


def segment_centres(duration_s: float, num_frames: int) -> np.ndarray:
    """TSN sample points: ``(t + 0.5) * duration_s / num_frames`` for t in 0..T-1, seconds, (T,) float64."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not duration_s >= 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    return (np.arange(num_frames, dtype=np.float64) + 0.5) * (float(duration_s) / num_frames)


# ----------------------------------------------------------------------------- opening

_MAX_PROBE_PACKETS = 300            # packets to try before declaring "no decodable frame"
_DECODER_MEMORY_BYTES = 256 << 20   # cap on (threads x full-size frame) for the default thread count
_DEFAULT_GOP_FRAMES = 250           # x264's default keyframe interval, when the index says nothing
_TIME_EPS = 1e-6
_SEEK_OVERHEAD_FRAMES = 2           # a seek costs about this many frames, plus one per decoder thread
_MIN_WORKER_FRAMES = 30             # a parallel worker must have about this many frames to decode
_NONREF_CODECS = ("h264", "hevc")   # decoders whose skip_frame="NONREF" drops only frames nobody references
_SKIP_MARGIN_FRAMES, _SKIP_MARGIN_S = 8, 0.3   # decode every frame shown this close before a sample point
_THREAD_EXIT_WAIT_S = 0.25          # how long to wait for finished worker threads to leave the OS
_RAW_DEMUXERS = ("h264", "hevc", "mpegvideo", "m4v", "rawvideo")   # elementary streams: no timestamps
_MAGIC = (  # (offset, bytes, name) of containers we recognise even when FFmpeg cannot open them
    (4, b"ftyp", "MP4/MOV"), (4, b"moov", "MOV"), (4, b"mdat", "MOV"), (4, b"wide", "MOV"),
    (4, b"free", "MOV"), (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"), (8, b"AVI ", "AVI"),
    (0, b"GIF8", "GIF"), (0, b"FLV", "FLV"), (0, b"\x00\x00\x01\xba", "MPEG-PS"),
)


class _Deadline:
    """Raise DecodeTimeoutError once `budget_s` seconds have passed since construction.

    Shared by the parallel workers of one call; ``cancel()`` makes every later ``check()``
    raise ``_Cancelled`` (one worker failed: the others stop at their next packet).
    """

    def __init__(self, path: str, budget_s: float | None):
        self.path, self.budget_s = path, budget_s
        self.end = None if budget_s is None else time.monotonic() + budget_s
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def check(self) -> None:
        if self.cancelled:
            raise _Cancelled(self.path, "stopped: another decoder failed")
        if self.end is not None and time.monotonic() > self.end:
            raise DecodeTimeoutError(
                self.path, f"decoding took longer than the {self.budget_s:g} s time budget "
                           "(try a shorter or lower-resolution video)")


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


def _open_container(path: str):
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


def _video_stream(path: str, container):
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


def _thread_count(stream, threads: int | None) -> int:
    """The thread budget: decoder threads of one decoder, or the number of parallel decoders."""
    if threads is not None:
        return max(1, int(threads))
    return max(1, min(os.cpu_count() or 1, 8, _memory_cap(stream)))


def _memory_cap(stream) -> int:
    """How many full-size frames fit in _DECODER_MEMORY_BYTES (caps threads and parallel decoders)."""
    cc = stream.codec_context
    frame_bytes = max(1, (cc.width or 1) * (cc.height or 1) * 3 // 2)
    return max(1, _DECODER_MEMORY_BYTES // frame_bytes)


# ----------------------------------------------------------------------------- the open video


class _Video:
    """An open container positioned somewhere in its video stream.

    Owns the container; ``close()`` (or leaving the ``with`` block) releases the file and
    the decoder threads, even when an exception (and its traceback) outlives the call.
    ``sibling()`` opens another handle on the same file for a parallel worker.
    """

    def __init__(self, path: str, time_budget_s: float | None, threads: int | None):
        self.path = path
        self.deadline = _Deadline(path, time_budget_s)
        self.container = _open_container(path)
        self.stream = None
        try:
            self.stream = _video_stream(path, self.container)
            self.stream_index = self.stream.index
            self.threads = _thread_count(self.stream, threads)
            self._start(self.threads)
            self.time_base = self.stream.time_base or Fraction(1, 1000)
            first = self._first_frame()
            self.has_pts = first.pts is not None
            self.origin_s = float(first.pts * self.time_base) if self.has_pts else 0.0
            self._pending.insert(0, first)
            self._dts_lag = self._index_lag(first)
            _check_index_within_file(path, self.stream)
            self.info = self._make_info(first)
        except BaseException:
            self.close()
            raise

    def _start(self, threads: int) -> None:
        """Decoder threads and fresh counters for the just opened container."""
        self.stream.codec_context.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads
        self.errors = 0           # packets that failed to decode + frames flagged corrupt
        self._decoder = None      # generator of good frames from the current demux position
        self._pending = []        # frames decoded ahead (by the probe)
        self._error_limit = None  # stop decoding after this many errors (probing)
        self.decoded = 0          # good frames out of the decoder (for the debug log / tests)
        self.seeks = 0
        self.workers = 1          # decoders that sampled (set by _sample; for the debug log / tests)
        self.nonref = 0           # packets fed with skip_frame="NONREF" (for the debug log / tests)
        self.skip_before = None   # feed packets shown before this time (s) with NONREF; None: never
        self._skip_mode = "DEFAULT"
        self._skipped = False     # some packet went in with NONREF since the last seek
        self._fed: list[float] = []   # times of the packets fed since then (while skipping is on)
        self._index_loaded = False
        self._count = 0           # frames yielded since the start (clock for streams without pts)
        self._last_t = 0.0        # time of the last frame yielded

    def sibling(self, threads: int = 1) -> "_Video":
        """Another handle on this file with its own container and decoder, for a parallel worker.

        It takes this handle's findings (info, timing, index lag) and shares its time budget,
        so nothing is probed again; it works even after this handle was closed. Its decoder
        starts at the beginning of the file.
        """
        other = _Video.__new__(_Video)
        other.path, other.deadline, other.threads = self.path, self.deadline, threads
        other.info, other.time_base, other.origin_s = self.info, self.time_base, self.origin_s
        other.has_pts, other._dts_lag, other.stream_index = self.has_pts, self._dts_lag, self.stream_index
        other._decoder, other._pending = None, []
        other.container = _open_container(self.path)
        other.stream = None
        try:
            other.stream = _video_stream(self.path, other.container)
            if other.stream.index != self.stream_index:
                raise VideoError(self.path, "the file changed while it was being read")
            other._start(threads)
        except BaseException:
            other.close()
            raise
        return other

    # -- lifecycle
    def close(self) -> None:
        container = self.container
        self.container = self.stream = self._decoder = None   # drop every reference to the codec
        self._pending = []
        if container is not None:
            container.close()

    def __enter__(self) -> "_Video":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- decoding
    def _decoded(self) -> Iterator:
        """Good frames in presentation order from the current demux position (drains at the end)."""
        for packet in self.container.demux(self.stream):
            self.deadline.check()
            if self.skip_before is not None or self._skip_mode != "DEFAULT":
                self._choose_skip(packet)
            try:
                frames = self.stream.decode(packet)
            except av.FFmpegError as err:
                self.errors += 1
                log.debug("%s: skipping undecodable packet at pts %s: %s", self.path, packet.pts, err)
                frames = []
            for frame in frames:
                if frame.is_corrupt:
                    self.errors += 1
                    continue
                self.decoded += 1
                yield frame
            if self._error_limit is not None and self.errors >= self._error_limit:
                return

    def _choose_skip(self, packet) -> None:
        """skip_frame for this packet: NONREF while it is shown before `skip_before`, else DEFAULT.

        FFmpeg reads the setting per packet (frame threads too). While skipping is on, the
        times of all fed packets are kept so that `missed` can tell a frame that never came out.
        """
        t = None if packet.pts is None else float(packet.pts * self.time_base) - self.origin_s
        skip = t is not None and self.skip_before is not None and t < self.skip_before
        mode = "NONREF" if skip else "DEFAULT"
        if mode != self._skip_mode:
            self.stream.codec_context.skip_frame = self._skip_mode = mode
        if skip:
            self.nonref += 1
            self._skipped = True
        if t is not None and self.skip_before is not None and packet.size:
            self._fed.append(t)

    def missed(self, lo: float, hi: float) -> bool:
        """Whether frames were skipped since the last seek and a packet shown in (lo, hi) gave no frame.

        The decoder returns frames in presentation order, so a fed packet shown strictly
        between two consecutive frames is a frame that did not come out: skipped as
        non-reference (or dropped or damaged, which skipping might have caused). Later
        questions start at `hi` or later, so older times are forgotten.
        """
        missing = self._skipped and any(lo < t < hi for t in self._fed)
        self._fed = [t for t in self._fed if t > hi]
        return missing

    @property
    def can_skip_nonref(self) -> bool:
        """Dropping non-reference frames is exact for this codec, and a seek can undo a wrong guess."""
        return self.can_seek and self.info.codec in _NONREF_CODECS

    def frames(self) -> Iterator[tuple[object, float]]:
        """Yield ``(frame, t)``, t in seconds from the first frame; continues where the last call stopped."""
        if self._decoder is None:
            self._decoder = self._decoded()
        while True:
            frame = self._pending.pop(0) if self._pending else next(self._decoder, None)
            if frame is None:
                return
            self._count += 1
            if not self.has_pts:        # elementary stream: frames are evenly spaced from 0
                self._last_t = (self._count - 1) / self.info.fps
            elif frame.pts is not None:
                self._last_t = float(frame.pts * self.time_base) - self.origin_s
            else:                       # a stray frame without a timestamp: one frame after the last
                self._last_t += 1.0 / self.info.fps
            yield frame, self._last_t

    def _first_frame(self):
        """Decode up to the first good frame, giving up after _MAX_PROBE_PACKETS bad packets/frames."""
        self._decoder = self._decoded()
        self._error_limit = _MAX_PROBE_PACKETS
        try:
            frame = next(self._decoder, None)
        finally:
            self._error_limit = None
        if frame is not None:
            return frame
        if self.errors == 0:
            raise NoDecodableFramesError(self.path, "the video track has no frames")
        raise NoDecodableFramesError(self.path, "no frame of the video track can be decoded")

    # -- seeking
    @property
    def can_seek(self) -> bool:
        return self.has_pts and self.container.format.name not in _RAW_DEMUXERS

    def _index_lag(self, first) -> int:
        """Ticks by which index timestamps trail presentation times.

        MP4 indexes decode times (DTS): with B-frames a keyframe is shown a few frames after
        its DTS, so the index alone would place it (and plan a seek to it) too early.
        """
        entries = self.stream.index_entries
        if not self.has_pts or len(entries) == 0:
            return 0
        lag = first.pts - entries[0].timestamp
        return lag if 0 < lag * self.time_base <= 1 else 0

    def _ticks(self, t: float) -> int:
        """Stream timestamp of presentation time t (seconds from the first frame)."""
        return int(math.floor((max(t, 0.0) + self.origin_s) / self.time_base))

    def keyframe_before(self, t: float) -> float | None:
        """Presentation time of the last keyframe at or before t per the container index; None without one."""
        entries = self.stream.index_entries
        if len(entries) < 2:
            return None
        i = entries.search_timestamp(self._ticks(t) - self._dts_lag, backward=True)
        if i < 0:
            return 0.0
        return float((entries[i].timestamp + self._dts_lag) * self.time_base) - self.origin_s

    def seek(self, t: float) -> bool:
        """Seek to the keyframe shown at or before t (seconds from the first frame); False if it failed.

        FFmpeg seeks by presentation time (its MP4 demuxer corrects for the DTS index).
        """
        offset = self._ticks(t)
        try:
            self.container.seek(offset, stream=self.stream, backward=True)
        except av.FFmpegError as err:
            log.debug("%s: seek to %.3f s failed (%s); decoding forward instead", self.path, t, err)
            return False
        self._decoder, self._pending = None, []
        self._skipped, self._fed = False, []
        self.seeks += 1
        return True

    def load_index(self) -> None:
        """Matroska reads its keyframe index (cues) lazily, on the first seek: trigger it (once)."""
        if (not self._index_loaded and len(self.stream.index_entries) < 2 and self.can_seek
                and self.container.format.name.startswith("matroska")):
            self.seek(0.0)
        self._index_loaded = True

    # -- metadata
    def _make_info(self, first) -> VideoInfo:
        stream, container = self.stream, self.container
        rotation = int(round(-(first.rotation or 0) / 90.0)) * 90 % 360
        fps, duration, num_frames = _timing(self.path, stream, container, self.deadline)
        w, h = first.width, first.height
        sar = stream.sample_aspect_ratio
        if sar and sar > 0 and sar != 1:
            w = max(1, int(round(w * sar)))
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=self.path, duration_s=float(duration), fps=float(fps), width=int(w), height=int(h),
            num_frames=num_frames, rotation=rotation, codec=stream.codec.canonical_name,
            pix_fmt=first.format.name, has_audio=bool(container.streams.audio), container=container.format.name)


def _check_index_within_file(path: str, stream) -> None:
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


def _timing(path: str, stream, container, deadline: _Deadline) -> tuple[float, float, int | None]:
    """(fps, duration_s, num_frames) from the headers, else from one pass over the packets."""
    fps = _nominal_fps(stream, container)
    num_frames = stream.frames or None
    duration = _header_duration(stream, container)
    if container.format.name in _RAW_DEMUXERS:
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
    if container.format.name in _RAW_DEMUXERS:   # their average_rate is a made-up default (25)
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


def _scan_packets(path: str, deadline: _Deadline) -> tuple[float, int, float | None]:
    """One demux-only pass (no decoding) over the video packets: (duration_s, count, fps)."""
    log.info("%s: the container states no duration; scanning its packets once", path)
    with av.open(path, metadata_errors="ignore") as container:
        stream = _video_stream(path, container)
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


# ----------------------------------------------------------------------------- sampling


class _Sampler:
    """Fill sorted sample points with the frame on screen at each, decoding as little as possible.

    Between consecutive points it either keeps decoding forward or seeks to the keyframe
    before the next point, whichever decodes fewer frames. Where the codec allows, the
    decoder drops non-reference frames until a safe margin before the next point; a point
    whose neighbourhood nevertheless lost a frame is decoded again without skipping.

    A parallel worker samples a run of the points: `position` is then the point before its
    run (so it starts with a seek) and `seg_s` the segment length of the whole call.
    """

    def __init__(self, video: _Video, targets: np.ndarray, out_size: tuple[int, int], *,
                 seg_s: float | None = None, position: float = 0.0):
        self.video, self.targets, self.out_size = video, targets, out_size
        n = len(targets)
        self.frames: list[np.ndarray | None] = [None] * n
        self.times = np.zeros(n, np.float64)
        self.i = 0                          # next sample point to fill
        self.fps = video.info.fps
        self.seg_s = video.info.duration_s / n if seg_s is None else seg_s
        self.seek_overhead = _SEEK_OVERHEAD_FRAMES + video.stream.codec_context.thread_count   # incl. the pipeline
        self.position = position            # time of the decoder's last frame (0: at the start)
        self.last: tuple[object, float] | None = None   # last decoded (frame, t), across seeks
        self.eof_t: float | None = None     # time of the last frame when the stream ended early
        self.skip = video.can_skip_nonref   # drop non-reference frames far from the next point
        self.skip_margin = max(_SKIP_MARGIN_FRAMES / self.fps, _SKIP_MARGIN_S)

    def run(self) -> None:
        try:
            self.video.load_index()
            self._aim()
            while self.i < len(self.targets) and self.eof_t is None:
                target = float(self.targets[self.i])
                seeked = self._should_seek(self.position, target) and self.video.seek(target)
                self._decode_run(target if seeked else None)
        finally:
            self.last = None   # a decoded frame keeps the decoder's threads alive
            self.video.skip_before = None

    def _aim(self) -> None:
        """Let the decoder skip non-reference frames shown more than skip_margin before the next point."""
        more = self.skip and self.i < len(self.targets)
        self.video.skip_before = float(self.targets[self.i]) - self.skip_margin if more else None

    def _should_seek(self, position: float, target: float) -> bool:
        if not self.video.can_seek or target <= position:
            return False
        keyframe = self.video.keyframe_before(target)
        if keyframe is None:   # no index: expect to land half a default GOP early
            keyframe = target - 0.5 * _DEFAULT_GOP_FRAMES / self.fps
        if keyframe <= position + _TIME_EPS:
            return False
        return (target - keyframe) * self.fps + self.seek_overhead < (target - position) * self.fps

    def _decode_run(self, seek_target: float | None) -> None:
        """Decode forward, filling sample points, until all are filled, a seek pays off, or the stream ends."""
        frames, prev = self.video.frames(), None
        while True:
            item = next(frames, None)
            if item is None:
                break
            frame, t = item
            if prev is None and seek_target is not None:
                landed_late = t > seek_target + _TIME_EPS   # damaged frames, or a demuxer that seeks loosely
                retry_from, seek_target = seek_target, None
                if landed_late and self._seek_back(retry_from, t):
                    frames = self.video.frames()
                    continue
            filled = False
            if (self.i < len(self.targets) and t > self.targets[self.i] + _TIME_EPS
                    and self.video.missed(prev[1] if prev else -math.inf, t)):
                return self._decode_again(float(self.targets[self.i]))
            while self.i < len(self.targets) and t > self.targets[self.i] + _TIME_EPS:
                self._fill(*(prev or (frame, t)))
                filled = True
            prev = self.last = (frame, t)
            self.position = t
            if self.i == len(self.targets) or (filled and self._should_seek(t, float(self.targets[self.i]))):
                return
        if seek_target is not None and self._seek_back(seek_target, seek_target):   # seek found nothing
            return self._decode_run(None)
        if self.video.missed(self.last[1] if self.last else -math.inf, math.inf):   # the last frame skipped?
            return self._decode_again(self.last[1] if self.last else float(self.targets[self.i]))
        self._end_of_stream()

    def _decode_again(self, t: float) -> None:
        """Stop skipping and decode again from the keyframe before t: a frame that did not come out may show there."""
        log.debug("%s: a frame near %.3f s did not come out while skipping non-reference frames; "
                  "decoding that stretch again without skipping", self.video.path, t)
        self.skip = False
        self._aim()
        if self.video.seek(t):
            return self._decode_run(t)
        if self.video.seek(0.0):
            return self._decode_run(None)
        raise CorruptVideoError(self.video.path, f"cannot seek back to {t:.1f} s to decode it again")

    def _seek_back(self, target: float, landed: float) -> bool:
        """A seek for `target` landed at `landed` (too late, or past the data): seek further back."""
        back = max(2.0, 2 * (landed - target), 2 * self.seg_s)
        log.debug("%s: seek for %.3f s landed at %.3f s; retrying from %.3f s",
                  self.video.path, target, landed, target - back)
        return self.video.seek(target - back if target - back > 0 else 0.0)

    def _end_of_stream(self) -> None:
        """The data ended: the remaining points show the last frame there is."""
        self.eof_t = self.last[1] if self.last is not None else 0.0
        while self.i < len(self.targets) and self.last is not None:
            self._fill(*self.last)

    def _fill(self, frame, t: float) -> None:
        i = self.i
        if i > 0 and self.frames[i - 1] is not None and self.times[i - 1] == t:
            self.frames[i] = self.frames[i - 1]          # same frame again: no second conversion
        else:
            self.frames[i] = _to_rgb(frame, self.video.info.rotation, self.out_size)
        self.times[i] = t
        self.i += 1
        self._aim()


def _split(video: _Video, targets: np.ndarray, workers: int) -> list[slice]:
    """Cut the sorted sample points into up to `workers` runs for parallel decoders, else one run.

    A run may start only at a point whose keyframe (container index) comes more than a
    seek's worth of frames after the previous point: a single decoder would seek there
    too, so separate decoders repeat no work. Cuts are placed to even out the frames each
    run decodes; each run must have about _MIN_WORKER_FRAMES of them.
    """
    n = len(targets)
    whole = [slice(0, n)]
    if min(workers, n) < 2 or not video.can_seek:
        return whole
    video.load_index()
    if len(video.stream.index_entries) < 2:
        return whole
    fps = video.info.fps
    cost = np.zeros(n)          # frames decoded for each point: from its keyframe or the point before
    cuts = []
    for j, t in enumerate(targets.tolist()):
        key = video.keyframe_before(t)
        before = float(targets[j - 1]) if j else 0.0
        cost[j] = max(t - max(key, before), 0.0) * fps + 1
        if j and (key - before) * fps > _SEEK_OVERHEAD_FRAMES + 1:
            cuts.append(j)
    total = float(cost.sum())
    workers = min(workers, n, len(cuts) + 1, int(total // _MIN_WORKER_FRAMES))
    if workers < 2:
        return whole
    done = np.concatenate([[0.0], np.cumsum(cost)])   # done[j]: frames for the points before j
    bounds = [0]
    for k in range(1, workers):
        options = [j for j in cuts if j > bounds[-1]]
        if not options:
            break
        bounds.append(min(options, key=lambda j: abs(done[j] - total * k / workers)))
    bounds.append(n)
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


class _Workers:
    """Sample runs of consecutive points in parallel: one `_Sampler` per run, each in its own thread.

    Each run gets a single-threaded decoder on its own container (a `sibling` of the
    probed video). Same attributes as a `_Sampler` for `_check_coverage`. `run()` closes
    the probed video first (so a huge video holds only the workers' decoders), closes every
    worker's container on every path, and re-raises the failure of the earliest failing
    run (a failing worker stops the others). `complete` is False when a run found the data
    ending before its points (a run before the last, or one that got no frame at all).
    """

    def __init__(self, video: _Video, targets: np.ndarray, out_size: tuple[int, int], groups: list[slice]):
        self.video, self.targets, self.out_size, self.groups = video, targets, out_size, groups
        n = len(targets)
        self.frames: list[np.ndarray | None] = [None] * n
        self.times = np.zeros(n, np.float64)
        self.seg_s = video.info.duration_s / n
        self.eof_t: float | None = None
        self.complete = True
        self.totals = {"errors": 0, "decoded": 0, "seeks": 0, "nonref": 0}
        self.results: list[_Sampler | None] = [None] * len(groups)
        self.failures: list[BaseException | None] = [None] * len(groups)

    def run(self) -> None:
        self.video.close()
        threads = [threading.Thread(target=self._work, args=(k,), name=f"nsnet-video-{k}", daemon=True)
                   for k in range(len(self.groups))]
        started = []
        try:
            for thread in threads:
                thread.start()
                started.append(thread)
            for thread in started:
                thread.join()
        except BaseException:   # interrupted, or no thread to be had
            self.video.deadline.cancel()
            raise
        finally:
            for thread in started:
                thread.join()
            _wait_for_exit([thread.native_id for thread in started])
        failures, self.failures = [err for err in self.failures if err is not None], []
        if failures:
            raise next((err for err in failures if not isinstance(err, _Cancelled)), failures[0])
        self._merge(self.results)

    def _work(self, k: int) -> None:
        """Thread body: sample run k on a sibling decoder; a failure stops the other runs."""
        group = self.groups[k]
        try:
            with self.video.sibling() as video:
                before = float(self.targets[group.start - 1]) if group.start else 0.0
                sampler = _Sampler(video, self.targets[group], self.out_size, seg_s=self.seg_s, position=before)
                sampler.run()
                self.results[k] = sampler
        except BaseException as err:
            self.failures[k] = err
            self.video.deadline.cancel()   # the others stop at their next packet

    def _merge(self, samplers: list[_Sampler]) -> None:
        for k, (group, sampler) in enumerate(zip(self.groups, samplers)):
            self.frames[group] = sampler.frames
            self.times[group] = sampler.times
            for name in self.totals:
                self.totals[name] += getattr(sampler.video, name)
            if sampler.eof_t is not None:
                self.eof_t = sampler.eof_t
                ended_early = k < len(self.groups) - 1 or any(f is None for f in sampler.frames)
                self.complete = self.complete and not ended_early


def _wait_for_exit(thread_ids: list[int]) -> None:
    """Wait briefly until joined threads have left the OS too (``Thread.join`` returns a moment before).

    A caller counting its threads right after ``read_clip`` must see none left (Linux; a no-op elsewhere).
    """
    end = time.monotonic() + _THREAD_EXIT_WAIT_S
    for tid in thread_ids:
        while os.path.exists(f"/proc/self/task/{tid}") and time.monotonic() < end:
            time.sleep(0.0002)


def _sample(video: _Video, targets: np.ndarray, out_size: tuple[int, int]) -> _Sampler | _Workers:
    """Fill the sample points: parallel workers where `_split` finds runs, else one frame-threaded decoder.

    Counters (errors, decoded, seeks, nonref) end up on `video`; `video.workers` says how
    many decoders sampled.
    """
    groups = _split(video, targets, min(video.threads, _memory_cap(video.stream)))
    video.workers = len(groups)
    if len(groups) > 1:
        log.debug("%s: sampling %d points with %d parallel decoders, runs starting at points %s",
                  video.path, len(targets), len(groups), [g.start for g in groups])
        workers = _Workers(video, targets, out_size, groups)
        workers.run()
        if workers.complete:
            for name, value in workers.totals.items():
                setattr(video, name, getattr(video, name) + value)
            return workers
        log.debug("%s: the data ends before a run's points; sampling again with one decoder", video.path)
        video.workers = 1
        with video.sibling(video.threads) as again:
            sampler = _Sampler(again, targets, out_size)
            sampler.run()
            for name in workers.totals:
                setattr(video, name, getattr(video, name) + getattr(again, name))
        return sampler
    sampler = _Sampler(video, targets, out_size)
    sampler.run()
    return sampler


def _to_rgb(frame, rotation: int, out_size: tuple[int, int]) -> np.ndarray:
    """Decoded frame -> upright (H, W, 3) uint8 RGB of display size `out_size` = (W, H)."""
    w, h = out_size if rotation in (0, 180) else out_size[::-1]   # size of the stored picture
    rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=-rotation // 90)   # the player turns it clockwise
    return np.ascontiguousarray(rgb)


def _output_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """(W, H) with the shorter side == size, aspect kept; None keeps the display size."""
    if size is None:
        return (info.width, info.height)
    short = min(info.width, info.height)
    scale = size / short
    w, h = max(1, round(info.width * scale)), max(1, round(info.height * scale))
    return (size, h) if info.width == short else (w, size)


def _check_coverage(sampler: _Sampler | _Workers, video: _Video) -> None:
    """Raise when the decodable frames do not cover the sample points (truncated / too damaged)."""
    path, info = video.path, video.info
    n = len(sampler.targets)
    if any(f is None for f in sampler.frames):
        raise NoDecodableFramesError(path, "no frame of the video track can be decoded")
    slack = max(sampler.seg_s, 2.0 / info.fps)
    stale = np.abs(sampler.targets - sampler.times) > slack
    if sampler.eof_t is not None and info.duration_s - sampler.eof_t > max(slack, 0.1 * info.duration_s) and stale[-1]:
        raise TruncatedVideoError(
            path, f"truncated file: frames stop at {sampler.eof_t:.1f} s of a stated {info.duration_s:.1f} s "
                  "(incomplete upload or copy?)")
    if video.errors and stale.sum() > n // 2:
        raise CorruptVideoError(
            path, f"too damaged: only {n - int(stale.sum())} of {n} sample points could be decoded")
    if video.errors:
        log.warning("%s: skipped %d damaged packets/frames; %d of %d sample points use a neighbouring frame",
                    path, video.errors, int(stale.sum()), n)


# ----------------------------------------------------------------------------- public API


def probe(path: str | os.PathLike, *, time_budget_s: float | None = 30.0) -> VideoInfo:
    """Describe a video without decoding it all: headers plus the first decodable frame.

    When the container states no duration (e.g. Matroska written to a pipe, raw H.264),
    the video packets are scanned once, demux only, within ``time_budget_s``.
    Raises a ``VideoError`` subclass for unusable input.
    """
    path = os.fspath(path)
    try:
        with _Video(path, time_budget_s, threads=1) as video:
            log.debug("%s: probed after decoding %d frame(s)", path, video.decoded)
            return video.info
    except VideoError as err:
        raise _detached(err) from err.__cause__


def read_clip(
    path: str | os.PathLike,
    num_frames: int = 16,
    size: int | None = 224,
    *,
    time_budget_s: float | None = 30.0,
    threads: int | None = None,
) -> Clip:
    """Sample ``num_frames`` frames at the TSN segment centres of the video.

    Args:
        path: the video file (any container/codec this FFmpeg build decodes).
        num_frames: T, the number of frames returned (frames repeat when the video has fewer).
        size: shorter side of the returned frames in pixels, aspect kept, scaled down *or
            up*; ``None`` keeps the display size.
        time_budget_s: wall-clock budget for the whole call (``None``: unlimited); past
            it, ``DecodeTimeoutError``.
        threads: thread budget; ``None`` picks ``min(cpus, 8)``, fewer for huge frames.
            When the container index has keyframes that split the sample points into
            runs, up to this many single-threaded decoders sample the runs in parallel
            (each on its own open file); otherwise one decoder uses this many threads.

    Returns:
        ``Clip``: frames ``(T, H, W, 3)`` uint8 RGB 0..255 upright; ``timestamps_s``
        ``(T,)`` float64, each frame's presentation time in seconds from the first frame;
        ``info`` (``VideoInfo``); ``repeated``.

    Damaged packets are skipped: a sample point whose frame is damaged gets the last good
    frame before it (reporting that frame's own timestamp). Raises a ``VideoError``
    subclass for unusable input (see the module docstring); ``ValueError`` for bad arguments.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1 or None, got {size}")
    path = os.fspath(path)
    try:
        with _Video(path, time_budget_s, threads) as video:
            info = video.info
            sampler = _sample(video, segment_centres(info.duration_s, num_frames), _output_size(info, size))
            _check_coverage(sampler, video)
            log.debug("%s: %d sample points; decoded %d frames with %d seek(s), %d damaged packets/frames; "
                      "%d decoder(s), %d packets fed with skip_frame=NONREF",
                      path, num_frames, video.decoded, video.seeks, video.errors, video.workers, video.nonref)
    except VideoError as err:
        raise _detached(err) from err.__cause__
    return Clip(frames=np.stack(sampler.frames), timestamps_s=sampler.times.copy(), info=info,
                repeated=len(np.unique(sampler.times)) < num_frames)


def _detached(err: VideoError) -> VideoError:
    """Drop the traceback: its frames would keep the decoder (and its threads) alive."""
    return err.with_traceback(None)
