"""What a training stage runs on: cached features or decoded previews, and the modules over them.

With frozen backbones the stages read cached features (N, T, D). ``--finetune`` reads
decoded uint8 previews (:class:`Previews`, from the on-disk preview cache) and runs the
backbones too, built for GPUs at scale:

* :func:`embed` passes ``frame_chunk`` frames at a time through a backbone; when gradients
  flow, each chunk is checkpointed (its activations are recomputed in the backward pass),
  so ``batch x T`` frames never have to fit in memory at once. BatchNorm running statistics
  see every chunk once (the recomputation leaves them alone), and normalise with the
  chunk's own statistics, as with a smaller batch;
* :func:`autocast` is the training pipeline's autocast (``--precision``: ``auto`` is fp16 on
  CUDA, with loss scaling in the trainer; float32 on CPU; ``--no-amp`` is float32): backbones
  run under it, every head in float32 (the one autocast policy of :mod:`nsnet.inference.pipeline`);
* batches move to the device one at a time (:func:`to_device`, through pinned memory on CUDA):
  cached features stay in host memory, and with ``preview_workers`` the next batches' previews
  are read by DataLoader processes while a batch trains (:meth:`Previews.prefetch`);
* :func:`augment_clips` (``--augment``) is a random resized crop and a horizontal flip per
  video, the same for its T frames.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from contextlib import contextmanager, nullcontext
from functools import partial

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import distributed as dist_utils
from ..data.dataset import VideoDataset
from ..progress import RateLog, show_bar
from .batches import sub_key
from .config import TrainConfig

__all__ = ["Previews", "Inputs", "load_previews", "embed", "autocast", "float32_heads", "augment_clips",
           "RecognizerModule", "SamplerModule", "to_device"]

log = logging.getLogger(__name__)

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


# --------------------------------------------------------------------------- inputs
class Previews:
    """Decoded previews of the readable videos, for fine-tuning.

    ``previews[idx]`` with a (B,) index tensor gives uint8 (B, T, S, S, 3) on the CPU, read
    from the preview cache: it stands in for indexing cached features (N, T, D). After
    :meth:`prefetch` the batches it was given are read ahead by ``workers`` DataLoader
    processes and handed out in that order; any other index is read here and then.
    """

    def __init__(self, dataset: VideoDataset, indices: list[int], workers: int = 0) -> None:
        self.dataset, self.indices = dataset, indices   # a VideoDataset and its readable records
        self.workers = workers
        self._ahead: tuple | None = None                # (iterator, deque of the batches it will yield)

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, positions: list[int]) -> Tensor:
        return torch.stack([self.dataset.load(self.indices[i])["frames"] for i in positions])

    def prefetch(self, batches: list[Tensor]) -> None:
        """Read ``batches`` ahead, in this order, in ``workers`` processes (nothing without workers)."""
        self._ahead = None
        order = [b.tolist() for b in batches]
        if self.workers > 0 and order:
            loader = DataLoader(_Batches(self, order), batch_size=None, num_workers=min(self.workers, len(order)),
                                prefetch_factor=2)
            self._ahead = (iter(loader), deque(order))

    def __getitem__(self, idx: Tensor) -> Tensor:
        want = idx.tolist()
        if self._ahead is not None:
            it, expected = self._ahead
            if expected and expected[0] == want:
                expected.popleft()
                return next(it)
            self._ahead = None  # asked out of order: read here from now on
        return self.read(want)

    def __getstate__(self) -> dict:  # what a DataLoader worker gets: no iterator
        return dict(self.__dict__, _ahead=None)


class _Batches(Dataset):
    """Item ``i``: the previews of batch ``i`` (read in a DataLoader worker)."""

    def __init__(self, previews: Previews, order: list[list[int]]) -> None:
        self.previews, self.order = previews, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> Tensor:
        return self.previews.read(self.order[i])


Inputs = Tensor | Previews   # per-video stage inputs: cached features (N, T, D) or previews (N, T, S, S, 3)


def to_device(x: Tensor, device: torch.device) -> Tensor:
    """One batch (in host memory) onto ``device``: on CUDA through pinned memory, asynchronously."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def load_previews(records, class_names: list[str], cfg: TrainConfig, info: dist_utils.DistInfo,
                  what: str = "previews", workers: int = 0) -> tuple[Previews, Tensor, dict[str, tuple[str, str]]]:
    """Decode every record's previews into the cache (each rank its shard).

    ``workers``: DataLoader processes that read batches ahead while training (:meth:`Previews.prefetch`).

    Returns (previews, labels (N,), skipped): unreadable videos are left out and returned as
    ``{video_id: (path, reason)}`` (every rank knows all of them; nothing is logged per video).
    """
    ds = VideoDataset(records, class_names, cfg.pipeline.num_frames, cfg.pipeline.recognizer.input_size,
                      cfg.cache_path, log_failures=False)
    mine = range(info.rank, len(ds), info.world_size)
    rate = RateLog(log, what, len(mine), cfg.log_every, scale=info.world_size, enabled=info.is_main)
    for i in tqdm(mine, desc=what, unit="video", disable=not show_bar(cfg.progress, info.is_main)):
        ds[i]  # decodes into the cache; a failure is recorded in ds.failures
        rate.update()
    rate.finish(" (this rank's shard)" if info.enabled else "")
    dist_utils.barrier(info)

    def readable(i: int) -> bool:  # cached by some rank, else (missing, or failed elsewhere) try here
        key = ds.preview_key(i)
        return (key is not None and key in ds.cache) or ds[i] is not None

    keep = [i for i, r in enumerate(ds.records) if r.video_id not in ds.failures and readable(i)]
    if not keep:
        first = next(iter(ds.failures.values()), "no videos")
        raise FileNotFoundError(f"none of the {len(ds)} videos could be read (first: {first})")
    labels = torch.tensor([ds.records[i].label_index for i in keep], dtype=torch.long)
    paths = {r.video_id: str(r.path) for r in ds.records}
    skipped = {vid: (paths.get(vid, "?"), why) for vid, why in ds.failures.items()}
    return Previews(ds, keep, workers), labels, skipped


