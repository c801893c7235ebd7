"""Which frames each method keeps and what it costs (nsnet.inference.methods), worked out by hand.

The two curves below are already min-max normalised (min 0, max 1), so the fused score is
simply ``lam * P + (1 - lam) * G`` and every top-2 can be read off:

=====  ==========================================  ======
lam    fused                                       top-2
=====  ==========================================  ======
1      P                                           [2, 3]
0.8    [.30, .10, .40, .94, .48, .20]              [3, 4]
0.5    [.30, .10, .25, .85, .60, .50]              [3, 4]
0.2    [.30, .10, .10, .76, .72, .80]              [3, 5]
0      G                                           [4, 5]
=====  ==========================================  ======
"""
import dataclasses
import hashlib

import numpy as np
import pytest
import torch

import naive
from nsnet.config import ConfigError
from nsnet.inference.methods import (CLIP_METHODS, METHODS, clip_video_id, compare, method_gflops, rerank, select,
                                     teacher_curve, video_scores, video_seed)
from nsnet.inference.result import PipelineResult
from nsnet.models.selection import random_indices

P = [0.3, 0.1, 0.5, 1.0, 0.4, 0.0]   # frame-level scores p_t
G = [0.3, 0.1, 0.0, 0.7, 0.8, 1.0]   # video-level attention g_t
TOP2 = {1.0: [2, 3], 0.8: [3, 4], 0.5: [3, 4], 0.2: [3, 5], 0.0: [4, 5]}


def _pg(n: int = 1):
    return torch.tensor([P] * n), torch.tensor([G] * n)


def test_method_names():
    assert set(METHODS) == {"dense", "uniform", "random", "frame_only", "attention_only", "nsnet", "oracle"}
    assert CLIP_METHODS == ("nsnet", "uniform", "random", "dense")


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.8])
def test_frame_only_and_attention_only_follow_their_own_branch_at_any_lam(lam):
    p, g = _pg()
    assert select("frame_only", p, g, 2, lam).tolist() == [TOP2[1.0]]       # top-K of p_t alone
    assert select("attention_only", p, g, 2, lam).tolist() == [TOP2[0.0]]   # top-K of g_t alone
    assert select("nsnet", p, g, 2, lam).tolist() == [TOP2[lam]]
    assert TOP2[lam] == naive.topk(naive.fuse(P, G, lam), 2)


def test_nsnet_at_asymmetric_lam_differs_from_both_branches_and_its_mirror():
    p, g = _pg()
    assert select("nsnet", p, g, 2, 0.2).tolist() == [[3, 5]]
    assert select("nsnet", p, g, 2, 0.8).tolist() == [[3, 4]]
    assert select("nsnet", g, p, 2, 0.2).tolist() == [[3, 4]]  # the curves swapped: lam 0.2 acts as 0.8
    assert select("nsnet", p, g, 1, 0.2).tolist() == [[5]] and select("nsnet", p, g, 1, 0.8).tolist() == [[3]]


def test_every_video_of_a_batch_is_ranked_on_its_own():
    p = torch.tensor([P, G])
    g = torch.tensor([G, P])
    assert select("nsnet", p, g, 2, 0.2).tolist() == [TOP2[0.2], naive.topk(naive.fuse(G, P, 0.2), 2)]
    assert select("frame_only", p, g, 2, 0.5).tolist() == [TOP2[1.0], TOP2[0.0]]


def test_dense_and_uniform():
    p, g = _pg(2)
    assert select("dense", p, g, 2, 0.5).tolist() == [list(range(6))] * 2
    assert select("uniform", p, g, 2, 0.5).tolist() == [[1, 4]] * 2   # floor(1.5), floor(4.5)
    assert select("uniform", p, g, 4, 0.5).tolist() == [[0, 2, 3, 5]] * 2  # floor(.75), floor(2.25), ...
    assert select("uniform", p, g, 4, 0.5).tolist()[0] == naive.uniform(6, 4)


