"""``Decoder``: an open container positioned somewhere in its video stream.

A decoder yields good frames with their presentation times (seconds from the first
frame), seeks to keyframes, and can drop non-reference frames while heading for a sample
point (``skip_before``). ``Decoder.probe`` opens a file and decodes its first frame to
learn the facts every later decoder on that file shares (``OpenedVideo``); ``sibling()``
opens another decoder on the same file with those facts, for a parallel worker.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Iterator

import av

from .container import (RAW_DEMUXERS, Deadline, VideoInfo, check_geometry, check_index_within_file, codec_options,
                        display_width, fingerprint, open_container, thread_count, timing, video_stream)
from .errors import NoDecodableFramesError, VideoError

log = logging.getLogger(__name__)

__all__ = ["OpenedVideo", "DecodeStats", "Decoder"]

_MAX_PROBE_PACKETS = 300            # packets to try before declaring "no decodable frame"
_NONREF_CODECS = ("h264", "hevc")   # decoders whose skip_frame="NONREF" drops only frames nobody references


@dataclass(frozen=True)
class OpenedVideo:
    """What probing learnt about a file: one object shared by a decoder and all its siblings.

    stream_index: the video stream decoded; time_base: its tick in seconds; has_pts: False
    for elementary streams (frames are then evenly spaced from 0); origin_s: presentation
    time of the first frame in stream seconds (the 0 of every returned time); dts_lag:
    ticks by which index timestamps trail presentation times; info: the ``VideoInfo``.
    """

    stream_index: int
    time_base: Fraction
    has_pts: bool
    origin_s: float
    dts_lag: int
    info: VideoInfo


@dataclass
class DecodeStats:
    """What decoding cost (for the debug log and tests); ``add`` merges another decoder's counts."""

    errors: int = 0    # packets that failed to decode + frames flagged corrupt
    decoded: int = 0   # good frames out of the decoder
    seeks: int = 0
    nonref: int = 0    # packets fed with skip_frame="NONREF"

    def add(self, other: DecodeStats) -> None:
        self.errors += other.errors
        self.decoded += other.decoded
        self.seeks += other.seeks
        self.nonref += other.nonref


