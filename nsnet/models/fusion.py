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
input and not used if the two differ. A module in training mode, or without such a pair,
is returned as it is.
"""
from __future__ import annotations

import copy
import logging
import threading
import weakref

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["folded", "fold_batchnorm"]

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


@torch.inference_mode()
def _agrees(original: nn.Module, copy_: nn.Module) -> bool:
    size = int(getattr(original, "input_size", 64) or 64)
    first = next(original.parameters())
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(first.device, first.dtype)
    a = original.forward_features(x).float()
    b = copy_.forward_features(x.contiguous(memory_format=torch.channels_last)).float()
    scale = float(a.abs().max().clamp_min(1e-6))
    return a.shape == b.shape and float((a - b).abs().max()) <= 1e-3 * scale


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
                log.warning("%s: folding its BatchNorms changed its outputs; using it unfolded",
                            getattr(module, "name", type(module).__name__))
                fast = None
            hit = _CACHE[module] = (sig, fast)  # None: use the module itself (never a reference to it here)
    return hit[1] if hit[1] is not None else module
