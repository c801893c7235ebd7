"""Filling the TSN sample points with frames: one frame-threaded decoder, or parallel runs.

``sample`` cuts the sorted sample points into runs with ``split`` (where the container
index has keyframes that separate them) and samples the runs in parallel (``Workers``,
one single-threaded ``Sampler`` per run, each on its own container), else samples them
all with one frame-threaded ``Sampler``. ``check_coverage`` then decides whether the
frames found are a faithful sample of the video.
"""
from __future__ import annotations

import logging
import math
import threading

import numpy as np

from .. import limits
from .container import VideoInfo, memory_cap
from .decoder import DecodeStats, Decoder
from .errors import Cancelled, CorruptVideoError, NoDecodableFramesError, TruncatedVideoError, UnsupportedGeometryError

log = logging.getLogger(__name__)

__all__ = ["segment_centres", "output_size", "Sampler", "split", "Workers", "sample", "check_coverage"]

_DEFAULT_GOP_FRAMES = 250           # x264's default keyframe interval, when the index says nothing
_TIME_EPS = 1e-6
_SEEK_OVERHEAD_FRAMES = 2           # a seek costs about this many frames, plus one per decoder thread
_MIN_WORKER_FRAMES = 30             # a parallel worker must have about this many frames to decode
_SKIP_MARGIN_FRAMES, _SKIP_MARGIN_S = 8, 0.3   # decode every frame shown this close before a sample point


