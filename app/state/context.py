"""``AppContext``: everything shared by every visitor, built once by ``app.shell.build_demo`` and only read.

The pipelines (``ModelStore``), the settings, the example clips and the cache of their runs,
the dataset (dataset mode), the bounded files area and decoded-previews pool, and how the
network-running functions run (``app.server.runtime.Runner``). The tabs (``app.tabs``) get it
as ``ctx``; per-visitor data lives in ``gr.State`` (``app.state.session``), never here.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..server.runtime import IN_PROCESS, Runner
from ..server.settings import AppSettings
from ..server.storage import ExportArea, FramePool
from .dataset import DatasetStore
from .examples import ExampleClip, ResultCache, match_example
from .models import ModelStore

__all__ = ["AppContext"]


@dataclass(frozen=True)
class AppContext:
    """Everything the callbacks read; built once by ``app.shell.build_demo``."""

    store: ModelStore
    settings: AppSettings
    examples: tuple[ExampleClip, ...] = ()
    cache: ResultCache = dataclasses.field(default_factory=ResultCache)
    export_root: Path = Path(tempfile.gettempdir()) / "nsnet-explorer"
    runner: Runner = IN_PROCESS       # how the network-running functions are called (``app.server.runtime``)
    exports: Optional[ExportArea] = None  # the bounded files area; default: one at ``export_root``
    dataset: Optional[DatasetStore] = None   # dataset mode (``--data``): its videos' ground truth, its rows
    frame_pool: Optional[FramePool] = None   # the sessions' decoded previews; default: --session-frames-mb

    def __post_init__(self) -> None:
        if self.exports is None:  # opened (start-up clean) on first use
            object.__setattr__(self, "exports", ExportArea(self.export_root, self.settings.export_bytes,
                                                           self.settings.export_max_age_s))
        if self.frame_pool is None:
            object.__setattr__(self, "frame_pool", FramePool(self.settings.session_frames_bytes))

    def known_clip(self, path: str | Path) -> Optional[ExampleClip]:
        """The example or dataset video a file is (a copy of), with its ground truth; None for any other clip."""
        example = match_example(path, self.examples) if self.examples else None
        if example is None and self.dataset is not None:
            record = self.dataset.match(path)
            if record is not None:
                example = ExampleClip.from_record(record, self.dataset.sha256(record))
        return example
