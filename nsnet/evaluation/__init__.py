"""Evaluation: NSNet against the baselines, metrics, and the ablation runner.

* :mod:`.evaluate` -- per-frame outputs of a dataset once, every method as a re-ranking.
* :mod:`.metrics`  -- mAP (ActivityNet convention), top-1, AP, precision/recall.
* :mod:`.ablate`   -- the open design choices, each trained and measured over seeds.
"""
from .evaluate import METHODS, FrameOutputs, evaluate, frame_outputs, k_curve, write_curve_html

__all__ = ["METHODS", "FrameOutputs", "evaluate", "frame_outputs", "k_curve", "write_curve_html"]
