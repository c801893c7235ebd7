import pytest
import torch

from nsnet.config import SamplerConfig
from nsnet.models.sampler import NSNetSampler, SamplerHeads
from nsnet.models.selection import fuse


def make(backbone, **kw):
    torch.manual_seed(0)
    cfg = SamplerConfig(num_classes=4, hidden_dim=16, attention_dim=8, dropout=0.0, **kw)
    return NSNetSampler(cfg, backbone).eval()


def test_forward_shapes_and_ranges(tiny_backbone):
    sampler = make(tiny_backbone)
    out = sampler(torch.randn(2, 6, 3, 32, 32), k=3, lam=0.5)
    assert out.frame_scores.shape == out.attention.shape == out.fused.shape == (2, 6)
    assert out.selected.shape == (2, 3) and out.video_logits.shape == (2, 5)  # C + 1 outputs
    assert ((out.frame_scores > 0) & (out.frame_scores < 1)).all()
    assert ((out.attention > 0) & (out.attention < 1)).all()
    assert (out.selected.diff(dim=1) > 0).all()  # temporal order
    for b in range(2):  # the selected frames are exactly the K best fused scores
        assert set(out.selected[b].tolist()) == set(out.fused[b].topk(3).indices.tolist())


def test_softmax_attention_sums_to_one(tiny_backbone):
    sampler = make(tiny_backbone, attention="softmax")
    heads = sampler.forward_head(torch.randn(3, 7, tiny_backbone.num_features))
    assert torch.allclose(heads.attention.sum(-1), torch.ones(3), atol=1e-5)


def test_attention_pools_salient_and_nonsalient_frames(tiny_backbone):
    """z_s follows the frames with high gates, z_n the others: gating one frame moves z_s to it."""
    sampler = make(tiny_backbone)
    with torch.no_grad():  # make the gate a function of feature 0 only: high gate <=> big x[..., 0]
        sampler.temporal.weight.zero_()
        sampler.temporal.bias.zero_()
        sampler.temporal.weight[0, 0, 1] = 1.0
        sampler.norm.weight.fill_(1.0)
        sampler.norm.bias.zero_()
        sampler.attn_proj.weight.zero_()
        sampler.attn_proj.weight[0, 0] = 5.0
        sampler.attn_proj.bias.zero_()
        sampler.attn_score.weight.zero_()
        sampler.attn_score.weight[0, 0] = 20.0
        sampler.attn_score.bias.fill_(-5.0)
    feats = torch.zeros(1, 5, tiny_backbone.num_features)
    feats[0, 2, 0] = 10.0  # frame 2 is the salient one
    heads = sampler.forward_head(feats)
    assert heads.attention[0].argmax().item() == 2
    assert heads.attention[0, 2] > 0.99 and heads.attention[0, [0, 1, 3, 4]].max() < 0.01
    # z_s is (almost) frame 2's representation, z_n the mean of the others (all equal here)
    background_logits = sampler.classifier(sampler.drop(sampler.act(torch.zeros(1, 16))))
    assert torch.allclose(heads.nonsalient_logits, background_logits, atol=1e-2)
    assert not torch.allclose(heads.video_logits, heads.nonsalient_logits, atol=1e-2)


def test_decide_is_fuse_plus_topk(tiny_backbone):
    heads = SamplerHeads(torch.tensor([[0.0, 3.0, -1.0, 2.0]]), torch.tensor([[0.9, 0.1, 0.8, 0.2]]),
                         torch.zeros(1, 5), torch.zeros(1, 5))
    only_frame = NSNetSampler.decide(heads, 2, 1.0)
    only_attn = NSNetSampler.decide(heads, 2, 0.0)
    assert only_frame.selected.tolist() == [[1, 3]]
    assert only_attn.selected.tolist() == [[0, 2]]
    assert torch.allclose(NSNetSampler.decide(heads, 2, 0.3).fused, fuse(heads.frame_scores, heads.attention, 0.3))


def test_frozen_backbone_stays_in_eval_mode(tiny_backbone):
    sampler = make(tiny_backbone).train()
    assert sampler.training and not sampler.backbone.training
    assert not any(p.requires_grad for p in sampler.backbone.parameters())


def test_needs_num_classes(tiny_backbone):
    with pytest.raises(ValueError, match="num_classes"):
        NSNetSampler(SamplerConfig(), tiny_backbone)
