"""Datasets: records, annotation readers, the decoded-preview dataset, the feature cache.

* :mod:`nsnet.data.records`   -- :class:`VideoRecord`, the one record type; ``VIDEO_EXTENSIONS``.
* :mod:`nsnet.data.formats`   -- :func:`load_dataset`: ActivityNet JSON, Kinetics CSV,
  folder-per-class trees.
* :mod:`nsnet.data.features`  -- cached frozen-backbone features of a dataset's previews
  (what training and evaluation run on).
* :mod:`nsnet.data.dataset`   -- :class:`VideoDataset`, decoded previews (fine-tuning).
* :mod:`nsnet.data.cache`     -- :class:`FeatureCache`, the self-checking on-disk cache both use.
* :mod:`nsnet.data.synthetic` -- ``nsnet make-synthetic``: the generated untrimmed-video
  benchmark (ActivityNet v1.3 layout, with ground truth).

Names are imported lazily, so ``make-synthetic`` does not pay for importing torch.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "VideoRecord": "records", "DatasetError": "records", "segments_mask": "records", "VIDEO_EXTENSIONS": "records",
    "load_dataset": "formats",
    "FeatureSet": "features", "build_feature_set": "features", "load_records": "features",
    "map_labels": "features", "default_cache_dir": "features",
    "VideoDataset": "dataset",
    "FeatureCache": "cache", "video_key": "cache",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
