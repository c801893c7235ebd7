"""Sampling of synthetic video *specs*: everything about a video except its pixels.

A :class:`VideoSpec` fixes a video's class, subset, duration, ground-truth segments and
its timeline of scenes (which frames show the action, which show a distractor, a title
card, ...). Sampling one is a few dozen random draws, so statistics over hundreds of
specs are cheap to test; :mod:`.render` turns a spec into frames.

Determinism: a spec depends only on ``(seed, index)`` and the :class:`SynthConfig`, never
on how many videos are generated or on which worker renders it. Every random choice made
later while rendering comes from seeds stored in the spec.

Time convention: frame ``i`` is shown at ``t_i = i / fps`` seconds. A segment covering
frames ``i0 .. i1-1`` is annotated as ``[(i0 - 0.5) / fps, (i1 - 0.5) / fps]`` (clamped to
``[0, duration]``), so every frame timestamp lies at least half a frame away from a
segment boundary and "inside" means the same with open or closed intervals.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .classes import CLASS_NAMES

__all__ = [
    "SynthConfig", "Scene", "VideoSpec", "sample_spec", "NON_SALIENT_KINDS", "SUBSETS",
]

SUBSETS = ("training", "validation", "testing")

# Non-salient scene kinds and their probabilities (identical for every class).
NON_SALIENT_KINDS: dict[str, float] = {
    "background": 0.18,   # the empty location, camera panning
    "distractors": 0.24,  # shared class-agnostic actors moving about
    "near_miss": 0.24,    # a random class's actor tiny, mostly occluded, or badly out of focus
    "title": 0.12,        # title card / caption with text
    "blur": 0.12,         # out-of-focus shot of background and distractors
    "black": 0.10,        # black transition
}

# Subset of a video from its place in its block of C videos: 3/5 training, 1/5 each
# validation and testing, balanced per class over every 5 blocks.
_SUBSET_PATTERN = ("training", "training", "training", "validation", "testing")


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the benchmark; the defaults are the published benchmark."""

    num_classes: int = len(CLASS_NAMES)
    width: int = 320
    height: int = 240
    fps: int = 12
    min_duration_s: float = 5.0
    max_duration_s: float = 30.0
    min_coverage: float = 0.10          # salient fraction of a video, inclusive bounds
    max_coverage: float = 0.50
    coverage_beta: tuple[float, float] = (3.5, 2.5)  # mean 0.1 + 0.4 * 3.5/6 = 1/3
    segment_count_probs: tuple[float, float, float] = (0.40, 0.35, 0.25)  # 1, 2, 3 segments
    min_segment_s: float = 1.0          # fewer segments are used rather than shorter ones
    min_gap_s: float = 0.75             # non-salient gap between two segments

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(CLASS_NAMES):
            raise ValueError(f"num_classes must be in 2..{len(CLASS_NAMES)}, got {self.num_classes}")
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            raise ValueError(f"size must be even and >= 32x32, got {self.width}x{self.height}")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"fps must be in 1..60, got {self.fps}")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ValueError("need 0 < min_duration_s <= max_duration_s")
        if not 0 < self.min_coverage <= self.max_coverage < 1:
            raise ValueError("need 0 < min_coverage <= max_coverage < 1")

    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES[: self.num_classes])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Scene:
    """A contiguous run of frames ``[start, end)`` of one kind.

    ``kind`` is ``"action"`` (salient) or one of :data:`NON_SALIENT_KINDS`. ``fade_in`` /
    ``fade_out`` are frame counts of a fade from / to black inside the scene (only
    non-salient scenes fade). ``seed`` drives every random choice made when rendering it.
    """

    kind: str
    start: int
    end: int
    seed: int
    fade_in: int = 0
    fade_out: int = 0

    @property
    def salient(self) -> bool:
        return self.kind == "action"


@dataclass(frozen=True)
class VideoSpec:
    """Everything about one synthetic video except its pixels."""

    index: int
    video_id: str
    seed: int                      # the benchmark seed
    class_index: int
    class_name: str
    subset: str
    width: int
    height: int
    fps: int
    num_frames: int
    segments: tuple[tuple[float, float], ...]   # seconds, sorted, disjoint
    scenes: tuple[Scene, ...]                   # cover [0, num_frames) in order
    style_seed: int                             # video-wide look: backgrounds, colours, noise

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def salient_frames(self) -> np.ndarray:
        """``(num_frames,)`` bool: True where the frame is inside an action segment."""
        mask = np.zeros(self.num_frames, dtype=bool)
        for sc in self.scenes:
            if sc.salient:
                mask[sc.start : sc.end] = True
        return mask

    def scene_at(self, frame: int) -> Scene:
        for sc in self.scenes:
            if sc.start <= frame < sc.end:
                return sc
        raise IndexError(f"frame {frame} outside 0..{self.num_frames - 1}")

    def annotation(self) -> dict:
        """The ActivityNet v1.3 ``database`` entry of this video."""
        return {
            "subset": self.subset,
            "duration": round(self.duration, 4),
            "url": "",
            "resolution": f"{self.width}x{self.height}",
            "annotations": [
                {"segment": [s, e], "label": self.class_name} for s, e in self.segments
            ],
        }


def video_id(index: int) -> str:
    return f"syn_{index:05d}"


