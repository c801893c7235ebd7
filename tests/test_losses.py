import math

import pytest
import torch
import torch.nn.functional as F

from nsnet.config import SamplerConfig
from nsnet.training.losses import NSNetLoss, frame_loss, nonsalient_loss, salient_loss
from nsnet.models.sampler import NSNetSampler


def test_loss_values_match_their_definitions():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    manual = -(torch.log(torch.sigmoid(logits)) * targets + torch.log(1 - torch.sigmoid(logits)) * (1 - targets)).mean()
    assert torch.isclose(frame_loss(logits, targets), manual)
    v = torch.tensor([[1.0, 2.0, 0.0, -1.0]])  # C = 3 plus background
    assert torch.isclose(salient_loss(v, torch.tensor([1])), -F.log_softmax(v, -1)[0, 1])
    assert torch.isclose(nonsalient_loss(v, "background"), -F.log_softmax(v, -1)[0, 3])
    # uniform: KL(u || softmax over the C real classes); zero when those logits are equal
    assert nonsalient_loss(torch.tensor([[0.3, 0.3, 0.3, 9.0]]), "uniform").abs() < 1e-6
    p = F.softmax(v[0, :3], -1)
    kl = sum((1 / 3) * (math.log(1 / 3) - math.log(p[i])) for i in range(3))
    assert math.isclose(nonsalient_loss(v, "uniform").item(), kl, rel_tol=1e-5)
    with pytest.raises(ValueError, match="non-salient loss mode"):
        nonsalient_loss(v, "other")


def test_total_is_weighted_sum():
    torch.manual_seed(0)
    heads = type("H", (), dict(frame_logits=torch.randn(2, 5), video_logits=torch.randn(2, 4),
                               nonsalient_logits=torch.randn(2, 4)))
    pl, y = torch.randint(0, 2, (2, 5)).float(), torch.tensor([0, 2])
    terms = NSNetLoss(alpha=0.5, beta=2.0)(heads, pl, y)
    assert torch.isclose(terms.total, terms.frame + 0.5 * terms.sal + 2.0 * terms.non)
    assert set(terms.items()) == {"total", "frame", "sal", "non"}


@pytest.mark.parametrize("mode", ["background", "uniform"])
def test_gradients_reach_trained_parts_not_frozen_backbone(tiny_backbone, mode):
    torch.manual_seed(0)
    sampler = NSNetSampler(SamplerConfig(num_classes=3, hidden_dim=16, attention_dim=8), tiny_backbone).train()
    heads = sampler.forward_head(sampler.forward_features(torch.randn(2, 6, 3, 32, 32)))
    terms = NSNetLoss(non_mode=mode)(heads, torch.randint(0, 2, (2, 6)).float(), torch.tensor([0, 2]))
    terms.total.backward()
    for name, p in sampler.named_parameters():
        if name.startswith("backbone."):
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unfrozen_backbone_gets_gradients(tiny_backbone):
    sampler = NSNetSampler(SamplerConfig(num_classes=3, hidden_dim=16, freeze_backbone=False), tiny_backbone).train()
    heads = sampler.forward_head(sampler.forward_features(torch.randn(1, 4, 3, 32, 32)))
    NSNetLoss()(heads, torch.ones(1, 4), torch.tensor([1])).total.backward()
    assert tiny_backbone.conv.weight.grad is not None and tiny_backbone.conv.weight.grad.abs().sum() > 0
