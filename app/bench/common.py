"""What the benchmarks share: Debian's Chromium and its flags (the browser tests use them too), and the report."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "print_report"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


def print_report(report: dict, path: Path | None) -> int:
    """Print a benchmark's report as JSON, also write it to ``path`` when given; the exit code (0)."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
    return 0
