"""Backbone features of many videos' previews: the one function dataset-scale code runs.

:func:`backbone_features` is what fills the feature cache of ``train`` and ``eval``
(through :meth:`Pipeline.extract_features`) and what ``nsnet analyze`` runs on each batch,
so all of them compute the same features, bit for bit, on a given device and thread count.

Each backbone runs as its inference copy (:func:`nsnet.models.fusion.folded`: BatchNorm
folded into the convolutions, channels-last weights and inputs). On CUDA a network sees
the previews of all the videos together, ``chunk`` at a time, under autocast. On CPU each
video's previews go through the sampler together and through the recognizer in
micro-batches of :data:`CPU_MICRO_BATCH`: with the folded backbones that is the fastest
split on a 2-core CPU (README, "Analysing a dataset"), and a video's features never
depend on the other videos of its batch.
"""
from __future__ import annotations

import time
from typing import Sequence

import torch
from torch import Tensor

from ..models.fusion import folded

__all__ = ["CPU_MICRO_BATCH", "backbone_features"]

#: Recognizer frames per call on CPU for the folded, channels-last backbones (measured best of 2/4/8/16).
CPU_MICRO_BATCH = 8


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def backbone_features(pipe, videos: Sequence[Tensor], chunk: int = 64
                      ) -> tuple[list[tuple[Tensor, Tensor]], dict[str, float]]:
    """Features of uint8 previews (T_i, H_i, W_i, 3), one tensor a video (any device, pinned is best).

    Returns ``[(sampler (T_i, Ds), recognizer (T_i, Dr))]`` float32 on the CPU, in order,
    and the milliseconds each network took (``{"sampler", "recognizer"}``, synchronised on CUDA).
    """
    dev, cfg = pipe.device, pipe.config
    sizes = [int(v.shape[0]) for v in videos]
    _sync(dev)
    start = time.perf_counter()
    frames = [torch.as_tensor(v).to(dev, non_blocking=True) for v in videos]
    feats: list[tuple[Tensor, ...]] = []
    ms: dict[str, float] = {}
    for name, module, size, step in (("sampler", pipe.sampler, cfg.sampler.input_size, chunk),
                                     ("recognizer", pipe.recognizer, cfg.recognizer.input_size, CPU_MICRO_BATCH)):
        net, outs = folded(module.backbone), []
        if dev.type == "cuda":
            x = torch.cat([pipe.prepare(f, module.backbone, size) for f in frames])
            for i in range(0, x.shape[0], chunk):  # backbone in the pipeline's precision, float32 out
                outs.append(pipe.backbone_forward(net, x[i:i + chunk].contiguous(memory_format=torch.channels_last)))
        else:
            for f in frames:
                for i in range(0, f.shape[0], step):
                    x = pipe.prepare(f[i:i + step], module.backbone, size)  # float32 unless --precision bf16
                    outs.append(pipe.backbone_forward(net, x.contiguous(memory_format=torch.channels_last)))
        feats.append(torch.cat(outs).float().cpu().split(sizes))
        _sync(dev)
        now = time.perf_counter()
        ms[name], start = (now - start) * 1e3, now
    return list(zip(feats[0], feats[1])), ms
