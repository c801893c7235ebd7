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
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from .. import jsonsafe
from ..config import MAX_CONFIG_BYTES, ConfigError, PipelineConfig
from ..models.backbones import backbone_entry

__all__ = ["BACKBONES_DIR", "CONFIG_NAME", "MAX_CONFIG_BYTES", "ROLES", "WEIGHTS_NAME", "CheckpointError",
           "backbone_sources", "check_finite", "is_checkpoint", "load_config", "portable_backbone_name",
           "read_checkpoint", "recorded_backbones", "resolve_checkpoint", "write_checkpoint",
           "BUNDLED_CHECKPOINT", "default_checkpoint", "HubSizeError", "split_hub_id", "format_hub_id", "repo_files",
           "weights_bytes", "fetch_hub_checkpoint", "check_backbone_sizes"]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BACKBONES_DIR = "backbones"  # backbones/<role>/: files that rebuild an hf:/clip: backbone's architecture
ROLES = ("sampler", "recognizer")
#: The demo model shipped in the repository (present in a source checkout or an editable install).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "demo-model"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or does not match its config."""


def is_checkpoint(folder: str | os.PathLike) -> bool:
    """True for a folder holding both checkpoint files."""
    folder = Path(folder)
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def default_checkpoint() -> str:
    """``$NSNET_CHECKPOINT``, else the bundled demo model (a path that may not exist when the
    package was installed without the repository: loading it then says so in one line)."""
    return os.environ.get("NSNET_CHECKPOINT") or str(BUNDLED_CHECKPOINT)


def resolve_checkpoint(path_or_id: str | os.PathLike, *, hub_only: bool = False,
                       max_bytes: int | None = None) -> Path:
    """The one resolver of a checkpoint name: a local checkpoint folder, or a Hugging Face Hub id
    ``owner/name[@revision]`` fetched on request (:func:`fetch_hub_checkpoint`).

    ``hub_only``: the name is a Hub id whatever folders exist here (a server resolving a
    visitor's id never looks at its own disk). ``max_bytes``: the largest weights a Hub
    checkpoint may have, checked from the Hub's metadata before any download.
    """
    text = str(path_or_id)
    if not hub_only:
        path = Path(path_or_id).expanduser()
        if path.is_dir():
            if not (path / CONFIG_NAME).is_file():
                raise CheckpointError(f"{path}: not a checkpoint folder (no {CONFIG_NAME})")
            return path
        if path.exists() or text.startswith((".", "/", "~")) or split_hub_id(text)[0].count("/") != 1:
            raise CheckpointError(f"checkpoint not found: {text} (expected a folder with {CONFIG_NAME} "
                                  f"and {WEIGHTS_NAME}, or a Hugging Face Hub id 'user/name')")
    repo_id, revision = split_hub_id(text)  # a hub id: only reached when asked for; never in tests or the default app
    return fetch_hub_checkpoint(repo_id, revision, max_bytes=max_bytes)


