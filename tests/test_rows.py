"""The per-video rows of ``nsnet analyze`` / ``eval --per-video`` and their summary, by hand.

No network runs: the per-frame outputs are written down, and every number of the row is
recomputed from them with tests/naive.py (fusion at lam = 0.3, so curves swapped or a
lam applied the wrong way round cannot pass).
"""
import json
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import naive
from nsnet.data.records import VideoRecord
from nsnet.evaluation.rows import (ROW_KEYS, ROW_METHODS, VideoInfo, VideoOutputs, error_row, f32_list, head_outputs,
                                   make_row, method_scores, summarize)
from nsnet.inference.methods import video_seed
from nsnet.models.selection import random_indices

NAMES = ["run", "jump", "swim"]
P = [0.3, 0.1, 0.5, 1.0, 0.4, 0.0]   # already min-max normalised, so fused = lam * P + (1 - lam) * G
G = [0.3, 0.1, 0.0, 0.7, 0.8, 1.0]
PROBS = [[0.7, 0.2, 0.1],
         [0.1, 0.1, 0.8],
         [0.2, 0.5, 0.3],
         [0.1, 0.6, 0.3],
         [0.3, 0.3, 0.4],
         [0.5, 0.2, 0.3]]             # (T=6, C=3)
TS = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
COST = {"sampler": 1.23456, "recognizer": 2.0, "total": 3.23456, "dense": 6.0}
TIMES = {"decode": 1.234, "sampler": 2.0, "recognizer": 3.456, "total": 6.69}
LAM, K = 0.3, 2


def _out(p=P, g=G, probs=PROBS) -> VideoOutputs:
    return VideoOutputs(torch.tensor(p), torch.tensor(g), torch.tensor(probs))


def _info(vid="v1", gt="jump", index=1, segments=((1.0, 2.5),)) -> VideoInfo:
    return VideoInfo(vid, f"/data/{vid}.mp4", "validation", gt, index, segments)


def _row(info=None, out=None, lam=LAM, timings=TIMES, seed=0):
    return make_row(info or _info(), out or _out(), TS, 6.0, k=K, lam=lam, seed=seed, cost=COST, class_names=NAMES,
                    timings_ms=timings)


def test_row_numbers_follow_from_its_own_curves():
    row = _row()
    assert tuple(row) == ROW_KEYS
    json.dumps(row, allow_nan=False)  # strict JSON
    # fused at lam = 0.3 from the row's own curves: [.30, .10, .15, .79, .68, .70]
    assert row["fused"] == pytest.approx(naive.fuse(row["frame_scores"], row["attention"], LAM), abs=1e-6)
    assert row["fused"] == pytest.approx([0.3, 0.1, 0.15, 0.79, 0.68, 0.7], abs=1e-6)
    assert row["selected"] == naive.topk(row["fused"], K) == [3, 5]
    assert row["frame_scores"] == pytest.approx(P) and row["attention"] == pytest.approx(G)
    # what each method keeps, and the video score = mean of the kept frames' probabilities
    seed = video_seed(0, "v1")
    kept = {"nsnet": [3, 5], "uniform": naive.uniform(6, K), "dense": list(range(6)),
            "random": random_indices(6, K, torch.Generator().manual_seed(seed))}
    assert kept["uniform"] == [1, 4]
    for m in ROW_METHODS:
        mean = naive.mean_rows(PROBS, kept[m])
        top = max(range(3), key=lambda c: (mean[c], -c))
        assert row["class_scores"][m] == pytest.approx(mean, abs=1e-6), m
        assert row[m] == {"label": NAMES[top], "score": pytest.approx(mean[top], abs=1e-6), "correct": top == 1}, m
    # by hand: nsnet [3, 5] -> [.3, .4, .3] jump (right); uniform [1, 4] -> [.2, .2, .6] swim; dense [1.9, 1.9, 2.2]/6
    assert row["nsnet"]["label"] == "jump" and row["nsnet"]["correct"] is True
    assert row["uniform"]["label"] == "swim" and row["dense"]["label"] == "swim" and row["dense"]["correct"] is False
    # the teacher: the recognizer's confidence in NSNet's class (jump) on every preview
    assert row["teacher"] == pytest.approx([p[1] for p in PROBS])
    assert row["frame_probs"] == [pytest.approx(p) for p in PROBS]
    # saliency AP of the fused score against the previews inside [1.0, 2.5] (frames 1 and 2), by hand:
    # ranked 3, 5, 4, 0, 2 (+), 1 (+) -> precision 1/5, 2/6 -> interpolated 1/3 each -> AP 1/3
    assert row["saliency_ap"] == pytest.approx(1 / 3)
    assert row["saliency_ap"] == pytest.approx(naive.average_precision(row["fused"], naive.inside(TS, [(1.0, 2.5)])))
    assert row["gflops"] == {"nsnet": 3.2346, "uniform": 2.0, "random": 2.0, "dense": 6.0}
    assert row["timings_ms"] == {"decode": 1.23, "sampler": 2.0, "recognizer": 3.46, "total": 6.69}
    assert (row["id"], row["path"], row["subset"], row["gt"]) == ("v1", "/data/v1.mp4", "validation", "jump")
    assert row["segments"] == [[1.0, 2.5]] and row["duration_s"] == 6.0 and row["timestamps_s"] == TS
    assert row["error"] is None


