"""``nsnet train``: the three-stage NSNet recipe on a dataset (see ``nsnet.training``).

Every :class:`~nsnet.training.TrainConfig` field is a flag (``--recognizer-epochs``), and
every sampler / recognizer field of the pipeline too (``--sampler-dropout``,
``--sampler-attention-dim``, ``--recognizer-input-size``, ``--num-frames``, ``--k``,
``--lam``). ``--config FILE`` reads a JSON TrainConfig (nested ``pipeline`` or the older
flat names); flags given on the command line override it. Runs under ``torchrun`` too
(README, "Training on a GPU cluster").

Every flag says what it does and its default (:data:`HELP`; a test keeps it complete).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from ..config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from ..inference.pipeline import PRECISIONS
from ..training import TrainConfig, run
from ..training.config import DERIVED, LEGACY_KEYS
from ..training.pseudo_labels import RULES
from ..training.interrupt import TrainingInterrupted
from .common import INTERRUPTED, USER_ERRORS, is_main_process, resume_command

log = logging.getLogger(__name__)

#: the help text of every flag (by TrainConfig field or dotted pipeline path); ``(default: ...)`` is appended
HELP: dict[str, str] = {
    "data": "dataset folder or annotation file: ActivityNet JSON, Kinetics-style CSV or a folder per class",
    "video_root": "folder holding the videos, searched recursively",
    "out": "checkpoint folder to write; <out>.train_state.pt, <out>.best and <out>.skipped.tsv land beside it",
    "cache_dir": "feature / preview cache, shared with eval and ablate",
    "subset": "subset to train on (training, validation, testing, all, ...)",
    "max_videos": "use at most this many videos of the training and of the validation subset",
    "finetune": "also train both backbones, on decoded previews (meant for GPUs)",
    "recognizer_epochs": "epochs of stage 1 (recognizer head)",
    "sampler_epochs": "epochs of stage 3 (sampler)",
    "batch_size": "videos per forward pass, per process",
    "grad_accum": "forward passes per optimiser step (global batch = batch size x this x processes)",
    "lr": "learning rate of the heads (AdamW, cosine schedule per stage)",
    "finetune_lr": "learning rate of the backbones with --finetune",
    "weight_decay": "AdamW weight decay",
    "seed": "seed of the initial weights and the data order",
    "pseudo_rule": "how the teacher's confidences become frame pseudo labels",
    "gamma": "relative rule: salient when c_t >= gamma * max_t c_t",
    "rho": "topk rule: the ceil(rho * T) most confident frames are salient",
    "tau": "threshold rule: salient when c_t >= tau",
    "alpha": "weight of the salient video loss L_sal",
    "beta": "weight of the non-salient video loss L_non (0 removes it)",
    "non_mode": "L_non: uniform (KL to uniform over the classes) or background (CE to class C+1)",
    "frame_chunk": "--finetune: frames per backbone pass, checkpointed, so batch x T frames never sit in memory "
                   "at once (0: all at once)",
    "augment": "--finetune: random resized crop and horizontal flip of each training video's previews",
    "amp": "--no-amp: everything in float32, same as --precision fp32",
    "precision": "what the backbones run in, for the cached features and fine-tuning (heads always float32): "
                 "auto = fp16 autocast on CUDA (with loss scaling when fine-tuning), float32 on CPU; fp32; bf16 "
                 "(a GPU with native bf16, or a CPU); fp16 (CUDA)",
    "preview_workers": "--finetune: DataLoader processes reading the next batches' previews while a batch trains",
    "val_subset": "subset to validate on after epochs ('' or none: no validation, no best checkpoint)",
    "val_every": "validate every N epochs and after the last (0: never)",
    "device": "auto (CUDA when present), cpu, cuda or cuda:N",
    "resume": "continue from <out>.train_state.pt (refused if the model or data changed; new schedule "
              "settings apply, said in the log)",
    "save_state": "keep a resumable training state next to the output",
    "state_every_min": "also write the state inside an epoch after this many minutes",
    "state_min_interval_s": "write the state at an epoch end at most this often (always at a stage end)",
    "log_every": "a progress line (loss, lr, samples/s, ETA) every N optimiser steps and every N videos "
                 "while caching (0: none)",
    "progress": "tqdm bars, drawn only when stderr is a terminal",
    "num_frames": "T, previews per video",
    "k": "K, frames kept for the recognizer",
    "lam": "fusion weight: 1 = frame-level scores alone, 0 = attention alone",
    "sampler.backbone": "sampler backbone (efficientnet_lite0, mobilenet_v2, torchvision:<name>, hf:<id>, ...)",
    "sampler.backbone_pretrained": "load the sampler backbone's pretrained weights",
    "sampler.input_size": "sampler preview resolution in pixels",
    "sampler.hidden_dim": "d, width of the temporal features h_t",
    "sampler.temporal_kernel": "temporal convolution kernel (odd; 1: no temporal context)",
    "sampler.attention": "video-level attention gates",
    "sampler.attention_dim": "width of W in the attention",
    "sampler.dropout": "dropout after the temporal convolution",
    "recognizer.backbone": "recognizer backbone (efficientnet_lite2, resnet50, hf:<id>, clip:<id>, ...)",
    "recognizer.backbone_pretrained": "load the recognizer backbone's pretrained weights",
    "recognizer.input_size": "recognizer resolution in pixels",
    "recognizer.dropout": "dropout before the recognizer's linear head",
    "recognizer.head": "linear: a head trained on the labels; backbone: the backbone's own classifier",
}
CHOICES = {"precision": PRECISIONS, "pseudo_rule": RULES, "non_mode": ("uniform", "background"),
           "sampler.attention": ("sigmoid", "softmax"), "recognizer.head": ("linear", "backbone")}
#: defaults that are computed, shown in words
SHOWN_DEFAULTS = {"preview_workers": "on CUDA the cores left after this process, up to 4; on CPU 0",
                  "video_root": "beside the annotations", "max_videos": "all", "data": "none, required",
                  "cache_dir": "$NSNET_CACHE_DIR, else $XDG_CACHE_HOME/nsnet, else ~/.cache/nsnet"}

_ALIASES = {  # older flat flags -> what they set (kept so existing scripts keep working)
    "sampler_size": "sampler.input_size", "recognizer_size": "recognizer.input_size",
    "attention": "sampler.attention", "hidden_dim": "sampler.hidden_dim",
    "temporal_kernel": "sampler.temporal_kernel",
}


def _add(p: argparse.ArgumentParser, flag: str, dest: str, default: Any, kind: type | None = None) -> None:
    shown = SHOWN_DEFAULTS.get(dest, default)
    text = f"{HELP[dest]} (default: {shown if shown != '' else 'none'})"
    if isinstance(default, bool):
        p.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        return
    kind = kind or (float if isinstance(default, float) else int if isinstance(default, int) else str)
    metavar = dest.rsplit(".", 1)[-1].upper()
    p.add_argument(flag, dest=dest, type=kind, default=None, help=text, choices=CHOICES.get(dest),
                   metavar=None if dest in CHOICES else metavar)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file with TrainConfig fields; flags given on the command line override it")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("extra", "pipeline"):
            continue
        default = getattr(defaults, f.name)
        kind = {"max_videos": int, "video_root": str, "cache_dir": str, "preview_workers": int}.get(f.name)
        _add(p, "--" + f.name.replace("_", "-"), f.name, default, kind)
    pipe = p.add_argument_group("pipeline (saved in the checkpoint's config.json)")
    base = PipelineConfig()
    for name in ("num_frames", "k", "lam"):
        _add(pipe, "--" + name.replace("_", "-"), name, getattr(base, name))
    for section, cls in (("sampler", SamplerConfig), ("recognizer", RecognizerConfig)):
        for f in dataclasses.fields(cls):
            if f"{section}.{f.name}" in DERIVED:
                continue
            _add(pipe, f"--{section}-{f.name.replace('_', '-')}", f"{section}.{f.name}",
                 getattr(getattr(base, section), f.name))
    old = p.add_argument_group("older names (still accepted)")
    for name, target in _ALIASES.items():
        kind = str if name == "attention" else int
        old.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                         help=f"same as --{target.replace('.', '-').replace('_', '-')}")
    old.add_argument("--backbones-pretrained", dest="backbones_pretrained", action=argparse.BooleanOptionalAction,
                     default=None, help="set --sampler-backbone-pretrained and --recognizer-backbone-pretrained")
    assert set(_ALIASES) | {"backbones_pretrained"} <= set(LEGACY_KEYS)
    return p


def config_from_args(argv: list[str] | None) -> TrainConfig:
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        try:
            loaded = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read training config {args.config}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"training config {args.config} must hold a JSON object")
        values.update(loaded)
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    cfg = TrainConfig.from_dict(values)
    if not cfg.data:
        raise ConfigError("--data is required (a dataset folder or annotation file)")
    return cfg


def interrupted_line(cfg: TrainConfig | None, exc: KeyboardInterrupt, argv: list[str] | None) -> str:
    """The one line ``train`` ends with on Ctrl-C: what was saved and the command that resumes."""
    again = resume_command("train", argv)
    if isinstance(exc, TrainingInterrupted):
        if exc.saved is None:
            return f"interrupted (--no-save-state: no training state to resume from); run again with: {again}"
        return f"interrupted: training state saved after {exc.saved} ({exc.state_path}); resume with: {again}"
    if cfg is not None and cfg.state_path.is_file():
        return f"interrupted: the last training state ({cfg.state_path}) is kept; resume with: {again}"
    return f"interrupted before a training state was written (the caches are kept); resume with: {again}"


def main(argv: list[str] | None = None) -> int:
    cfg = None
    try:
        cfg = config_from_args(argv)
        result = run(cfg)
    except USER_ERRORS as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, no traceback
        if is_main_process():
            log.warning("%s", interrupted_line(cfg, exc, argv))
        return INTERRUPTED
    if result.checkpoint:
        log.info("checkpoint written to %s", result.checkpoint)
    return 0
