"""What every command shares: the default checkpoint and the one-line error exit."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import ConfigError
from ..data.records import DatasetError
from ..inference.checkpoint import CheckpointError
from ..models.backbones import BackboneError

__all__ = ["BUNDLED_CHECKPOINT", "USER_ERRORS", "add_backbone_path_flag", "add_precision_flag", "default_checkpoint"]

#: What a command reports as one line and exit code 2 (a bad file, flag, config or checkpoint,
#: a backbone that cannot be built, e.g. pretrained weights missing here), as opposed to a bug,
#: which keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, CheckpointError, DatasetError, BackboneError,
                                                FileNotFoundError)

#: The demo model shipped in the repository (present in a source checkout or an editable install).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "demo-model"


def default_checkpoint() -> str:
    """``$NSNET_CHECKPOINT``, else the bundled demo model (a path that may not exist when the
    package was installed without the repository: loading it then says so in one line)."""
    return os.environ.get("NSNET_CHECKPOINT") or str(BUNDLED_CHECKPOINT)


def _old_new(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not (sep and old.strip() and new.strip()):
        raise argparse.ArgumentTypeError(f"expected OLD=NEW (e.g. sampler=/data/swin), got {text!r}")
    return old.strip(), new.strip()


def add_precision_flag(p: argparse.ArgumentParser) -> None:
    """``--precision`` -> ``args.precision``, for ``Pipeline.set_precision``."""
    from ..inference.pipeline import PRECISIONS

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 (else fp16) autocast on CUDA, float32 on CPU; bf16: autocast on CPU too "
                        "(about 2x faster on a CPU with bf16 instructions, numbers move slightly); fp32; fp16 (CUDA)")


def add_backbone_path_flag(p: argparse.ArgumentParser) -> None:
    """``--backbone-path OLD=NEW`` (repeatable) -> ``args.backbone_paths``, a list of (old, new) pairs
    for ``Pipeline.from_pretrained(..., backbone_paths=dict(args.backbone_paths))``."""
    p.add_argument("--backbone-path", dest="backbone_paths", action="append", type=_old_new, default=[],
                   metavar="OLD=NEW",
                   help="build an hf:/clip: backbone of the checkpoint from NEW (a folder or hub id); OLD is "
                        "'sampler', 'recognizer' or the backbone's name or path as config.json has it (repeatable)")
