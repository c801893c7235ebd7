"""transformers-backed backbones: ``hf:<model>`` image classifiers and ``clip:<model>`` zero-shot.

``<model>`` is a hub id (``google/vit-base-patch16-224``, downloaded by transformers as
usual) or a local folder written by ``save_pretrained``. Input statistics and size come from
the folder's / repo's ``preprocessor_config.json`` when there is one, else ImageNet (or CLIP)
defaults and ``config.image_size``. With ``pretrained=True`` transformers' ``from_pretrained``
both builds and loads (there is no separate weight loader); ``pretrained=False`` builds the
architecture from the config with random weights. transformers is imported lazily, only by
these builders: it is heavy and only ``hf:`` / ``clip:`` names need it.
Like any ``nn.Module`` (and timm's ``create_model``) the built backbones start in train mode.

Checkpoints store these backbones' weights (no package ships them) and, through
:meth:`~nsnet.models.backbones.base.Backbone.save_files`, the config / preprocessor /
tokenizer files that rebuild the architecture offline from the checkpoint folder.

Swin (transformers' ``SwinLayer``) shrinks its windows in place when a stage is narrower
than ``window_size``; at such sizes the relative position bias no longer fits ("The size of
tensor a (36) must match the size of tensor b (49)"), and the shrunk windows stay for every
later call, whatever its size. :class:`HFImageClassifier` puts them back around every forward
and names the admissible sizes up front (:meth:`HFImageClassifier.input_size_problem`).
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nsnet.models.backbones.base import Backbone, BackboneError, replace_submodule
from nsnet.models.backbones.hub_access import hub_access
from nsnet.models.backbones.registry import register_backbone
from nsnet.models.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CLIPZeroShot", "HFImageClassifier", "build_clip", "build_hf_classifier", "hub_weights",
           "read_preprocessor_config"]

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_PROMPT = "a video of {}."
_HUB_KEYS = ("revision", "cache_dir", "local_files_only", "token", "subfolder")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in _HUB_KEYS if k in kwargs}


def read_preprocessor_config(source: str, **hub_kwargs) -> dict[str, Any] | None:
    """``preprocessor_config.json`` of a local folder or hub repo, or ``None`` if absent."""
    if os.path.isdir(source):
        path = os.path.join(source, hub_kwargs.get("subfolder", ""), "preprocessor_config.json")
        if not os.path.isfile(path):
            return None
    else:
        try:
            from transformers.utils import cached_file  # lazy: heavy, only hf:/clip: need it

            path = cached_file(source, "preprocessor_config.json",
                               _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        except Exception as e:  # offline, gated, ...: fall back to defaults
            log.warning("%s: no preprocessor_config.json (%s); using defaults", source, e)
            return None
        if path is None:
            return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _side(value: Any) -> int | None:
    """A square side from the forms HF uses: int, [h, w], {"height", "width"}, {"shortest_edge"}."""
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and value:
        return int(value[0])
    if isinstance(value, dict):
        for key in ("height", "shortest_edge", "width"):
            if value.get(key):
                return int(value[key])
    return None


def input_spec(
    pre: dict[str, Any] | None,
    config_image_size: Any,
    default_mean: tuple[float, float, float],
    default_std: tuple[float, float, float],
) -> tuple[int, tuple[float, float, float], tuple[float, float, float]]:
    """``(input_size, mean, std)`` from a preprocessor config, else the defaults."""
    pre = pre or {}
    size = None
    if pre.get("do_center_crop", "crop_size" in pre) and pre.get("crop_size") is not None:
        size = _side(pre["crop_size"])
    if size is None and pre.get("size") is not None:
        size = _side(pre["size"])
    if size is None:
        size = _side(config_image_size) or 224
    mean = tuple(float(v) for v in pre.get("image_mean") or default_mean)
    std = tuple(float(v) for v in pre.get("image_std") or default_std)
    if len(mean) != 3 or len(std) != 3:
        raise BackboneError(f"expected 3-channel image_mean/image_std, got {mean} / {std}")
    return int(size), mean, std


def _accepts(fn, arg: str) -> bool:
    try:
        return arg in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def hub_weights(source: str) -> str:
    """Where the pretrained weights of ``source`` are: the hub id or folder itself
    (``from_pretrained`` finds, downloads and loads them while it builds the model)."""
    return source


# --------------------------------------------------------------------------- hf: classifiers


def find_classifier(model: nn.Module, num_labels: int) -> str:
    """Qualified name of the classifier ``nn.Linear`` of a transformers image classifier.

    The head is whatever lies outside the base model (``model.base_model_prefix``); it must
    hold exactly one linear layer with ``num_labels`` outputs (ViT, DeiT, BEiT, Swin,
    ConvNeXt, ResNet, RegNet, EfficientNet, MobileNet, DINOv2, ... all do).
    """
    prefix = getattr(model, "base_model_prefix", "")
    found = [
        qualname
        for qualname, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module.out_features == num_labels
        and not (prefix and (qualname == prefix or qualname.startswith(prefix + ".")))
    ]
    if len(found) != 1:
        raise BackboneError(
            f"{type(model).__name__}: expected one linear classifier with {num_labels} outputs outside "
            f"the base model, found {found or 'none'}"
        )
    return found[0]


def _save_hf_files(folder: Path, model: nn.Module, preprocessor: dict[str, Any] | None,
                   tokenizer: Any = None) -> bool:
    """The files that rebuild ``model``'s architecture offline (no weights): config, preprocessor, tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(folder))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return True


