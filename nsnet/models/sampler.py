"""The NSNet sampler (docs/method.md: sampler features, frame level, video level, fusion).

A light backbone maps each low-resolution preview frame to ``x_t``; a 1-D temporal
convolution gives ``h_t``. Two heads score the frames:

* frame level: ``p_t = sigmoid(w_f . h_t + b_f)``, trained against pseudo labels;
* video level: attention gates ``g_t`` pool ``h`` into a salient representation
  ``z_s`` and a non-salient one ``z_n``; one classifier ``psi`` with ``C + 1`` outputs
  (the last is "background") is trained to name the class from ``z_s`` and to say
  nothing about it from ``z_n``: by default its distribution over the ``C`` real classes
  is pushed to uniform (``TrainConfig.non_mode = "uniform"``); ``"background"`` pushes
  ``psi(z_n)`` to the background output instead (``nsnet.training.losses``).

At inference the two levels are fused, ``s_t = lam norm(p_t) + (1 - lam) norm(g_t)``,
and the K best frames are kept in temporal order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import SamplerConfig
from .selection import fuse, select_topk

__all__ = ["SamplerHeads", "SamplerOutput", "NSNetSampler"]


@dataclass(frozen=True)
class SamplerHeads:
    """Raw per-frame outputs of the sampler heads (everything training needs)."""

    frame_logits: Tensor      # (B, T) pre-sigmoid frame-level saliency
    attention: Tensor         # (B, T) gates g_t in [0, 1] (sigmoid) or weights summing to 1 (softmax)
    video_logits: Tensor      # (B, C + 1) psi(z_s)
    nonsalient_logits: Tensor  # (B, C + 1) psi(z_n)

    @property
    def frame_scores(self) -> Tensor:
        return torch.sigmoid(self.frame_logits)  # (B, T)


@dataclass(frozen=True)
class SamplerOutput:
    """What the sampler decides for a batch of videos."""

    frame_scores: Tensor   # (B, T) p_t
    attention: Tensor      # (B, T) g_t
    fused: Tensor          # (B, T) s_t in [0, 1]
    selected: Tensor       # (B, K) int64, ascending preview indices
    video_logits: Tensor   # (B, C + 1)


class NSNetSampler(nn.Module):
    """Backbone + temporal module + frame head + attention + ``C + 1`` video classifier.

    The backbone is passed in already built (weights are loaded by its builder, never here).
    """

    def __init__(self, cfg: SamplerConfig, backbone: nn.Module) -> None:
        super().__init__()
        if cfg.num_classes < 1:
            raise ValueError("SamplerConfig.num_classes must be set (>= 1) before building a sampler")
        self.cfg = cfg
        self.backbone = backbone
        d_in = int(backbone.num_features)
        d = cfg.hidden_dim
        self.norm = nn.LayerNorm(d_in)
        self.temporal = nn.Conv1d(d_in, d, kernel_size=cfg.temporal_kernel, padding=cfg.temporal_kernel // 2)
        self.act = nn.GELU()
        self.drop = nn.Dropout(cfg.dropout)
        self.frame_head = nn.Linear(d, 1)                       # w_f, b_f
        self.attn_proj = nn.Linear(d, cfg.attention_dim)        # W
        self.attn_score = nn.Linear(cfg.attention_dim, 1)       # w_a
        self.classifier = nn.Linear(d, cfg.num_classes + 1)     # psi; last output = background
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def train(self, mode: bool = True) -> "NSNetSampler":
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()  # frozen BatchNorm statistics stay frozen
        return self

    def forward_features(self, frames: Tensor) -> Tensor:
        """Backbone features of normalised frames: (B, T, 3, S, S) -> (B, T, D)."""
        b, t = frames.shape[:2]
        x = self.backbone.forward_features(frames.flatten(0, 1))  # (B*T, D)
        return x.view(b, t, -1)

    def forward_head(self, feats: Tensor) -> SamplerHeads:
        """Heads on backbone features (B, T, D); cached features enter here in training."""
        x = self.norm(feats.float())                                   # (B, T, D)
        h = self.temporal(x.transpose(1, 2)).transpose(1, 2)           # (B, T, d)
        h = self.drop(self.act(h))
        frame_logits = self.frame_head(h).squeeze(-1)                  # (B, T)
        a = self.attn_score(torch.tanh(self.attn_proj(h))).squeeze(-1)  # (B, T)
        if self.cfg.attention == "sigmoid":
            g = torch.sigmoid(a)                                       # (B, T)
            w_sal, w_non = g, 1.0 - g
        else:  # softmax over time; the non-salient pool uses the reversed scores
            g = torch.softmax(a, dim=-1)
            w_sal, w_non = g, torch.softmax(-a, dim=-1)
        z_s = (w_sal.unsqueeze(-1) * h).sum(1) / w_sal.sum(1, keepdim=True).clamp_min(1e-6)  # (B, d)
        z_n = (w_non.unsqueeze(-1) * h).sum(1) / w_non.sum(1, keepdim=True).clamp_min(1e-6)  # (B, d)
        return SamplerHeads(frame_logits, g, self.classifier(z_s), self.classifier(z_n))

    @staticmethod
    def decide(heads: SamplerHeads, k: int, lam: float) -> SamplerOutput:
        """Fuse the two levels and keep the top ``k`` frames in temporal order."""
        p = heads.frame_scores.float()
        g = heads.attention.float()
        s = fuse(p, g, lam)
        return SamplerOutput(p, g, s, select_topk(s, k), heads.video_logits.float())

    def forward(self, frames: Tensor, k: int, lam: float = 0.5) -> SamplerOutput:
        """frames: (B, T, 3, S, S) normalised -> SamplerOutput with (B, K) selected indices."""
        return self.decide(self.forward_head(self.forward_features(frames)), k, lam)