def test_oracle_keeps_the_teachers_most_confident_frames():
    p, g = _pg(2)
    teacher = torch.tensor([[0.1, 0.5, 0.2, 0.05, 0.9, 0.3], [0.6, 0.1, 0.1, 0.7, 0.2, 0.65]])
    assert select("oracle", p, g, 2, 0.5, teacher_conf=teacher).tolist() == [[1, 4], [3, 5]]
    with pytest.raises(ValueError, match="^the oracle needs the teacher's ground-truth-class confidences$"):
        select("oracle", p, g, 2, 0.5)


def test_random_k_seeding():
    p, g = _pg(3)
    # one int seed: one generator, drawn video after video
    gen = torch.Generator().manual_seed(11)
    want = [random_indices(6, 3, gen) for _ in range(3)]
    assert select("random", p, g, 3, 0.5, seed=11).tolist() == want
    gen = torch.Generator().manual_seed(0)  # the default seed is 0
    assert select("random", p, g, 3, 0.5).tolist() == [random_indices(6, 3, gen) for _ in range(3)]
    # one seed per video: each video from its own generator
    seeds = [5, 6, 7]
    want = [random_indices(6, 3, torch.Generator().manual_seed(s)) for s in seeds]
    assert select("random", p, g, 3, 0.5, seed=seeds).tolist() == want
    assert select("random", p, g, 3, 0.5, seed=(5, 6, 7)).tolist() == want
    with pytest.raises(ValueError, match=r"one seed per video \(3\), got 2"):
        select("random", p, g, 3, 0.5, seed=[1, 2])


def test_unknown_method_is_a_clear_error():
    p, g = _pg()
    with pytest.raises(ValueError, match="unknown method 'best'.*dense, uniform"):
        select("best", p, g, 2, 0.5)


def test_video_seed_is_a_stable_hash_of_seed_and_id():
    want = int.from_bytes(hashlib.sha256(b"3/clip_a").digest()[:7], "little")
    assert video_seed(3, "clip_a") == want and 0 <= want < 2 ** 56
    assert video_seed(3, "clip_a") != video_seed(4, "clip_a") != video_seed(4, "clip_b")


def test_method_gflops_table():
    cost = {"sampler": 1.0, "recognizer": 2.0, "total": 3.0, "dense": 10.0}
    want = {"dense": 10.0, "uniform": 2.0, "random": 2.0, "oracle": 2.0, "nsnet": 3.0, "frame_only": 3.0,
            "attention_only": 3.0}
    assert {m: method_gflops(m, cost) for m in METHODS} == want


def test_video_scores_average_the_kept_frames():
    probs = torch.tensor([[[0.2, 0.8], [0.6, 0.4], [1.0, 0.0]],
                          [[0.5, 0.5], [0.1, 0.9], [0.3, 0.7]]])  # (N=2, T=3, C=2)
    out = video_scores(probs, torch.tensor([[0, 2], [1, 2]]))
    assert torch.allclose(out, torch.tensor([[0.6, 0.4], [0.2, 0.8]]))


# ----------------------------------------------------------------- one clip
FRAME_PROBS = np.array([[0.7, 0.2, 0.1],
                        [0.1, 0.1, 0.8],
                        [0.2, 0.5, 0.3],
                        [0.1, 0.6, 0.3],
                        [0.3, 0.3, 0.4],
                        [0.5, 0.1, 0.4]], dtype=np.float32)  # (T=6, C=3)


def _result(dense: bool = True, dense_ms: float | None = None) -> PipelineResult:
    """A run at K = 2, lam = 0.5 (selected [3, 4]), with round timings and costs."""
    sel = np.array(TOP2[0.5])
    return PipelineResult(
        video={"path": "clip.mp4", "duration_s": 6.0}, timestamps_s=np.arange(6) + 0.5,
        frame_scores=np.array(P, np.float32), attention=np.array(G, np.float32),
        fused=np.array(naive.fuse(P, G, 0.5), np.float32), selected=sel, probs=FRAME_PROBS[sel].mean(0),
        class_names=["run", "jump", "swim"], timings_ms={"decode": 10.0, "sampler": 20.0, "recognizer": 30.0,
                                                         "total": 60.0},
        gflops={"sampler": 1.0, "recognizer": 4.0, "total": 5.0, "dense": 12.0}, lam=0.5, device="cpu",
        frame_probs=FRAME_PROBS if dense else None, dense_recognizer_ms=dense_ms)


