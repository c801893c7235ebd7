"""What each process trains on at each step, with what weight and with which random draws.

The contract (docs/method.md, "Training"): ``W`` processes at ``--batch-size B`` train exactly
as one process at ``--batch-size B*W`` with the same seed and ``--grad-accum``, to float
tolerance. Three things make it so:

* **One sample order** (:func:`epoch_batches`). Every process draws the same permutation of
  the ``n`` videos per epoch (``randperm`` seeded ``seed + epoch``, the order of a
  one-process run), cuts it into *global* micro-batches of ``B*W`` videos and gives process
  ``r`` the ``r``-th of ``W`` near-equal parts of each. Nothing is padded or repeated: an
  uneven last micro-batch is split unevenly, and a process left without a video takes a
  stand-in pass with weight 0 (so the gradient all-reduce still happens).
* **Gradient averaging by video.** Every micro-batch loss is the mean over its videos; its
  weight ``len(idx) * W / N`` (``N``: the videos of the whole optimiser step, over every
  process and accumulation pass) turns DDP's mean over processes into the mean over the
  step's videos. The same weight makes ``--grad-accum`` equal to one bigger batch, also when
  the last micro-batch is short.
* **Random draws keyed by video** (:func:`video_keys`, :class:`KeyedDropout`, the ``keys``
  of :func:`~.modules.augment_clips`). Each head dropout mask and each augmentation is drawn
  from a generator seeded by ``(seed, stage, epoch, video)``, so it does not depend on which
  process, batch or accumulation pass a video lands in (nor on the global RNG, so resuming
  needs no RNG state for them).

What is not equal, by design: with ``--finetune`` a BatchNorm backbone normalises each pass
with the statistics of the frames of that pass (a process's ``B*T`` frames, or
``frame_chunk`` frames), not of the global batch; its running statistics are rank 0's
(broadcast after a stage). Random layers *inside* a backbone (none in the built-in
backbones' defaults) draw from the global RNG, like any ``nn.Module``.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from functools import partial
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["epoch_batches", "video_keys", "sub_key", "KeyedDropout"]

Batch = tuple[Tensor, float]  # (video indices of this process, weight of their mean loss)


def epoch_batches(n: int, epoch: int, seed: int, batch_size: int, grad_accum: int, rank: int = 0,
                  world_size: int = 1) -> list[list[Batch]]:
    """This process's micro-batches of epoch ``epoch`` (0-based), grouped by optimiser step.

    Every process gets the same number of steps and micro-batches. A micro-batch with weight
    0 is a stand-in (one video of the global micro-batch) for a process left without one.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))  # as DistributedSampler
    micro = list(order.split(batch_size * world_size))
    groups = []
    for start in range(0, len(micro), grad_accum):
        chunks = micro[start:start + grad_accum]
        videos = sum(len(c) for c in chunks)
        group = []
        for chunk in chunks:
            mine = chunk.tensor_split(world_size)[rank]  # sizes differ by at most 1, lower ranks first
            group.append((mine, len(mine) * world_size / videos) if len(mine) else (chunk[:1], 0.0))
        groups.append(group)
    return groups


def sub_key(key: int, salt: str | int) -> int:
    """A 63-bit seed derived from ``key`` and ``salt`` (what a generator is seeded with)."""
    digest = hashlib.blake2b(f"{key}:{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2 ** 63 - 1)


def video_keys(seed: int, stage: str, epoch: int, idx: Tensor) -> list[int]:
    """One key per video of ``idx``: its random draws in this epoch of this stage."""
    return [sub_key(seed, f"{stage}:{epoch}:{v}") for v in idx.tolist()]


class KeyedDropout:
    """The head dropouts of ``module`` (every ``nn.Dropout`` outside a ``backbone``), drawing
    each video's mask from its key instead of the global RNG.

    ``with kd.keyed(keys):`` around each forward pass of ``len(keys)`` videos (inputs of shape
    ``(B, ...)`` or ``(B*T, ...)``, video-major) puts the keyed layers in place; outside it
    (validation, inference) the layers are the plain ones.
    """

    def __init__(self, module: nn.Module) -> None:
        self.layers = [(name, m) for name, m in module.named_modules()
                       if isinstance(m, nn.Dropout) and "backbone" not in name.split(".")]
        self.keys: list[int] | None = None

    @contextmanager
    def keyed(self, keys: list[int]) -> Iterator[None]:
        self.keys = keys
        for name, layer in self.layers:
            layer.forward = partial(self._forward, layer, name)  # an instance attribute: Module.__call__ uses it
        try:
            yield
        finally:
            self.keys = None
            for _, layer in self.layers:
                layer.__dict__.pop("forward", None)

    def _forward(self, layer: nn.Dropout, name: str, x: Tensor) -> Tensor:
        if self.keys is None or not layer.training or layer.p == 0:
            return F.dropout(x, layer.p, layer.training, layer.inplace)
        b = len(self.keys)
        if b == 0 or x.shape[0] % b:
            raise RuntimeError(f"{name}: {x.shape[0]} rows do not split into {b} videos")
        if layer.p >= 1:
            return x * 0
        per = x.numel() // b
        keep = torch.empty((b, per))
        for i, key in enumerate(self.keys):
            keep[i].uniform_(generator=torch.Generator().manual_seed(sub_key(key, name)))
        mask = (keep >= layer.p).to(device=x.device, dtype=x.dtype, non_blocking=True).view(x.shape)
        return x * mask / (1 - layer.p)