def _class_and_subset(seed: int, index: int, num_classes: int) -> tuple[int, str]:
    """Balanced classes: each block of C consecutive videos holds every class once."""
    block, pos = divmod(index, num_classes)
    perm = np.random.default_rng([seed, block, 0xC1A55]).permutation(num_classes)
    cls = int(perm[pos])
    return cls, _SUBSET_PATTERN[(block + cls) % len(_SUBSET_PATTERN)]


def _split(rng: np.random.Generator, total: int, parts: int, minimum: list[int]) -> list[int]:
    """Split ``total`` into ``parts`` non-negative ints with ``out[i] >= minimum[i]``."""
    free = total - sum(minimum)
    assert free >= 0, (total, minimum)
    w = rng.dirichlet(np.full(parts, 1.5))
    extra = np.floor(w * free).astype(int)
    extra[int(rng.integers(parts))] += free - int(extra.sum())
    return [m + int(x) for m, x in zip(minimum, extra)]


def _sample_segments(rng: np.random.Generator, cfg: SynthConfig, n_frames: int) -> list[tuple[int, int]]:
    """Salient frame ranges ``[(i0, i1), ...]``: 1-3 segments, coverage within bounds."""
    lo, hi = math.ceil(cfg.min_coverage * n_frames), math.floor(cfg.max_coverage * n_frames)
    a, b = cfg.coverage_beta
    cov = cfg.min_coverage + (cfg.max_coverage - cfg.min_coverage) * rng.beta(a, b)
    n_sal = int(np.clip(round(cov * n_frames), lo, hi))
    n_seg = 1 + int(rng.choice(3, p=np.asarray(cfg.segment_count_probs) / sum(cfg.segment_count_probs)))
    min_seg = max(1, round(cfg.min_segment_s * cfg.fps))
    min_gap = max(1, round(cfg.min_gap_s * cfg.fps))
    while n_seg > 1 and (n_sal < n_seg * min_seg or n_frames - n_sal < (n_seg - 1) * min_gap):
        n_seg -= 1
    seg_lens = _split(rng, n_sal, n_seg, [min(min_seg, n_sal // n_seg)] * n_seg)
    gaps = _split(rng, n_frames - n_sal, n_seg + 1, [0] + [min_gap] * (n_seg - 1) + [0])
    out, pos = [], 0
    for gap, length in zip(gaps, seg_lens):
        pos += gap
        out.append((pos, pos + length))
        pos += length
    return out


def _split_gap(rng: np.random.Generator, start: int, end: int, fps: int) -> list[Scene]:
    """Fill the non-salient frames ``[start, end)`` with 1+ scenes of random kinds."""
    length = end - start
    n = max(1, min(round(length / (fps * rng.uniform(2.0, 5.0))), length // max(1, fps // 2)))
    lengths = _split(rng, length, n, [min(max(1, fps // 2), length // n)] * n)
    bounds = [start]
    for ln in lengths:
        bounds.append(bounds[-1] + ln)
    kinds, probs = list(NON_SALIENT_KINDS), np.array(list(NON_SALIENT_KINDS.values()))
    scenes = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
        max_fade = (e - s) // 3
        fade_in = int(min(max_fade, round(rng.uniform(0.3, 0.8) * fps))) if rng.random() < 0.35 else 0
        fade_out = int(min(max_fade, round(rng.uniform(0.3, 0.8) * fps))) if rng.random() < 0.35 else 0
        scenes.append(Scene(kind, s, e, int(rng.integers(2**31)), fade_in, fade_out))
    return scenes


def _seconds(frame_boundary: int, fps: int, n_frames: int) -> float:
    """Half-frame-offset segment boundary in seconds (see the module docstring)."""
    t = (frame_boundary - 0.5) / fps
    return round(min(max(t, 0.0), n_frames / fps), 4)


def sample_spec(seed: int, index: int, cfg: SynthConfig = SynthConfig()) -> VideoSpec:
    """The spec of video ``index`` of the benchmark with this ``seed`` (pure, cheap)."""
    cls, subset = _class_and_subset(seed, index, cfg.num_classes)
    rng = np.random.default_rng([seed, index, 0x5BEC])
    duration = rng.uniform(cfg.min_duration_s, cfg.max_duration_s)
    n_frames = max(2, round(duration * cfg.fps))
    segs = _sample_segments(rng, cfg, n_frames)
    scenes: list[Scene] = []
    pos = 0
    for i0, i1 in segs:
        if i0 > pos:
            scenes += _split_gap(rng, pos, i0, cfg.fps)
        scenes.append(Scene("action", i0, i1, int(rng.integers(2**31))))
        pos = i1
    if pos < n_frames:
        scenes += _split_gap(rng, pos, n_frames, cfg.fps)
    return VideoSpec(
        index=index, video_id=video_id(index), seed=seed, class_index=cls,
        class_name=CLASS_NAMES[cls], subset=subset, width=cfg.width, height=cfg.height,
        fps=cfg.fps, num_frames=n_frames,
        segments=tuple((_seconds(i0, cfg.fps, n_frames), _seconds(i1, cfg.fps, n_frames)) for i0, i1 in segs),
        scenes=tuple(scenes), style_seed=int(rng.integers(2**31)),
    )
