import pytest
import torch

from nsnet.models.selection import fuse, minmax_norm, random_indices, select_topk, uniform_indices


def test_minmax_norm_maps_range_and_constant_to_half():
    x = torch.tensor([[2.0, 4.0, 3.0], [1.0, 1.0, 1.0]])
    out = minmax_norm(x)
    assert torch.allclose(out[0], torch.tensor([0.0, 1.0, 0.5]))
    assert torch.allclose(out[1], torch.full((3,), 0.5))
    # float noise on a constant is not a ranking
    noisy = torch.tensor([0.5, 0.5 + 1e-7, 0.5 - 1e-7])
    assert torch.equal(minmax_norm(noisy), torch.full((3,), 0.5))


def test_fuse_extremes_follow_one_branch():
    p, g = torch.tensor([0.1, 0.9, 0.5]), torch.tensor([0.8, 0.2, 0.3])
    assert torch.allclose(fuse(p, g, 1.0), minmax_norm(p))
    assert torch.allclose(fuse(p, g, 0.0), minmax_norm(g))
    assert torch.allclose(fuse(p, g, 0.5), 0.5 * minmax_norm(p) + 0.5 * minmax_norm(g))
    with pytest.raises(ValueError, match="lam"):
        fuse(p, g, 1.5)


def test_select_topk_returns_temporal_order_and_breaks_ties_early():
    s = torch.tensor([0.1, 0.9, 0.3, 0.9, 0.8])
    assert select_topk(s, 2).tolist() == [1, 3]
    assert select_topk(s, 3).tolist() == [1, 3, 4]
    assert select_topk(torch.ones(5), 2).tolist() == [0, 1]
    batch = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    assert select_topk(batch, 1).tolist() == [[2], [0]]
    for bad in (0, 6):
        with pytest.raises(ValueError, match="k must be between"):
            select_topk(s, bad)


def test_uniform_and_random_indices():
    assert uniform_indices(16, 4) == [2, 6, 10, 14]
    assert uniform_indices(5, 5) == [0, 1, 2, 3, 4]
    assert uniform_indices(1, 1) == [0]
    a = random_indices(16, 4, torch.Generator().manual_seed(3))
    b = random_indices(16, 4, torch.Generator().manual_seed(3))
    assert a == b and a == sorted(a) and len(set(a)) == 4 and all(0 <= i < 16 for i in a)
    with pytest.raises(ValueError):
        uniform_indices(3, 4)
