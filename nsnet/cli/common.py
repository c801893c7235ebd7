"""What every command shares: the default checkpoint and the one-line error exit."""
from __future__ import annotations

import os
from pathlib import Path

from ..config import ConfigError
from ..data.records import DatasetError
from ..inference.checkpoint import CheckpointError

__all__ = ["BUNDLED_CHECKPOINT", "USER_ERRORS", "default_checkpoint"]

#: What a command reports as one line and exit code 2 (a bad file, flag, config or checkpoint),
#: as opposed to a bug, which keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, CheckpointError, DatasetError, FileNotFoundError)

#: The demo model shipped in the repository (present in a source checkout or an editable install).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "demo-model"


def default_checkpoint() -> str:
    """``$NSNET_CHECKPOINT``, else the bundled demo model (a path that may not exist when the
    package was installed without the repository: loading it then says so in one line)."""
    return os.environ.get("NSNET_CHECKPOINT") or str(BUNDLED_CHECKPOINT)