class HFImageClassifier(Backbone):
    """A transformers ``AutoModelForImageClassification`` split before its classifier.

    The classifier layer is replaced by ``Identity`` inside the model, so the model's
    ``logits`` output *is* the pooled representation the classifier sees (CLS token after
    the final norm for ViT, pooled features for Swin/ConvNeXt, ...).
    """

    def __init__(self, model: nn.Module, classifier_name: str, *, name: str, input_size: int,
                 mean: tuple[float, float, float], std: tuple[float, float, float],
                 head_labels: list[str] | None, preprocessor: dict[str, Any] | None = None) -> None:
        fc = model.get_submodule(classifier_name)
        super().__init__(name=name, num_features=fc.in_features, input_size=input_size,
                         mean=mean, std=std, head_labels=head_labels)
        replace_submodule(model, classifier_name, nn.Identity())
        self.model = model
        self.classifier = fc
        self.preprocessor = preprocessor  # preprocessor_config.json as read (None: defaults)
        # lets ViT-like models run at sizes other than the native one (e.g. 128 px previews)
        self._forward_kwargs = {"interpolate_pos_encoding": True} if _accepts(model.forward, "interpolate_pos_encoding") else {}
        # Swin layers that resize their windows in place (see the module docstring), with their own sizes
        self._windows = [(m, m.window_size, m.shift_size) for m in model.modules()
                         if hasattr(m, "set_shift_and_window_size") and hasattr(m, "shift_size")]

    def _reset_windows(self) -> None:
        for module, window, shift in self._windows:
            module.window_size, module.shift_size = window, shift

    def forward_features(self, x: Tensor) -> Tensor:
        self._reset_windows()  # each call sees the model as built, whatever ran (or failed) before
        try:
            out = self.model(pixel_values=x, **self._forward_kwargs)
        finally:
            self._reset_windows()
        return out.logits.flatten(1)  # (N, D): the classifier's input

    def input_size_problem(self, size: int) -> str | None:
        """Swin: every stage must be at least ``window_size`` tokens wide. A stage is
        ``ceil(size / (patch_size * 2^stage))`` tokens wide, so with ``L`` stages the size must
        exceed ``patch_size * 2^(L-1) * (window_size - 1)`` (found by sweeping tiny models)."""
        cfg = self.model.config
        if not self._windows or not all(hasattr(cfg, a) for a in ("patch_size", "window_size", "depths")):
            return None
        patch, window, stages = _side(cfg.patch_size) or 1, int(cfg.window_size), len(cfg.depths)
        stride = patch * 2 ** (stages - 1)  # pixels per token in the last stage
        if math.ceil(size / stride) >= window:
            return None
        smallest = stride * (window - 1) + 1
        return (f"Swin needs input sizes of at least {smallest} px (any size from {smallest} up, e.g. "
                f"{stride * window}): its last stage must be at least window_size={window} tokens wide, one "
                f"token per {stride} px (patch_size {patch} x 2^{stages - 1}), and {size} px gives "
                f"{math.ceil(size / stride)}")

    def save_files(self, folder: Path) -> bool:
        return _save_hf_files(Path(folder), self.model, self.preprocessor)

    def forward_head(self, feats: Tensor) -> Tensor:
        self._check_head()
        with torch.autocast(device_type=feats.device.type, enabled=False):  # heads run in float32
            return self.classifier(feats.float())  # (N, C)


