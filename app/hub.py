"""Hugging Face Hub checkpoint ids typed by visitors: syntax, allow-list, download.

With ``--allow-hub`` a visitor may name a Hub checkpoint (the UI's hub box, or the
``checkpoint`` input of ``/analyze``). That text never reaches the filesystem:

* ``parse_hub_id(text) -> (repo_id, revision)`` is a pure function of the string. It
  accepts ``owner/name`` or ``owner/name@revision`` under the Hub's own naming rules and
  refuses everything else (``/etc``, ``../x``, ``~``, ``C:\\x``, ``name`` alone) with one
  fixed message, so the answer never depends on which server folders exist.
* ``hub_allowed(repo_id, patterns)``: the host's optional allow-list (``--hub-allow``,
  fnmatch patterns such as ``myorg/*``; empty: any id).
* ``fetch_checkpoint(repo_id, revision, max_bytes)`` reads the repo's file sizes from the
  Hub's metadata, refuses weights over ``max_bytes`` (``--hub-max-mb``) before any
  download, then downloads only the two checkpoint files (pinned to the commit it checked)
  into the Hugging Face cache and returns that folder; ``check_backbones`` then refuses a
  downloaded config whose backbones name a server folder (``hf:/path``), a Hub model
  outside the allow-list or one whose weights are over the same limit, before anything is built.
"""
from __future__ import annotations

import fnmatch
import logging
import re
from pathlib import Path
from typing import Sequence

from nsnet.config import PipelineConfig
from nsnet.inference.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError

__all__ = ["HubIdError", "HUB_ID_HELP", "MAX_NAME_CHARS", "parse_hub_id", "format_hub_id", "hub_allowed",
           "repo_files", "fetch_checkpoint", "weights_bytes", "check_backbones"]

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 96        # owner and name, each (the Hub's limit)
MAX_CONFIG_BYTES = 1 << 20  # a checkpoint's config.json is a few KB
MAX_REVISION_CHARS = 128

# A part: letters, digits, '-', '_', '.'; neither starts nor ends with '.' or '-'.
_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
# A revision: a branch, tag or commit (``main``, ``v1.0``, ``refs/pr/3``, a 40-hex sha).
_REVISION = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._/-]*[A-Za-z0-9_])?")

HUB_ID_HELP = ("not a Hugging Face Hub id: expected owner/name or owner/name@revision "
               "(letters, digits, '-', '_' and '.'; paths are not accepted)")


class HubIdError(CheckpointError):
    """Text that is not a Hub id (always the same message, whatever the text)."""

    def __init__(self) -> None:
        super().__init__(HUB_ID_HELP)


def _valid_part(part: str, limit: int, pattern: re.Pattern) -> bool:
    return (0 < len(part) <= limit and pattern.fullmatch(part) is not None
            and ".." not in part and "--" not in part)


def parse_hub_id(text: object) -> tuple[str, str | None]:
    """``"owner/name[@revision]"`` as ``(repo_id, revision or None)``; anything else raises ``HubIdError``.

    Surrounding whitespace is ignored. Nothing is looked up: no filesystem access and no
    network, so a path is refused the same way (message and time) whether or not it exists.
    """
    if not isinstance(text, str) or len(text) > 2 * MAX_NAME_CHARS + MAX_REVISION_CHARS + 2:
        raise HubIdError()
    repo_id, at, revision = text.strip().partition("@")
    owner, slash, name = repo_id.partition("/")
    if not (slash and _valid_part(owner, MAX_NAME_CHARS, _PART) and _valid_part(name, MAX_NAME_CHARS, _PART)):
        raise HubIdError()
    if name.lower().endswith(".git"):
        raise HubIdError()
    if at:
        if not _valid_part(revision, MAX_REVISION_CHARS, _REVISION) or "//" in revision \
                or revision.endswith(".lock"):
            raise HubIdError()
        return repo_id, revision
    return repo_id, None


