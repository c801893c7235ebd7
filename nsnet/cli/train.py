"""``nsnet train``: the three-stage NSNet recipe on a dataset (see ``nsnet.training``).

Every :class:`~nsnet.training.TrainConfig` field is a flag (``--recognizer-epochs``), and
every sampler / recognizer field of the pipeline too (``--sampler-dropout``,
``--sampler-attention-dim``, ``--recognizer-input-size``, ``--num-frames``, ``--k``,
``--lam``). ``--config FILE`` reads a JSON TrainConfig (nested ``pipeline`` or the older
flat names); flags given on the command line override it. Runs under ``torchrun`` too.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from ..config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from ..training import TrainConfig, run
from ..training.config import DERIVED, LEGACY_KEYS
from .common import USER_ERRORS

log = logging.getLogger(__name__)

_ALIASES = {  # older flat flags -> what they set (kept so existing scripts keep working)
    "sampler_size": "sampler.input_size", "recognizer_size": "recognizer.input_size",
    "attention": "sampler.attention", "hidden_dim": "sampler.hidden_dim",
    "temporal_kernel": "sampler.temporal_kernel",
}


def _add(p: argparse.ArgumentParser, flag: str, dest: str, default: Any, help_: str = "") -> None:
    text = f"{help_} (default: {default})".strip()
    if isinstance(default, bool):
        p.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
    else:
        kind = float if isinstance(default, float) else int if isinstance(default, int) else str
        p.add_argument(flag, dest=dest, type=kind, default=None, help=text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file with TrainConfig fields; flags given on the command line override it")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("extra", "pipeline"):
            continue
        default = getattr(defaults, f.name)
        if f.name == "max_videos":
            p.add_argument("--max-videos", dest="max_videos", type=int, default=None, help="(default: all)")
            continue
        _add(p, "--" + f.name.replace("_", "-"), f.name, default)
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


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = config_from_args(argv)
        result = run(cfg)
    except USER_ERRORS as exc:
        log.error("%s", exc)
        return 2
    if result.checkpoint:
        log.info("checkpoint written to %s", result.checkpoint)
    return 0
