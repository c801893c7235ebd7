"""``torchvision.models`` classifiers as backbones: ``torchvision:<arch>``, ``mobilenet_v2``, ``resnet50``.

``pretrained=True`` loads the default weights from the torch hub cache
(``torch.hub.get_dir()/checkpoints``, read with ``weights_only=True``). nsnet never downloads:
when the file is not there, :class:`MissingWeightsError` says where it was looked for and how
to fetch it (a backbone never silently stays random). These weights do not come with a
package, so checkpoints store them (``weights_from_package=False``); rebuilding one only
needs the categories of the default weights (:func:`describe_torchvision_weights`).
"""
from __future__ import annotations

import logging
import os
import re
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from nsnet.models.backbones.base import Backbone, BackboneError, MissingWeightsError, replace_submodule
from nsnet.models.backbones.registry import register_backbone

__all__ = [
    "TorchvisionCheckpoint",
    "TorchvisionClassifier",
    "build_torchvision",
    "cached_torchvision_weights_path",
    "describe_torchvision_weights",
    "find_torchvision_weights",
    "load_torchvision_weights",
]

if TYPE_CHECKING:
    import torchvision.models as tvm

log = logging.getLogger(__name__)

def _tvm() -> ModuleType:
    """``torchvision.models``, imported on first use: importing torchvision takes about 2 s of CPU
    (it pulls in ``torch._dynamo``), which every command and server start would pay otherwise."""
    import torchvision.models

    return torchvision.models


