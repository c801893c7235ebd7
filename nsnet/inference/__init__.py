"""Inference: the pipeline, its result record, checkpoints and the frame-selection methods.

* :mod:`.pipeline`   -- :class:`Pipeline` (build, load, save, run on frames or a file).
* :mod:`.result`     -- :class:`PipelineResult`, a plain record with ``to_dict()``.
* :mod:`.methods`    -- which frames NSNet and the baselines keep, and what they cost.
* :mod:`.checkpoint` -- the checkpoint folder (``config.json`` + ``model.safetensors`` [+ ``backbones/``]).
* :mod:`.flops`      -- GFLOPs of a forward pass (the same on every device).
* :mod:`.store`      -- pipelines by name in one module-level store, and a run on plain data (ZeroGPU workers).
"""
from .checkpoint import CheckpointError
from .pipeline import Pipeline, resolve_device
from .result import PipelineResult

__all__ = ["Pipeline", "PipelineResult", "CheckpointError", "resolve_device"]
