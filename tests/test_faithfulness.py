"""Faithfulness curves and per-class results: against naive recomputations written here, and on the demo model.

The naive versions loop over videos and frames in plain Python (sorted() for the
ranking, explicit sums for the means, nsnet.metrics for AP), independent of the
vectorised code under test.
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nsnet.evaluation import jsonl
from nsnet.evaluation.classwise import class_aps, mean_ap, mean_ap_many, per_class
from nsnet.evaluation.evaluate import FrameOutputs, evaluate
from nsnet.evaluation.faithfulness import (CURVES, RowCollector, faithfulness, faithfulness_from_rows,
                                           normalised_auc, removal_curve)
from nsnet.evaluation.results import load_results, summarize_results
from nsnet.evaluation.rows import VideoInfo, VideoOutputs, make_row, summarize
from nsnet.inference.methods import select, video_seed
from nsnet.inference.result import PipelineResult
from nsnet.metrics import average_precision, mean_average_precision, top1_accuracy


# ------------------------------------------------------------------ naive reference
def _argmax(values) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def _mean(probs, frames) -> list[float]:
    return [sum(float(probs[f][c]) for f in frames) / len(frames) for c in range(len(probs[0]))]


def _naive(probs, fused, labels, ids, seed, seeds):
    """Every curve point by brute force: rank, slice, average, arg-max, count."""
    n, t, _ = probs.shape
    use = [i for i in range(n) if labels[i] >= 0] or list(range(n))
    labelled = any(labels[i] >= 0 for i in range(n))
    target = {i: labels[i] if labelled else _argmax(_mean(probs[i], range(t))) for i in use}
    orders = {}
    for i in use:
        f = [float(x) for x in fused[i]]
        orders[("most", 0, i)] = sorted(range(t), key=lambda j: (-f[j], j))
        orders[("least", 0, i)] = sorted(range(t), key=lambda j: (f[j], j))
        for s in range(seeds):
            gen = torch.Generator().manual_seed(video_seed(seed + s, ids[i]))
            orders[("random", s, i)] = torch.randperm(t, generator=gen).tolist()
    top1, maps = {}, {}
    for kind in ("most", "least", "random"):
        runs = seeds if kind == "random" else 1
        for mode in ("keep", "drop"):
            acc, mp = [], []
            for k in range(1, t):
                acc_k, map_k = 0.0, 0.0
                for s in range(runs):
                    scores = []
                    for i in use:
                        order = orders[(kind, s, i)]
                        frames = order[:k] if mode == "keep" else order[k:]
                        scores.append(_mean(probs[i], frames))
                    hits = [_argmax(sc) == target[i] for sc, i in zip(scores, use)]
                    acc_k += sum(hits) / len(hits) / runs
                    if labelled:
                        map_k += mean_average_precision(np.array(scores), np.array([labels[i] for i in use])) / runs
                acc.append(acc_k)
                mp.append(map_k)
            top1[f"{mode}_{kind}"], maps[f"{mode}_{kind}"] = acc, mp
    return top1, maps, use, target


def _naive_auc(values) -> float:
    if len(values) == 1:
        return values[0]
    area = sum((values[i] + values[i + 1]) / 2 for i in range(len(values) - 1))
    return area / (len(values) - 1)


def _dataset(n=7, t=6, c=4, seed=3):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c) * 0.7, size=(n, t)).astype(np.float32)
    fused = rng.integers(0, 4, size=(n, t)).astype(np.float32) / 3  # many ties
    labels = np.array([0, 1, 2, 1, -1, 3, 0][:n])
    ids = [f"clip_{i}" for i in range(n)]
    return probs, fused, labels, ids


# ------------------------------------------------------------------ curves
def test_curves_match_a_brute_force_recomputation():
    probs, fused, labels, ids = _dataset()
    got = faithfulness(probs, fused, labels, ids, seed=11, seeds=3)
    top1, maps, use, _ = _naive(probs, fused, labels, ids, seed=11, seeds=3)
    t = probs.shape[1]
    assert got["k"] == list(range(1, t)) and got["videos"] == len(use) == 6  # the unlabelled video is left out
    assert got["target"] == "ground truth"
    for name in CURVES:
        assert got[name] == pytest.approx(top1[name], abs=1e-12), name
        assert got["map"][name] == pytest.approx(maps[name], abs=1e-9), name
        assert got["auc"][name] == pytest.approx(_naive_auc(top1[name]), abs=1e-12), name
        assert got["map"]["auc"][name] == pytest.approx(_naive_auc(maps[name]), abs=1e-9), name
    full = [_argmax(_mean(probs[i], range(t))) == labels[i] for i in use]
    assert got["all_frames"] == pytest.approx(sum(full) / len(full))


def test_unlabelled_videos_are_measured_against_the_full_clip_prediction():
    probs, fused, _, ids = _dataset(seed=5)
    labels = np.full(len(ids), -1)
    got = faithfulness(probs, fused, labels, ids, seed=0, seeds=2)
    top1, _, use, _ = _naive(probs, fused, labels, ids, seed=0, seeds=2)
    assert got["target"] == "full-clip prediction" and got["videos"] == len(ids) and got["map"] is None
    assert got["all_frames"] == 1.0  # the full clip agrees with itself
    for name in CURVES:
        assert got[name] == pytest.approx(top1[name], abs=1e-12), name


def test_a_curve_computed_by_hand():
    """One video, T = 3, C = 2, label 0. Ranked by s: most salient first 1, 2, 0; least first 0, 2, 1."""
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]], np.float32)
    fused = np.array([[0.1, 0.9, 0.5]], np.float32)
    got = faithfulness(probs, fused, [0], ["v"], seeds=1)
    assert got["keep_most"] == [0.0, 0.0]     # {1}: class 1; {1, 2}: (0.25, 0.75)
    assert got["keep_least"] == [1.0, 1.0]    # {0}: class 0; {0, 2}: (0.6, 0.4)
    assert got["drop_most"] == [1.0, 1.0]     # {2, 0}: (0.6, 0.4); {0}
    assert got["drop_least"] == [0.0, 0.0]    # {2, 1}: (0.25, 0.75); {1}
    assert got["all_frames"] == 0.0           # (0.467, 0.533): class 1
    assert got["auc"]["keep_least"] == 1.0 and got["auc"]["keep_most"] == 0.0


def test_random_order_zero_is_random_k():
    """The first k previews of a video's order 0 are the frames random-K picks for it at K = k."""
    t, seed = 16, 4
    for vid in ("a", "b/c", "syn_00012"):
        order = torch.randperm(t, generator=torch.Generator().manual_seed(video_seed(seed, vid))).tolist()
        for k in (1, 4, 9):
            picked = select("random", torch.zeros(1, t), torch.zeros(1, t), k, 0.5, seed=[video_seed(seed, vid)])
            assert sorted(order[:k]) == picked[0].tolist()