def test_rerank_at_another_k_and_asymmetric_lam():
    res = _result()
    re = rerank(res, 3, 0.2)
    want = naive.topk(naive.fuse(P, G, 0.2), 3)
    assert want == [3, 4, 5]  # fused at 0.2: [.30, .10, .10, .76, .72, .80]
    assert re.selected.tolist() == want and re.lam == 0.2
    assert re.fused.tolist() == pytest.approx(naive.fuse(P, G, 0.2), abs=1e-6)
    assert re.probs.tolist() == pytest.approx(naive.mean_rows(FRAME_PROBS.tolist(), want), abs=1e-6)
    # frames 3, 4, 5 by hand: run (.1 + .3 + .5) / 3, jump (.6 + .3 + .1) / 3, swim (.3 + .4 + .4) / 3
    assert re.probs.tolist() == pytest.approx([0.3, 1 / 3, 1.1 / 3], abs=1e-6)
    assert re.labels[0] == {"label": "swim", "score": pytest.approx(1.1 / 3, abs=1e-6)}
    # the recognizer's cost scales per frame: 12 GFLOPs / 6 previews * 3, 30 ms / 2 frames * 3
    assert re.gflops == {"sampler": 1.0, "recognizer": 6.0, "total": 7.0, "dense": 12.0}
    assert re.timings_ms == {"decode": 10.0, "sampler": 20.0, "recognizer": 45.0, "total": 75.0}
    assert re.frame_scores is res.frame_scores and re.attention is res.attention  # nothing ran again
    assert res.selected.tolist() == [3, 4] and res.lam == 0.5  # the original is left alone
    assert rerank(res, 2, 0.8).selected.tolist() == TOP2[0.8]
    assert rerank(res, 1, 0.2).selected.tolist() == [5]


def test_rerank_of_a_one_frame_run_scales_its_recognizer_time_per_frame():
    one = dataclasses.replace(_result(), selected=np.array([3]),
                              timings_ms={"decode": 10.0, "sampler": 20.0, "recognizer": 15.0, "total": 45.0})
    re = rerank(one, 4, 0.5)
    assert re.timings_ms["recognizer"] == 60.0 and re.timings_ms["total"] == 90.0  # 15 ms a frame, 4 frames


NEEDS_DENSE = "{} needs per-frame recognizer outputs: run the pipeline with dense=True"


def test_rerank_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="k must be between"):
        rerank(_result(), 7, 0.5)
    with pytest.raises(ConfigError, match="lam"):
        rerank(_result(), 2, 1.5)
    with pytest.raises(ValueError, match="^" + NEEDS_DENSE.format("re-ranking") + "$"):
        rerank(_result(dense=False), 2, 0.5)


def test_teacher_curve_is_the_predicted_class_on_every_preview():
    res = _result()  # probs = mean of frames 3 and 4 = [.2, .45, .35] -> "jump"
    assert int(np.argmax(res.probs)) == 1
    assert teacher_curve(res).tolist() == pytest.approx(FRAME_PROBS[:, 1].tolist())
    with pytest.raises(ValueError, match="^" + NEEDS_DENSE.format("the teacher curve") + "$"):
        teacher_curve(_result(dense=False))


