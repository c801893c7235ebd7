"""Datasets: the synthetic benchmark, annotation readers, VideoDataset and caches.

* :mod:`nsnet.data.synthetic` -- ``python -m nsnet make-synthetic``: the generated
  untrimmed-video benchmark (ActivityNet v1.3 layout, with ground truth).
* :mod:`nsnet.data.records`   -- :class:`VideoRecord`, the one record type.
* :mod:`nsnet.data.formats`   -- :func:`load_dataset`: ActivityNet JSON, Kinetics CSV,
  folder-per-class trees.
* :mod:`nsnet.data.dataset`   -- :class:`VideoDataset` (decoded previews),
  :class:`FeatureDataset` (cached features), :func:`collate_videos`.
* :mod:`nsnet.data.cache`     -- :class:`FeatureCache`, :func:`cache_features`.

Names are imported lazily, so ``make-synthetic`` does not pay for importing torch.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "VideoRecord": "records", "DatasetError": "records", "segments_mask": "records",
    "load_dataset": "formats",
    "VideoDataset": "dataset", "FeatureDataset": "dataset", "collate_videos": "dataset",
    "FeatureCache": "cache", "cache_features": "cache", "video_key": "cache",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
