"""Class-agnostic backgrounds ("locations") and the shared colour palette.

Backgrounds are drawn at low resolution and upscaled, which is fast and gives them the
soft look of a real scene behind a sharp actor. Every class draws from the same
distribution; nothing here depends on the class.
"""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["BACKGROUND_KINDS", "random_colour", "contrasting_pair", "make_background"]

BACKGROUND_KINDS = ("outdoor", "room", "bokeh", "texture")


def random_colour(rng: np.random.Generator, sat=(0.35, 1.0), val=(0.45, 1.0)) -> np.ndarray:
    """An RGB colour (3,) float in 0..255 from the benchmark's single palette."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))
    return np.array([r, g, b]) * 255.0


def _luma(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def contrasting_pair(rng: np.random.Generator, min_diff: float = 70.0) -> tuple[np.ndarray, np.ndarray]:
    """Two palette colours whose luma differs by at least ``min_diff`` (a visible texture)."""
    a = random_colour(rng)
    for _ in range(20):
        b = random_colour(rng, sat=(0.2, 1.0), val=(0.1, 1.0))
        if abs(_luma(a) - _luma(b)) >= min_diff:
            return a, b
    return a, (a * 0.3 if _luma(a) > 110 else np.minimum(255, a + 140))


def _muted(rng: np.random.Generator) -> tuple[int, int, int]:
    c = random_colour(rng, sat=(0.05, 0.55), val=(0.2, 0.9))
    return tuple(int(x) for x in c)


def _outdoor(rng, w, h) -> Image.Image:
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    top, hor = np.array(_muted(rng)), np.array(_muted(rng))
    horizon = int(h * rng.uniform(0.35, 0.7))
    for y in range(horizon):
        c = top + (hor - top) * (y / max(1, horizon - 1))
        d.line([(0, y), (w, y)], fill=tuple(int(x) for x in c))
    d.rectangle([0, horizon, w, h], fill=_muted(rng))
    for _ in range(int(rng.integers(0, 6))):  # buildings / hills
        x0 = int(rng.uniform(-0.1, 0.9) * w)
        bw, bh = int(rng.uniform(0.08, 0.3) * w), int(rng.uniform(0.05, 0.3) * h)
        d.rectangle([x0, horizon - bh, x0 + bw, horizon], fill=_muted(rng))
    return img


def _room(rng, w, h) -> Image.Image:
    img = Image.new("RGB", (w, h), _muted(rng))
    d = ImageDraw.Draw(img)
    floor = int(h * rng.uniform(0.55, 0.8))
    d.rectangle([0, floor, w, h], fill=_muted(rng))
    for _ in range(int(rng.integers(2, 7))):  # furniture, doors, pictures
        x0, y0 = rng.uniform(0, w), rng.uniform(0.1 * h, 0.9 * h)
        d.rectangle([x0, y0, x0 + rng.uniform(0.05, 0.3) * w, y0 + rng.uniform(0.05, 0.35) * h], fill=_muted(rng))
    return img


def _bokeh(rng, w, h) -> Image.Image:
    img = Image.new("RGB", (w, h), _muted(rng))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(10, 30))):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.02, 0.12) * w
        c = tuple(int(v) for v in random_colour(rng, val=(0.3, 0.9)))
        d.ellipse([x - r, y - r, x + r, y + r], fill=c)
    return img


def _texture(rng, w, h) -> Image.Image:
    gh, gw = int(rng.integers(3, 8)), int(rng.integers(4, 10))
    base = np.array(_muted(rng), float)
    grid = base + rng.normal(0, 35, (gh, gw, 3))
    return Image.fromarray(grid.clip(0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)


_MAKERS = {"outdoor": (_outdoor, 2), "room": (_room, 2), "bokeh": (_bokeh, 4), "texture": (_texture, 1)}


def make_background(rng: np.random.Generator, width: int, height: int, kind: str | None = None) -> np.ndarray:
    """A background image ``(height, width, 3)`` uint8 of a random (or given) kind."""
    kind = kind or BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
    make, down = _MAKERS[kind]
    small = make(rng, max(8, width // down), max(8, height // down))
    img = np.asarray(small.resize((width, height), Image.BILINEAR), dtype=np.int16)
    grain = rng.normal(0, rng.uniform(2, 8), ((height + 1) // 2, (width + 1) // 2, 1)).astype(np.int16)
    img = img + np.repeat(np.repeat(grain, 2, 0), 2, 1)[:height, :width]
    return img.clip(0, 255).astype(np.uint8)