def test_normalised_auc():
    assert normalised_auc([0.5]) == 0.5
    assert normalised_auc([0.0, 1.0, 1.0]) == pytest.approx(0.75)   # (0.5 + 1) / 2
    assert normalised_auc([]) is None and normalised_auc([0.1, float("nan")]) is None


def test_bad_inputs_are_refused_in_one_line():
    probs, fused, labels, ids = _dataset()
    with pytest.raises(ValueError, match="seeds"):
        faithfulness(probs, fused, labels, ids, seeds=0)
    with pytest.raises(ValueError, match="must agree"):
        faithfulness(probs, fused[:, :-1], labels, ids)
    with pytest.raises(ValueError, match="T >= 2"):
        faithfulness(probs[:, :1], fused[:, :1], labels, ids)
    assert faithfulness(probs[:0], fused[:0], labels[:0], []) is None


# ------------------------------------------------------------------ AP and per-class
def test_vectorised_ap_equals_the_reference_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((40, 6)), 1)  # ties everywhere
    labels = rng.integers(0, 5, 40)            # class 5 has no video
    aps = class_aps(scores, labels)
    for c in range(6):
        ref = average_precision(scores[:, c], labels == c)
        assert (math.isnan(ref) and math.isnan(aps[c])) or aps[c] == pytest.approx(ref, abs=1e-12)
    assert mean_ap(scores, labels) == pytest.approx(mean_average_precision(scores, labels), abs=1e-12)
    many = mean_ap_many(np.stack([scores, scores[::-1].copy()]), labels, chunk_elements=50)  # forced chunking
    assert many[0] == pytest.approx(mean_average_precision(scores, labels), abs=1e-12)
    assert many[1] == pytest.approx(mean_average_precision(scores[::-1], labels), abs=1e-12)