# --------------------------------------------------------------------------- backbone passes
@contextmanager
def _batch_norm_statistics_kept(module: nn.Module):
    """BatchNorm layers in training mode leave their running statistics unchanged inside."""
    layers = [m for m in module.modules() if isinstance(m, _BATCH_NORMS) and m.training and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(layers, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


def _recompute_contexts(module: nn.Module):
    return nullcontext(), _batch_norm_statistics_kept(module)


def _features(backbone: nn.Module, frames: Tensor, size: int) -> Tensor:
    x = backbone.preprocess(frames, size)  # (N, 3, S, S)
    if x.is_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    return backbone.forward_features(x).float()  # (N, D)


def embed(backbone: nn.Module, frames: Tensor, size: int, chunk: int = 0) -> Tensor:
    """uint8 previews (..., H, W, 3) -> backbone features (..., D), with gradients when training.

    ``chunk > 0`` runs at most ``chunk`` frames through the backbone at a time (checkpointed
    when gradients flow: see the module docstring).
    """
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    n = flat.shape[0]
    if chunk <= 0 or chunk >= n:
        return _features(backbone, flat, size).view(*lead, -1)
    grad = torch.is_grad_enabled() and any(p.requires_grad for p in backbone.parameters())
    outs = []
    for start in range(0, n, chunk):
        part = flat[start:start + chunk]
        if grad:
            outs.append(checkpoint(_features, backbone, part, size, use_reentrant=False,
                                   context_fn=partial(_recompute_contexts, backbone)))
        else:
            outs.append(_features(backbone, part, size))
    return torch.cat(outs).view(*lead, -1)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device`` (the training pipeline's ``amp_dtype``); a no-op for None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def float32_heads(x: Tensor):
    """Autocast off on ``x``'s device: heads and softmaxes run in float32 inside an autocast region."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def augment_clips(frames: Tensor, scale: tuple[float, float] = (0.35, 1.0),
                  ratio: tuple[float, float] = (3 / 4, 4 / 3), generator: torch.Generator | None = None,
                  keys: list[int] | None = None) -> Tensor:
    """uint8 (B, T, H, W, 3) -> the same shape: per video one random resized crop (area fraction in
    ``scale``, aspect ratio in ``ratio``) and a horizontal flip with probability 1/2, the same for
    all its frames. With ``keys`` (one per video, :func:`.batches.video_keys`) each video's draws
    come from its own key, whatever batch it is in; else from ``generator`` (or the global RNG)."""
    b, _, h, w, _ = frames.shape
    out = torch.empty_like(frames)
    for i in range(b):
        gen = torch.Generator().manual_seed(sub_key(keys[i], "augment")) if keys is not None else generator
        rand = lambda g=gen: float(torch.rand((), generator=g))  # noqa: E731
        area = h * w * (scale[0] + (scale[1] - scale[0]) * rand())
        aspect = math.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rand())
        cw = min(w, max(1, round(math.sqrt(area * aspect))))
        ch = min(h, max(1, round(math.sqrt(area / aspect))))
        top, left = round((h - ch) * rand()), round((w - cw) * rand())
        clip = frames[i, :, top:top + ch, left:left + cw].permute(0, 3, 1, 2).float()  # (T, 3, ch, cw)
        clip = nn.functional.interpolate(clip, size=(h, w), mode="bilinear", align_corners=False)
        if rand() < 0.5:
            clip = clip.flip(-1)
        out[i] = clip.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return out


# --------------------------------------------------------------------------- stage modules
class RecognizerModule(nn.Module):
    """``forward`` = recognizer logits (N, C) of features (N, Dr) or of previews (N, S, S, 3).

    One module owning backbone and head, so DDP sees every parameter being trained.
    """

    def __init__(self, recognizer: nn.Module, frame_chunk: int = 0) -> None:
        super().__init__()
        self.recognizer, self.frame_chunk = recognizer, frame_chunk

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:  # fine-tuning: run the backbone on the frames
            x = embed(self.recognizer.backbone, x, self.recognizer.cfg.input_size, self.frame_chunk)  # (N, Dr)
        with float32_heads(x):
            return self.recognizer.forward_head(x.float())


class SamplerModule(nn.Module):
    """``forward`` = the sampler heads on features (B, T, Ds) or previews (B, T, S, S, 3),
    returning a tuple (DDP-friendly)."""

    def __init__(self, sampler: nn.Module, frame_chunk: int = 0) -> None:
        super().__init__()
        self.sampler, self.frame_chunk = sampler, frame_chunk

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if x.dtype == torch.uint8:  # fine-tuning: run the backbone on the frames
            x = embed(self.sampler.backbone, x, self.sampler.cfg.input_size, self.frame_chunk)  # (B, T, Ds)
        with float32_heads(x):
            h = self.sampler.forward_head(x.float())
        return h.frame_logits, h.attention, h.video_logits, h.nonsalient_logits
