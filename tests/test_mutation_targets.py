"""Expectations that ``make mutate`` showed missing: pseudo-label rules, losses and the TSN
sample points, each checked against a value derived by hand or by tests/naive.py.

(The bulk of each module's tests lives in its own file; these close the gaps the mutation
run found, see tests/mutate.py.)
"""
import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import naive
from nsnet.training.losses import NSNetLoss, frame_loss, nonsalient_loss, salient_loss
from nsnet.training.pseudo_labels import PseudoLabelRule, make_pseudo_labels, teacher_confidences
from nsnet.video.decoder import DecodeStats
from nsnet.video.errors import (CorruptVideoError, NoDecodableFramesError, TruncatedVideoError,
                                UnsupportedGeometryError)
from nsnet.video.sampling import Workers, _nearest, check_coverage, output_size, segment_centres, split

C = torch.tensor([0.1, 0.5, 0.45, 0.9, 0.2])


# ----------------------------------------------------------------- pseudo labels
def test_teacher_confidences_of_a_batch():
    probs = torch.tensor([[[0.7, 0.3], [0.2, 0.8]],
                          [[0.6, 0.4], [0.1, 0.9]],
                          [[0.5, 0.5], [0.3, 0.7]]])  # (B=3, T=2, C=2)
    out = teacher_confidences(probs, torch.tensor([1, 0, 1]))
    assert torch.equal(out, torch.tensor([[0.3, 0.8], [0.6, 0.1], [0.5, 0.7]]))


def test_relative_rule_uses_each_videos_own_maximum():
    conf = torch.tensor([[0.1, 0.5, 0.45, 0.9, 0.2],
                         [0.02, 0.05, 0.045, 0.01, 0.03]])  # the second video's max is 0.05
    assert make_pseudo_labels(conf, "relative", gamma=0.8).tolist() == [[0, 0, 0, 1, 0], [0, 1, 1, 0, 0]]
    assert make_pseudo_labels(C, "relative", gamma=0.0).tolist() == [1, 1, 1, 1, 1]  # gamma 0 is allowed
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=f"^gamma must be between 0 and 1, got {bad}$"):
            make_pseudo_labels(C, "relative", gamma=bad)


def test_topk_rule_on_long_tied_rows_matches_naive():
    gen = torch.Generator().manual_seed(0)
    conf = torch.randint(0, 3, (3, 300), generator=gen).float() / 2  # ties an unstable sort would reorder
    out = make_pseudo_labels(conf, "topk", rho=0.3)
    for row, got in zip(conf.tolist(), out.tolist()):
        keep = naive.topk(row, 90)
        assert got == [1.0 if i in keep else 0.0 for i in range(300)]


def test_threshold_rule_default_tau():
    assert make_pseudo_labels(torch.tensor([0.49, 0.5, 0.51]), "threshold").tolist() == [0, 1, 1]  # tau = 0.5


def test_pseudo_label_errors_are_exact():
    with pytest.raises(ValueError, match=r"^pseudo labels need at least one frame \(T >= 1\)$"):
        make_pseudo_labels(torch.zeros(3, 0), "relative")
    with pytest.raises(ValueError, match="^teacher confidences contain NaN or infinite values; check the teacher's "
                                         "outputs$"):
        make_pseudo_labels(torch.tensor([0.1, math.nan]), "soft")
    with pytest.raises(ValueError, match=r"^unknown pseudo-label rule 'median' \(choose from relative, topk, "
                                         r"threshold, soft\)$"):
        make_pseudo_labels(C, "median")


def test_rule_objects_pass_every_knob():
    conf = torch.tensor([0.1, 0.5, 0.45, 0.9, 0.2])
    cases = [(PseudoLabelRule("relative", gamma=0.5), [0, 1, 1, 1, 0]),
             (PseudoLabelRule("topk", rho=0.6), [0, 1, 1, 1, 0]),       # ceil(3.0) = 3 frames
             (PseudoLabelRule("threshold", tau=0.45), [0, 1, 1, 1, 0]),
             (PseudoLabelRule("threshold", tau=0.95), [0, 0, 0, 0, 0]),
             (PseudoLabelRule("soft"), [0.0, 0.5, 0.4375, 1.0, 0.125])]
    for rule, want in cases:
        assert rule(conf).tolist() == pytest.approx(want), rule
        assert rule(conf).tolist() == make_pseudo_labels(conf, rule.rule, gamma=rule.gamma, rho=rule.rho,
                                                         tau=rule.tau).tolist()
    with pytest.raises(ValueError, match=r"^unknown pseudo-label rule 'best' \(choose from relative, topk, threshold, "
                                         r"soft\)$"):
        PseudoLabelRule("best")


