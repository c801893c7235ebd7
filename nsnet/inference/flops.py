"""GFLOPs as multiply-adds, the convention of the papers NSNet is compared with.

``torch.utils.flop_counter`` counts 2 FLOPs per multiply-add (a multiply and an add);
NSNet, OCSampler, AdaFocus and the model zoos they quote (ResNet-50 4.1 GFLOPs,
MobileNetV2 0.3, Swin-T 4.5 at 224 px) count one multiply-add as one FLOP. Every GFLOPs
figure of this project (CLI, JSON, app, README) is that: **multiply-adds, in billions**.

The count is the same on every device. Scaled-dot-product attention picks a fused kernel
per device, and torch's counter knows only the CUDA ones (on a CPU it counted 0 for the
attention of a transformer backbone). While counting, attention runs its math path
(plain matrix products, counted alike everywhere), and the fused CPU kernels are counted
with torch's own SDPA formula in case one runs anyway.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = ["count_gflops", "FLOPS_PER_MAC"]

FLOPS_PER_MAC = 2  # what torch's counter reports per multiply-add

aten = torch.ops.aten


def _sdpa(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args: Any, out_shape=None,
                   **kwargs: Any) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _attention_formulas() -> dict:
    """The fused attention kernels torch's counter has no formula for (the CPU one, other backends')."""
    found = {}
    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", _sdpa),
                          ("_scaled_dot_product_fused_attention_overrideable", _sdpa),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", _sdpa_backward),
                          ("_scaled_dot_product_fused_attention_overrideable_backward", _sdpa_backward)):
        if hasattr(aten, name):
            found[getattr(aten, name)] = formula
    return found


def count_gflops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Run ``fn(*args, **kwargs)`` once under a FLOP counter; billions of multiply-adds."""
    counter = FlopCounterMode(display=False, custom_mapping=_attention_formulas())
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() / FLOPS_PER_MAC / 1e9
