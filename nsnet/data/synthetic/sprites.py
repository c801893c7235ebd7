"""Rasterise a textured 2-D shape ("sprite") for compositing onto a frame.

A shape is a list of primitives in *unit coordinates* ``(u, v)`` (``v`` points down,
the body fits roughly in the unit disc). A :class:`Pose` maps unit coordinates to frame
pixels: scale by ``radius * (sx, sy)``, rotate by ``angle``, translate to ``(cx, cy)``.
The mask is drawn with PIL; the texture is a function of ``(u, v)`` evaluated on the
sprite's pixel grid, so stripes and dots rotate and scale with the body.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["Pose", "Poly", "Line", "circle", "render_sprite", "paste_sprite"]


@dataclass(frozen=True)
class Pose:
    """Where and how a unit-coordinate shape lands in the frame (pixels, radians)."""

    cx: float
    cy: float
    radius: float
    angle: float = 0.0
    sx: float = 1.0
    sy: float = 1.0


@dataclass(frozen=True)
class Poly:
    """A filled polygon; ``hole=True`` cuts it out of what was drawn before."""

    points: np.ndarray  # (P, 2) unit coordinates
    hole: bool = False


@dataclass(frozen=True)
class Line:
    """A thick polyline; ``width`` in unit coordinates."""

    points: np.ndarray  # (P, 2)
    width: float


def circle(cu: float, cv: float, r: float, hole: bool = False, n: int = 28) -> Poly:
    a = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return Poly(np.stack([cu + r * np.cos(a), cv + r * np.sin(a)], axis=1), hole)


Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (u, v) -> p in [0, 1], same shape


def render_sprite(
    prims: Sequence[Poly | Line],
    texture: Texture,
    pose: Pose,
    colours: tuple[np.ndarray, np.ndarray],
    extent: float = 1.3,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Rasterise ``prims`` at ``pose``.

    Returns ``rgb`` (S, S, 3) uint8, ``alpha`` (S, S) uint8 and the frame position
    ``(x0, y0)`` of the sprite's top-left corner. ``extent`` is the half-size of the
    sprite box in unit coordinates (shapes must stay inside it).
    """
    scale = pose.radius * max(pose.sx, pose.sy)
    half = max(2, int(math.ceil(extent * scale)) + 1)
    size = 2 * half
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    rot = np.array([[c, -s], [s, c]])
    lin = rot @ np.diag([pose.radius * pose.sx, pose.radius * pose.sy])  # unit -> px
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for p in prims:
        xy = p.points @ lin.T + half  # (P, 2) sprite px
        pts = [tuple(q) for q in xy.tolist()]
        if isinstance(p, Line):
            w = max(1, int(round(p.width * pose.radius * (pose.sx + pose.sy) / 2)))
            draw.line(pts, fill=255, width=w, joint="curve")
        elif len(pts) >= 3:
            draw.polygon(pts, fill=0 if p.hole else 255)
    # Texture on the sprite grid, in unit coordinates.
    inv = np.linalg.inv(lin)
    g = np.arange(size, dtype=np.float32) - half + 0.5
    gx, gy = np.meshgrid(g, g)  # (S, S) px relative to the centre
    u = inv[0, 0] * gx + inv[0, 1] * gy
    v = inv[1, 0] * gx + inv[1, 1] * gy
    p = np.clip(texture(u, v), 0.0, 1.0).astype(np.float32)[..., None]  # (S, S, 1)
    a, b = (np.asarray(col, dtype=np.float32) for col in colours)
    rgb = (a + p * (b - a)).clip(0, 255).astype(np.uint8)  # (S, S, 3)
    x0 = int(round(pose.cx)) - half
    y0 = int(round(pose.cy)) - half
    return rgb, np.asarray(mask), x0, y0


def paste_sprite(
    frame: Image.Image,
    sprite: tuple[np.ndarray, np.ndarray, int, int],
    opacity: float = 1.0,
    shadow: float = 0.0,
) -> None:
    """Alpha-composite a sprite onto ``frame`` in place, with an optional drop shadow."""
    rgb, alpha, x0, y0 = sprite
    if opacity < 1.0:
        alpha = (alpha.astype(np.float32) * opacity).astype(np.uint8)
    mask = Image.fromarray(alpha)
    if shadow > 0:
        off = max(1, rgb.shape[0] // 30)
        shade = Image.fromarray((alpha.astype(np.float32) * shadow).astype(np.uint8))
        frame.paste((0, 0, 0), (x0 + off, y0 + off, x0 + off + rgb.shape[1], y0 + off + rgb.shape[0]), shade)
    frame.paste(Image.fromarray(rgb), (x0, y0), mask)
