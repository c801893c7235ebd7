"""GFLOPs are multiply-adds: the published figures of well-known models at 224 px."""
from __future__ import annotations

import pytest
import torch
import torchvision

from nsnet.inference.flops import count_gflops


@pytest.mark.parametrize("name, published", [
    ("resnet50", 4.1),        # He et al. 2016; torchvision's model card: 4.09
    ("mobilenet_v2", 0.30),   # Sandler et al. 2018: 300 M multiply-adds
    ("swin_t", 4.5),          # Liu et al. 2021, Swin-T at 224: 4.5 G
])
def test_counts_match_the_published_multiply_adds(name, published):
    model = getattr(torchvision.models, name)(weights=None).eval()
    got = count_gflops(model, torch.zeros(1, 3, 224, 224))
    assert got == pytest.approx(published, rel=0.05), (name, got)
