"""The recognizer (docs/method.md, "Recognition"): a per-frame classifier averaged over K frames."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import RecognizerConfig

__all__ = ["RecognizerOutput", "Recognizer", "class_probs", "topk_labels"]


@dataclass(frozen=True)
class RecognizerOutput:
    frame_probs: Tensor  # (B, K, C) per-frame class probabilities
    probs: Tensor        # (B, C) video prediction: mean of the per-frame probabilities


class Recognizer(nn.Module):
    """Backbone + classifier. ``head="linear"`` trains a new ``Linear(D, C)`` on the video
    labels; ``head="backbone"`` reuses the backbone's own head (ImageNet, an HF image
    classifier or CLIP zero-shot prompts) and its labels.
    """

    def __init__(self, cfg: RecognizerConfig, backbone: nn.Module, class_names: list[str]) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        if cfg.head == "backbone":
            labels = getattr(backbone, "head_labels", None)
            if not labels:
                raise ValueError(f"recognizer head='backbone' but backbone {getattr(backbone, 'name', '?')!r} has no head")
            if class_names and list(class_names) != list(labels):
                raise ValueError("class_names must match the backbone head's labels when head='backbone'")
            self.class_names = list(labels)
            self.head = None
        else:
            if not class_names:
                raise ValueError("a linear recognizer head needs class_names")
            self.class_names = list(class_names)
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(int(backbone.num_features), len(class_names)))
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def train(self, mode: bool = True) -> "Recognizer":
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()
        return self

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, 3, S, S) normalised frames -> (N, D)."""
        return self.backbone.forward_features(x)

    def forward_head(self, feats: Tensor) -> Tensor:
        """(N, D) -> (N, C) logits."""
        if self.head is None:
            return self.backbone.forward_head(feats)
        return self.head(feats.float())

    def forward(self, frames: Tensor) -> RecognizerOutput:
        """frames: (B, K, 3, S, S) normalised -> per-frame and mean probabilities."""
        b, k = frames.shape[:2]
        logits = self.forward_head(self.forward_features(frames.flatten(0, 1)))  # (B*K, C)
        frame_probs = class_probs(logits).view(b, k, -1)                          # (B, K, C)
        return RecognizerOutput(frame_probs, frame_probs.mean(1))


def class_probs(logits: Tensor) -> Tensor:
    """Class probabilities (..., C) of recognizer logits (..., C), in float32."""
    return torch.softmax(logits.float(), dim=-1)


def topk_labels(probs: Tensor, class_names: list[str], k: int = 5) -> list[dict]:
    """Top-``k`` ``{"label", "score"}`` of a (C,) probability vector, best first."""
    k = min(k, probs.numel())
    scores, idx = torch.topk(probs.float(), k)
    return [{"label": class_names[i], "score": float(s)} for s, i in zip(scores.tolist(), idx.tolist())]