@pytest.mark.parametrize("lam", [0.2, 0.8])
def test_rows_at_other_lam(lam):
    row = _row(lam=lam)
    assert row["fused"] == pytest.approx([lam * p + (1 - lam) * g for p, g in zip(P, G)], abs=1e-6)
    assert row["selected"] == {0.2: [3, 5], 0.8: [3, 4]}[lam]
    swapped = _row(out=_out(p=G, g=P), lam=lam)  # the two curves trade places: another decision
    assert swapped["fused"] == pytest.approx([lam * g + (1 - lam) * p for p, g in zip(P, G)], abs=1e-6)
    assert swapped["selected"] == {0.2: [3, 4], 0.8: [3, 5]}[lam]


def test_unlabelled_rows_and_segment_edge_cases():
    row = _row(info=_info(gt=None, index=-1, segments=None), timings=None)
    assert all(row[m]["correct"] is None for m in ROW_METHODS)
    assert row["gt"] is None and row["segments"] == [] and row["saliency_ap"] is None and row["timings_ms"] is None
    # every preview inside, or none: no AP (as eval)
    assert _row(info=_info(segments=((0.0, 6.0),)))["saliency_ap"] is None
    assert _row(info=_info(segments=((5.8, 6.0),)))["saliency_ap"] is None
    # one preview inside, at the very start of the segment (closed interval): frame 3 ranks first -> AP 1
    assert _row(info=_info(segments=((3.5, 3.9),)))["saliency_ap"] == 1.0
    assert _row(info=_info(segments=((3.0, 3.5),)))["saliency_ap"] == 1.0
    # frame 0 alone ranks 4th -> AP 1/4
    assert _row(info=_info(segments=((0.0, 1.0),)))["saliency_ap"] == pytest.approx(1 / 4)


def test_random_k_of_a_row_depends_on_its_id_and_seed_only():
    kept = lambda seed, vid: method_scores(_out(), "random", K, LAM, video_seed(seed, vid))[0].tolist()  # noqa: E731
    assert kept(0, "v1") == random_indices(6, K, torch.Generator().manual_seed(video_seed(0, "v1")))
    assert _row(seed=5)["class_scores"]["random"] == pytest.approx(naive.mean_rows(PROBS, kept(5, "v1")), abs=1e-6)


def test_method_scores_of_the_oracle_use_the_ground_truth_class():
    idx, scores = method_scores(_out(), "oracle", 2, 0.5, 0, label_index=2)
    assert idx.tolist() == [1, 4]  # swim is surest on frames 1 (.8) and 4 (.4)
    assert scores.tolist() == pytest.approx([0.2, 0.2, 0.6])


