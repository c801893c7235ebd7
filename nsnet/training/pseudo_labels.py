"""Frame pseudo labels from a frozen teacher (docs/method.md, "Pseudo labels").

The teacher is the trained recognizer. For every preview frame its confidence in the
video's ground-truth class, ``c_t = softmax(recognizer(frame_t))[y]``, says how salient
the frame is. Temporal ground truth is never used here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ..models.selection import minmax_norm

__all__ = ["RULES", "HEALTHY_FRACTION", "PseudoLabelRule", "teacher_confidences", "make_pseudo_labels",
           "health_warning"]

Rule = Literal["relative", "topk", "threshold", "soft"]
RULES: tuple[str, ...] = ("relative", "topk", "threshold", "soft")
#: salient-frame fractions outside this range make a frame-level head learn one answer: a warning
HEALTHY_FRACTION = (0.05, 0.95)


def teacher_confidences(frame_probs: Tensor, labels: Tensor) -> Tensor:
    """Confidence of the ground-truth class per frame.

    frame_probs: (B, T, C) probabilities; labels: (B,) int64 -> (B, T).
    """
    if frame_probs.dim() != 3:
        raise ValueError(f"frame_probs must be (B, T, C), got shape {tuple(frame_probs.shape)}")
    idx = labels.long().view(-1, 1, 1).expand(-1, frame_probs.shape[1], 1)
    return frame_probs.gather(-1, idx).squeeze(-1)


@dataclass(frozen=True)
class PseudoLabelRule:
    """One pseudo-label rule and its knobs; the defaults are the project's (docs/method.md).

    Training stores these as ``pseudo_rule``, ``gamma``, ``rho`` and ``tau`` in the
    checkpoint's ``meta.train``; :meth:`from_train_meta` reads them back for evaluation.
    """

    rule: str = "threshold"   # best of the four rules on the benchmark (README, Ablations)
    gamma: float = 0.8
    rho: float = 0.25
    tau: float = 0.5

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown pseudo-label rule {self.rule!r} (choose from {', '.join(RULES)})")

    def __call__(self, conf: Tensor) -> Tensor:
        """Frame targets (..., T) of teacher confidences (..., T)."""
        return make_pseudo_labels(conf, self.rule, gamma=self.gamma, rho=self.rho, tau=self.tau)  # type: ignore[arg-type]

    @classmethod
    def from_train_meta(cls, train: dict[str, Any]) -> "PseudoLabelRule":
        """The rule a checkpoint was trained with (defaults for what its ``meta.train`` lacks)."""
        d = cls()
        return cls(rule=train.get("pseudo_rule", d.rule), gamma=train.get("gamma", d.gamma),
                   rho=train.get("rho", d.rho), tau=train.get("tau", d.tau))


def make_pseudo_labels(conf: Tensor, rule: Rule = PseudoLabelRule.rule, *, gamma: float = PseudoLabelRule.gamma,
                       rho: float = PseudoLabelRule.rho, tau: float = PseudoLabelRule.tau) -> Tensor:
    """Turn teacher confidences (..., T) into frame targets (..., T) in {0, 1} (or [0, 1] for soft).

    The defaults are :class:`PseudoLabelRule`'s (``TrainConfig``'s and docs/method.md's).

    - ``relative``: ``c_t >= gamma * max_t c_t``
    - ``topk``: the ``ceil(rho * T)`` most confident frames (clamped to 1..T; ties to earlier frames)
    - ``threshold``: ``c_t >= tau``
    - ``soft``: min-max normalised confidences (a constant vector gives 0.5 everywhere)
    """
    if rule not in RULES:
        raise ValueError(f"unknown pseudo-label rule {rule!r} (choose from {', '.join(RULES)})")
    if conf.numel() == 0 or conf.shape[-1] == 0:
        raise ValueError("pseudo labels need at least one frame (T >= 1)")
    if not torch.isfinite(conf).all():
        raise ValueError("teacher confidences contain NaN or infinite values; check the teacher's outputs")
    conf = conf.float()
    if rule == "relative":
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be between 0 and 1, got {gamma}")
        return (conf >= gamma * conf.amax(-1, keepdim=True)).float()
    if rule == "threshold":
        return (conf >= tau).float()
    if rule == "soft":
        return minmax_norm(conf)
    t = conf.shape[-1]
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    k = min(t, max(1, math.ceil(rho * t)))
    order = torch.sort(conf, dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.zeros_like(conf).scatter_(-1, order, 1.0)


def health_warning(fraction: float, rule: PseudoLabelRule) -> str | None:
    """One line (a warning) when ``fraction`` of the frames are salient is outside
    :data:`HEALTHY_FRACTION`, naming the likely cause and the fix; ``None`` when it is inside.

    With (almost) every frame on one side, the frame-level head learns one answer for every
    frame and ranks nothing.
    """
    low, high = HEALTHY_FRACTION
    if low <= fraction <= high:
        return None
    r, few = rule.rule, fraction < low
    causes = {  # rule -> (likely cause, fix) when too few / too many frames are salient
        ("threshold", True): (f"the teacher is rarely {rule.tau:g} sure of the true class (too few recognizer "
                              "epochs or videos, or many classes)",
                              "lower --tau, train the recognizer longer (--recognizer-epochs), or use "
                              "--pseudo-rule relative"),
        ("threshold", False): (f"the teacher is at least {rule.tau:g} sure of the true class on almost every frame "
                               "(trimmed videos, or --tau too low for an easy dataset)",
                               "raise --tau, or use --pseudo-rule topk (a fixed share of the frames)"),
        ("relative", True): (f"one frame per video stands out and the others stay below {rule.gamma:g} x its "
                             "confidence (long videos with one peak)", "lower --gamma, or use --pseudo-rule topk"),
        ("relative", False): ("the teacher's confidence barely changes over a video (an undertrained teacher, or "
                              "trimmed videos)", "raise --gamma, train the recognizer longer "
                              "(--recognizer-epochs), or use --pseudo-rule topk"),
        ("topk", True): (f"ceil(--rho {rule.rho:g} x T) frames are under {100 * low:.0f}% of the T previews",
                         "raise --rho"),
        ("topk", False): (f"ceil(--rho {rule.rho:g} x T) frames are (almost) all of the T previews (a large --rho "
                          "or a small --num-frames)", "lower --rho or raise --num-frames"),
        ("soft", True): ("the confidences sit at their minimum except for rare peaks",
                         "use --pseudo-rule relative or topk"),
        ("soft", False): ("the confidences sit at their maximum except for rare dips",
                          "use --pseudo-rule relative or topk"),
    }
    cause, fix = causes[(r, few)]
    side = "non-salient" if few else "salient"
    return (f"pseudo labels ({r}): {100 * fraction:.1f}% of frames salient, outside the healthy "
            f"{100 * low:.0f}-{100 * high:.0f}%: the frame-level head learns to call every frame {side}. "
            f"Likely cause: {cause}. Fix: {fix}.")
