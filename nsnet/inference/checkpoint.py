"""Checkpoint folders: ``config.json`` + ``model.safetensors``, the one place that names them.

A checkpoint is written atomically (a half-written folder never appears) and read
without unpickling anything. A Hugging Face Hub id is only resolved when a caller asks
for one; nothing here is ever fetched by default.

Backbones that a checkpoint rebuilds from a location (``hf:`` / ``clip:``: a hub id or a
folder) also get the files that rebuild their architecture, without weights (those are in
``model.safetensors``), in ``backbones/<role>/``. A local folder is then named relative to the
checkpoint (``hf:./backbones/sampler``), never by an absolute path, so the folder can move to
another machine; a hub id stays an id. :func:`backbone_sources` says where each backbone is
built from when the checkpoint is loaded, and lets a caller remap a location.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from torch import Tensor

from ..config import ConfigError, PipelineConfig
from ..models.backbones import backbone_entry

__all__ = ["BACKBONES_DIR", "CONFIG_NAME", "ROLES", "WEIGHTS_NAME", "CheckpointError", "backbone_sources",
           "is_checkpoint", "portable_backbone_name", "read_checkpoint", "recorded_backbones", "resolve_checkpoint",
           "write_checkpoint"]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BACKBONES_DIR = "backbones"  # backbones/<role>/: files that rebuild an hf:/clip: backbone's architecture
ROLES = ("sampler", "recognizer")


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

        return Path(snapshot_download(text, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, f"{BACKBONES_DIR}/*"]))
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


def write_checkpoint(folder: str | os.PathLike, config: PipelineConfig, state: dict[str, Tensor],
                     extra: Callable[[Path], None] | None = None) -> Path:
    """Write both files (and whatever ``extra(tmp_folder)`` adds, e.g. ``backbones/``) into a
    private temp folder, then swap it into place."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        config.save(tmp / CONFIG_NAME)
        save_file(state, str(tmp / WEIGHTS_NAME))
        if extra is not None:
            extra(tmp)
        for path in tmp.rglob("*"):  # mkdtemp is private; the checkpoint is not
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        tmp.chmod(0o777 & ~umask)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved checkpoint to %s", folder)
    return folder


# --------------------------------------------------------------------------- backbone locations
def _is_folder(location: str) -> bool:
    """A local folder rather than a hub id (which never starts with '/', '.' or '~')."""
    return location.startswith(("/", ".", "~")) or os.path.isabs(location) or os.path.isdir(location)


def portable_backbone_name(name: str, role: str) -> str:
    """The name a checkpoint stores for a backbone: a local ``hf:`` / ``clip:`` folder becomes
    ``<family>:./backbones/<role>`` (its files are bundled there); anything else stays."""
    family, _, location = name.partition(":")
    if not backbone_entry(name).location or not _is_folder(location):
        return name
    return f"{family}:./{BACKBONES_DIR}/{role}"


def recorded_backbones(config: PipelineConfig) -> dict[str, dict[str, Any]]:
    """``meta.backbones`` of a checkpoint, by role (``{}`` for checkpoints written before it existed):
    ``{"name", "fingerprint", "stored", ["files"]}`` each."""
    found = config.meta.get("backbones")
    if found is None:
        return {}
    if not isinstance(found, dict) or not set(found) <= set(ROLES):
        raise CheckpointError(f"{CONFIG_NAME}: meta.backbones must map 'sampler' / 'recognizer' to objects")
    for role, rec in found.items():
        if not (isinstance(rec, dict) and isinstance(rec.get("fingerprint"), str)
                and isinstance(rec.get("stored"), bool)):
            raise CheckpointError(f"{CONFIG_NAME}: meta.backbones.{role} must hold a 'fingerprint' string and a "
                                  "'stored' flag")
    return found


def backbone_sources(folder: Path, config: PipelineConfig, stored: dict[str, bool],
                     backbone_paths: dict[str, str] | None = None) -> dict[str, str | None]:
    """Where each backbone of the checkpoint in ``folder`` is built from: a folder or hub id
    that replaces the text after its family prefix, or ``None`` for its name as it is.

    ``backbone_paths`` remaps locations: keys are a role (``"sampler"``, ``"recognizer"``), a
    backbone name as ``config.json`` has it (``"hf:/home/me/swin"``) or its location alone
    (``"/home/me/swin"``, ``"google/vit-base-patch16-224"``); values a folder or hub id. Without
    a remap, ``./backbones/<role>`` is the checkpoint's own subfolder, and a hub id whose weights
    the checkpoint stores is rebuilt offline from its bundled files when they are there.
    """
    remaps = {str(k): str(v) for k, v in (backbone_paths or {}).items()}
    names = {role: getattr(config, role).backbone for role in ROLES}
    used: set[str] = set()
    out: dict[str, str | None] = {}
    for role, name in names.items():
        entry = backbone_entry(name)
        family, _, location = name.partition(":")
        keys = [k for k in (role, name, location) if k and k in remaps]
        bundled = folder / BACKBONES_DIR / role
        if keys:
            used.update(keys)
            if not entry.location:
                raise ConfigError(f"backbone path {keys[0]!r}: the {role} backbone {name!r} is not a folder or hub "
                                  "id, so it has no location to remap (only hf: and clip: backbones have one)")
            new = remaps[keys[0]]
            out[role] = os.path.expanduser(new[len(family) + 1:] if new.startswith(family + ":") else new)
        elif entry.location and location.startswith("./"):
            path = folder / location
            if not (path / CONFIG_NAME).is_file():
                raise CheckpointError(f"{folder}: the {role} backbone files {location} are missing (copy the whole "
                                      f"checkpoint folder, or point {role}=<folder or hub id> at them with "
                                      "--backbone-path / backbone_paths)")
            out[role] = str(path.resolve())
        elif entry.location and stored.get(role) and (bundled / CONFIG_NAME).is_file():
            out[role] = str(bundled.resolve())
        else:
            out[role] = None
    unused = sorted(set(remaps) - used)
    if unused:
        raise ConfigError(f"backbone path {unused[0]!r} matches no backbone of {folder} (sampler: "
                          f"{names['sampler']}, recognizer: {names['recognizer']}); use sampler=..., "
                          "recognizer=... or a name as config.json has it")
    return out
