"""Pure frame transforms shared by every backbone.

Decoded video frames arrive as ``uint8`` RGB tensors, channels last, ``(N, H, W, 3)``.
Networks want ``float`` tensors ``(N, 3, S, S)`` normalised with the backbone's own
``mean`` / ``std`` (given on the ``[0, 1]`` scale). :func:`preprocess_frames` does that
conversion: scale to ``[0, 1]``, resize the shorter side to ``S`` (bilinear, antialiased),
centre crop ``S x S``, normalise. It runs on whatever device ``frames`` live on.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "resize_shorter_side", "center_crop", "preprocess_frames"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def resize_shorter_side(images: Tensor, size: int) -> Tensor:
    """Resize ``(N, C, H, W)`` float images so that ``min(H, W) == size``.

    The longer side keeps the aspect ratio (rounded to the nearest pixel). Bilinear with
    antialiasing, so downscaling by large factors does not alias.
    """
    h, w = images.shape[-2:]
    short = min(h, w)
    if short == size:
        return images
    if h <= w:
        new_h, new_w = size, max(size, int(round(w * size / h)))
    else:
        new_h, new_w = max(size, int(round(h * size / w))), size
    return F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)


def center_crop(images: Tensor, size: int) -> Tensor:
    """Centre crop ``(N, C, H, W)`` images to ``(N, C, size, size)``; needs ``H, W >= size``."""
    h, w = images.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot centre crop {h}x{w} images to {size}x{size}")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return images[..., top : top + size, left : left + size]


def preprocess_frames(
    frames: Tensor,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> Tensor:
    """Turn decoded frames into a normalised network input.

    Args:
        frames: ``uint8`` RGB frames, channels last, ``(N, H, W, 3)``, values ``0..255``.
        size: output side ``S``.
        mean, std: per-channel statistics on the ``[0, 1]`` scale.

    Returns:
        ``float32`` tensor ``(N, 3, S, S)`` on ``frames.device``: ``(x / 255 - mean) / std``
        after resizing the shorter side to ``S`` and centre cropping.
    """
    if not isinstance(frames, Tensor):
        raise TypeError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 (decoded RGB), got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3), got shape {tuple(frames.shape)}")
    if int(size) <= 0:
        raise ValueError(f"size must be positive, got {size}")
    size = int(size)
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W) in [0, 1]
    x = resize_shorter_side(x, size)  # (N, 3, S, >=S) or (N, 3, >=S, S)
    x = center_crop(x, size).contiguous()  # (N, 3, S, S)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