def format_hub_id(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def hub_allowed(repo_id: str, patterns: Sequence[str]) -> bool:
    """True when no allow-list is set, or ``repo_id`` matches one of its fnmatch patterns (any case)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(repo_id.lower(), p.lower()) for p in patterns)


def _problem(exc: BaseException, revision: str | None) -> str:
    """What went wrong talking to the Hub, in a few words (the client raises many types)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "RepositoryNotFoundError" in names or "GatedRepoError" in names:
        return "no such model repository on the Hub (or it is private or gated)"
    if "RevisionNotFoundError" in names:
        return f"the repository has no revision {revision!r}"
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names or "ConnectionError" in names:
        return "this server cannot reach the Hugging Face Hub"
    return f"download failed ({type(exc).__name__})"


def repo_files(repo_id: str, revision: str | None) -> tuple[str | None, dict[str, int | None]]:
    """(commit sha, {file name: size in bytes or None}) of a Hub model repo, from its metadata only."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    return info.sha, {s.rfilename: s.size for s in (info.siblings or [])}


def _listing(repo_id: str, revision: str | None, shown: str) -> tuple[str | None, dict[str, int | None]]:
    try:
        return repo_files(repo_id, revision)
    except Exception as exc:  # the Hub client raises many types; each becomes one line
        log.info("hub repo %s: %s: %s", shown, type(exc).__name__, exc)
        raise CheckpointError(f"Hub checkpoint {shown}: {_problem(exc, revision)}") from None


def _mb(n: float) -> str:
    return f"{n / 2 ** 20:,.0f} MB"


def _check_size(what: str, size: int | None, max_bytes: int | None) -> None:
    """Refuse ``what`` (the start of the line) when ``size`` is over ``max_bytes`` or unknown."""
    if max_bytes is not None and (size is None or size > max_bytes):
        weighs = "of unknown size" if size is None else _mb(size)
        raise CheckpointError(f"{what} {weighs}, over this server's limit of {_mb(max_bytes)} (--hub-max-mb)")


def fetch_checkpoint(repo_id: str, revision: str | None, max_bytes: int | None = None) -> Path:
    """Download ``config.json`` and ``model.safetensors`` of a Hub repo; the local snapshot folder.

    The repo's file sizes are read first (metadata only): a repo without the two files, a
    ``config.json`` over 1 MB or weights over ``max_bytes`` (``--hub-max-mb``; None: no
    limit) is refused before any download, and the download is pinned to the commit that
    was checked. Raises ``CheckpointError`` with one line that names the id (never a local path).
    """
    shown = format_hub_id(repo_id, revision)
    sha, files = _listing(repo_id, revision, shown)
    if CONFIG_NAME not in files or WEIGHTS_NAME not in files:
        raise CheckpointError(f"Hub checkpoint {shown}: not an NSNet checkpoint (needs {CONFIG_NAME} "
                              f"and {WEIGHTS_NAME})")
    if (files[CONFIG_NAME] or 0) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"Hub checkpoint {shown}: its {CONFIG_NAME} is {_mb(files[CONFIG_NAME])}, "
                              "too large to be a checkpoint config")
    _check_size(f"Hub checkpoint {shown}: its {WEIGHTS_NAME} is", files[WEIGHTS_NAME], max_bytes)
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, revision=sha or revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    except Exception as exc:  # the Hub client raises many types; each becomes one line
        log.info("hub checkpoint %s: %s: %s", shown, type(exc).__name__, exc)
        raise CheckpointError(f"Hub checkpoint {shown}: {_problem(exc, revision)}") from None
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"Hub checkpoint {shown}: not an NSNet checkpoint (needs {CONFIG_NAME} "
                              f"and {WEIGHTS_NAME})")
    return folder


def weights_bytes(files: dict[str, int | None]) -> int | None:
    """What ``transformers`` would download of a model repo's weights: its safetensors files if
    it has any, else its other weight files (None: a size the Hub does not report)."""
    for suffixes in ((".safetensors",), (".bin", ".pt", ".pth", ".msgpack", ".h5")):
        sizes = [size for name, size in files.items() if name.endswith(suffixes)]
        if sizes:
            return None if any(size is None for size in sizes) else sum(sizes)
    return 0


_FAMILIES = ("hf:", "clip:")  # backbones loaded by name from the Hub, or from a folder


def check_backbones(config: PipelineConfig, shown: str, patterns: Sequence[str], max_bytes: int | None = None) -> None:
    """A visitor's Hub checkpoint may name Hub backbones, never server folders (and only allowed
    ones, whose weights are within ``max_bytes`` each)."""
    for role, name in (("sampler", config.sampler.backbone), ("recognizer", config.recognizer.backbone)):
        family = next((f for f in _FAMILIES if name.startswith(f)), None)
        if family is None:
            continue  # a registry name (efficientnet_lite0, torchvision:resnet50, ...)
        try:
            repo_id, revision = parse_hub_id(name[len(family):])
        except HubIdError:
            raise CheckpointError(f"Hub checkpoint {shown}: its {role} backbone is not a Hub model id; "
                                  "this server loads visitors' checkpoints with Hub backbones only") from None
        if revision is not None or not hub_allowed(repo_id, patterns):
            raise CheckpointError(f"Hub checkpoint {shown}: its {role} backbone {family}{repo_id} is not "
                                  "allowed on this server")
        if max_bytes is not None:
            size = weights_bytes(_listing(repo_id, None, f"{shown} ({role} backbone {repo_id})")[1])
            _check_size(f"Hub checkpoint {shown}: its {role} backbone {family}{repo_id} has weights", size, max_bytes)
