"""Frame ranking: min-max fusion at several lam, top-K, the uniform and random baselines.

Expectations are worked out by hand (the comments show how) or come from the naive
implementations in tests/naive.py.
"""
import math

import pytest
import torch

import naive
from nsnet.models.selection import fuse, minmax_norm, random_indices, select_topk, uniform_indices

# norm(P) = [0, .25, .5, 1]; norm(G) = [1, 1/3, 0, 2/3]
P = torch.tensor([0.0, 1.0, 2.0, 4.0])
G = torch.tensor([3.0, 1.0, 0.0, 2.0])


def test_minmax_norm_maps_range_and_constant_to_half():
    x = torch.tensor([[2.0, 4.0, 3.0], [1.0, 1.0, 1.0]])
    out = minmax_norm(x)
    assert torch.allclose(out[0], torch.tensor([0.0, 1.0, 0.5]))
    assert torch.allclose(out[1], torch.full((3,), 0.5))
    # float noise on a constant is not a ranking
    noisy = torch.tensor([0.5, 0.5 + 1e-7, 0.5 - 1e-7])
    assert torch.equal(minmax_norm(noisy), torch.full((3,), 0.5))
    assert torch.allclose(minmax_norm(torch.tensor([-3.0, -1.0, -2.0])), torch.tensor([0.0, 1.0, 0.5]))


def test_minmax_norm_tolerance_is_relative_to_the_largest_magnitude_but_at_least_1e5():
    # |x| <= 1: a spread below 1e-5 is constant, a spread of 1.5e-5 is a ranking
    assert minmax_norm(torch.tensor([0.0, 5e-6])).tolist() == [0.5, 0.5]
    assert minmax_norm(torch.tensor([0.0, 1.5e-5])).tolist() == [0.0, 1.0]
    # |x| ~ 1000: the tolerance is 1e-5 * 1000 = 1e-2
    assert minmax_norm(torch.tensor([1000.0, 1000.005])).tolist() == [0.5, 0.5]
    assert minmax_norm(torch.tensor([1000.0, 1000.02])).tolist() == [0.0, 1.0]
    assert minmax_norm(torch.tensor([0.0, 0.004]), rel_eps=1e-2).tolist() == [0.5, 0.5]  # the knob is used
    assert minmax_norm(torch.tensor([-1000.0, -1000.02])).tolist() == [1.0, 0.0]


def test_minmax_norm_tolerance_is_per_slice():
    # the row of large values does not make the small but real spread of the other row a constant
    x = torch.tensor([[1000.0, 2000.0, 1500.0], [0.0, 0.005, 0.0025]])
    assert minmax_norm(x).tolist() == [[0.0, 1.0, 0.5], [0.0, 1.0, 0.5]]


def test_minmax_norm_along_another_dim():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
    out = minmax_norm(x, dim=0)
    assert out.tolist() == [[0.0, 0.5], [1.0, 0.5], [0.5, 0.5]]


def test_fuse_extremes_follow_one_branch():
    p, g = torch.tensor([0.1, 0.9, 0.5]), torch.tensor([0.8, 0.2, 0.3])
    assert torch.allclose(fuse(p, g, 1.0), minmax_norm(p))
    assert torch.allclose(fuse(p, g, 0.0), minmax_norm(g))
    assert torch.allclose(fuse(p, g, 0.5), 0.5 * minmax_norm(p) + 0.5 * minmax_norm(g))
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match="lam"):
            fuse(p, g, bad)


@pytest.mark.parametrize("lam,want,top2", [
    # lam * norm(P) + (1 - lam) * norm(G), by hand
    (0.2, [0.8, 0.05 + 0.8 / 3, 0.1, 0.2 + 1.6 / 3], [0, 3]),
    (0.8, [0.2, 0.2 + 0.2 / 3, 0.4, 0.8 + 0.4 / 3], [2, 3]),
    (0.5, [0.5, 0.125 + 0.5 / 3, 0.25, 0.5 + 1 / 3], [0, 3]),
    (1.0, [0.0, 0.25, 0.5, 1.0], [2, 3]),
    (0.0, [1.0, 1 / 3, 0.0, 2 / 3], [0, 3]),
])
def test_fuse_at_asymmetric_lam_is_hand_computed(lam, want, top2):
    fused = fuse(P, G, lam)
    assert fused.tolist() == pytest.approx(want, abs=1e-6)
    assert fused.tolist() == pytest.approx(naive.fuse(P.tolist(), G.tolist(), lam), abs=1e-6)
    assert select_topk(fused, 2).tolist() == top2
    # the branches are not interchangeable: swapping them changes the result whenever lam != 0.5
    if lam != 0.5:
        assert not torch.allclose(fuse(G, P, lam), fused)