class Decoder:
    """An open container positioned somewhere in its video stream.

    Owns the container; ``close()`` (or leaving the ``with`` block) releases the file and
    the decoder threads, even when an exception (and its traceback) outlives the call.
    Build one with ``Decoder.probe``; ``sibling()`` opens another handle on the same file
    for a parallel worker.
    """

    def __init__(self, path: str, deadline: Deadline, threads: int | None, *, opened: OpenedVideo | None = None):
        """Open `path` and start a decoder (`threads` threads; None: the default budget) at its beginning.

        With `opened` (a sibling) the file must still have the same video stream; without
        it, ``probe`` fills ``opened`` in.
        """
        self.path, self.deadline, self.opened = path, deadline, opened
        self.container = open_container(path)
        self.stream = None
        try:
            self.stream = video_stream(path, self.container)
            if opened is not None and self.stream.index != opened.stream_index:
                raise VideoError(path, "the file changed while it was being read")
            if opened is None:   # what the headers declare, before a frame of that size is decoded
                cc = self.stream.codec_context
                check_geometry(path, cc.width, cc.height, self.stream.sample_aspect_ratio,
                               frames=self.stream.frames, gif=cc.name == "gif")
            self.threads = thread_count(self.stream, threads)
            self._start(self.threads)
        except BaseException:
            self.close()
            raise

    @classmethod
    def probe(cls, path: str, time_budget_s: float | None, threads: int | None) -> Decoder:
        """Open `path` and decode up to its first good frame (kept for ``frames()``), filling ``opened``."""
        decoder = cls(path, Deadline(path, time_budget_s), threads)
        try:
            decoder.opened = decoder._probe()
        except BaseException:
            decoder.close()
            raise
        return decoder

    def _probe(self) -> OpenedVideo:
        time_base = self.stream.time_base or Fraction(1, 1000)
        first = self._first_frame()
        has_pts = first.pts is not None
        self._pending.insert(0, first)
        dts_lag = _index_lag(self.stream, first, time_base)
        check_index_within_file(self.path, self.stream)
        self.opened = OpenedVideo(
            stream_index=self.stream.index, time_base=time_base, has_pts=has_pts,
            origin_s=float(first.pts * time_base) if has_pts else 0.0, dts_lag=dts_lag, info=None)
        self.load_index()   # Matroska reads its cues now (sampling would): timing checks the duration against them
        return replace(self.opened, info=self._make_info(first))

    def _start(self, threads: int) -> None:
        """Decoder threads and fresh counters for the just opened container."""
        self.stream.codec_context.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads
        self.stream.codec_context.options = codec_options()   # never a picture beyond MAX_SOURCE_PIXELS
        self.stats = DecodeStats()
        self._decoder = None      # generator of good frames from the current demux position
        self._pending = []        # frames decoded ahead (by the probe)
        self._error_limit = None  # stop decoding after this many errors (probing)
        self.skip_before = None   # feed packets shown before this time (s) with NONREF; None: never
        self._skip_mode = "DEFAULT"
        self._skipped = False     # some packet went in with NONREF since the last seek
        self._fed: list[float] = []   # times of the packets fed since then (while skipping is on)
        self._index_loaded = False
        self._count = 0           # frames yielded since the start (clock for streams without pts)
        self._last_t = 0.0        # time of the last frame yielded

    def sibling(self, threads: int = 1) -> Decoder:
        """Another handle on this file with its own container and decoder, for a parallel worker.

        It shares this handle's ``opened`` findings (info, timing, index lag) and its time
        budget, so nothing is probed again; it works even after this handle was closed. Its
        decoder starts at the beginning of the file.
        """
        return Decoder(self.path, self.deadline, threads, opened=self.opened)

    @property
    def info(self) -> VideoInfo:
        return self.opened.info

    # -- lifecycle
    def close(self) -> None:
        container = self.container
        self.container = self.stream = self._decoder = None   # drop every reference to the codec
        self._pending = []
        if container is not None:
            container.close()

    def __enter__(self) -> Decoder:
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
                self.stats.errors += 1
                # the message, not the error: a kept traceback would keep this frame and its decoder alive
                log.debug("%s: skipping undecodable packet at pts %s: %s", self.path, packet.pts, str(err))
                frames = []
            for frame in frames:
                if frame.is_corrupt:
                    self.stats.errors += 1
                    continue
                self.stats.decoded += 1
                yield frame
            if self._error_limit is not None and self.stats.errors >= self._error_limit:
                return

    def _choose_skip(self, packet) -> None:
        """skip_frame for this packet: NONREF while it is shown before `skip_before`, else DEFAULT.

        FFmpeg reads the setting per packet (frame threads too). While skipping is on, the
        times of all fed packets are kept so that `missed` can tell a frame that never came out.
        """
        opened = self.opened
        t = None if packet.pts is None else float(packet.pts * opened.time_base) - opened.origin_s
        skip = t is not None and self.skip_before is not None and t < self.skip_before
        mode = "NONREF" if skip else "DEFAULT"
        if mode != self._skip_mode:
            self.stream.codec_context.skip_frame = self._skip_mode = mode
        if skip:
            self.stats.nonref += 1
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
        opened = self.opened
        if self._decoder is None:
            self._decoder = self._decoded()
        while True:
            frame = self._pending.pop(0) if self._pending else next(self._decoder, None)
            if frame is None:
                return
            self._count += 1
            if not opened.has_pts:      # elementary stream: frames are evenly spaced from 0
                self._last_t = (self._count - 1) / opened.info.fps
            elif frame.pts is not None:
                self._last_t = float(frame.pts * opened.time_base) - opened.origin_s
            else:                       # a stray frame without a timestamp: one frame after the last
                self._last_t += 1.0 / opened.info.fps
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
        if self.stats.errors == 0:
            raise NoDecodableFramesError(self.path, "the video track has no frames")
        raise NoDecodableFramesError(self.path, "no frame of the video track can be decoded")

    # -- seeking
    @property
    def can_seek(self) -> bool:
        return self.opened.has_pts and self.container.format.name not in RAW_DEMUXERS

    def _ticks(self, t: float) -> int:
        """Stream timestamp of presentation time t (seconds from the first frame)."""
        return int(math.floor((max(t, 0.0) + self.opened.origin_s) / self.opened.time_base))

    def keyframe_before(self, t: float) -> float | None:
        """Presentation time of the last keyframe at or before t per the container index; None without one."""
        entries = self.stream.index_entries
        if len(entries) < 2:
            return None
        lag = self.opened.dts_lag
        i = entries.search_timestamp(self._ticks(t) - lag, backward=True)
        if i < 0:
            return 0.0
        return float((entries[i].timestamp + lag) * self.opened.time_base) - self.opened.origin_s

    def seek(self, t: float) -> bool:
        """Seek to the keyframe shown at or before t (seconds from the first frame); False if it failed.

        FFmpeg seeks by presentation time (its MP4 demuxer corrects for the DTS index).
        """
        offset = self._ticks(t)
        try:
            self.container.seek(offset, stream=self.stream, backward=True)
        except av.FFmpegError as err:
            log.debug("%s: seek to %.3f s failed (%s); decoding forward instead", self.path, t, str(err))
            return False
        self._decoder, self._pending = None, []
        self._skipped, self._fed = False, []
        self.stats.seeks += 1
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
        fps, duration, num_frames = timing(self.path, stream, container, self.deadline, self.opened.origin_s)
        sar = stream.sample_aspect_ratio
        # the decoded frame again: headers may leave the size out or state another one
        check_geometry(self.path, first.width, first.height, sar, frames=num_frames,
                       gif=stream.codec_context.name == "gif")
        w, h = display_width(first.width, sar), first.height
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=self.path, duration_s=float(duration), fps=float(fps), width=int(w), height=int(h),
            num_frames=num_frames, rotation=rotation, codec=stream.codec.canonical_name,
            pix_fmt=first.format.name, has_audio=bool(container.streams.audio), container=container.format.name,
            fingerprint=fingerprint(self.path))


def _index_lag(stream, first, time_base: Fraction) -> int:
    """Ticks by which index timestamps trail presentation times.

    MP4 indexes decode times (DTS): with B-frames a keyframe is shown a few frames after
    its DTS, so the index alone would place it (and plan a seek to it) too early.
    """
    entries = stream.index_entries
    if first.pts is None or len(entries) == 0:
        return 0
    lag = first.pts - entries[0].timestamp
    return lag if 0 < lag * time_base <= 1 else 0