def segment_centres(duration_s: float, num_frames: int) -> np.ndarray:
    """TSN sample points: ``(t + 0.5) * duration_s / num_frames`` for t in 0..T-1, seconds, (T,) float64."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not duration_s >= 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    return (np.arange(num_frames, dtype=np.float64) + 0.5) * (float(duration_s) / num_frames)


def output_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """(W, H) with the shorter side == size, aspect kept; None keeps the display size.

    Raises ``UnsupportedGeometryError`` for an output frame above ``MAX_DECODE_PIXELS``
    (probing already refused aspect ratios beyond ``MAX_ASPECT_RATIO``, so with a `size`
    the longer side is at most ``size * MAX_ASPECT_RATIO``).
    """
    if size is None:
        w, h = info.width, info.height
    else:
        short = min(info.width, info.height)
        scale = size / short
        w, h = max(1, round(info.width * scale)), max(1, round(info.height * scale))
        w, h = (size, h) if info.width == short else (w, size)
        if max(w, h) > size * limits.MAX_ASPECT_RATIO + 1:
            raise UnsupportedGeometryError(
                info.path, f"unsupported geometry: {info.width}x{info.height} pixels, aspect ratio beyond the "
                           f"{limits.MAX_ASPECT_RATIO:g}:1 limit")
    if w * h > limits.MAX_DECODE_PIXELS:
        what = "the display size" if size is None else f"size={size}"
        raise UnsupportedGeometryError(
            info.path, f"output frames of {w}x{h} pixels ({what}) are above the limit of "
                       f"{limits.MAX_DECODE_PIXELS / 1e6:.1f} Mpx; ask for a smaller size")
    return (w, h)


def _to_rgb(frame, rotation: int, out_size: tuple[int, int]) -> np.ndarray:
    """Decoded frame -> upright (H, W, 3) uint8 RGB of display size `out_size` = (W, H)."""
    w, h = out_size if rotation in (0, 180) else out_size[::-1]   # size of the stored picture
    rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=-rotation // 90)   # the player turns it clockwise
    return np.ascontiguousarray(rgb)


class Sampler:
    """Fill sorted sample points with the frame shown nearest each, decoding as little as possible.

    A point is filled once a frame shown after it comes out: it gets that frame or the one
    before it (``_nearest``; a tie goes to the earlier one).

    Between consecutive points it either keeps decoding forward or seeks to the keyframe
    before the next point, whichever decodes fewer frames. Where the codec allows, the
    decoder drops non-reference frames until a safe margin before the next point; a point
    whose neighbourhood nevertheless lost a frame is decoded again without skipping.

    A parallel worker samples a run of the points: `position` is then the point before its
    run (so it starts with a seek) and `seg_s` the segment length of the whole call.
    """

    decoders = 1   # decoders that sampled (for the debug log)

    def __init__(self, video: Decoder, targets: np.ndarray, out_size: tuple[int, int], *,
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
        frames, prev, errors = self.video.frames(), None, self.video.stats.errors
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
                damaged = self.video.stats.errors != errors   # damage since prev: keep to the good frame before it
                self._fill(*(prev if damaged and prev else _nearest(prev, (frame, t), float(self.targets[self.i]))))
                filled = True
            prev = self.last = (frame, t)
            errors = self.video.stats.errors
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


def _nearest(before: tuple[object, float] | None, after: tuple[object, float], target: float) -> tuple[object, float]:
    """Of two consecutive frames (t_before <= target < t_after), the one shown nearest the target; a tie
    (within _TIME_EPS) goes to the earlier frame, the one on screen at that instant."""
    if before is None or after[1] - target < target - before[1] - _TIME_EPS:
        return after
    return before


def split(video: Decoder, targets: np.ndarray, workers: int) -> list[slice]:
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


class Workers:
    """Sample runs of consecutive points in parallel: one `Sampler` per run, each in its own thread.

    Each run gets a single-threaded decoder on its own container (a `sibling` of the
    probed video). Same attributes as a `Sampler` for `check_coverage`. `run()` closes
    the probed video first (so a huge video holds only the workers' decoders), closes every
    worker's container on every path, joins every thread it started, and re-raises the
    failure of the earliest failing run (a failing worker stops the others). `complete` is
    False when a run found the data ending before its points (a run before the last, or one
    that got no frame at all). `stats` sums the workers' counters.
    """

    def __init__(self, video: Decoder, targets: np.ndarray, out_size: tuple[int, int], groups: list[slice]):
        self.video, self.targets, self.out_size, self.groups = video, targets, out_size, groups
        n = len(targets)
        self.frames: list[np.ndarray | None] = [None] * n
        self.times = np.zeros(n, np.float64)
        self.seg_s = video.info.duration_s / n
        self.eof_t: float | None = None
        self.complete = True
        self.decoders = len(groups)
        self.stats = DecodeStats()
        self.results: list[Sampler | None] = [None] * len(groups)
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
        finally:   # joined: every worker has finished (and closed its container) before this returns
            for thread in started:
                thread.join()
        failures, self.failures = [err for err in self.failures if err is not None], []
        if failures:
            raise next((err for err in failures if not isinstance(err, Cancelled)), failures[0])
        self.merge(self.results)

    def _work(self, k: int) -> None:
        """Thread body: sample run k on a sibling decoder; a failure stops the other runs."""
        group = self.groups[k]
        try:
            with self.video.sibling() as video:
                before = float(self.targets[group.start - 1]) if group.start else 0.0
                sampler = Sampler(video, self.targets[group], self.out_size, seg_s=self.seg_s, position=before)
                sampler.run()
                self.results[k] = sampler
        except BaseException as err:
            self.failures[k] = err
            self.video.deadline.cancel()   # the others stop at their next packet

    def merge(self, samplers: list[Sampler]) -> None:
        """Collect the runs' frames, times and counters; note a run that found the data ending early."""
        for k, (group, sampler) in enumerate(zip(self.groups, samplers)):
            self.frames[group] = sampler.frames
            self.times[group] = sampler.times
            self.stats.add(sampler.video.stats)
            if sampler.eof_t is not None:
                self.eof_t = sampler.eof_t
                ended_early = k < len(self.groups) - 1 or any(f is None for f in sampler.frames)
                self.complete = self.complete and not ended_early


def sample(video: Decoder, targets: np.ndarray, out_size: tuple[int, int]) -> Sampler | Workers:
    """Fill the sample points: parallel workers where `split` finds runs, else one frame-threaded decoder.

    The counters of every decoder whose frames are returned end up in `video.stats`; the
    result's `decoders` says how many decoders sampled.
    """
    groups = split(video, targets, min(video.threads, memory_cap(video.stream)))
    if len(groups) > 1:
        log.debug("%s: sampling %d points with %d parallel decoders, runs starting at points %s",
                  video.path, len(targets), len(groups), [g.start for g in groups])
        workers = Workers(video, targets, out_size, groups)
        workers.run()
        if workers.complete:
            video.stats.add(workers.stats)
            return workers
        log.debug("%s: the data ends before a run's points; sampling again with one decoder", video.path)
        with video.sibling(video.threads) as again:
            sampler = Sampler(again, targets, out_size)
            sampler.run()
            video.stats.add(again.stats)
        return sampler
    sampler = Sampler(video, targets, out_size)
    sampler.run()
    return sampler


def check_coverage(sampler: Sampler | Workers, video: Decoder) -> None:
    """Raise when the decodable frames do not cover the sample points (truncated / too damaged)."""
    path, info, errors = video.path, video.info, video.stats.errors
    n = len(sampler.targets)
    if any(f is None for f in sampler.frames):
        raise NoDecodableFramesError(path, "no frame of the video track can be decoded")
    slack = max(sampler.seg_s, 2.0 / info.fps)
    stale = np.abs(sampler.targets - sampler.times) > slack
    if sampler.eof_t is not None and info.duration_s - sampler.eof_t > max(slack, 0.1 * info.duration_s) and stale[-1]:
        raise TruncatedVideoError(
            path, f"truncated file: frames stop at {sampler.eof_t:.1f} s of a stated {info.duration_s:.1f} s "
                  "(incomplete upload or copy?)")
    if errors and stale.sum() > n // 2:
        raise CorruptVideoError(
            path, f"too damaged: only {n - int(stale.sum())} of {n} sample points could be decoded")
    if errors:
        log.warning("%s: skipped %d damaged packets/frames; %d of %d sample points use a neighbouring frame",
                    path, errors, int(stale.sum()), n)
