"""Progress that reads well in a terminal and in a cluster log.

* :func:`show_bar`: a tqdm bar only when asked for and stderr is a terminal (a batch log
  never gets ``\\r`` redraws), on the main process.
* :class:`RateLog`: a log line every ``every`` units (videos, steps) with the rate and an
  ETA, whether or not a bar is shown; this is what ``--no-progress`` and cluster logs see.
"""
from __future__ import annotations

import logging
import sys
import time

__all__ = ["show_bar", "format_duration", "RateLog"]


def show_bar(progress: bool, is_main: bool = True) -> bool:
    """Whether to draw a tqdm bar: requested, on the main process, and stderr is a terminal."""
    if not (progress and is_main):
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def format_duration(seconds: float) -> str:
    """``93`` -> ``1m33s``; ``4000`` -> ``1h06m``; ``7`` -> ``7s``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class RateLog:
    """Logs ``"<what> 120/1000 videos, 3.2 videos/s, ETA 4m35s"`` every ``every`` units.

    ``scale`` multiplies the local rate (e.g. the world size when this process does one
    shard of the work); ``every <= 0`` turns the lines off.
    """

    def __init__(self, logger: logging.Logger, what: str, total: int, every: int, unit: str = "videos",
                 scale: int = 1, enabled: bool = True) -> None:
        self.log, self.what, self.total, self.every = logger, what, total, every
        self.unit, self.scale, self.enabled = unit, scale, enabled and every > 0
        self.done, self.start = 0, time.perf_counter()

    def update(self, n: int = 1) -> None:
        before, self.done = self.done, self.done + n
        if self.enabled and self.done < self.total and self.done // self.every > before // self.every:
            self.log.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = format_duration(eta) if eta != float("inf") else "?"
        return (f"{self.what}: {self.done}/{self.total} {self.unit}, {rate * self.scale:.1f} {self.unit}/s, "
                f"ETA {eta_text}")

    def finish(self, extra: str = "") -> None:
        """One closing line (``extra`` appended) when lines are on."""
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            self.log.info("%s: %d %s in %s%s", self.what, self.done, self.unit, format_duration(elapsed), extra)