@register_backbone("hf:", find_weights=hub_weights, help="hf:<model id or folder>", location=True)
def build_hf_classifier(
    source: str,
    weights: str | None = None,
    class_names: list[str] | None = None,
    **kwargs,
) -> HFImageClassifier:
    """Build ``hf:<source>``: ``AutoModelForImageClassification.from_pretrained(weights)``.

    ``weights`` is :func:`hub_weights`' answer (``source``); without it the same architecture
    is built from its config with random weights. ``head_labels`` are the config's
    ``id2label``; ``class_names`` is ignored. Other kwargs go to ``from_pretrained``
    (``revision=``, ``local_files_only=``, ``dtype=`` defaults to float32).
    """
    kwargs.update(hub_access("hf:", source, _hub_kwargs(kwargs)))  # offline: cached copy, or fail in seconds
    try:  # lazy: heavy, only hf:/clip: need it
        from transformers import AutoConfig, AutoModelForImageClassification
    except ImportError as e:  # pragma: no cover - transformers is a project dependency
        raise BackboneError("hf: backbones need the 'transformers' package (pip install transformers)") from e
    hub = _hub_kwargs(kwargs)
    try:
        if weights is not None:
            kwargs.setdefault("dtype", torch.float32)
            model = AutoModelForImageClassification.from_pretrained(weights, **kwargs)
        else:
            config = AutoConfig.from_pretrained(source, **hub)
            model = AutoModelForImageClassification.from_config(config)
    except (OSError, ValueError, KeyError) as e:
        raise BackboneError(f"hf:{source}: cannot load an image classifier: {_one_line(e)}") from e
    config = model.config
    num_labels = int(config.num_labels)
    fc_name = find_classifier(model, num_labels)
    id2label = config.id2label or {}
    head_labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(num_labels)]
    pre = read_preprocessor_config(source, **hub)
    size, mean, std = input_spec(pre, getattr(config, "image_size", None), IMAGENET_MEAN, IMAGENET_STD)
    return HFImageClassifier(model, fc_name, name=f"hf:{source}", input_size=size, mean=mean, std=std,
                             head_labels=head_labels, preprocessor=pre)


# --------------------------------------------------------------------------- clip: zero-shot


