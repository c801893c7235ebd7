"""The benchmark's action classes and its shared, class-agnostic distractor actors.

Each class is an *actor*: a body shape plus a surface texture that identify it in a
single frame, and a motion pattern that identifies it over time. Colours are never part
of a class: every video draws its actor's two colours from the same palette as the
distractors and backgrounds. Shapes live in unit coordinates (see :mod:`.sprites`).

Motion functions map scene time ``t`` (seconds) and per-scene parameters ``m`` to a
normalised position ``(x, y)`` in ``[0, 1]^2`` (mapped later into the part of the frame
where the whole body stays visible), a rotation, a squash ``(sx, sy)`` and a
deformation phase used by the shape (wave, flap, crawl).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .sprites import Line, Poly, circle

__all__ = ["CLASS_NAMES", "ACTORS", "DISTRACTOR_KINDS", "Actor", "Motion", "distractor_shape"]


def _tri(x: float) -> float:
    """Triangle wave with period 2 and range [0, 1] (bouncing between walls)."""
    return 1.0 - abs((x % 2.0) - 1.0)


@dataclass(frozen=True)
class Motion:
    x: float
    y: float
    angle: float = 0.0
    sx: float = 1.0
    sy: float = 1.0
    phase: float = 0.0


@dataclass(frozen=True)
class Actor:
    name: str
    shape: Callable[[float], list]                      # phase -> primitives
    texture: Callable[[float], Callable]                # phase -> (u, v) -> p
    motion: Callable[[float, dict], Motion]             # (t, m) -> Motion


# ----------------------------------------------------------------------------- shapes
def _star(_: float) -> list:
    a = -math.pi / 2 + np.arange(10) * math.pi / 5
    r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    return [Poly(np.stack([r * np.cos(a), r * np.sin(a)], 1))]


def _ring(_: float) -> list:
    return [circle(0, 0, 1.0), circle(0, 0, 0.55, hole=True)]


def _flag_wave(u, phase: float):
    return 0.16 * (u + 0.9) / 1.9 * np.sin(3.5 * u - phase)


def _flag(phase: float) -> list:
    x = np.linspace(-0.9, 1.0, 14)
    w = _flag_wave(x, phase)
    top = np.stack([x, -0.95 + w], 1)
    bottom = np.stack([x[::-1], 0.15 + w[::-1]], 1)
    pole = np.array([[-1.02, -1.0], [-0.88, -1.0], [-0.88, 1.05], [-1.02, 1.05]])
    return [Poly(pole), Poly(np.concatenate([top, bottom]))]


def _wheel(_: float) -> list:
    spokes = [Line(np.array([[0.0, 0.0], [0.85 * math.cos(k * math.pi / 3), 0.85 * math.sin(k * math.pi / 3)]]), 0.1)
              for k in range(6)]
    return [circle(0, 0, 1.0), circle(0, 0, 0.78, hole=True), *spokes, circle(0, 0, 0.22)]


def _triangle(_: float) -> list:
    return [Poly(np.array([[0.0, -0.8], [0.92, 0.75], [-0.92, 0.75]]))]


def _worm(phase: float) -> list:
    prims = []
    for k in range(7):
        u = -0.95 + 0.3 * k
        v = 0.22 * math.sin(2.4 * u - phase)
        prims.append(circle(u, v, 0.33 if k == 6 else 0.27))
    hu, hv = 0.85, 0.22 * math.sin(2.4 * 0.85 - phase)
    prims.append(circle(hu + 0.09, hv - 0.08, 0.07, hole=True))  # the eye
    return prims


def _bird(phase: float) -> list:
    c = math.cos(phase)  # +1 wings up, -1 wings down
    left = np.array([[-0.08, -0.1], [-0.5, -0.32 * c - 0.1], [-1.05, -0.65 * c], [-0.5, -0.32 * c + 0.08], [-0.08, 0.12]])
    right = left * np.array([-1.0, 1.0])
    body = circle(0, 0.05, 1.0, n=20).points * np.array([0.14, 0.32])
    return [Poly(left), Poly(right), Poly(body), circle(0, -0.3, 0.13)]


def _heart(_: float) -> list:
    a = np.linspace(0, 2 * math.pi, 36, endpoint=False)
    x = 16 * np.sin(a) ** 3 / 17.0
    y = -(13 * np.cos(a) - 5 * np.cos(2 * a) - 2 * np.cos(3 * a) - np.cos(4 * a)) / 17.0
    return [Poly(np.stack([x, y + 0.1], 1))]


def _spiral(_: float) -> list:
    th = np.linspace(0, 5 * math.pi, 60)
    r = 0.12 + 0.85 * th / (5 * math.pi)
    return [Line(np.stack([r * np.cos(th), r * np.sin(th)], 1), 0.17), circle(0, 0, 0.17)]


def _cross(_: float) -> list:
    w, L = 0.22, 1.0
    pts = [(-w, -L), (w, -L), (w, -w), (L, -w), (L, w), (w, w), (w, L), (-w, L), (-w, w), (-L, w), (-L, -w), (-w, -w)]
    return [Poly(np.array(pts))]


def _bolt(_: float) -> list:
    pts = [(0.12, -1.0), (-0.55, 0.15), (-0.06, 0.15), (-0.3, 1.0), (0.55, -0.22), (0.06, -0.22), (0.45, -1.0)]
    return [Poly(np.array(pts))]


def _crescent(_: float) -> list:
    return [circle(0, 0, 1.0, n=36), circle(0.42, -0.25, 0.8, hole=True, n=36)]


# --------------------------------------------------------------------------- textures
def _const(p):
    return lambda _phase: p


def _two_tone_core(u, v):
    return (np.hypot(u, v) < 0.38).astype(np.float32)


def _dots(u, v):
    return (((u * 3.2) % 1 - 0.5) ** 2 + ((v * 3.2) % 1 - 0.5) ** 2 < 0.08).astype(np.float32)


def _flag_texture(phase):
    def tex(u, v):
        checker = (np.floor((u + 0.9) * 2.6) + np.floor((v - _flag_wave(u, phase) + 0.95) * 2.6)) % 2
        return np.where(u < -0.88, 1.0, checker)
    return tex


def _rim_hub(u, v):
    r = np.hypot(u, v)
    return ((r > 0.9) | (r < 0.14)).astype(np.float32)


def _h_stripes(u, v):
    return np.floor((v + 1.0) * 3.5) % 2


def _bands(u, v):
    return np.floor((u + 1.1) / 0.3) % 2


def _chevrons(u, v):
    return np.floor((np.abs(u) * 1.2 + v) * 4.0) % 2


def _rings(u, v):
    return np.floor(np.hypot(u, v + 0.1) * 4.5) % 2


def _spiral_tex(u, v):
    return (np.hypot(u, v) < 0.2).astype(np.float32)


def _diag(u, v):
    return np.floor((u + v) * 2.5 + 10.0) % 2


def _bolt_texture(phase):
    return lambda u, v: np.clip((v + 1.0) / 2.0 + 0.45 * math.sin(phase), 0, 1)


def _wavy(u, v):
    return (np.sin(9 * u + 2.5 * np.sin(5 * v)) > 0).astype(np.float32)


# ---------------------------------------------------------------------------- motions
# m: x0, y0 in [0, 1]; dir = +-1; speed (~0.6..1.6); phase0 in [0, 2pi); tilt in [-0.3, 0.3].
def _m_spin(t, m):
    s = m["speed"]
    return Motion(_tri(m["x0"] + 0.08 * s * t * m["dir"]), _tri(m["y0"] + 0.06 * s * t),
                  m["phase0"] + m["dir"] * 2.5 * s * t)


def _m_bounce(t, m):
    s = m["speed"]
    b = abs(math.sin(math.pi * t * s / 0.9 + m["phase0"]))
    sq = 0.25 * max(0.0, 1.0 - b / 0.25)
    return Motion(_tri(m["x0"] + 0.06 * s * t * m["dir"]), 1.0 - 0.85 * b, m["tilt"] * 0.3, 1 + sq, 1 - sq)


def _m_flag(t, m):
    s = m["speed"]
    return Motion(_tri(m["x0"] + 0.03 * s * t * m["dir"]), _tri(m["y0"] + 0.02 * s * t),
                  m["tilt"] * 0.3 + 0.05 * math.sin(t), phase=m["phase0"] + 5.0 * s * t)


def _m_roll(t, m):
    s = m["speed"]
    x = _tri(m["x0"] + 0.12 * s * t * m["dir"])
    return Motion(x, 0.75 + 0.25 * m["y0"], 0.0, phase=x)  # angle set from x by the renderer


def _m_hop(t, m):
    s = m["speed"]
    h = t * s / 0.8 + m["phase0"]
    b = abs(math.sin(math.pi * h))
    return Motion(_tri(m["x0"] + 0.1 * s * t * m["dir"]), 0.9 - 0.75 * b,
                  m["tilt"] * 0.5 + 0.25 * math.sin(2 * math.pi * h) * m["dir"])


def _m_crawl(t, m):
    s = m["speed"]
    return Motion(_tri(m["x0"] + 0.07 * s * t * m["dir"]), _tri(m["y0"] + 0.02 * s * t),
                  m["tilt"] * 0.3, phase=m["phase0"] + 6.0 * s * t)


def _m_fly(t, m):
    s = m["speed"]
    w = 1.3 * s * t + m["phase0"]
    return Motion(_tri(m["x0"] + 0.1 * s * t * m["dir"]), 0.5 + 0.45 * math.sin(w), 0.2 * math.cos(w) * m["dir"],
                  phase=m["phase0"] + 9.0 * s * t)


def _m_pulse(t, m):
    s = m["speed"]
    k = 1.0 + 0.2 * max(0.0, math.sin(2 * math.pi * 1.3 * s * t + m["phase0"])) ** 3
    return Motion(_tri(m["x0"] + 0.05 * s * t), _tri(m["y0"] + 0.04 * s * t), m["tilt"] * 0.5, k, k)


def _m_twirl(t, m):
    s = m["speed"]
    return Motion(_tri(m["x0"] + 0.05 * s * t * m["dir"]), _tri(m["y0"] + 0.05 * s * t),
                  m["phase0"] + m["dir"] * 3.0 * s * t)


def _m_tumble(t, m):
    s = m["speed"]
    return Motion(_tri(m["x0"] + 0.12 * s * t * m["dir"]), _tri(m["y0"] + 0.1 * s * t),
                  m["phase0"] + m["dir"] * 2.0 * s * t)


def _m_shake(t, m):
    s = m["speed"]
    x = 0.1 + 0.8 * m["x0"] + 0.05 * math.sin(17 * s * t) + 0.03 * math.sin(29 * s * t + 1)
    y = 0.1 + 0.8 * m["y0"] + 0.04 * math.sin(23 * s * t + 2)
    return Motion(min(max(x, 0), 1), min(max(y, 0), 1), 0.15 * math.sin(19 * s * t) + m["tilt"],
                  phase=7.0 * s * t)


def _m_swing(t, m):
    s = m["speed"]
    th = 0.7 * math.sin(2 * math.pi * 0.6 * s * t + m["phase0"])
    return Motion(0.5 + 0.5 * (m["x0"] - 0.5) + 0.45 * math.sin(th), 0.2 + 0.8 * math.cos(th) * 0.95, th)


ACTORS: tuple[Actor, ...] = (
    Actor("spinning_star", _star, _const(_two_tone_core), _m_spin),
    Actor("bouncing_ring", _ring, _const(_dots), _m_bounce),
    Actor("waving_flag", _flag, _flag_texture, _m_flag),
    Actor("rolling_wheel", _wheel, _const(_rim_hub), _m_roll),
    Actor("hopping_triangle", _triangle, _const(_h_stripes), _m_hop),
    Actor("crawling_worm", _worm, _const(_bands), _m_crawl),
    Actor("flapping_bird", _bird, _const(_chevrons), _m_fly),
    Actor("pulsing_heart", _heart, _const(_rings), _m_pulse),
    Actor("twirling_spiral", _spiral, _const(_spiral_tex), _m_twirl),
    Actor("tumbling_cross", _cross, _const(_diag), _m_tumble),
    Actor("shaking_bolt", _bolt, _bolt_texture, _m_shake),
    Actor("swinging_crescent", _crescent, _const(_wavy), _m_swing),
)
CLASS_NAMES: tuple[str, ...] = tuple(a.name for a in ACTORS)

# ------------------------------------------------------------------------ distractors
# Shared by every class with the same distribution: plain bodies, no class texture.
DISTRACTOR_KINDS = ("ball", "blob", "bar", "cloud")


def distractor_shape(kind: str, rng: np.random.Generator) -> tuple[list, Callable]:
    """A random distractor body of ``kind`` and its (class-free) shading texture."""
    if kind == "ball":
        return [circle(0, 0, 1.0)], lambda u, v: np.clip(np.hypot(u + 0.35, v + 0.35) / 1.6, 0, 1)
    if kind == "blob":
        n = int(rng.integers(6, 10))
        a = np.sort(rng.uniform(0, 2 * math.pi, n))
        r = rng.uniform(0.65, 1.0, n)
        return [Poly(np.stack([r * np.cos(a), r * np.sin(a)], 1))], lambda u, v: np.clip(0.3 * (v + 1), 0, 1)
    if kind == "bar":
        h = rng.uniform(0.18, 0.35)
        return [Poly(np.array([[-1, -h], [1, -h], [1, h], [-1, h]], float))], lambda u, v: np.clip(0.25 * (v / h + 1), 0, 1)
    if kind == "cloud":
        prims = [circle(float(x), float(y), float(r)) for x, y, r in zip(
            rng.uniform(-0.5, 0.5, 5), rng.uniform(-0.2, 0.25, 5), rng.uniform(0.3, 0.5, 5))]
        return prims, lambda u, v: np.clip(0.2 * (v + 0.5), 0, 1)
    raise ValueError(f"unknown distractor kind {kind!r}")
