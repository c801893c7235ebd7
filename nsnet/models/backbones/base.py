"""The :class:`Backbone` base class and the helpers every backbone module shares."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from torch import Tensor, nn

from nsnet.models.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess_frames

__all__ = ["Backbone", "BackboneError", "MissingWeightsError", "backbone_fingerprint", "imagenet_categories",
           "replace_submodule"]


class BackboneError(ValueError):
    """A backbone cannot be built as asked (unknown name, missing package, bad arguments)."""


class MissingWeightsError(BackboneError):
    """Pretrained weights were asked for but cannot be found here (nsnet never downloads them)."""


def backbone_fingerprint(module: nn.Module) -> str:
    """Short hash of a module's whole state dict (names, shapes, values), the same on any device.

    Floating-point tensors are hashed as contiguous float32 on the CPU, so a model saved from
    CUDA (channels-last, autocast) and loaded on a CPU gives the same fingerprint. The feature
    cache keys on it and checkpoints record it (``meta.backbones``) to check what they rebuild.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu")
        t = (t.float() if t.is_floating_point() else t).contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in logit order: ``imagenet_classes.txt`` beside this module, a
    copy of torchvision's list (``ResNet50_Weights.IMAGENET1K_V1.meta["categories"]``; a test checks they
    agree). Read from the file because importing torchvision costs every command about 2 s."""
    names = (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8").splitlines()
    if len(names) != 1000:
        raise BackboneError(f"imagenet_classes.txt holds {len(names)} names, not 1000: reinstall nsnet")
    return tuple(names)


def replace_submodule(model: nn.Module, qualname: str, new: nn.Module) -> None:
    """Put ``new`` at ``qualname`` (``"classifier.1"``) inside ``model``."""
    parent_name, _, child = qualname.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


class Backbone(nn.Module):
    """Base class: an image network split into pooled features and a classifier head.

    Attributes:
        name: registry name it was built from (set by :func:`create_backbone`).
        num_features: ``D``, the width of :meth:`forward_features`.
        input_size: native square input side in pixels.
        mean, std: per-channel input statistics on the ``[0, 1]`` RGB scale.
        head_labels: names of the :meth:`forward_head` outputs; ``None`` if there is no
            (labelled) head.
    """

    name: str
    num_features: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head_labels: list[str] | None

    def __init__(
        self,
        *,
        name: str,
        num_features: int,
        input_size: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        head_labels: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.num_features = int(num_features)
        self.input_size = int(input_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.head_labels = list(head_labels) if head_labels is not None else None

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` normalised float -> ``(N, D)`` pooled features."""
        raise NotImplementedError

    def forward_head(self, feats: Tensor) -> Tensor:
        """``(N, D)`` features -> ``(N, len(head_labels))`` logits."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> ``(N, len(head_labels))`` logits."""
        return self.forward_head(self.forward_features(x))

    @property
    def has_head(self) -> bool:
        return self.head_labels is not None

    def _check_head(self) -> None:
        if self.head_labels is None:
            raise BackboneError(
                f"backbone {self.name!r} has no labelled head (its classifier was not loaded with "
                "pretrained weights); put a new head on forward_features instead"
            )

    def input_size_problem(self, size: int) -> str | None:
        """Why ``size`` x ``size`` inputs cannot run through this backbone, saying which sizes
        can; ``None`` when they can (the default: the network pools whatever it gets)."""
        return None

    def save_files(self, folder: Path) -> bool:
        """Write what rebuilds this architecture without its weights (e.g. a transformers
        ``config.json`` and preprocessor / tokenizer files) into ``folder``; ``False`` when a
        registry name alone rebuilds it (nothing written)."""
        return False

    def preprocess(self, frames: Tensor, size: int | None = None) -> Tensor:
        """``uint8 (N, H, W, 3)`` RGB frames -> normalised ``float (N, 3, S, S)``,
        ``S = size or input_size`` (shorter side resized to ``S``, centre crop)."""
        return preprocess_frames(frames, size or self.input_size, self.mean, self.std)

    def extra_repr(self) -> str:
        n = None if self.head_labels is None else len(self.head_labels)
        return f"name={self.name!r}, num_features={self.num_features}, input_size={self.input_size}, classes={n}"