def test_rule_from_a_checkpoints_training_settings():
    meta = {"pseudo_rule": "topk", "gamma": 0.6, "rho": 0.4, "tau": 0.3, "lr": 1e-3}
    assert PseudoLabelRule.from_train_meta(meta) == PseudoLabelRule("topk", 0.6, 0.4, 0.3)
    assert PseudoLabelRule.from_train_meta({}) == PseudoLabelRule()
    assert PseudoLabelRule.from_train_meta({"gamma": 0.7}) == PseudoLabelRule(gamma=0.7)


# ----------------------------------------------------------------- sample points
@pytest.mark.parametrize("duration,t", [(8.0, 4), (10.0, 3), (0.5, 16), (7.3, 1), (0.0, 5)])
def test_segment_centres_follow_the_tsn_formula(duration, t):
    got = segment_centres(duration, t)
    assert got.dtype == np.float64 and got.shape == (t,)
    assert got.tolist() == pytest.approx(naive.tsn_centres(duration, t), abs=1e-12)


def test_segment_centres_refuse_bad_input():
    for bad_t in (0, -2):
        with pytest.raises(ValueError, match=f"^num_frames must be >= 1, got {bad_t}$"):
            segment_centres(8.0, bad_t)
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="^duration_s must be >= 0"):
            segment_centres(bad, 4)


# ----------------------------------------------------------------- losses
def test_each_loss_mode_is_the_one_asked_for():
    torch.manual_seed(0)
    heads = type("H", (), dict(frame_logits=torch.randn(2, 5), video_logits=torch.randn(2, 4),
                               nonsalient_logits=torch.randn(2, 4)))
    pl, y = torch.randint(0, 2, (2, 5)).float(), torch.tensor([0, 2])
    # by hand: background = CE towards the last class; uniform = KL(u || softmax over the 3 real classes)
    z = heads.nonsalient_logits
    background = -F.log_softmax(z, -1)[:, 3].mean()
    uniform = (math.log(1 / 3) - F.log_softmax(z[:, :3], -1).mean(-1)).mean()
    assert not torch.isclose(background, uniform)
    for mode, want in (("background", background), ("uniform", uniform)):
        terms = NSNetLoss(alpha=0.3, beta=0.7, non_mode=mode)(heads, pl, y)
        assert torch.isclose(terms.non, want) and torch.isclose(nonsalient_loss(z, mode), want), mode
        assert torch.isclose(terms.frame, frame_loss(heads.frame_logits, pl))
        assert torch.isclose(terms.sal, salient_loss(heads.video_logits, y))
        assert torch.isclose(terms.total, terms.frame + 0.3 * terms.sal + 0.7 * terms.non)
    with pytest.raises(ValueError, match=r"^unknown non-salient loss mode 'other' \(choose 'background' or "
                                         r"'uniform'\)$"):
        NSNetLoss(non_mode="other")


def test_background_target_lives_on_the_logits_device():
    """The background labels are made on the logits' device (checked on PyTorch's 'meta' device: no GPU needed)."""
    out = nonsalient_loss(torch.zeros(2, 4, device="meta"), "background")
    assert out.device.type == "meta" and out.shape == ()


# ----------------------------------------------------------------- sampling: the parts that decide, without decoding
def _info(w, h):
    return SimpleNamespace(width=w, height=h, path="clip.mp4")


def test_output_size_sets_the_shorter_side_and_keeps_the_aspect():
    assert output_size(_info(640, 480), 240) == (320, 240)
    assert output_size(_info(480, 640), 240) == (240, 320)
    assert output_size(_info(641, 480), 224) == (299, 224)  # round(641 * 224 / 480) = round(299.13)
    assert output_size(_info(640, 480), None) == (640, 480)
    assert output_size(_info(3200, 200), 100) == (1600, 100)  # exactly 16:1 is allowed
    assert output_size(_info(1000, 999), 1) == (1, 1)