def test_f32_list_is_the_shortest_decimal_of_each_float32():
    values = np.array([0.1, 1 / 3, 2.5, 1e-8, 123456.789], dtype=np.float32)
    out = f32_list(values)
    assert out == [0.1, 0.33333334, 2.5, 1e-08, 123456.79]
    assert np.array_equal(np.asarray(out, dtype=np.float32), values)
    assert f32_list(torch.tensor([[0.25, 0.5]])) == [0.25, 0.5]
    assert f32_list([1 / 3, 0.1]) == [0.33333334, 0.1]  # float64 in: still float32's shortest decimal


def test_video_info_from_a_record_keeps_every_field():
    record = VideoRecord("vid", Path("/d/vid.mp4"), "jump", 1, "validation", 6.0, ((1.0, 2.5),))
    assert VideoInfo.from_record(record) == VideoInfo("vid", "/d/vid.mp4", "validation", "jump", 1, ((1.0, 2.5),))
    bare = VideoInfo.from_record(VideoRecord(7, Path("x.mp4"), None, -1, None))
    assert bare == VideoInfo("7", "x.mp4", None, None, -1, None) and isinstance(bare.id, str)


def test_row_of_class_0_rounding_and_unknown_duration():
    info = _info(gt="run", index=0)
    row = make_row(info, _out(), [0.123456, 1.5, 2.5, 3.5, 4.5, 5.5], None, k=K, lam=LAM, seed=0, cost=COST,
                   class_names=NAMES, timings_ms=None)
    assert row["duration_s"] is None and row["timestamps_s"][0] == 0.1235
    assert row["nsnet"]["correct"] is False and row["uniform"]["correct"] is False  # jump and swim, not run
    assert row["dense"]["correct"] is False
    first = make_row(info, _out(probs=[[0.9, 0.05, 0.05]] * 6), TS, 6.0, k=K, lam=LAM, seed=0, cost=COST,
                     class_names=NAMES, timings_ms=None)
    assert all(first[m]["correct"] is True for m in ROW_METHODS)  # class 0 is a class, not "unlabelled"


def test_error_row():
    row = error_row(_info(), "  cannot\n decode   this  ", {"decode": 1.006})
    assert tuple(row) == ROW_KEYS
    assert row["error"] == "cannot decode this"
    assert row["timings_ms"] == {"decode": 1.01}
    for key in ("timestamps_s", "frame_scores", "attention", "fused", "selected", "teacher"):
        assert row[key] == [], key
    assert row["nsnet"] is None and row["class_scores"] is None and row["saliency_ap"] is None
    assert (row["id"], row["gt"], row["segments"]) == ("v1", "jump", [[1.0, 2.5]])
    assert error_row(_info(), "   ")["error"] == "error" and error_row(_info(), "x")["timings_ms"] is None


def test_head_outputs_wire_each_head_to_its_field():
    """A stand-in pipeline whose heads compute something recognisable from the features."""
    feats_s, feats_r = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.5, 0.5]]), torch.tensor([[0.0, 1.0], [2.0, 0.0],
                                                                                          [1.0, 1.0]])

    def sampler_head(x):  # (1, T, Ds): p_t = sum of the features, g_t = the first feature
        return SimpleNamespace(frame_scores=x.sum(-1), attention=x[..., 0])

    pipe = SimpleNamespace(device=torch.device("cpu"), sampler=SimpleNamespace(forward_head=sampler_head),
                           recognizer=SimpleNamespace(forward_head=lambda x: x * 2))
    out = head_outputs(pipe, feats_s, feats_r)
    assert out.frame_scores.tolist() == [3.0, 3.0, 1.0] and out.attention.tolist() == [1.0, 3.0, 0.5]
    for t, logits in enumerate(feats_r.tolist()):  # softmax of the recognizer logits, by hand
        z = [math.exp(2 * v) for v in logits]
        assert out.frame_probs[t].tolist() == pytest.approx([v / sum(z) for v in z])
    assert out.frame_probs.dtype == torch.float32


