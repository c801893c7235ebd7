"""The explorer's shared, read-only resources.

* ``ModelStore``: the default pipeline (loaded once at start) plus the other offered
  checkpoints (each loaded once, on first use, then kept; bounded). Pipelines are only
  ever read by callbacks. A visitor names a checkpoint by its picker label or, only with
  ``--allow-hub``, by a Hub id that ``app.hub`` checks before anything is looked up (a
  path is refused, the same way whether or not it exists).
* ``ExampleClip`` / ``load_examples``: the bundled example clips and their ground-truth
  segments (an ActivityNet-style ``annotations.json``, read by ``nsnet.data.formats``).
* ``ResultCache``: the lazily filled cache of example runs, keyed by
  (checkpoint, example, T). It holds immutable ``CachedRun`` values (the decoded previews
  and the dense result) and is the one deliberate piece of shared mutable state (bounded,
  behind a lock); it is owned by the app instance, not a module global.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from nsnet.config import PipelineConfig
from nsnet.data.formats import read_activitynet
from nsnet.data.records import VIDEO_EXTENSIONS, DatasetError, VideoRecord
from nsnet.inference import CheckpointError, Pipeline, PipelineResult
from nsnet.inference.checkpoint import CONFIG_NAME, is_checkpoint

from .hub import check_backbones, fetch_checkpoint, format_hub_id, hub_allowed, parse_hub_id
from .plots import saliency_spec
from .settings import BUNDLED_CHECKPOINT
from .views import Segment

__all__ = ["CheckpointOption", "ModelStore", "ExampleClip", "load_examples", "CachedRun", "ResultCache",
           "untrained_pipeline", "load_default", "scan_checkpoints", "file_sha256", "match_example", "warmup"]

log = logging.getLogger(__name__)

UNTRAINED_CLASSES = 10


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

    def walk(folder: Path, depth: int) -> None:
        if is_checkpoint(folder):
            rel = folder.relative_to(root)
            found.append(CheckpointOption(f"{models_dir.name}/{rel}" if str(rel) != "." else models_dir.name,
                                          str(folder)))
            return
        if depth >= max_depth:
            return
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            walk(child, depth + 1)

    walk(root, 0)
    return found


class ModelStore:
    """Pipelines by dropdown label; the default is loaded up front, others on first use."""

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
        self._max_loaded = max_loaded
        self._loaded: OrderedDict[str, Pipeline] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.options]

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
        hub id is checked by ``app.hub.parse_hub_id`` (no path, no filesystem access) and
        the allow-list before anything is downloaded.
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
        with self._lock:  # one load at a time; a loaded pipeline is never modified afterwards
            if option.source in self._loaded:
                self._loaded.move_to_end(option.source)
                return self._loaded[option.source], option
            log.info("loading checkpoint %s", option.source)
            pipe = self._load(option)
            self._loaded[option.source] = pipe
            while len(self._loaded) > self._max_loaded:
                self._loaded.popitem(last=False)
            return pipe, option


    def _load(self, option: CheckpointOption) -> Pipeline:
        """Load an option: a Hub id through ``app.hub`` (its config checked first), else its folder."""
        if not option.source.startswith("hub:"):
            try:
                return Pipeline.from_pretrained(option.source, device=self.device)
            except (CheckpointError, ValueError) as exc:  # name the option, never the server folder
                problem = str(exc).replace(str(Path(option.source).resolve()), option.label)
                raise CheckpointError(problem.replace(option.source, option.label)) from None
        shown = option.source[len("hub:"):]
        repo_id, revision = parse_hub_id(shown)
        folder = fetch_checkpoint(repo_id, revision, max_bytes=self.hub_max_bytes)
        try:
            config = PipelineConfig.load(folder / CONFIG_NAME)
        except ValueError as exc:
            raise CheckpointError(f"Hub checkpoint {shown}: {str(exc).replace(str(folder), '')}") from None
        check_backbones(config, shown, self.hub_allow, max_bytes=self.hub_max_bytes)
        try:
            return Pipeline.from_pretrained(folder, device=self.device)
        except (CheckpointError, ValueError) as exc:
            raise CheckpointError(f"Hub checkpoint {shown}: {str(exc).replace(str(folder), '')}") from None


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ExampleClip:
    name: str
    path: Path
    size: int
    sha256: str
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    label: str | None = None          # ground-truth class from annotations.json, if any


def _annotated_segments(record: VideoRecord) -> tuple[Segment, ...]:
    return tuple(Segment(float(start), float(end), record.label or "") for start, end in record.segments or ())


def read_example_annotations(ann_file: Path, folder: Path) -> dict[str, VideoRecord]:
    """The records of an ActivityNet-style ``annotations.json`` by video id ({} if unreadable).

    ``nsnet.data.formats.read_activitynet`` does the parsing (malformed entries are
    counted, logged and skipped; without a ``classes.txt`` the classes are its labels).
    """
    try:
        records, _ = read_activitynet(ann_file, video_root=folder)
    except DatasetError as exc:
        log.warning("ignoring the example annotations: %s", exc)
        return {}
    return {r.video_id: r for r in records}


def load_examples(folder: Path | None, limit: int = 96) -> list[ExampleClip]:
    """Example clips in ``folder`` (sorted by name) with their annotations when present.

    A clip ``walk.mp4`` or ``v_walk.mp4`` takes the annotation of id ``walk`` or ``v_walk``.
    At most ``limit`` clips (each is hashed at start-up); the page pages them and says how
    many the folder holds; a larger set is better served as a dataset (``--data``).
    """
    if folder is None or not folder.is_dir():
        return []
    annotations: dict[str, VideoRecord] = {}
    if (folder / "annotations.json").is_file():
        annotations = read_example_annotations(folder / "annotations.json", folder)
    clips = []
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if len(paths) > limit:
        log.warning("%s: %d example clips, showing the first %d; serve the folder with --data to search them all",
                    folder, len(paths), limit)
    for path in paths[:limit]:
        stem = path.stem
        record = annotations.get(stem) or annotations.get(stem.removeprefix("v_")) or annotations.get(f"v_{stem}")
        segments = _annotated_segments(record) if record else ()
        label = record.label if record else None
        clips.append(ExampleClip(stem, path.resolve(), path.stat().st_size, file_sha256(path), segments, label))
    return clips


def match_example(path: str | Path, examples: Iterable[ExampleClip]) -> ExampleClip | None:
    """The bundled example a file is a copy of (size, then content hash), if any."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return None
    candidates = [e for e in examples if e.size == size]
    if not candidates:
        return None
    digest = file_sha256(path)
    return next((e for e in candidates if e.sha256 == digest), None)


@dataclass(frozen=True)
class CachedRun:
    """One example's dense run: the decoded previews (T, H, W, 3) uint8 and the result."""

    frames: np.ndarray
    result: PipelineResult


class ResultCache:
    """Bounded LRU of dense example runs: (checkpoint source, example sha256, T) -> ``CachedRun``."""

    def __init__(self, max_items: int = 32) -> None:
        self._items: OrderedDict[tuple, CachedRun] = OrderedDict()
        self._max = max_items
        self._lock = threading.Lock()

    def get(self, key: tuple) -> CachedRun | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: tuple, run: CachedRun) -> None:
        with self._lock:
            self._items[key] = run
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def warmup(pipe: Pipeline, num_frames: int | None = None) -> float:
    """Run the pipeline once on blank frames (kernel init, GFLOPs count, the chart's code path).

    Returns the seconds it took. The first real request then pays only for its own work.
    """
    start = time.perf_counter()
    t = num_frames or pipe.config.num_frames
    size = pipe.config.recognizer.input_size
    frames = np.zeros((t, size, size, 3), dtype=np.uint8)
    result = pipe(frames, min(pipe.config.k, t), pipe.config.lam, dense=True)
    saliency_spec(result, teacher=True)
    return time.perf_counter() - start
