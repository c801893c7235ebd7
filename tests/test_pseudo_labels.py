import math

import pytest
import torch

from nsnet.training.pseudo_labels import make_pseudo_labels, teacher_confidences

C = torch.tensor([0.1, 0.5, 0.45, 0.9, 0.2])


def test_teacher_confidences_pick_the_ground_truth_class():
    probs = torch.tensor([[[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]]])  # (B=1, T=3, C=2)
    assert torch.allclose(teacher_confidences(probs, torch.tensor([1])), torch.tensor([[0.3, 0.8, 0.5]]))
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        teacher_confidences(probs[0], torch.tensor([1]))


def test_relative_rule():
    assert make_pseudo_labels(C, "relative", gamma=0.5).tolist() == [0, 1, 1, 1, 0]
    assert make_pseudo_labels(C, "relative", gamma=1.0).tolist() == [0, 0, 0, 1, 0]


def test_topk_rule_rounds_up_and_clamps():
    assert make_pseudo_labels(C, "topk", rho=0.25).tolist() == [0, 1, 0, 1, 0]  # ceil(1.25) = 2
    assert make_pseudo_labels(C, "topk", rho=0.01).tolist() == [0, 0, 0, 1, 0]  # at least one
    assert make_pseudo_labels(C, "topk", rho=3.0).tolist() == [1, 1, 1, 1, 1]   # K > T: all frames
    with pytest.raises(ValueError, match="rho"):
        make_pseudo_labels(C, "topk", rho=0)


def test_threshold_and_soft_rules():
    assert make_pseudo_labels(C, "threshold", tau=0.45).tolist() == [0, 1, 1, 1, 0]
    soft = make_pseudo_labels(C, "soft")
    assert soft.min() == 0 and soft.max() == 1 and math.isclose(soft[1].item(), 0.5, rel_tol=1e-6)


def test_all_equal_confidences():
    flat = torch.full((4,), 0.3)
    assert make_pseudo_labels(flat, "relative").tolist() == [1, 1, 1, 1]
    assert make_pseudo_labels(flat, "topk", rho=0.5).tolist() == [1, 1, 0, 0]  # ties: earlier frames
    assert make_pseudo_labels(flat, "threshold", tau=0.5).tolist() == [0, 0, 0, 0]
    assert make_pseudo_labels(flat, "soft").tolist() == [0.5] * 4


def test_single_frame_video():
    one = torch.tensor([0.2])
    for rule in ("relative", "topk"):
        assert make_pseudo_labels(one, rule).tolist() == [1.0]
    assert make_pseudo_labels(one, "soft").tolist() == [0.5]


def test_batched_rows_are_independent():
    conf = torch.stack([C, C.flip(0)])
    out = make_pseudo_labels(conf, "topk", rho=0.2)
    assert out.tolist() == [[0, 0, 0, 1, 0], [0, 1, 0, 0, 0]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        make_pseudo_labels(torch.tensor([0.1, bad]), "relative")


def test_unknown_rule_and_empty_input():
    with pytest.raises(ValueError, match="unknown pseudo-label rule"):
        make_pseudo_labels(C, "median")
    with pytest.raises(ValueError, match="at least one frame"):
        make_pseudo_labels(torch.zeros(0), "relative")


# --------------------------------------------------------------------------- health (issue 19)
def test_health_warning_only_outside_five_to_ninety_five_percent():
    from nsnet.training.pseudo_labels import PseudoLabelRule, health_warning

    rule = PseudoLabelRule("threshold", tau=0.5)
    for fraction in (0.05, 0.2, 0.5, 0.95):
        assert health_warning(fraction, rule) is None, fraction
    for fraction in (0.0, 0.049, 0.951, 1.0):
        text = health_warning(fraction, rule)
        assert text and "\n" not in text and f"{100 * fraction:.1f}% of frames salient" in text, (fraction, text)
        assert "Likely cause:" in text and "Fix:" in text


@pytest.mark.parametrize("rule, knob", [("threshold", "--tau"), ("relative", "--gamma"), ("topk", "--rho"),
                                        ("soft", "--pseudo-rule")])
def test_health_warning_names_the_fix_for_each_rule_and_side(rule, knob):
    from nsnet.training.pseudo_labels import PseudoLabelRule, health_warning

    few, many = health_warning(0.01, PseudoLabelRule(rule)), health_warning(0.99, PseudoLabelRule(rule))
    assert f"pseudo labels ({rule})" in few and knob in few and "non-salient" in few
    assert knob in many and "every frame salient" in many
    if rule == "threshold":  # too few: lower the bar; too many: raise it
        assert "lower --tau" in few and "raise --tau" in many
    if rule == "relative":
        assert "lower --gamma" in few and "raise --gamma" in many
