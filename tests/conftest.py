"""Shared fixtures. Test clips come from ``clips.py``; models are tiny and random."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

# Keep the 2-core CI machine responsive and the tests deterministic. Under pytest-xdist (``make test``
# runs one worker per core) every worker and every process it starts computes on one thread: more
# threads than cores only spin (OpenMP's busy wait burns the other worker's CPU).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
else:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


class TinyBackbone(nn.Module):
    """A few-parameter stand-in that honours the Backbone contract (for head/loss tests)."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.name, self.num_features, self.input_size = "tiny", d, 32
        self.mean, self.std, self.head_labels = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), None
        self.conv = nn.Conv2d(3, d, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(d)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, D)
        return torch.relu(self.bn(self.conv(x))).mean((2, 3))


@pytest.fixture
def tiny_backbone():
    torch.manual_seed(0)
    return TinyBackbone()


@pytest.fixture
def tiny_pipeline_config():
    from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig

    return PipelineConfig(
        class_names=[f"class_{i}" for i in range(5)],
        sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=64,
                              hidden_dim=32, attention_dim=16),
        recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=96),
        num_frames=8, k=3, lam=0.5)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, one per module (``tests/chromium.py``; its modules skip without it)."""
    from chromium import launch

    yield from launch()
