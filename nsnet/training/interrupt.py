"""Ctrl-C during training: finish the optimiser step, save the state, then stop.

Inside :meth:`~nsnet.training.trainer.Trainer.fit` (one process, main thread) the first
SIGINT only sets :attr:`StopRequest.requested`; the trainer writes the resumable state at
the next point where it would write one anyway (after an optimiser step, at an epoch end,
at the stage end: exactly what an uninterrupted run would have saved there) and raises
:class:`TrainingInterrupted`, which says what was saved. A second Ctrl-C stops at once
(plain ``KeyboardInterrupt``; the last state written stays). Under ``torchrun`` the
launcher stops the workers itself, so nothing is deferred there.
"""
from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["TrainingInterrupted", "StopRequest"]

log = logging.getLogger(__name__)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after saving its state (``saved``: None when states are off)."""

    def __init__(self, state_path: Path, saved: str | None) -> None:
        super().__init__(saved or "no training state saved")
        self.state_path, self.saved = state_path, saved


class StopRequest:
    """Whether Ctrl-C asked training to stop (see the module docstring)."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def deferred(self, enabled: bool = True) -> Iterator[None]:
        """Catch the first SIGINT while inside (only in the main thread and when ``enabled``)."""
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame) -> None:
            if self.requested:  # the second Ctrl-C: now
                raise KeyboardInterrupt
            self.requested = True
            log.info("Ctrl-C: saving the training state after this optimiser step (Ctrl-C again: stop now)")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