def read_checkpoint(path_or_id: str | os.PathLike) -> tuple[Path, PipelineConfig, dict[str, Tensor]]:
    """(folder, config, weights) of a checkpoint; never unpickles."""
    from safetensors.torch import load_file

    folder = resolve_checkpoint(path_or_id)
    config = load_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{folder}: missing {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{weights}: unreadable safetensors file ({exc})") from None
    check_finite(state, weights)
    return folder, config, state


def load_config(folder: str | os.PathLike) -> PipelineConfig:
    """A checkpoint's ``config.json``, read safely (:mod:`nsnet.jsonsafe`: at most
    :data:`MAX_CONFIG_BYTES`, nesting bounded; ``ConfigError`` in one line otherwise), with
    distinct class names (``CheckpointError`` naming a duplicate: a model whose outputs share
    a name cannot be matched to a dataset's labels)."""
    path = Path(folder) / CONFIG_NAME
    data = jsonsafe.load_file(path, str(path), max_bytes=MAX_CONFIG_BYTES, error=ConfigError)
    try:
        config = PipelineConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{CONFIG_NAME}: {exc}") from None
    counts = Counter(config.class_names)
    dups = [name for name, n in counts.items() if n > 1]
    if dups:
        raise CheckpointError(f"{path}: {len(dups)} class name(s) appear more than once (e.g. {dups[0]!r}, "
                              f"{counts[dups[0]]} times): the classes of a checkpoint must be distinct")
    return config


def check_finite(state: dict[str, Tensor], where: str | os.PathLike) -> None:
    """Raise ``CheckpointError`` naming the first tensor holding a NaN or an infinity (a model with
    such weights answers ``nan%``: a diverged or damaged training run)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(f"{where}: tensor {name} holds {bad} NaN or infinite value(s) of "
                                      f"{tensor.numel()}: refusing a model with broken weights")


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


# --------------------------------------------------------------------------- the Hugging Face Hub
# Nothing below runs unless a caller asks for a Hub id; ``huggingface_hub`` is imported only then.
MAX_HUB_CONFIG_BYTES = 1 << 20   # a checkpoint's config.json on the Hub is a few KB
HUB_BACKBONE_FAMILIES = ("hf:", "clip:")  # backbones built by name from a Hub id (or a folder)


def _mb(n: float) -> str:
    return f"{n / 2 ** 20:,.0f} MB"


class HubSizeError(CheckpointError):
    """Files on the Hub over a size limit (or of unknown size): ``what`` weighs ``size`` bytes."""

    def __init__(self, what: str, size: int | None, limit: int) -> None:
        self.what, self.size, self.limit = what, size, limit
        super().__init__(self.describe())

    def describe(self, limit_name: str = "the limit", hint: str = "") -> str:
        """The one line, naming the limit as the caller knows it (``"this server's limit"``, ``"--hub-max-mb"``)."""
        weighs = "of unknown size" if self.size is None else _mb(self.size)
        return f"{self.what} {weighs}, over {limit_name} of {_mb(self.limit)}" + (f" ({hint})" if hint else "")


def split_hub_id(text: str) -> tuple[str, str | None]:
    """``"owner/name[@revision]"`` as ``(repo_id, revision or None)`` (no syntax check beyond the split)."""
    repo_id, at, revision = str(text).strip().partition("@")
    return repo_id, (revision if at else None)


def format_hub_id(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def _hub_problem(exc: BaseException, revision: str | None) -> str:
    """What went wrong talking to the Hub, in a few words (the client raises many types)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "RepositoryNotFoundError" in names or "GatedRepoError" in names:
        return "no such model repository on the Hub (or it is private or gated)"
    if "RevisionNotFoundError" in names:
        return f"the repository has no revision {revision!r}"
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names or "ConnectionError" in names:
        return "this machine cannot reach the Hugging Face Hub"
    return f"download failed ({type(exc).__name__})"


def repo_files(repo_id: str, revision: str | None) -> tuple[str | None, dict[str, int | None]]:
    """(commit sha, {file name: size in bytes or None}) of a Hub model repo, from its metadata only."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    return info.sha, {s.rfilename: s.size for s in (info.siblings or [])}


def _hub_listing(repo_id: str, revision: str | None, shown: str) -> tuple[str | None, dict[str, int | None]]:
    try:
        return repo_files(repo_id, revision)
    except Exception as exc:  # the Hub client raises many types; each becomes one line
        log.info("%s: %s: %s", shown, type(exc).__name__, exc)
        raise CheckpointError(f"{shown}: {_hub_problem(exc, revision)}") from None


def weights_bytes(files: dict[str, int | None]) -> int | None:
    """What ``transformers`` would download of a model repo's weights: its safetensors files if
    it has any, else its other weight files (None: a size the Hub does not report)."""
    for suffixes in ((".safetensors",), (".bin", ".pt", ".pth", ".msgpack", ".h5")):
        sizes = [size for name, size in files.items() if name.endswith(suffixes)]
        if sizes:
            return None if any(size is None for size in sizes) else sum(sizes)
    return 0


def _check_hub_size(what: str, size: int | None, max_bytes: int | None) -> None:
    if max_bytes is not None and (size is None or size > max_bytes):
        raise HubSizeError(what, size, max_bytes)


def fetch_hub_checkpoint(repo_id: str, revision: str | None = None, *, max_bytes: int | None = None) -> Path:
    """Download a Hub checkpoint's files into the Hugging Face cache; the local snapshot folder.

    The repo's file sizes are read first (metadata only): a repo without ``config.json`` and
    ``model.safetensors``, a ``config.json`` over 1 MB, or (with ``max_bytes``) weights over
    that size or of a size the Hub does not report, is refused before any download. Only the
    checkpoint's files are downloaded (``config.json``, ``model.safetensors``, ``backbones/*``),
    pinned to the commit whose sizes were checked. Raises ``CheckpointError`` (``HubSizeError``
    for a size) with one line naming the id, never a local path.
    """
    shown = f"Hub checkpoint {format_hub_id(repo_id, revision)}"
    sha, files = _hub_listing(repo_id, revision, shown)
    if CONFIG_NAME not in files or WEIGHTS_NAME not in files:
        raise CheckpointError(f"{shown}: not an NSNet checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    if (files[CONFIG_NAME] or 0) > MAX_HUB_CONFIG_BYTES:
        raise CheckpointError(f"{shown}: its {CONFIG_NAME} is {_mb(files[CONFIG_NAME])}, "
                              "too large to be a checkpoint config")
    _check_hub_size(f"{shown}: its {WEIGHTS_NAME} is", files[WEIGHTS_NAME], max_bytes)
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, revision=sha or revision,
                                        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, f"{BACKBONES_DIR}/*"]))
    except Exception as exc:  # the Hub client raises many types; each becomes one line
        log.info("%s: %s: %s", shown, type(exc).__name__, exc)
        raise CheckpointError(f"{shown}: {_hub_problem(exc, revision)}") from None
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"{shown}: not an NSNet checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    return folder


def check_backbone_sizes(config: PipelineConfig, shown: str, max_bytes: int | None) -> None:
    """Refuse a checkpoint (``shown`` names it) whose ``hf:`` / ``clip:`` Hub backbones have weights over
    ``max_bytes`` each, or of a size the Hub does not report, from the Hub's metadata (no download).
    Folders and registry names are not sized; ``max_bytes`` None: no limit."""
    if max_bytes is None:
        return
    for role, name in (("sampler", config.sampler.backbone), ("recognizer", config.recognizer.backbone)):
        family = next((f for f in HUB_BACKBONE_FAMILIES if name.startswith(f)), None)
        location = name[len(family):] if family else ""
        repo_id, revision = split_hub_id(location)
        if family is None or location.startswith(("/", ".", "~")) or repo_id.count("/") != 1:
            continue
        files = _hub_listing(repo_id, revision, f"{shown} ({role} backbone {repo_id})")[1]
        _check_hub_size(f"{shown}: its {role} backbone {family}{repo_id} has weights", weights_bytes(files),
                        max_bytes)
