"""What every command shares: the default checkpoint (``nsnet.inference.checkpoint``) and the one-line error exit."""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..config import ConfigError
from ..data.records import DatasetError
from ..inference.checkpoint import BUNDLED_CHECKPOINT, CheckpointError, default_checkpoint
from ..models.backbones import BackboneError

__all__ = ["BUNDLED_CHECKPOINT", "USER_ERRORS", "add_backbone_path_flag", "add_precision_flag", "default_checkpoint"]

#: What a command reports as one line and exit code 2 (a bad file, flag, config or checkpoint,
#: a backbone that cannot be built, e.g. pretrained weights missing here), as opposed to a bug,
#: which keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, CheckpointError, DatasetError, BackboneError,
                                                FileNotFoundError)


def _old_new(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not (sep and old.strip() and new.strip()):
        raise argparse.ArgumentTypeError(f"expected OLD=NEW (e.g. sampler=/data/swin), got {text!r}")
    return old.strip(), new.strip()


def add_precision_flag(p: argparse.ArgumentParser) -> None:
    """``--precision`` -> ``args.precision``, for ``Pipeline.from_pretrained(..., precision=...)``."""
    from ..inference.pipeline import PRECISIONS

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="what the backbones run in (heads always float32). auto: fp16 autocast on CUDA (keeps "
                        "NSNet's selections), float32 on CPU; bf16: opt-in, on a GPU with native bf16 or a CPU "
                        "(about 2x faster on a CPU with bf16 instructions; it can change selections); fp32; "
                        "fp16 (CUDA)")


def add_backbone_path_flag(p: argparse.ArgumentParser) -> None:
    """``--backbone-path OLD=NEW`` (repeatable) -> ``args.backbone_paths``, a list of (old, new) pairs
    for ``Pipeline.from_pretrained(..., backbone_paths=dict(args.backbone_paths))``."""
    p.add_argument("--backbone-path", dest="backbone_paths", action="append", type=_old_new, default=[],
                   metavar="OLD=NEW",
                   help="build an hf:/clip: backbone of the checkpoint from NEW (a folder or hub id); OLD is "
                        "'sampler', 'recognizer' or the backbone's name or path as config.json has it (repeatable)")


#: The exit code of a command stopped by Ctrl-C (128 + SIGINT, what a shell reports).
INTERRUPTED = 130


def resume_command(command: str, argv: list[str] | None) -> str:
    """The command line that resumes ``nsnet <command> <argv>``: the same arguments with ``--resume``."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-resume"]
    if "--resume" not in args:
        args.append("--resume")
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:  # under torchrun
        per_node = os.environ.get("LOCAL_WORLD_SIZE", world)
        launch = f"torchrun --nproc_per_node {per_node} [your other torchrun options] -m nsnet"
    else:
        launch = "nsnet"
    return f"{launch} {command} {shlex.join(args)}"


def is_main_process() -> bool:
    """Rank 0 under torchrun, or no torchrun: the process that reports an interruption."""
    return (os.environ.get("RANK", "0") or "0") == "0"
