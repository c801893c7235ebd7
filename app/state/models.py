"""The explorer's pipelines, shared and read-only: the default one loaded at start, the others on first use.

* ``ModelStore``: the default pipeline plus the other offered checkpoints (each loaded once,
  on first use, then kept; bounded). Pipelines are only ever read by callbacks. A visitor
  names a checkpoint by its picker label or, only with ``--allow-hub``, by a Hub id that
  ``app.server.hub`` checks before anything is looked up (a path is refused, the same way
  whether or not it exists); the library's one resolver
  (``nsnet.inference.checkpoint.resolve_checkpoint``) fetches it, sizes checked first.
* ``load_default`` / ``untrained_pipeline`` / ``scan_checkpoints``: what ``python app.py`` serves.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

from nsnet.config import PipelineConfig
from nsnet.inference import CheckpointError, Pipeline
from nsnet.inference.checkpoint import BUNDLED_CHECKPOINT, HubSizeError, is_checkpoint, load_config, resolve_checkpoint
from nsnet.inference.store import PipelineStore

from ..server.hub import check_backbones, format_hub_id, hub_allowed, parse_hub_id

__all__ = ["CheckpointOption", "ModelStore", "untrained_pipeline", "load_default", "scan_checkpoints",
           "UNTRAINED_CLASSES"]

log = logging.getLogger(__name__)

UNTRAINED_CLASSES = 10
HUB_LIMIT = ("this server's limit", "--hub-max-mb")   # how a Hub size refusal names the limit here


@dataclass(frozen=True)
class CheckpointOption:
    label: str                 # what the dropdown shows
    source: str                # folder path or hub id ("" for the built-in untrained pipeline)


def untrained_pipeline(device: str = "auto", num_classes: int = UNTRAINED_CLASSES) -> Pipeline:
    """ImageNet-pretrained backbones, randomly initialised heads (seeded), placeholder classes."""
    config = PipelineConfig(class_names=[f"placeholder class {i}" for i in range(num_classes)], trained=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Pipeline.build(config, device=device)


def load_default(checkpoint: str | None, device: str = "auto") -> tuple[Pipeline, CheckpointOption]:
    """The pipeline served by default: ``checkpoint``, else the bundled demo, else untrained."""
    if checkpoint:
        pipe = Pipeline.from_pretrained(checkpoint, device=device)
        return pipe, CheckpointOption(_folder_label(Path(checkpoint), checkpoint), str(checkpoint))
    if is_checkpoint(BUNDLED_CHECKPOINT):
        pipe = Pipeline.from_pretrained(BUNDLED_CHECKPOINT, device=device)
        return pipe, CheckpointOption("Bundled demo model", str(BUNDLED_CHECKPOINT))
    log.warning("no demo checkpoint at %s: serving an UNTRAINED pipeline", BUNDLED_CHECKPOINT)
    return untrained_pipeline(device), CheckpointOption("Untrained (no demo model)", "")


def _folder_label(folder: Path, fallback: str) -> str:
    return folder.name if folder.is_dir() else fallback


def scan_checkpoints(models_dir: Path | None, max_depth: int = 3) -> list[CheckpointOption]:
    """Checkpoint folders (``nsnet.inference.checkpoint.is_checkpoint``) under ``models_dir``."""
    if models_dir is None or not models_dir.is_dir():
        return []
    found: list[CheckpointOption] = []
    root = models_dir.resolve()
    seen: set[Path] = set()   # folders by their resolved path: a symlink cycle or a second link lists nothing twice

    def walk(folder: Path, depth: int) -> None:
        try:
            real = folder.resolve()
        except (OSError, RuntimeError):
            return
        if real in seen:
            return
        seen.add(real)
        if is_checkpoint(folder):
            rel = folder.relative_to(root)
            found.append(CheckpointOption(f"{models_dir.name}/{rel}" if str(rel) != "." else models_dir.name,
                                          str(folder)))
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    walk(root, 0)
    return found


class ModelStore:
    """Pipelines by dropdown label; the default is loaded up front, others on first use.

    The loaded ones are kept in the library's :class:`~nsnet.inference.store.PipelineStore`
    (by source: a folder or ``hub:<id>``; least recently used dropped beyond ``max_loaded``;
    one load at a time; fresh locks in a forked ZeroGPU worker). This class adds what a
    visitor may name: the picker's labels, and Hub ids only as allowed.
    """

    def __init__(self, default: Pipeline, default_option: CheckpointOption,
                 options: Iterable[CheckpointOption] = (), *, device: str = "auto", allow_hub: bool = False,
                 hub_allow: Sequence[str] = (), hub_max_bytes: int | None = None, max_loaded: int = 3) -> None:
        self.default = default
        self.default_option = default_option
        default_src = Path(default_option.source).resolve() if default_option.source else None
        self.options: list[CheckpointOption] = [default_option] + [
            o for o in options if default_src is None or Path(o.source).resolve() != default_src]
        self.device = device
        self.allow_hub = allow_hub
        self.hub_allow = tuple(hub_allow)   # fnmatch patterns of allowed Hub ids (empty: any)
        self.hub_max_bytes = hub_max_bytes  # largest weights a Hub checkpoint or backbone may have (None: any)
        self.pipelines = PipelineStore(max_loaded=max_loaded)   # the others, by source, once loaded

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.options]

    def loaded_sources(self) -> list[str]:
        """The sources (folder or ``hub:<id>``) of the pipelines loaded besides the default, still kept."""
        return self.pipelines.loaded_names()

    def source_of(self, pipe: Pipeline) -> str | None:
        """The source a loaded pipeline came from (None: the default, or unloaded meanwhile)."""
        return self.pipelines.name_of(pipe)

    def get_by_name(self, name: str | None) -> tuple[Pipeline, CheckpointOption]:
        """The pipeline for one name: a picker label, "" (the default) or, with ``--allow-hub``, a Hub id."""
        name = name.strip() if isinstance(name, str) else name
        if not name or name in self.labels:
            return self.get(name or None)
        if not isinstance(name, str):
            raise CheckpointError(f"the checkpoint must be a name, got a {type(name).__name__}")
        if self.allow_hub:
            return self.get(None, name)
        offered = ", ".join(repr(label) for label in self.labels[:8]) + (", ..." if len(self.labels) > 8 else "")
        raise CheckpointError(f"unknown checkpoint {name[:40]!r}{'…' if len(name) > 40 else ''}: "
                              f"this server offers {offered}")

    def get(self, label: str | None = None, hub_id: str | None = None) -> tuple[Pipeline, CheckpointOption]:
        """The pipeline for a dropdown label or (when allowed) a hub id.

        Raises ``CheckpointError`` (one human line) for an unknown or broken checkpoint. A
        hub id is checked by ``app.server.hub.parse_hub_id`` (no path, no filesystem access)
        and the allow-list before anything is downloaded.
        """
        hub_id = hub_id.strip() if isinstance(hub_id, str) else ""
        if hub_id:
            if not self.allow_hub:
                raise CheckpointError("loading checkpoints from the Hugging Face Hub is disabled on this server "
                                      "(start it with --allow-hub)")
            repo_id, revision = parse_hub_id(hub_id)       # HubIdError: one fixed line, whatever the text
            if not hub_allowed(repo_id, self.hub_allow):
                raise CheckpointError(f"{repo_id} is not on this server's list of allowed Hub checkpoints")
            canonical = format_hub_id(repo_id, revision)
            option = CheckpointOption(f"hub:{canonical}", f"hub:{canonical}")
        else:
            if not label or label == self.default_option.label:
                return self.default, self.default_option
            matches = [o for o in self.options if o.label == label]
            if not matches:
                raise CheckpointError(f"unknown checkpoint {label!r}")
            option = matches[0]
        pipe = self.pipelines.get(option.source, load=lambda: self._load(option))  # one load at a time
        return pipe, option

    def config_for(self, label: str) -> tuple[PipelineConfig, CheckpointOption] | None:
        """The config of an offered checkpoint (only its ``config.json``: the weights load when it runs);
        a Hub id's once it was loaded. None for an unknown or unreadable one."""
        if not label or label == self.default_option.label:
            return self.default.config, self.default_option
        if label.startswith("hub:"):
            try:
                pipe, option = self.get(None, label[4:])   # loaded when that result was made
            except CheckpointError:
                return None
            return pipe.config, option
        option = next((o for o in self.options if o.label == label), None)
        if option is None:
            return None
        try:
            return load_config(option.source), option   # bounded, safe JSON; distinct class names
        except Exception as exc:
            log.info("cannot read the config of %s: %s", option.source, exc)
            return None

    def _load(self, option: CheckpointOption) -> Pipeline:
        """Load an option: a Hub id through the library's resolver (its config checked first), else its folder."""
        log.info("loading checkpoint %s", option.label)
        if not option.source.startswith("hub:"):
            try:
                return Pipeline.from_pretrained(option.source, device=self.device)
            except (CheckpointError, ValueError) as exc:  # name the option, never the server folder
                problem = str(exc).replace(str(Path(option.source).resolve()), option.label)
                raise CheckpointError(problem.replace(option.source, option.label)) from None
        shown = option.source[len("hub:"):]
        try:
            folder = resolve_checkpoint(shown, hub_only=True, max_bytes=self.hub_max_bytes)
            try:
                config = load_config(folder)
            except (CheckpointError, ValueError) as exc:
                raise CheckpointError(f"Hub checkpoint {shown}: {str(exc).replace(str(folder), '')}") from None
            check_backbones(config, shown, self.hub_allow, max_bytes=self.hub_max_bytes)
        except HubSizeError as exc:
            raise CheckpointError(exc.describe(*HUB_LIMIT)) from None
        try:
            return Pipeline.from_pretrained(folder, device=self.device)
        except (CheckpointError, ValueError) as exc:
            raise CheckpointError(f"Hub checkpoint {shown}: {str(exc).replace(str(folder), '')}") from None
