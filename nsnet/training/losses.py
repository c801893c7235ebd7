"""NSNet training losses (docs/method.md, "Frame level", "Video level" and "Training").

``L = L_frame + alpha * L_sal + beta * L_non``:

* ``L_frame``: binary cross-entropy of the frame-level scores against pseudo labels;
* ``L_sal``: cross-entropy of ``psi(z_s)`` against the video label;
* ``L_non``: the distribution of ``psi(z_n)`` over the C real classes is pushed to uniform
  (``"uniform"``, a KL divergence: the default), or ``psi(z_n)`` to the background class
  (``"background"``).

The defaults (``alpha``, ``beta``, ``non_mode``) are :class:`~nsnet.training.TrainConfig`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import TrainConfig

__all__ = ["frame_loss", "salient_loss", "nonsalient_loss", "NSNetLoss"]


def frame_loss(frame_logits: Tensor, targets: Tensor) -> Tensor:
    """BCE between frame logits (B, T) and pseudo-label targets (B, T) in [0, 1]."""
    return F.binary_cross_entropy_with_logits(frame_logits.float(), targets.float())


def salient_loss(video_logits: Tensor, labels: Tensor) -> Tensor:
    """CE of psi(z_s) (B, C + 1) against the video labels (B,)."""
    return F.cross_entropy(video_logits.float(), labels.long())


def nonsalient_loss(nonsalient_logits: Tensor,
                    mode: Literal["background", "uniform"] = TrainConfig.non_mode) -> Tensor:
    """Suppress the non-salient representation. nonsalient_logits: (B, C + 1)."""
    logits = nonsalient_logits.float()
    if mode == "background":
        background = torch.full((logits.shape[0],), logits.shape[1] - 1, dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, background)
    if mode == "uniform":
        log_p = F.log_softmax(logits[:, :-1], dim=-1)        # (B, C) over the real classes
        c = log_p.shape[1]
        # KL(u || p) = sum_c u_c (log u_c - log p_c), with u_c = 1 / C
        return (-torch.log(torch.tensor(float(c))) - log_p.mean(-1)).mean()
    raise ValueError(f"unknown non-salient loss mode {mode!r} (choose 'background' or 'uniform')")


@dataclass
class LossTerms:
    total: Tensor
    frame: Tensor
    sal: Tensor
    non: Tensor

    def items(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "frame", "sal", "non")}


class NSNetLoss(nn.Module):
    def __init__(self, alpha: float = TrainConfig.alpha, beta: float = TrainConfig.beta,
                 non_mode: Literal["background", "uniform"] = TrainConfig.non_mode) -> None:
        super().__init__()
        if non_mode not in ("background", "uniform"):
            raise ValueError(f"unknown non-salient loss mode {non_mode!r} (choose 'background' or 'uniform')")
        self.alpha, self.beta, self.non_mode = alpha, beta, non_mode

    def forward(self, heads, pseudo_labels: Tensor, labels: Tensor) -> LossTerms:
        """heads: a ``SamplerHeads``; pseudo_labels: (B, T); labels: (B,)."""
        lf = frame_loss(heads.frame_logits, pseudo_labels)
        ls = salient_loss(heads.video_logits, labels)
        ln = nonsalient_loss(heads.nonsalient_logits, self.non_mode)
        return LossTerms(lf + self.alpha * ls + self.beta * ln, lf, ls, ln)
