"""GFLOPs are multiply-adds: the published figures of well-known models at 224 px."""
from __future__ import annotations

import pytest
import torch

from nsnet.inference.flops import count_gflops


@pytest.mark.parametrize("name, published", [
    ("resnet50", 4.1),        # He et al. 2016; torchvision's model card: 4.09
    ("mobilenet_v2", 0.30),   # Sandler et al. 2018: 300 M multiply-adds
    ("swin_t", 4.5),          # Liu et al. 2021, Swin-T at 224: 4.5 G
])
def test_counts_match_the_published_multiply_adds(name, published):
    import torchvision  # here: importing it costs ~2 s, which every test process would pay at collection

    model = getattr(torchvision.models, name)(weights=None).eval()
    got = count_gflops(model, torch.zeros(1, 3, 224, 224))
    assert got == pytest.approx(published, rel=0.05), (name, got)


#: A ViT by hand (32 px, 8 px patches: 16 patches + CLS = 17 tokens, width 64, 4 heads of 16, MLP 128, 2 layers),
#: multiply-adds per image: patch embedding 16 * (3 * 8 * 8) * 64 = 196,608; per layer QKV 3 * 17 * 64 * 64 =
#: 208,896, attention scores and mixing 2 * 4 * 17 * 17 * 16 = 36,992, output 17 * 64 * 64 = 69,632, MLP
#: 2 * 17 * 64 * 128 = 278,528, so 594,048; total 196,608 + 2 * 594,048 = 1,384,704.
VIT_MACS = 1_384_704


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_attention_is_counted_whichever_kernel_runs_it(attention):
    """On a CPU, scaled-dot-product attention runs a fused kernel torch's counter has no formula for:
    a transformer's attention counted 0 there and its full cost on a GPU."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                             image_size=32, patch_size=8, attn_implementation=attention),
                   add_pooling_layer=False).eval()
    x = torch.zeros(2, 3, 32, 32)
    assert count_gflops(vit, pixel_values=x) * 1e9 == pytest.approx(2 * VIT_MACS)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # whatever the caller forces, the count is the same
        assert count_gflops(vit, pixel_values=x) * 1e9 == pytest.approx(2 * VIT_MACS)


def test_the_fused_cpu_attention_kernel_is_counted():
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        pytest.skip("this torch has no fused CPU attention kernel")
    q = torch.randn(2, 4, 17, 16)  # (B, heads, tokens, head width)
    assert count_gflops(op, q, q, q) * 1e9 == 2 * 4 * (17 * 17 * 16) * 2  # scores + mixing, by hand