def test_fuse_keeps_batch_rows_apart():
    batch = fuse(torch.stack([P, G]), torch.stack([G, P]), 0.2)
    assert batch[0].tolist() == pytest.approx(naive.fuse(P.tolist(), G.tolist(), 0.2), abs=1e-6)
    assert batch[1].tolist() == pytest.approx(naive.fuse(G.tolist(), P.tolist(), 0.2), abs=1e-6)


def test_select_topk_returns_temporal_order_and_breaks_ties_early():
    s = torch.tensor([0.1, 0.9, 0.3, 0.9, 0.8])
    assert select_topk(s, 2).tolist() == [1, 3]
    assert select_topk(s, 3).tolist() == [1, 3, 4]
    assert select_topk(s, 1).tolist() == [1]
    assert select_topk(s, 5).tolist() == [0, 1, 2, 3, 4]
    assert select_topk(torch.ones(5), 2).tolist() == [0, 1]
    batch = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    assert select_topk(batch, 1).tolist() == [[2], [0]]
    assert select_topk(batch, 2).tolist() == [[1, 2], [0, 1]]
    for bad in (0, 6):
        with pytest.raises(ValueError, match="k must be between"):
            select_topk(s, bad)


def test_select_topk_matches_naive_on_crafted_and_tied_scores():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        t = int(torch.randint(1, 12, (1,), generator=gen))
        k = int(torch.randint(1, t + 1, (1,), generator=gen))
        scores = torch.randint(0, 4, (t,), generator=gen).float() / 4  # many ties
        assert select_topk(scores, k).tolist() == naive.topk(scores.tolist(), k), (scores, k)
    many = torch.randint(0, 3, (4, 300), generator=gen).float()  # long enough for an unstable sort to reorder ties
    for row, got in zip(many, select_topk(many, 100)):
        assert got.tolist() == naive.topk(row.tolist(), 100)
    half = torch.tensor([0.1, 0.7, 0.7, 0.2], dtype=torch.float16)  # low precision in: ranked the same
    assert select_topk(half, 2).tolist() == [1, 2]


def test_uniform_indices_are_the_segment_centres():
    assert uniform_indices(16, 4) == [2, 6, 10, 14]
    assert uniform_indices(10, 3) == [1, 5, 8]  # floor(5/3), floor(5), floor(25/3)
    assert uniform_indices(5, 5) == [0, 1, 2, 3, 4]
    assert uniform_indices(1, 1) == [0]
    assert uniform_indices(7, 1) == [3]
    for t in range(1, 21):
        for k in range(1, t + 1):
            assert uniform_indices(t, k) == naive.uniform(t, k), (t, k)
    for t, k in ((3, 4), (3, 0)):
        with pytest.raises(ValueError, match="k must be between"):
            uniform_indices(t, k)


def test_random_indices_are_distinct_sorted_seeded_and_cover_every_frame():
    a = random_indices(16, 4, torch.Generator().manual_seed(3))
    b = random_indices(16, 4, torch.Generator().manual_seed(3))
    assert a == b and a == sorted(a) and len(set(a)) == 4 and all(0 <= i < 16 for i in a)
    assert random_indices(5, 5, torch.Generator().manual_seed(0)) == [0, 1, 2, 3, 4]
    assert random_indices(1, 1) == [0] and len(random_indices(9, 1)) == 1
    gen = torch.Generator().manual_seed(0)
    draws = [random_indices(6, 2, gen) for _ in range(300)]
    assert all(len(d) == 2 and d[0] < d[1] for d in draws)
    counts = [sum(i in d for d in draws) for i in range(6)]
    assert all(60 <= c <= 140 for c in counts), counts  # each frame ~ 300 * 2/6 = 100 times
    assert len({tuple(d) for d in draws}) == 15  # every pair of 6 frames comes up
    for t, k in ((3, 4), (3, 0)):
        with pytest.raises(ValueError, match="k must be between"):
            random_indices(t, k)


def test_naive_helpers_agree_with_the_hand_values():
    """The reference itself, on the cases above (so a slip there cannot mask one in the library)."""
    assert naive.minmax([2, 4, 3]) == [0.0, 1.0, 0.5] and naive.minmax([1, 1]) == [0.5, 0.5]
    assert naive.topk([0.1, 0.9, 0.3, 0.9, 0.8], 3) == [1, 3, 4]
    assert naive.uniform(16, 4) == [2, 6, 10, 14]
    assert naive.fuse([0, 1, 2, 4], [3, 1, 0, 2], 0.2)[3] == pytest.approx(0.2 + 1.6 / 3)
    assert math.isclose(naive.average_precision([0.9, 0.8, 0.7], [0, 1, 1]), 2 / 3)
