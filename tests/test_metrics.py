"""Metrics against values worked out by hand and against a brute-force AP (tests/naive.py)."""
import math
import warnings

import numpy as np
import pytest

import naive
from nsnet.metrics import average_precision, mean_average_precision, precision_recall, top1_accuracy


def test_average_precision_hand_computed():
    # ranking: + - + -  -> precision at the positives: 1/1, 2/3 -> AP = (1 + 2/3) / 2
    assert math.isclose(average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]), (1 + 2 / 3) / 2)
    assert average_precision([0.9, 0.8], [1, 1]) == 1.0
    assert average_precision([0.1, 0.9], [1, 0]) == 0.5
    assert math.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_average_precision_is_interpolated():
    # - + + : precision 1/2 then 2/3; the envelope lifts the first positive to 2/3 (VOC / ActivityNet),
    # so AP = 2/3, not the uninterpolated (1/2 + 2/3) / 2 = 7/12
    assert math.isclose(average_precision([0.9, 0.8, 0.7], [0, 1, 1]), 2 / 3)
    # - - + - + : 1/3, then 2/5 -> both positives get 2/5
    assert math.isclose(average_precision([5, 4, 3, 2, 1], [0, 0, 1, 0, 1]), 2 / 5)
    # a single positive at rank r: AP = 1 / r
    for r in range(1, 6):
        targets = [0] * 6
        targets[r - 1] = 1
        assert math.isclose(average_precision([6, 5, 4, 3, 2, 1], targets), 1 / r)


def test_average_precision_ranks_ties_in_input_order_and_takes_any_shape():
    assert average_precision([0.5, 0.5, 0.1], [0, 1, 0]) == 0.5  # tie: the earlier (negative) ranks first
    assert average_precision([0.5, 0.5, 0.1], [1, 0, 0]) == 1.0
    assert average_precision(np.array([[0.2, 0.9]]), np.array([[1, 0]])) == 0.5  # ravelled
    assert average_precision([3, 2, 1], [True, False, True]) == pytest.approx((1 + 2 / 3) / 2)
    # unsigned and boolean scores rank as numbers (a negated uint8 would wrap around)
    assert average_precision(np.array([1, 3, 2], dtype=np.uint8), [0, 1, 0]) == 1.0
    assert average_precision(np.array([False, True, False]), [0, 1, 0]) == 1.0


def test_average_precision_matches_brute_force():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(1, 9))
        scores = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=n)  # many ties
        targets = rng.integers(0, 2, size=n)
        want = naive.average_precision(scores.tolist(), targets.tolist())
        got = average_precision(scores, targets)
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(want, abs=1e-12), (scores, targets)
            checked += 1
    assert checked > 200


# 4 videos, 3 classes (a 4th column no video belongs to). Worked out by hand:
#   class 0 by column 0: v0 .9 (+), v1 .6, v3 .2, v2 .1           -> AP 1
#   class 1 by column 1: v3 .7 (+), v2 .5, v1 .3 (+), v0 .05        -> AP (1 + 2/3) / 2 = 5/6
#   class 2 by column 2: v1 .8, v2 .7 (+), v3 .1, v0 .05            -> AP 1/2
# mAP = (1 + 5/6 + 1/2) / 3 = 7/9; leaving out class 0, 1 or 2 would give 2/3, 3/4 or 11/12.
SCORES = np.array([[0.9, 0.05, 0.05, 0.4],
                   [0.6, 0.3, 0.8, 0.9],
                   [0.1, 0.5, 0.7, 0.2],
                   [0.2, 0.7, 0.1, 0.3]])
LABELS = np.array([0, 1, 2, 1])


def test_map_of_classes_with_different_aps():
    aps = [average_precision(SCORES[:, c], LABELS == c) for c in range(3)]
    assert aps == pytest.approx([1.0, 5 / 6, 0.5])
    assert mean_average_precision(SCORES, LABELS) == pytest.approx(7 / 9)
    # a class nobody belongs to is left out (not a NaN, not a zero)
    assert mean_average_precision(SCORES[:, :3], LABELS) == pytest.approx(7 / 9)
    assert mean_average_precision(SCORES, LABELS) == pytest.approx(naive.mean_average_precision(SCORES.tolist(),
                                                                                                LABELS.tolist()))
    # top-1 by hand: v0 -> 0 (right), v1 -> 3 (wrong), v2 -> 2 (right), v3 -> 1 (right)
    assert top1_accuracy(SCORES, LABELS) == 0.75


def test_map_and_top1():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    labels = np.array([0, 1, 1])
    # class 0: + - -  -> 1.0 ; class 1 ranks [2 (+), 1 (+), 0 (-)] -> 1.0
    assert mean_average_precision(scores, labels) == 1.0
    assert math.isclose(top1_accuracy(scores, labels), 2 / 3)
    # video 0's scores swapped: class 0 ranks v1 (-), v2 (-), v0 (+) -> AP 1/3; class 1 ranks v0 (-), v2 (+),
    # v1 (+) -> AP 2/3; mAP (1/3 + 2/3) / 2 = 1/2
    worse = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert mean_average_precision(worse, labels) == pytest.approx(1 / 2)
    assert top1_accuracy(worse, labels) == pytest.approx(1 / 3)


def test_map_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n, c = int(rng.integers(2, 9)), int(rng.integers(2, 5))
        scores = rng.choice([0.1, 0.3, 0.5, 0.7], size=(n, c))
        labels = rng.integers(0, c, size=n)
        assert mean_average_precision(scores, labels) == pytest.approx(
            naive.mean_average_precision(scores.tolist(), labels.tolist()), abs=1e-12)
        assert top1_accuracy(scores, labels) == pytest.approx(naive.top1(scores.tolist(), labels.tolist()))


def test_undefined_values_are_nan_without_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" / "invalid value" on the way
        assert math.isnan(mean_average_precision(np.zeros((0, 3)), np.zeros(0, dtype=int)))
        p, r = precision_recall([0, 0], [0, 1])
        assert math.isnan(p) and r == 0.0
        p, r = precision_recall([1, 0], [0, 0])
        assert p == 0.0 and math.isnan(r)


def test_precision_recall():
    p, r = precision_recall([1, 1, 0, 0], [1, 0, 1, 0])
    assert (p, r) == (0.5, 0.5)
    p, r = precision_recall([1, 1, 1, 0], [1, 0, 0, 1])  # tp 1 of 3 predicted, of 2 true
    assert p == pytest.approx(1 / 3) and r == 0.5
    p, r = precision_recall([0, 0], [0, 1])
    assert math.isnan(p) and r == 0.0
    p, r = precision_recall([1, 0], [0, 0])
    assert p == 0.0 and math.isnan(r)
    p, r = precision_recall(np.array([[0.7, 0.0]]), np.array([[2, 2]]))  # truthiness, any shape
    assert (p, r) == (1.0, 0.5)