# ----------------------------------------------------------------- summary
def _summary_rows():
    good = [  # three labelled videos, each with its own probabilities
        _row(info=_info("a", "run", 0), out=_out(probs=[[0.2, 0.7, 0.1]] * 3 + [[0.8, 0.1, 0.1]] * 3)),
        _row(info=_info("b", "jump", 1)),
        _row(info=_info("c", "swim", 2, segments=((0.0, 1.6),)), out=_out(probs=[[0.1, 0.2, 0.7]] * 6)),
    ]
    others = [
        _row(info=_info("u", None, -1, None)),                        # unlabelled
        error_row(_info("e"), "broken file"),                         # error
        _row(info=_info("x", "fly", -1)),                             # a label the checkpoint does not know
        error_row(_info("f"), "second error"),
        _row(info=_info("u2", None, -1, None)),
        _row(info=_info("x2", "dive", -1)),
    ]
    return good, [good[0], others[0], others[1], good[1], others[2], others[3], good[2], others[4], others[5]]


def test_summary_counts_and_per_method_numbers():
    good, rows = _summary_rows()
    s = summarize(rows, NAMES)
    want_counts = {"videos": 9, "ok": 7, "errors": 2, "labelled": 3, "unlabelled": 2, "unknown_label": 2}
    assert {k: s["counts"][k] for k in want_counts} == want_counts
    labels = [0, 1, 2]
    for m in ROW_METHODS:
        scores = [r["class_scores"][m] for r in good]
        assert s["methods"][m]["map"] == pytest.approx(naive.mean_average_precision(scores, labels), abs=1e-9), m
        assert s["methods"][m]["top1"] == pytest.approx(naive.top1(scores, labels)), m
        assert s["methods"][m]["gflops"] == good[0]["gflops"][m]
    # by hand for NSNet: a -> run, b -> jump, c -> swim (all right); each class's own video ranks first
    assert s["methods"]["nsnet"]["top1"] == 1.0 and s["methods"]["nsnet"]["map"] == 1.0
    # uniform picks frames 1 and 4: a -> [.5, .4, .1] run, b -> swim, c -> swim: 2 of 3
    assert s["methods"]["uniform"]["top1"] == pytest.approx(2 / 3)
    aps = [r["saliency_ap"] for r in good]
    assert None not in aps and s["saliency_ap"] == pytest.approx(sum(aps) / 3)
    assert s["first_error"] == "e: broken file"
    # per class (each class has one video, and it ranks first in its own column for NSNet)
    assert list(s["per_class"]) == NAMES
    for name in NAMES:
        assert s["per_class"][name]["n"] == 1 and s["per_class"][name]["top1"]["nsnet"] == 1.0
        assert s["per_class"][name]["ap"]["nsnet"] == 1.0
    assert s["per_class"]["jump"]["top1"]["uniform"] == 0.0 and s["per_class"]["run"]["top1"]["uniform"] == 1.0
    assert "faithfulness" in s
    assert summarize(rows, NAMES) == summarize(rows, NAMES, seed=0)  # the default seed is 0


def test_summary_reads_class_scores_back_as_float32():
    """As eval computes mAP on float32 scores: two scores equal in float32 tie (input order),
    though as float64 the second would rank first."""
    def row(vid, gt, scores):
        return {"id": vid, "error": None, "gt": gt, "gflops": {m: 1.0 for m in ROW_METHODS},
                "class_scores": {m: scores for m in ROW_METHODS}, "saliency_ap": None}
    rows = [row("b", "run", [0.3, 0.7]), row("a", "jump", [0.30000001, 0.69999999])]
    s = summarize(rows, ["run", "jump"])
    # float32: run's column ties, b (run) first -> AP 1; jump's column: a .7 (+) vs b .7 tie, b first -> AP 1/2
    assert s["methods"]["nsnet"]["map"] == pytest.approx((1 + 0.5) / 2)


def test_summary_without_labels_or_rows():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy "mean of empty slice" on the way
        s = summarize([_row(info=_info("u", None, -1, None))], NAMES)
    assert s["counts"]["labelled"] == 0 and s["counts"]["unlabelled"] == 1
    assert all(s["methods"][m]["map"] is None and s["methods"][m]["top1"] is None for m in ROW_METHODS)
    assert s["methods"]["dense"]["gflops"] == 6.0 and s["saliency_ap"] is None and s["first_error"] is None
    empty = summarize([], NAMES)
    assert empty["counts"]["videos"] == 0 and empty["methods"]["nsnet"]["gflops"] is None
