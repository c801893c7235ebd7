"""Inference copies of frozen backbones: BatchNorm folded into the convolution before it, channels-last.

A BatchNorm in eval mode is an affine map per channel, so ``bn(conv(x))`` equals one
convolution with rescaled weights and a bias; folding it removes a pass over every
activation. With channels-last weights on top, the EfficientNet-Lite backbones run 1.4x
to 2x faster on a 2-core CPU (README, "Analysing a dataset"), with features equal to ~1e-5.

:func:`folded` is what the dataset paths use (``Pipeline.extract_features``, which fills
the feature cache of ``train`` and ``eval``, and ``nsnet analyze``): one code path, so
both compute the same features, bit for bit. Only ``Conv2d -> BatchNorm2d`` pairs that
are consecutive children of a plain ``nn.Sequential`` are folded (there the order of the
children is the order they run in); each copy is checked against its original on a probe
input and not used if the two differ. The check compares exact arithmetic: both run in
float32 with TF32 (and oneDNN's reduced float32 modes) and autocast off, whatever the
caller's settings, with a tolerance scaled to the weights' dtype (:func:`agreement`), so
cuDNN's TF32 convolutions never make it fall back to the slower unfolded copy. A module
in training mode, or without such a pair, is returned as it is.
"""
from __future__ import annotations

import copy
import logging
import threading
import weakref
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["folded", "fold_batchnorm", "agreement", "exact_float32", "TOLERANCE"]

log = logging.getLogger(__name__)

_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module | None]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _pairs(module: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(container, conv name, bn name) of every foldable pair inside ``module``."""
    found = []
    for parent in module.modules():
        if not isinstance(parent, nn.Sequential) or type(parent).forward is not nn.Sequential.forward:
            continue
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
                    and bn.running_mean is not None and conv.out_channels == bn.num_features):
                found.append((parent, a, b))
    return found


def fold_batchnorm(module: nn.Module) -> nn.Module | None:
    """A copy of ``module`` (eval mode) with its foldable BatchNorms folded, channels-last; None when there is none."""
    if not _pairs(module):
        return None
    out = copy.deepcopy(module).eval()
    for parent, a, b in _pairs(out):
        parent._modules[a] = fuse_conv_bn_eval(parent._modules[a], parent._modules[b])
        parent._modules[b] = nn.Identity()
    return out.to(memory_format=torch.channels_last).requires_grad_(False)


def _signature(module: nn.Module) -> tuple:
    """Changes whenever a weight or buffer is replaced, moved or modified in place."""
    return tuple((t.device, t.data_ptr(), t._version) for t in [*module.parameters(), *module.buffers()])


#: Largest difference allowed between a folded copy and its original, relative to the
#: original's largest output, by weight dtype (folding only reorders float32 arithmetic).
TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6, torch.float16: 2e-2, torch.bfloat16: 5e-2}


@contextmanager
def exact_float32():
    """TF32 (cuBLAS, cuDNN) and oneDNN's reduced float32 modes off inside; the settings come back after."""
    backends = [torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None),
                getattr(torch.backends.mkldnn, "matmul", None), getattr(torch.backends.mkldnn, "conv", None)]
    if all(b is None or hasattr(b, "fp32_precision") for b in backends):  # torch >= 2.9: one API, never mixed
        settings = [(b, "fp32_precision", "ieee") for b in backends if b is not None]
    else:  # the legacy flags
        settings = [(torch.backends.cuda.matmul, "allow_tf32", False), (torch.backends.cudnn, "allow_tf32", False)]
    saved = []
    try:
        for obj, name, value in settings:
            saved.append((obj, name, getattr(obj, name)))
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


@torch.inference_mode()
def agreement(original: nn.Module, copy_: nn.Module) -> tuple[float, float]:
    """(largest difference relative to the original's largest output, the tolerance) on a probe input,
    both run in exact float32 arithmetic (:func:`exact_float32`, autocast off)."""
    size = int(getattr(original, "input_size", 64) or 64)
    first = next(original.parameters())
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(first.device, first.dtype)
    with exact_float32(), torch.autocast(device_type=first.device.type, enabled=False):
        a = original.forward_features(x).float()
        b = copy_.forward_features(x.contiguous(memory_format=torch.channels_last)).float()
    tolerance = TOLERANCE.get(first.dtype, 1e-3)
    if a.shape != b.shape:
        return float("inf"), tolerance
    scale = float(a.abs().max().clamp_min(1e-6))
    return float((a - b).abs().max()) / scale, tolerance


def _agrees(original: nn.Module, copy_: nn.Module) -> bool:
    diff, tolerance = agreement(original, copy_)
    return diff <= tolerance


def folded(module: nn.Module) -> nn.Module:
    """The inference copy of a backbone (see the module docstring), made once per set of weights.

    The copy is remade when the original's weights change (replaced, moved to another
    device, or modified in place); a module in training mode is returned as it is.
    """
    if module.training:
        return module
    sig = _signature(module)
    with _LOCK:
        hit = _CACHE.get(module)
        if hit is None or hit[0] != sig:
            fast = fold_batchnorm(module)
            if fast is not None and not _agrees(module, fast):
                diff, tolerance = agreement(module, fast)
                log.warning("%s: folding its BatchNorms changed its outputs (by %.2g of their scale, over %.2g); "
                            "using it unfolded", getattr(module, "name", type(module).__name__), diff, tolerance)
                fast = None
            hit = _CACHE[module] = (sig, fast)  # None: use the module itself (never a reference to it here)
    return hit[1] if hit[1] is not None else module