def test_per_class_counts_add_up_and_match_naive_numbers():
    rng = np.random.default_rng(1)
    names = ["a", "b", "c", "d", "e"]
    labels = np.array([0, 0, 1, 3, 3, 3, 1, 0, 3, 1])  # c and e have no video
    scores = {m: rng.random((10, 5)) for m in ("nsnet", "dense", "uniform")}
    got = per_class(scores, labels, names)
    assert list(got) == ["a", "b", "d"]
    assert sum(v["n"] for v in got.values()) == len(labels)
    for m, s in scores.items():
        for name, entry in got.items():
            c = names.index(name)
            mine = [i for i in range(10) if labels[i] == c]
            assert entry["n"] == len(mine)
            assert entry["top1"][m] == pytest.approx(sum(_argmax(list(s[i])) == c for i in mine) / len(mine))
            assert entry["ap"][m] == pytest.approx(average_precision(s[:, c], labels == c))
        weighted = sum(v["n"] * v["top1"][m] for v in got.values()) / len(labels)
        assert weighted == pytest.approx(top1_accuracy(s, labels))
        assert np.mean([v["ap"][m] for v in got.values()]) == pytest.approx(mean_average_precision(s, labels))
    with pytest.raises(ValueError, match="class indices"):
        per_class(scores, np.array([0] * 9 + [7]), names)


# ------------------------------------------------------------------ rows, summary, eval, results files
NAMES = ["run", "jump", "swim", "climb"]


def _rows(t=6, k=3, lam=0.3, seed=7):
    probs, fused, labels, ids = _dataset(n=7, t=t, c=len(NAMES), seed=9)
    rng = np.random.default_rng(2)
    rows = []
    for i, vid in enumerate(ids):
        gt = NAMES[labels[i]] if labels[i] >= 0 else None
        info = VideoInfo(vid, f"/videos/{vid}.mp4", "validation", gt, int(labels[i]), ((0.5, 2.0),))
        out = VideoOutputs(torch.from_numpy(rng.random(t).astype(np.float32)),
                           torch.from_numpy(rng.random(t).astype(np.float32)), torch.from_numpy(probs[i]))
        rows.append(make_row(info, out, np.arange(t) * 0.5 + 0.25, t * 0.5, k=k, lam=lam, seed=seed,
                             cost={"sampler": 1.0, "recognizer": 2.0, "total": 3.0, "dense": 4.0},
                             class_names=NAMES, timings_ms=None))
    rows = [json.loads(json.dumps(r)) for r in rows]  # what a reader of the JSONL file gets
    return rows


def test_summary_carries_faithfulness_and_per_class_consistent_with_the_methods():
    k, seed = 3, 7
    rows = _rows(k=k, seed=seed)
    bad = dict(rows[0], id="broken", error="cannot decode")
    other_t = dict(rows[1], id="short", fused=rows[1]["fused"][:-1], frame_probs=rows[1]["frame_probs"][:-1])
    summary = summarize(rows + [bad], NAMES, seed=seed)
    faith, methods = summary["faithfulness"], summary["methods"]
    assert faith["videos"] == summary["counts"]["labelled"] == 6
    assert faith["keep_most"][k - 1] == pytest.approx(methods["nsnet"]["top1"])  # keep_most at K is NSNet-K
    assert faith["all_frames"] == pytest.approx(methods["dense"]["top1"])
    assert faith["map"]["all_frames"] == pytest.approx(methods["dense"]["map"])
    one_seed = faithfulness_from_rows(rows, NAMES, seed=seed, seeds=1)
    assert one_seed["keep_random"][k - 1] == pytest.approx(methods["random"]["top1"])  # order 0 is random-K
    assert one_seed["map"]["keep_most"][k - 1] == pytest.approx(methods["nsnet"]["map"])
    assert sum(v["n"] for v in summary["per_class"].values()) == summary["counts"]["labelled"]
    for m in ("nsnet", "dense", "uniform", "random"):
        weighted = sum(v["n"] * v["top1"][m] for v in summary["per_class"].values()) / 6
        assert weighted == pytest.approx(methods[m]["top1"])
    collector = RowCollector(NAMES)
    assert [collector.add(r) for r in (rows[0], bad, other_t)] == [True, False, False]
    assert collector.skipped == 1  # an error row is not counted as skipped, a row of another T is
    assert summarize([bad], NAMES)["faithfulness"] is None