def test_output_size_refuses_what_is_too_wide_or_too_large():
    with pytest.raises(UnsupportedGeometryError, match=r"^clip.mp4: unsupported geometry: 3400x200 pixels, aspect "
                                                       r"ratio beyond the 16:1 limit$"):
        output_size(_info(3400, 200), 100)
    with pytest.raises(UnsupportedGeometryError, match=r"output frames of 8000x4400 pixels \(the display size\) are "
                                                       r"above the limit of 33.2 Mpx; ask for a smaller size$"):
        output_size(_info(8000, 4400), None)
    with pytest.raises(UnsupportedGeometryError, match=r"output frames of 7700x4400 pixels \(size=4400\)"):
        output_size(_info(7000, 4000), 4400)
    assert output_size(_info(7680, 4320), None) == (7680, 4320)  # exactly the limit


def test_nearest_of_two_frames_and_ties_to_the_earlier():
    a, b = ("A", 1.0), ("B", 2.0)
    assert _nearest(a, b, 1.4) is a and _nearest(a, b, 1.6) is b
    assert _nearest(a, b, 1.5) is a                    # a tie: the frame on screen then
    assert _nearest(a, b, 1.5 + 4e-7) is a             # within 1e-6 of a tie: still a tie
    assert _nearest(a, b, 1.5 + 3e-6) is b
    assert _nearest(None, b, 1.0) is b


class _Index:
    """A stand-in decoder for ``split``: keyframes every ``gop_s`` seconds."""

    def __init__(self, gop_s, fps=25.0, entries=10, can_seek=True):
        self.gop_s, self.can_seek = gop_s, can_seek
        self.info = SimpleNamespace(fps=fps)
        self.stream = SimpleNamespace(index_entries=[0] * entries)
        self.loaded = 0

    def load_index(self):
        self.loaded += 1

    def keyframe_before(self, t):
        return math.floor(t / self.gop_s) * self.gop_s


def test_split_evens_out_the_frames_each_run_decodes():
    # keyframes every 10 s, a point at 9, 19, ..., 79 s: each costs (t - keyframe) * 25 + 1 = 226 frames, and
    # every point after the first starts behind a keyframe a seek away from the point before (a cut)
    targets = np.arange(8) * 10.0 + 9.0
    video = _Index(10.0)
    assert split(video, targets, 2) == [slice(0, 4), slice(4, 8)]  # 4 x 226 frames each
    assert video.loaded == 1
    # 3 runs: cuts nearest 1808/3 = 602.7 (after 3 points: 678) and 1205.3 (after 5: 1130)
    assert split(_Index(10.0), targets, 3) == [slice(0, 3), slice(3, 5), slice(5, 8)]
    assert split(_Index(10.0), targets, 8) == [slice(i, i + 1) for i in range(8)]
    assert split(_Index(10.0), targets, 20) == [slice(i, i + 1) for i in range(8)]  # at most one run a point


def test_split_keeps_one_run_when_parallel_decoders_would_not_pay():
    targets = np.arange(8) * 10.0 + 9.0
    whole = [slice(0, 8)]
    assert split(_Index(10.0), targets, 1) == whole
    assert split(_Index(10.0, can_seek=False), targets, 4) == whole
    assert split(_Index(10.0, entries=1), targets, 4) == whole        # no index to find keyframes in
    assert split(_Index(100.0), targets, 4) == whole                  # one GOP: no point starts behind a keyframe
    assert split(_Index(10.0), targets[:1], 4) == [slice(0, 1)]
    # too little to decode: 8 points a frame after their keyframes (8 frames in all, under 30 a worker)
    assert split(_Index(10.0), np.arange(8) * 10.0 + 0.02, 4) == whole
    # a keyframe just 3 frames after the point before (3 <= the seek overhead of 2 + 1): no cut there
    close = np.array([9.0, 10.12, 29.0, 39.0])
    assert split(_Index(10.0), close, 2) == [slice(0, 2), slice(2, 4)]


def _coverage(times, eof_t=None, errors=0, frames=None, duration=8.0, fps=25.0):
    targets = np.array([1.0, 3.0, 5.0, 7.0])
    sampler = SimpleNamespace(targets=targets, times=np.array(times, dtype=np.float64), seg_s=duration / 4,
                              eof_t=eof_t, frames=frames or [np.zeros(1)] * 4)
    video = SimpleNamespace(path="clip.mp4", info=SimpleNamespace(fps=fps, duration_s=duration),
                            stats=SimpleNamespace(errors=errors))
    return check_coverage(sampler, video)