_AUX_ARCHS = ("inception_v3", "googlenet")  # checkpoints with auxiliary classifier heads
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` registered in ``model`` (the classifier of torchvision nets)."""
    found = None
    for qualname, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = (qualname, module)
    return found


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
        fixed_input_size: int | None = None,
    ) -> None:
        fc = net.get_submodule(classifier_name)
        super().__init__(
            name=name, num_features=fc.in_features, input_size=input_size, mean=mean, std=std, head_labels=head_labels
        )
        replace_submodule(net, classifier_name, nn.Identity())
        self.net = net
        self.classifier = fc
        self.classifier_name = classifier_name
        self.fixed_input_size = fixed_input_size  # ViT / MaxViT run at the size they were built for only

    def input_size_problem(self, size: int) -> str | None:
        if self.fixed_input_size is None or size == self.fixed_input_size:
            return None
        return (f"{self.name} runs at {self.fixed_input_size} px only (its position embeddings / "
                f"partitions are built for that size)")

    def forward_features(self, x: Tensor) -> Tensor:
        out = self.net(x)  # (N, D); Inception/GoogLeNet in train mode also return aux logits
        if isinstance(out, tuple):
            out = out[0]
        return out.flatten(1)  # (N, D)

    def forward_head(self, feats: Tensor) -> Tensor:
        self._check_head()
        return self.classifier(feats)  # (N, C)


def _torchvision_classifiers() -> list[str]:
    tv = _tvm()
    return tv.list_models(module=tv)


def _default_weights(arch: str) -> tvm.WeightsEnum:
    """The default weights of classifier ``arch`` (their metadata and preset; not the file)."""
    valid = _torchvision_classifiers()
    if arch not in valid:
        raise BackboneError(f"unknown torchvision classifier {arch!r}; valid: {', '.join(valid)}")
    return _tvm().get_model_weights(arch).DEFAULT


def cached_torchvision_weights_path(weights: tvm.WeightsEnum) -> str:
    """Where the torch hub cache keeps ``weights`` (exists or not): ``<hub>/checkpoints/<file>``."""
    filename = os.path.basename(urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


class TorchvisionCheckpoint(NamedTuple):
    """Default weights of ``arch`` read from the torch hub cache."""

    arch: str
    state_dict: dict[str, Tensor] | None  # keys of the whole torchvision network; None: a checkpoint has them
    categories: list[str]  # the labels of its classifier


def _how_to_fetch(arch: str, weights: tvm.WeightsEnum, path: str) -> str:
    name = f"{type(weights).__name__}.{weights.name}"
    return (f"on a machine with network run python -c \"import torchvision; torchvision.models.get_model("
            f"'{arch}', weights='{name}')\" (or download {weights.url}) and copy {os.path.basename(path)} into "
            f"{os.path.dirname(path)} (TORCH_HOME moves that cache), or build it with pretrained=False "
            f"(nsnet train --no-sampler-backbone-pretrained / --no-recognizer-backbone-pretrained) to train "
            f"it from scratch")


def find_torchvision_weights(arch: str) -> TorchvisionCheckpoint:
    """Read the default weights of ``arch`` from the torch hub cache; never downloads.

    Raises :class:`MissingWeightsError` (one line: where they were looked for, how to get
    them) when the file is not there.
    """
    weights = _default_weights(arch)
    path = cached_torchvision_weights_path(weights)
    if not os.path.isfile(path):
        raise MissingWeightsError(f"torchvision {arch}: pretrained weights {path} not found in the torch hub cache "
                                  f"(nsnet never downloads); {_how_to_fetch(arch, weights, path)}")
    try:
        state_dict = _fix_legacy_keys(arch, torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # truncated download, pickle with code, ...
        raise BackboneError(f"torchvision {arch}: cannot read cached weights {path}: {e}") from e
    return TorchvisionCheckpoint(arch, state_dict, list(weights.meta["categories"]))


def describe_torchvision_weights(arch: str) -> TorchvisionCheckpoint:
    """The default weights of ``arch`` without their tensors (a checkpoint supplies those)."""
    return TorchvisionCheckpoint(arch, None, list(_default_weights(arch).meta["categories"]))


def build_torchvision(
    arch: str,
    weights: TorchvisionCheckpoint | None = None,
    class_names: list[str] | None = None,
    **kwargs,
) -> TorchvisionClassifier:
    """Build ``torchvision.models.<arch>`` with random weights, shaped for ``weights`` if given.

    ``class_names`` is ignored; other kwargs go to the torchvision builder (``num_classes=``
    only without weights). Input size and statistics are those of the default weights' preset.
    """
    default = _default_weights(arch)
    preset = default.transforms()
    input_size = int(preset.crop_size[0])
    mean, std = tuple(preset.mean), tuple(preset.std)

    if weights is not None:
        kwargs.pop("num_classes", None)  # the checkpoint fixes the ImageNet head
        if arch in _AUX_ARCHS:
            # as torchvision does for these weights: the checkpoints hold aux heads (dropped
            # again after loading unless aux_logits=True) and expect ImageNet-normalised
            # input to be transformed internally
            kwargs.update(aux_logits=True, transform_input=True, init_weights=False)
    elif arch in _AUX_ARCHS:
        kwargs.setdefault("aux_logits", False)  # forward_features has no use for aux heads

    tv = _tvm()
    net = tv.get_model(arch, weights=None, **kwargs)
    found = _last_linear(net)
    if found is None:
        raise BackboneError(f"torchvision {arch!r} has no linear classifier to split features from")
    fc_name, _ = found
    fixed = None
    if isinstance(net, tv.VisionTransformer):
        fixed = int(net.image_size)
    elif isinstance(net, tv.MaxVit):
        fixed = int(kwargs.get("input_size", (input_size, input_size))[0])
    return TorchvisionClassifier(
        net, fc_name, name=f"torchvision:{arch}", input_size=input_size, mean=mean, std=std, head_labels=None,
        fixed_input_size=fixed,
    )


def load_torchvision_weights(model: TorchvisionClassifier, weights: TorchvisionCheckpoint, **kwargs) -> None:
    """Load a checkpoint of the whole torchvision network into ``model`` and label its head.

    ``kwargs`` are those ``model`` was built with: the aux heads that inception_v3 / googlenet
    checkpoints need at load time are dropped afterwards unless ``aux_logits=True``. Weights
    without tensors (:func:`describe_torchvision_weights`) only shape and label the model.
    """
    net = model.net
    if weights.state_dict is not None:
        identity = net.get_submodule(model.classifier_name)
        replace_submodule(net, model.classifier_name, model.classifier)  # the network the checkpoint is of
        try:
            net.load_state_dict(weights.state_dict, strict=True)
        finally:
            replace_submodule(net, model.classifier_name, identity)
        log.info("torchvision %s: loaded cached ImageNet weights", weights.arch)
    if weights.arch in _AUX_ARCHS and not kwargs.get("aux_logits", False):
        net.aux_logits = False
        if weights.arch == "inception_v3":
            net.AuxLogits = None
        else:
            net.aux1 = None
            net.aux2 = None
    model.head_labels = list(weights.categories)


register_backbone(
    "torchvision:",
    find_weights=find_torchvision_weights,
    load_weights=load_torchvision_weights,
    describe_weights=describe_torchvision_weights,
    help="torchvision:<torchvision.models classifier>",
)(build_torchvision)

for _arch in ("mobilenet_v2", "resnet50"):  # short names for two common ones
    register_backbone(
        _arch,
        find_weights=partial(find_torchvision_weights, _arch),
        load_weights=load_torchvision_weights,
        describe_weights=partial(describe_torchvision_weights, _arch),
    )(partial(build_torchvision, _arch))
