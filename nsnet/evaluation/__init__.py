"""Evaluation: NSNet against the baselines, metrics, the ablation runner, and dataset-scale analysis.

* :mod:`.evaluate` -- per-frame outputs of a dataset once, every method as a re-ranking.
* :mod:`.ablate`   -- the open design choices, each trained and measured over seeds.
* :mod:`.rows`     -- per-frame outputs of one video, its JSONL row, the summary over rows
  (the one code path ``eval`` and ``analyze`` share).
* :mod:`.engine`   -- decoding in DataLoader workers, networks batched across videos.
* :mod:`.jsonl`    -- rows written as they finish, resumed, merged across ranks.
* :mod:`.analyze`  -- ``nsnet analyze``: inputs, sharding under torchrun, resume, summary.
* :mod:`.faithfulness` -- keep / drop the most / least salient frames: is the saliency faithful?
* :mod:`.classwise` -- per-class top-1 and AP.
* :mod:`.results` -- a results file read back with its run file's class names.
"""
from .evaluate import METHODS, FrameOutputs, evaluate, frame_outputs, k_curve, video_rows, write_curve_html
from .jsonl import write_rows

__all__ = ["METHODS", "FrameOutputs", "evaluate", "frame_outputs", "k_curve", "video_rows", "write_curve_html",
           "write_rows"]