def test_check_coverage_by_hand(caplog):
    assert _coverage([1.0, 3.0, 5.0, 7.0]) is None
    with pytest.raises(NoDecodableFramesError, match="^clip.mp4: no frame of the video track can be decoded$"):
        _coverage([1.0, 3.0, 5.0, 7.0], frames=[np.zeros(1), None, np.zeros(1), np.zeros(1)])
    # the data ends at 4.9 s of 8: the last point is 2.1 s (> its 2 s segment) from its frame -> truncated
    with pytest.raises(TruncatedVideoError, match=r"^clip.mp4: truncated file: frames stop at 4.9 s of a stated "
                                                  r"8.0 s \(incomplete upload or copy\?\)$"):
        _coverage([1.0, 3.0, 4.9, 4.9], eof_t=4.9)
    assert _coverage([1.0, 3.0, 5.0, 5.0], eof_t=5.0) is None   # exactly one segment away: still covered
    assert _coverage([1.0, 3.0, 4.9, 4.9], eof_t=6.0) is None   # ends 2 s early: within the slack
    # slack is two frames when segments are shorter: 1 fps, 4 points over 2 s -> 2 s of slack
    assert _coverage([1.0, 3.0, 5.0, 5.0], eof_t=5.0, duration=2.0, fps=1.0) is None
    with pytest.raises(CorruptVideoError, match="^clip.mp4: too damaged: only 1 of 4 sample points could be decoded$"):
        _coverage([1.0, 0.0, 0.0, 0.0], errors=3)
    with caplog.at_level(logging.WARNING, logger="nsnet.video.sampling"):
        assert _coverage([1.0, 3.0, 0.0, 0.0], errors=3) is None   # 2 of 4 stale: not more than half
    assert [r.getMessage() for r in caplog.records] == [
        "clip.mp4: skipped 3 damaged packets/frames; 2 of 4 sample points use a neighbouring frame"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nsnet.video.sampling"):
        assert _coverage([1.0, 3.0, 0.0, 0.0]) is None   # stale points without damage: no warning
    assert caplog.records == []


def _run(frames, times, eof_t=None, **stats):
    return SimpleNamespace(frames=frames, times=np.array(times), eof_t=eof_t,
                           video=SimpleNamespace(stats=DecodeStats(**stats)))


def test_workers_merge_the_runs_in_place_and_note_an_early_end():
    video = SimpleNamespace(info=SimpleNamespace(duration_s=8.0))
    targets = np.array([1.0, 3.0, 5.0, 7.0])
    w = Workers(video, targets, (4, 4), [slice(0, 1), slice(1, 4)])
    assert w.seg_s == 2.0 and w.decoders == 2 and w.complete and w.eof_t is None
    w.merge([_run(["a"], [1.0], decoded=5, seeks=1), _run(["b", "c", "d"], [3.0, 5.0, 7.0], decoded=7, errors=2)])
    assert w.frames == ["a", "b", "c", "d"] and w.times.tolist() == [1.0, 3.0, 5.0, 7.0]
    assert (w.stats.decoded, w.stats.seeks, w.stats.errors) == (12, 1, 2) and w.complete and w.eof_t is None
    # the last run meeting the end of the data with every point filled is complete
    w = Workers(video, targets, (4, 4), [slice(0, 2), slice(2, 4)])
    w.merge([_run(["a", "b"], [1.0, 3.0]), _run(["c", "c"], [5.0, 5.0], eof_t=5.0)])
    assert w.complete and w.eof_t == 5.0
    # a run before the last meeting the end, or the last one with a point unfilled, is not
    w = Workers(video, targets, (4, 4), [slice(0, 2), slice(2, 4)])
    w.merge([_run(["a", "a"], [1.0, 1.0], eof_t=1.0), _run(["c", "d"], [5.0, 7.0])])
    assert not w.complete and w.eof_t == 1.0
    w = Workers(video, targets, (4, 4), [slice(0, 2), slice(2, 4)])
    w.merge([_run(["a", "b"], [1.0, 3.0]), _run(["c", None], [5.0, 0.0], eof_t=5.0)])
    assert not w.complete
