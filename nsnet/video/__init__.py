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
  and for each segment centre ``(t + 0.5) * duration / T`` the frame whose presentation
  time is *nearest* that instant is returned (a tie goes to the earlier frame, the one on
  screen then), whatever the stream's layout: B-frames that reorder, open GOPs, an audio
  track, an MP4 edit list, a first frame shown late. For a constant-rate video of ``N``
  frames that is frame ``(t + 0.5) * N / T`` rounded (a half down), at most ``N - 1``.
- **Duration** is the span of the video track from its first frame: a duration stated
  from another 0 (a Matroska segment, a container whose audio starts first) is converted.

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
``CorruptVideoError`` (over half the sample points damaged, or data the decoder rejects),
``DecodeTimeoutError``, ``UnsupportedGeometryError`` (beyond ``nsnet.limits``: aspect ratio
over ``MAX_ASPECT_RATIO``, a stream over ``MAX_SOURCE_PIXELS``, an animated GIF over
``MAX_GIF_PIXELS``, an output frame over ``MAX_DECODE_PIXELS``; refused from the headers,
before a picture of that size is allocated). Stated durations that are not credible
(non-finite, not positive, contradicting each other or the index) are replaced by the
packets' own timestamps.

Layout: ``errors`` (the ``VideoError`` family), ``container`` (opening, stream choice,
timing, ``VideoInfo``/``Clip``), ``decoder`` (``Decoder``: decode, seek, skip), ``sampling``
(the sampler, parallel runs, coverage checks); ``probe`` and ``read_clip`` live here.
"""
from __future__ import annotations

import logging
import os
import re

import av
import numpy as np

from .container import Clip, VideoInfo, fingerprint
from .decoder import Decoder
from .errors import (CorruptVideoError, DecodeTimeoutError, EmptyVideoError, NoDecodableFramesError, NotAVideoError,
                     NoVideoStreamError, StillImageError, TruncatedVideoError, UnsupportedCodecError,
                     UnsupportedGeometryError, VideoError, VideoNotFoundError)
from .sampling import check_coverage, output_size, sample, segment_centres

log = logging.getLogger(__name__)

__all__ = [
    "VideoError", "VideoNotFoundError", "EmptyVideoError", "NotAVideoError", "NoVideoStreamError",
    "StillImageError", "TruncatedVideoError", "UnsupportedCodecError", "NoDecodableFramesError",
    "CorruptVideoError", "DecodeTimeoutError", "UnsupportedGeometryError",
    "VideoInfo", "Clip", "probe", "read_clip", "segment_centres", "fingerprint",
]


def probe(path: str | os.PathLike, *, time_budget_s: float | None = 30.0) -> VideoInfo:
    """Describe a video without decoding it all: headers plus the first decodable frame.

    When the container states no duration (e.g. Matroska written to a pipe, raw H.264),
    the video packets are scanned once, demux only, within ``time_budget_s``.
    Raises a ``VideoError`` subclass for unusable input.
    """
    path = os.fspath(path)
    try:
        with Decoder.probe(path, time_budget_s, threads=1) as video:
            log.debug("%s: probed after decoding %d frame(s)", path, video.stats.decoded)
            return video.info
    except VideoError as err:
        raise _detached(err) from err.__cause__
    except _DATA_ERRORS as err:
        raise _as_video_error(path, err) from _bare(err)


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
        with Decoder.probe(path, time_budget_s, threads) as video:
            info = video.info
            sampler = sample(video, segment_centres(info.duration_s, num_frames), output_size(info, size))
            check_coverage(sampler, video)
            stats = video.stats
            log.debug("%s: %d sample points; decoded %d frames with %d seek(s), %d damaged packets/frames; "
                      "%d decoder(s), %d packets fed with skip_frame=NONREF",
                      path, num_frames, stats.decoded, stats.seeks, stats.errors, sampler.decoders, stats.nonref)
    except VideoError as err:
        raise _detached(err) from err.__cause__
    except _DATA_ERRORS as err:
        raise _as_video_error(path, err) from _bare(err)
    return Clip(frames=np.stack(sampler.frames), timestamps_s=sampler.times.copy(), info=info,
                repeated=len(np.unique(sampler.times)) < num_frames)


#: What PyAV or arithmetic on a file's (bad) metadata may raise deep inside; read_clip/probe
#: turn it into a one-line VideoError naming the file (arguments are checked before).
_DATA_ERRORS = (av.FFmpegError, ValueError, ArithmeticError, RuntimeError, OSError)


def _detached(err: VideoError) -> VideoError:
    """Drop the traceback: its frames would keep the decoder (and its threads) alive."""
    return err.with_traceback(None)


def _bare(err: BaseException) -> BaseException:
    """`err` and the exceptions chained to it without tracebacks (kept as the cause, for debugging)."""
    seen, e = set(), err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        e.__traceback__ = None
        e = e.__cause__ or e.__context__
    return err


def _as_video_error(path: str, err: BaseException) -> VideoError:
    """The VideoError for an unexpected low-level failure on this file's data."""
    log.debug("%s: %s while reading the video", path, type(err).__name__, exc_info=err)
    if isinstance(err, OSError) and not isinstance(err, av.FFmpegError):
        return VideoError(path, f"cannot be read ({err.strerror or type(err).__name__})")
    detail = re.sub(r"\[Errno -?\d+\]\s*", "", " ".join(str(err).split()))
    detail = detail if len(detail) <= 120 else detail[:117] + "..."
    return CorruptVideoError(path, f"damaged or inconsistent video data ({type(err).__name__}: {detail})")
