"""Checkpoint folders: ``config.json`` + ``model.safetensors``, the one place that names them.

A checkpoint is written atomically (a half-written folder never appears) and read
without unpickling anything. A Hugging Face Hub id is only resolved when a caller asks
for one; nothing here is ever fetched by default.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from torch import Tensor

from ..config import PipelineConfig

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CheckpointError", "is_checkpoint", "resolve_checkpoint",
           "read_checkpoint", "write_checkpoint"]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or does not match its config."""


def is_checkpoint(folder: str | os.PathLike) -> bool:
    """True for a folder holding both checkpoint files."""
    folder = Path(folder)
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def resolve_checkpoint(path_or_id: str | os.PathLike) -> Path:
    """A local checkpoint folder, or a Hub repo id ``user/name`` downloaded on request."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise CheckpointError(f"{path}: not a checkpoint folder (no {CONFIG_NAME})")
        return path
    text = str(path_or_id)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise CheckpointError(f"checkpoint not found: {text} (expected a folder with {CONFIG_NAME} "
                              f"and {WEIGHTS_NAME}, or a Hugging Face Hub id 'user/name')")
    try:  # a hub id: only reached when the user asks for one; never in tests or the default app
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    except Exception as exc:
        raise CheckpointError(f"could not fetch checkpoint {text!r} from the Hugging Face Hub: {exc}") from None


def read_checkpoint(path_or_id: str | os.PathLike) -> tuple[Path, PipelineConfig, dict[str, Tensor]]:
    """(folder, config, weights) of a checkpoint; never unpickles."""
    from safetensors.torch import load_file

    folder = resolve_checkpoint(path_or_id)
    config = PipelineConfig.load(folder / CONFIG_NAME)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{folder}: missing {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{weights}: unreadable safetensors file ({exc})") from None
    return folder, config, state


def write_checkpoint(folder: str | os.PathLike, config: PipelineConfig, state: dict[str, Tensor]) -> Path:
    """Write both files into a private temp folder, then swap it into place."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        config.save(tmp / CONFIG_NAME)
        save_file(state, str(tmp / WEIGHTS_NAME))
        for path in (tmp / CONFIG_NAME, tmp / WEIGHTS_NAME):  # mkdtemp is private; the checkpoint is not
            path.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved checkpoint to %s", folder)
    return folder