def test_eval_json_carries_faithfulness_and_per_class():
    t, k, lam = 6, 2, 0.7
    rows = _rows(t=t)
    labelled = [r for r in rows if r["gt"] is not None]
    out = FrameOutputs(torch.tensor([r["frame_scores"] for r in labelled]), torch.tensor([r["attention"] for r in labelled]),
                       torch.tensor([r["frame_probs"] for r in labelled]),
                       torch.tensor([NAMES.index(r["gt"]) for r in labelled]), tuple(r["id"] for r in labelled))
    cost = {"sampler": 1.0, "recognizer": 2.0, "total": 3.0, "dense": 4.0}
    pipe = SimpleNamespace(config=SimpleNamespace(k=k, lam=lam), class_names=NAMES, gflops_per_video=lambda t, k: cost)
    got = evaluate(pipe, SimpleNamespace(gt_mask=None), outputs=out)
    faith = got["faithfulness"]
    assert faith["keep_most"][k - 1] == pytest.approx(got["methods"]["nsnet"]["top1"])
    assert faith["map"]["keep_most"][k - 1] == pytest.approx(got["methods"]["nsnet"]["map"])
    assert faith["all_frames"] == pytest.approx(got["methods"]["dense"]["top1"])
    assert set(got["per_class"]["run"]["top1"]) == set(got["methods"])
    assert sum(v["n"] for v in got["per_class"].values()) == got["num_videos"] == len(labelled)


def test_a_results_file_explains_itself_with_the_run_files_classes(tmp_path):
    rows = _rows()
    out = tmp_path / "run.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = {"checkpoint": "x", "t": 6, "k": 3, "lam": 0.3, "seed": 7, "precision": "fp32"}
    jsonl.run_path(out).write_text(json.dumps(run))
    with pytest.raises(jsonl.ResultFileError, match="no class names"):
        load_results(out)
    assert load_results(out, NAMES).class_names == NAMES
    jsonl.run_path(out).write_text(json.dumps(dict(run, classes=NAMES)))
    res = load_results(out)
    assert res.class_names == NAMES and len(res.rows) == len(rows) and res.skipped == 0
    assert summarize_results(out) == summarize(rows, NAMES, seed=7)
    jsonl.run_path(out).write_text(json.dumps(dict(run, classes=NAMES[:3])))
    with pytest.raises(jsonl.ResultFileError, match="4 classes"):
        load_results(out)


# ------------------------------------------------------------------ one clip
def _result(probs, fused, times):
    t = len(fused)
    return PipelineResult(video={"path": "clip.mp4", "duration_s": float(times[-1]) + 0.5}, timestamps_s=np.array(times),
                          frame_scores=np.array(fused, np.float32), attention=np.zeros(t, np.float32),
                          fused=np.array(fused, np.float32), selected=np.array([1]), probs=np.array(probs[1]),
                          class_names=["walk", "wave"], timings_ms={}, gflops={}, lam=0.6, device="cpu",
                          frame_probs=np.array(probs, np.float32))


def test_removal_curve_of_one_clip_by_hand():
    res = _result([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]], [0.1, 0.9, 0.5], [0.5, 1.5, 2.5])
    got = removal_curve(res)
    assert got["full_label"] == "wave" and got["order"] == "most"
    assert got["removed"] == [0, 1, 2] and got["frame"] == [None, 1, 2] and got["time_s"] == [None, 1.5, 2.5]
    assert got["label"] == ["wave", "walk", "walk"]
    assert got["score"] == pytest.approx([1.6 / 3, 0.6, 0.9], abs=1e-6)
    assert got["full_label_prob"] == pytest.approx([1.6 / 3, 0.4, 0.1], abs=1e-6)
    least = removal_curve(res, most_first=False)
    assert least["frame"] == [None, 0, 2] and least["label"] == ["wave", "wave", "wave"]
    with pytest.raises(ValueError, match="dense"):
        removal_curve(PipelineResult(**{**res.__dict__, "frame_probs": None}))


# ------------------------------------------------------------------ the demo model
def test_keep_most_beats_keep_least_with_the_demo_model(tmp_path):
    """The bundled model on the bundled examples (held-out clips), through `nsnet analyze` and its summary."""
    from pathlib import Path

    from nsnet.cli import analyze as analyze_cli

    examples = Path(__file__).resolve().parent.parent / "assets" / "examples"
    out = tmp_path / "examples.jsonl"
    assert analyze_cli.main([str(examples / "annotations.json"), "--out", str(out), "--workers", "0",
                             "--device", "cpu", "--no-progress"]) == 0
    faith = json.loads(jsonl.summary_path(out).read_text())["faithfulness"]
    auc = faith["auc"]
    assert faith["videos"] == 4 and faith["target"] == "ground truth"
    assert auc["keep_most"] > auc["keep_random"] > auc["keep_least"]
    assert auc["drop_most"] < auc["drop_random"] < auc["drop_least"]
    k = 4
    assert faith["keep_most"][k - 1] >= faith["keep_least"][k - 1] + 0.5
