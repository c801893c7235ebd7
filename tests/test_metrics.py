import math

import numpy as np

from nsnet.metrics import average_precision, mean_average_precision, precision_recall, top1_accuracy


def test_average_precision_hand_computed():
    # ranking: + - + -  -> precision at the positives: 1/1, 2/3 -> AP = (1 + 2/3) / 2
    assert math.isclose(average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]), (1 + 2 / 3) / 2)
    assert average_precision([0.9, 0.8], [1, 1]) == 1.0
    assert average_precision([0.1, 0.9], [1, 0]) == 0.5
    assert math.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_map_and_top1():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    labels = np.array([0, 1, 1])
    # class 0: + - -  -> 1.0 ; class 1 ranks [2 (+), 1 (+), 0 (-)] -> 1.0
    assert mean_average_precision(scores, labels) == 1.0
    assert math.isclose(top1_accuracy(scores, labels), 2 / 3)
    worse = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert mean_average_precision(worse, labels) < 1.0


def test_precision_recall():
    p, r = precision_recall([1, 1, 0, 0], [1, 0, 1, 0])
    assert (p, r) == (0.5, 0.5)
    p, r = precision_recall([0, 0], [0, 1])
    assert math.isnan(p) and r == 0.0
