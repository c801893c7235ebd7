"""GFLOPs as multiply-adds, the convention of the papers NSNet is compared with.

``torch.utils.flop_counter`` counts 2 FLOPs per multiply-add (a multiply and an add);
NSNet, OCSampler, AdaFocus and the model zoos they quote (ResNet-50 4.1 GFLOPs,
MobileNetV2 0.3, Swin-T 4.5 at 224 px) count one multiply-add as one FLOP. Every GFLOPs
figure of this project (CLI, JSON, app, README) is that: **multiply-adds, in billions**.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_gflops", "FLOPS_PER_MAC"]

FLOPS_PER_MAC = 2  # what torch's counter reports per multiply-add


def count_gflops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Run ``fn(*args, **kwargs)`` once under a FLOP counter; billions of multiply-adds."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() / FLOPS_PER_MAC / 1e9
