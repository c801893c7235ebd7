"""The end-to-end NSNet pipeline: frames -> sampler -> top-K -> recognizer -> labels.

``Pipeline.from_pretrained(folder or hub id)`` rebuilds a pipeline from a checkpoint
folder (see :mod:`nsnet.inference.checkpoint`; loading never unpickles) and
``save_pretrained(folder)`` writes one. Frozen pretrained backbones are not stored:
they come from their packages, so a checkpoint holds only what was trained.

On CUDA the pipeline runs under autocast (bf16, fp16 where bf16 is missing) with
channels-last tensors; on CPU it runs float32. Everything runs under
``torch.inference_mode()`` and the T previews go through each network as one batch.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..config import ConfigError, PipelineConfig
from ..models.backbones import create_backbone
from ..models.recognizer import Recognizer
from ..models.sampler import NSNetSampler
from ..video import Clip, read_clip
from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from .flops import count_gflops
from .result import PipelineResult

__all__ = ["Pipeline", "resolve_device", "Progress"]

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]  # (stage, fraction done in [0, 1])


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available (use --device auto or cpu)")
    return dev


class Pipeline:
    """Sampler + recognizer on one device, with the config that rebuilds them."""

    def __init__(self, config: PipelineConfig, sampler: NSNetSampler, recognizer: Recognizer,
                 device: str | torch.device = "auto") -> None:
        self.config = config
        self.sampler = sampler.eval()
        self.recognizer = recognizer.eval()
        self._gflops: dict[tuple, float] = {}
        self._gflops_lock = threading.Lock()  # the FLOP counter is a global mode: one count at a time
        self.to(device)

    # ----------------------------------------------------------------- building
    @classmethod
    def build(cls, config: PipelineConfig, device: str | torch.device = "auto") -> "Pipeline":
        """Build from a config; backbones load their pretrained weights when the config says so.

        The pipeline keeps a copy of ``config`` (with ``sampler.num_classes`` filled in);
        the caller's object is left as it was.
        """
        if not config.class_names:
            raise ConfigError("the pipeline config needs class_names")
        config = PipelineConfig.from_dict(config.to_dict())
        config.sampler.num_classes = len(config.class_names)
        s_cfg, r_cfg = config.sampler, config.recognizer
        sampler = NSNetSampler(s_cfg, create_backbone(s_cfg.backbone, pretrained=s_cfg.backbone_pretrained))
        r_backbone = create_backbone(r_cfg.backbone, pretrained=r_cfg.backbone_pretrained,
                                     class_names=config.class_names)
        recognizer = Recognizer(r_cfg, r_backbone, config.class_names)
        return cls(config, sampler, recognizer, device)

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, device: str | torch.device = "auto") -> "Pipeline":
        """Load a checkpoint folder, or a Hugging Face Hub repo id holding one."""
        folder, config, state = read_checkpoint(path_or_id)
        pipe = cls.build(config, device="cpu")
        pipe.load_trained_state(state)
        log.info("loaded checkpoint %s (%d classes, trained=%s)", folder, config.num_classes, config.trained)
        return pipe.to(device)

    def to(self, device: str | torch.device) -> "Pipeline":
        """Move both networks to ``device`` in place (like ``nn.Module.to``) and return self.

        On CUDA the networks use channels-last memory and autocast (bf16, else fp16).
        """
        self.device = resolve_device(device)
        self.sampler.to(self.device)
        self.recognizer.to(self.device)
        self._amp_dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            self.sampler.to(memory_format=torch.channels_last)
            self.recognizer.to(memory_format=torch.channels_last)
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return self

    def _stored_prefixes(self) -> list[str]:
        """Backbones that are frozen and pretrained come from their packages: not stored."""
        skip = []
        for name, cfg in (("sampler", self.config.sampler), ("recognizer", self.config.recognizer)):
            if cfg.freeze_backbone and cfg.backbone_pretrained:
                skip.append(f"{name}.backbone.")
        return skip

    def trained_state_dict(self) -> dict[str, Tensor]:
        skip = self._stored_prefixes()
        state = {f"sampler.{k}": v for k, v in self.sampler.state_dict().items()}
        state.update({f"recognizer.{k}": v for k, v in self.recognizer.state_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in state.items() if not any(k.startswith(p) for p in skip)}

    def load_trained_state(self, state: dict[str, Tensor]) -> None:
        expected = set(self.trained_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise CheckpointError(f"checkpoint weights do not match its config: {len(missing)} missing "
                                  f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
        for prefix, module in (("sampler.", self.sampler), ("recognizer.", self.recognizer)):
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(sub, strict=False)
            except RuntimeError as exc:  # shape mismatch: weights from another architecture
                first = str(exc).strip().splitlines()[-1].strip()
                raise CheckpointError(f"checkpoint weights do not match its config: {first}") from None

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` atomically (a half-written folder never appears)."""
        meta = dict(self.config.meta, nsnet_version=__version__, torch_version=torch.__version__)
        return write_checkpoint(folder, dataclasses.replace(self.config, meta=meta), self.trained_state_dict())

    # ----------------------------------------------------------------- running
    @property
    def class_names(self) -> list[str]:
        return self.recognizer.class_names

    def autocast(self):
        """Autocast on CUDA (bf16, else fp16); a no-op on CPU."""
        if self._amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

    def prepare(self, frames: Tensor, backbone, size: int) -> Tensor:
        """uint8 frames (N, H, W, 3) -> normalised (N, 3, S, S) on the device (channels-last on CUDA)."""
        x = backbone.preprocess(frames.to(self.device), size)  # (N, 3, S, S)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def gflops_per_video(self, num_frames: int, k: int) -> dict[str, float]:
        """GFLOPs of T sampler previews and K recognizer frames (counted once per T, cached)."""
        s_size, r_size = self.config.sampler.input_size, self.config.recognizer.input_size
        key_s, key_r = ("sampler", num_frames, s_size), ("recognizer", r_size)
        with self._gflops_lock:
            if key_s not in self._gflops:
                x = torch.zeros(1, num_frames, 3, s_size, s_size, device=self.device)
                self._gflops[key_s] = count_gflops(self.sampler, x, 1, 0.5)
            if key_r not in self._gflops:
                x = torch.zeros(1, 1, 3, r_size, r_size, device=self.device)
                self._gflops[key_r] = count_gflops(self.recognizer, x)
        s, r = self._gflops[key_s], self._gflops[key_r]
        return {"sampler": s, "recognizer": r * k, "total": s + r * k, "dense": r * num_frames}

    #: Frames per recognizer call on CPU: on a 2-core machine batches of ~4 keep the
    #: activations in cache and run about twice as fast per frame as one batch of 16.
    CPU_MICRO_BATCH = 4

    def _step(self, n: int) -> int:
        return max(1, n if self.device.type == "cuda" else self.CPU_MICRO_BATCH)

    def recognizer_probs(self, frames: Tensor) -> Tensor:
        """Per-frame class probabilities of uint8 frames (N, H, W, 3) -> (N, C) float32 on the CPU."""
        step, outs = self._step(frames.shape[0]), []
        for i in range(0, frames.shape[0], step):
            with self.autocast():
                x = self.prepare(frames[i:i + step], self.recognizer.backbone, self.config.recognizer.input_size)
                outs.append(self.recognizer(x.unsqueeze(0)).frame_probs[0].float().cpu())  # (step, C)
        return torch.cat(outs)

    @torch.inference_mode()
    def extract_features(self, frames: np.ndarray | Tensor, batch_size: int = 64) -> tuple[Tensor, Tensor]:
        """Backbone features of uint8 previews (T, H, W, 3), as training and evaluation cache them.

        Returns (sampler features (T, Ds), recognizer features (T, Dr)), float32 on the CPU.
        The preprocessing is exactly the one ``__call__`` uses.
        """
        frames = torch.as_tensor(frames)
        outs: list[list[Tensor]] = [[], []]
        parts = ((self.sampler, self.config.sampler.input_size, batch_size),
                 (self.recognizer, self.config.recognizer.input_size, self._step(batch_size)))
        for i, (module, size, step) in enumerate(parts):
            for start in range(0, frames.shape[0], step):
                with self.autocast():
                    x = self.prepare(frames[start:start + step], module.backbone, size)
                    outs[i].append(module.backbone.forward_features(x).float().cpu())
        return torch.cat(outs[0]), torch.cat(outs[1])

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray | Tensor, k: int | None = None, lam: float | None = None, *,
                 dense: bool = False, timestamps_s: np.ndarray | None = None, video: dict | None = None,
                 decode_ms: float = 0.0, repeated: bool = False, progress: Progress | None = None) -> PipelineResult:
        """Score uint8 frames (T, H, W, 3) and recognise the top K.

        With ``dense=True`` the recognizer also runs on the other T - K previews (timed
        separately), which enables :mod:`nsnet.inference.methods` (``rerank``, ``compare``,
        ``teacher_curve``).
        """
        report = progress or (lambda stage, frac: None)
        frames = torch.as_tensor(frames)
        if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
        t = frames.shape[0]
        k = self.config.k if k is None else k
        lam = self.config.lam if lam is None else lam
        PipelineConfig.validate(t, k, lam)

        report("sampler", 0.0)
        start = time.perf_counter()
        with self.autocast():
            xs = self.prepare(frames, self.sampler.backbone, self.config.sampler.input_size)
            out = self.sampler(xs.unsqueeze(0), k, lam)  # (1, T, ...) batch of one video
        self._sync()
        sampler_ms = (time.perf_counter() - start) * 1e3
        selected = out.selected[0].cpu()  # (K,)

        report("recognizer", 0.5)
        start = time.perf_counter()
        sel_probs = self.recognizer_probs(frames[selected])  # (K, C)
        self._sync()
        recognizer_ms = (time.perf_counter() - start) * 1e3

        frame_probs, dense_ms = None, None
        if dense:
            report("dense recognizer", 0.75)
            chosen = set(selected.tolist())
            rest = torch.tensor([i for i in range(t) if i not in chosen], dtype=torch.long)  # (T - K,)
            frame_probs = torch.zeros(t, sel_probs.shape[1])
            frame_probs[selected] = sel_probs
            start = time.perf_counter()
            if len(rest):
                frame_probs[rest] = self.recognizer_probs(frames[rest])
            self._sync()
            dense_ms = recognizer_ms + (time.perf_counter() - start) * 1e3
            frame_probs = frame_probs.numpy()
        report("done", 1.0)

        if timestamps_s is None:
            timestamps_s = np.arange(t, dtype=np.float64)
        return PipelineResult(
            video=video or {"path": None, "duration_s": None, "fps": None, "width": int(frames.shape[2]),
                            "height": int(frames.shape[1]), "num_frames": t},
            timestamps_s=np.asarray(timestamps_s, dtype=np.float64),
            frame_scores=out.frame_scores[0].cpu().numpy(),
            attention=out.attention[0].cpu().numpy(),
            fused=out.fused[0].cpu().numpy(),
            selected=selected.numpy(),
            probs=sel_probs.mean(0).numpy(),
            class_names=self.class_names,
            timings_ms={"decode": decode_ms, "sampler": sampler_ms, "recognizer": recognizer_ms,
                        "total": decode_ms + sampler_ms + recognizer_ms},
            gflops=self.gflops_per_video(t, k),
            lam=float(lam), device=str(self.device), trained=self.config.trained, repeated=repeated,
            frame_probs=frame_probs, dense_recognizer_ms=dense_ms,
        )

    def read(self, path: str | os.PathLike, num_frames: int | None = None, *,
             time_budget_s: float | None = 30.0) -> tuple[Clip, float]:
        """Decode ``num_frames`` previews at the recognizer's size: (clip, decode milliseconds).

        Raises ``nsnet.video.VideoError`` (one human line) for a file that cannot be used.
        """
        t = self.config.num_frames if num_frames is None else num_frames
        start = time.perf_counter()
        clip = read_clip(path, num_frames=t, size=self.config.recognizer.input_size, time_budget_s=time_budget_s)
        return clip, (time.perf_counter() - start) * 1e3

    def analyze_clip(self, clip: Clip, k: int | None = None, lam: float | None = None, *, dense: bool = False,
                     decode_ms: float = 0.0, progress: Progress | None = None) -> PipelineResult:
        """Run the pipeline on a decoded clip (its frames, timestamps and video facts)."""
        return self(clip.frames, k, lam, dense=dense, timestamps_s=clip.timestamps_s, video=clip.info.to_dict(),
                    decode_ms=decode_ms, repeated=clip.repeated, progress=progress)

    def analyze(self, path: str | os.PathLike, num_frames: int | None = None, k: int | None = None,
                lam: float | None = None, *, dense: bool = False, time_budget_s: float | None = 30.0,
                progress: Progress | None = None) -> PipelineResult:
        """Decode ``num_frames`` previews of a video file and run the pipeline on them.

        Raises ``nsnet.video.VideoError`` (one human line) for a file that cannot be used.
        """
        report = progress or (lambda stage, frac: None)
        t = self.config.num_frames if num_frames is None else num_frames
        PipelineConfig.validate(t, self.config.k if k is None else k, self.config.lam if lam is None else lam)
        report("decode", 0.0)
        clip, decode_ms = self.read(path, t, time_budget_s=time_budget_s)

        def scaled(stage: str, frac: float) -> None:  # decode is the first ~third of the bar
            report(stage, 0.3 + 0.7 * frac)

        return self.analyze_clip(clip, k, lam, dense=dense, decode_ms=decode_ms, progress=scaled)