class CLIPZeroShot(Backbone):
    """CLIP as a zero-shot recognizer over ``class_names``.

    ``forward_features``: L2-normalised image embeddings ``(N, E)``. ``forward_head``:
    ``logit_scale * feats @ text.T`` with ``text`` the L2-normalised embeddings ``(C, E)`` of
    ``prompt.format(name)`` for each class (computed once; :meth:`set_class_names` redoes it).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, class_names: list[str], *, prompt: str = DEFAULT_PROMPT,
                 name: str, input_size: int, mean: tuple[float, float, float],
                 std: tuple[float, float, float], preprocessor: dict[str, Any] | None = None) -> None:
        super().__init__(name=name, num_features=int(model.config.projection_dim), input_size=input_size,
                         mean=mean, std=std, head_labels=list(class_names))
        self.model = model
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.preprocessor = preprocessor
        self.register_buffer("text_embeds", torch.empty(0, self.num_features), persistent=False)
        self.set_class_names(class_names, prompt)
        # the class embeddings are derived from the weights: new weights (a checkpoint) redo them
        self.register_load_state_dict_post_hook(_refresh_text_embeds)

    def save_files(self, folder: Path) -> bool:
        return _save_hf_files(Path(folder), self.model, self.preprocessor, self.tokenizer)

    @staticmethod
    def _pooled(out: Any) -> Tensor:
        # transformers >= 5 returns a BaseModelOutputWithPooling, older versions a tensor
        return out if isinstance(out, Tensor) else out.pooler_output

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> Tensor:
        """``texts`` -> L2-normalised text embeddings ``(len(texts), E)``."""
        max_len = getattr(self.model.config.text_config, "max_position_embeddings", 77)
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        device = self.model.logit_scale.device
        was_training = self.model.training
        self.model.eval()  # no dropout in the class embeddings
        try:
            emb = self._pooled(self.model.get_text_features(input_ids=tok["input_ids"].to(device),
                                                            attention_mask=tok["attention_mask"].to(device)))
        finally:
            self.model.train(was_training)
        return F.normalize(emb.float(), dim=-1)  # (C, E)

    def set_class_names(self, class_names: list[str], prompt: str | None = None) -> None:
        """Recompute the head for new class names (and optionally a new prompt template)."""
        if not class_names:
            raise BackboneError(f"{self.name}: class_names must be a non-empty list")
        if prompt is not None:
            if "{}" not in prompt:
                raise BackboneError(f"prompt template must contain '{{}}', got {prompt!r}")
            self.prompt = prompt
        self.text_embeds = self.encode_text([self.prompt.format(c) for c in class_names])  # (C, E)
        self.head_labels = [str(c) for c in class_names]

    def forward_features(self, x: Tensor) -> Tensor:
        out = self.model.get_image_features(pixel_values=x, interpolate_pos_encoding=True)
        return F.normalize(self._pooled(out), dim=-1)  # (N, E)

    def forward_head(self, feats: Tensor) -> Tensor:
        # float32 whatever autocast is active: at the x100 scale a bf16 product moves logits by 0.125-0.25
        with torch.autocast(device_type=feats.device.type, enabled=False):
            scale = self.model.logit_scale.float().exp()
            return scale * feats.float() @ self.text_embeds.float().t()  # (N, C)


def _refresh_text_embeds(module: CLIPZeroShot, incompatible_keys: Any) -> None:
    module.set_class_names(list(module.head_labels))


@register_backbone("clip:", find_weights=hub_weights, help="clip:<model id or folder>", location=True)
def build_clip(
    source: str,
    weights: str | None = None,
    class_names: list[str] | None = None,
    *,
    prompt: str = DEFAULT_PROMPT,
    **kwargs,
) -> CLIPZeroShot:
    """Build ``clip:<source>``: ``CLIPModel`` + its tokenizer, zero-shot over ``class_names``.

    ``class_names`` is required; ``prompt`` is the template (``"a video of {}."``).
    ``weights`` is :func:`hub_weights`' answer (``source``, loaded by ``from_pretrained``);
    without it the weights are random, from the config (the tokenizer still loads).
    """
    if not class_names:
        raise BackboneError(f"clip:{source} is a zero-shot recognizer: pass class_names=[...]")
    if "{}" not in prompt:
        raise BackboneError(f"prompt template must contain '{{}}', got {prompt!r}")
    kwargs.update(hub_access("clip:", source, _hub_kwargs(kwargs)))  # offline: cached copy, or fail in seconds
    try:  # lazy: heavy, only hf:/clip: need it
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel
    except ImportError as e:  # pragma: no cover
        raise BackboneError("clip: backbones need the 'transformers' package (pip install transformers)") from e
    hub = _hub_kwargs(kwargs)
    try:
        if weights is not None:
            kwargs.setdefault("dtype", torch.float32)
            model = CLIPModel.from_pretrained(weights, **kwargs)
        else:
            model = CLIPModel(CLIPConfig.from_pretrained(source, **hub))
        tokenizer = AutoTokenizer.from_pretrained(source, **hub)
    except (OSError, ValueError, KeyError) as e:
        raise BackboneError(f"clip:{source}: cannot load a CLIP model and tokenizer: {_one_line(e)}") from e
    pre = read_preprocessor_config(source, **hub)
    size, mean, std = input_spec(pre, getattr(model.config.vision_config, "image_size", None), CLIP_MEAN, CLIP_STD)
    return CLIPZeroShot(model, tokenizer, list(class_names), prompt=prompt, name=f"clip:{source}",
                        input_size=size, mean=mean, std=std, preprocessor=pre)
