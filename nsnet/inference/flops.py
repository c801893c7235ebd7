"""GFLOPs with ``torch.utils.flop_counter`` (counts 2 FLOPs per multiply-add)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_gflops"]


def count_gflops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Run ``fn(*args, **kwargs)`` once under a FLOP counter and return GFLOPs."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() / 1e9
