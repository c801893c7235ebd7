"""Hugging Face Hub ids typed by visitors: their syntax and this server's allow-list.

With ``--allow-hub`` a visitor may name a Hub checkpoint (the UI's hub box, or the
``checkpoint`` input of ``/analyze``). That text never reaches the filesystem:

* ``parse_hub_id(text) -> (repo_id, revision)`` is a pure function of the string. It
  accepts ``owner/name`` or ``owner/name@revision`` under the Hub's own naming rules and
  refuses everything else (``/etc``, ``../x``, ``~``, ``C:\\x``, ``name`` alone) with one
  fixed message, so the answer never depends on which server folders exist.
* ``hub_allowed(repo_id, patterns)``: the host's optional allow-list (``--hub-allow``,
  fnmatch patterns such as ``myorg/*``; empty: any id).
* ``check_backbones(config, shown, patterns, max_bytes)``: a visitor's checkpoint may name
  Hub backbones (allowed ones), never server folders (``hf:/path``).

Fetching is the library's (``nsnet.inference.checkpoint.resolve_checkpoint`` with
``hub_only=True``): sizes from the Hub's metadata first, weights over ``--hub-max-mb``
refused before any download, the download pinned to the commit it checked
(``app.state.models.ModelStore`` calls it).
"""
from __future__ import annotations

import fnmatch
import re
from typing import Sequence

from nsnet.config import PipelineConfig
from nsnet.inference.checkpoint import (HUB_BACKBONE_FAMILIES, CheckpointError, check_backbone_sizes,
                                        format_hub_id)

__all__ = ["HubIdError", "HUB_ID_HELP", "MAX_NAME_CHARS", "parse_hub_id", "format_hub_id", "hub_allowed",
           "check_backbones"]

MAX_NAME_CHARS = 96        # owner and name, each (the Hub's limit)
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


def hub_allowed(repo_id: str, patterns: Sequence[str]) -> bool:
    """True when no allow-list is set, or ``repo_id`` matches one of its fnmatch patterns (any case)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(repo_id.lower(), p.lower()) for p in patterns)


def check_backbones(config: PipelineConfig, shown: str, patterns: Sequence[str], max_bytes: int | None = None) -> None:
    """A visitor's Hub checkpoint may name Hub backbones, never server folders (and only allowed
    ones, whose weights are within ``max_bytes`` each: the library sizes them from the Hub's metadata)."""
    for role, name in (("sampler", config.sampler.backbone), ("recognizer", config.recognizer.backbone)):
        family = next((f for f in HUB_BACKBONE_FAMILIES if name.startswith(f)), None)
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
    check_backbone_sizes(config, f"Hub checkpoint {shown}", max_bytes)