@pytest.mark.parametrize("dense_ms,per_frame_ms", [(None, 15.0), (48.0, 8.0)])
def test_compare_rows_by_hand(dense_ms, per_frame_ms):
    res = _result(dense_ms=dense_ms)
    rows = {r["method"]: r for r in compare(res, seed=4, video_id="clip_a")}
    assert list(rows) == ["NSNet", "uniform", "random", "dense"]
    frames = {"NSNet": [3, 4], "uniform": [1, 4], "dense": [0, 1, 2, 3, 4, 5],  # random-K: seeded as a dataset row
              "random": random_indices(6, 2, torch.Generator().manual_seed(video_seed(4, "clip_a")))}
    names = ["run", "jump", "swim"]
    for m, idx in frames.items():
        mean = naive.mean_rows(FRAME_PROBS.tolist(), idx)
        top = max(range(3), key=lambda c: mean[c])
        assert rows[m]["frames"] == idx, m
        assert rows[m]["label"] == names[top] and rows[m]["score"] == pytest.approx(mean[top], abs=1e-6), m
    # by hand: NSNet [3, 4] -> [.2, .45, .35]; uniform [1, 4] -> [.2, .2, .6]; dense -> [1.9, 1.8, 2.3] / 6
    assert (rows["NSNet"]["label"], rows["NSNet"]["score"]) == ("jump", pytest.approx(0.45, abs=1e-6))
    assert (rows["uniform"]["label"], rows["uniform"]["score"]) == ("swim", pytest.approx(0.6, abs=1e-6))
    assert (rows["dense"]["label"], rows["dense"]["score"]) == ("swim", pytest.approx(2.3 / 6, abs=1e-6))
    # GFLOPs: NSNet pays the sampler on T and the recognizer on K; the baselines the recognizer only
    assert {m: r["gflops"] for m, r in rows.items()} == {"NSNet": 5.0, "uniform": 4.0, "random": 4.0, "dense": 12.0}
    # ms: NSNet as measured; the others decode + their frames at the per-frame recognizer cost
    assert rows["NSNet"]["ms"] == 60.0
    assert rows["uniform"]["ms"] == rows["random"]["ms"] == pytest.approx(10.0 + 2 * per_frame_ms)
    assert rows["dense"]["ms"] == pytest.approx(10.0 + 6 * per_frame_ms)


def test_compare_needs_the_dense_outputs_and_seeds_random_k_with_0_by_default():
    with pytest.raises(ValueError, match="^" + NEEDS_DENSE.format("the comparison table") + "$"):
        compare(_result(dense=False))
    res = _result()
    rows = {r["method"]: r for r in compare(res)}
    seed = video_seed(0, clip_video_id(res))
    assert rows["random"]["frames"] == random_indices(6, 2, torch.Generator().manual_seed(seed))


def test_a_clip_is_identified_by_its_content_fingerprint_else_by_a_hash_of_its_outputs():
    """The documented rule, re-implemented here: the recorded fingerprint as it is; without one,
    "outputs:" + the first 16 hex digits of sha256 over the float32 bytes of timestamps, p_t, g_t."""
    import hashlib

    res = _result()
    with_print = dataclasses.replace(res, video=dict(res.video, fingerprint="sha256:feedbeef"))
    assert clip_video_id(with_print) == "sha256:feedbeef"
    bare = dataclasses.replace(res, video={k: v for k, v in res.video.items() if k != "fingerprint"})
    h = hashlib.sha256()
    for values in (bare.timestamps_s, bare.frame_scores, bare.attention):
        h.update(np.asarray(values, dtype=np.float32).tobytes())
    assert clip_video_id(bare) == "outputs:" + h.hexdigest()[:16]
    # the random-K row follows the identity: the fingerprint's seed, drawn by hand
    rows = {r["method"]: r for r in compare(with_print)}
    g = torch.Generator().manual_seed(video_seed(0, "sha256:feedbeef"))
    assert rows["random"]["frames"] == sorted(torch.randperm(6, generator=g)[:2].tolist())


def test_rerank_keeps_every_other_field():
    res = _result()
    re = rerank(res, 2, 0.8)
    same = ("video", "timestamps_s", "class_names", "device", "trained", "repeated", "dense_recognizer_ms")
    for name in same:
        assert getattr(re, name) is getattr(res, name) or getattr(re, name) == getattr(res, name), name
    assert dataclasses.replace(re) == re
