"""What the benchmarks share: Debian's Chromium and its flags, the wait for a finished upload (the browser
tests and the screenshots use them too), and the report."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "UPLOADED_JS", "CLEARED_JS", "upload_clip", "print_report",
           "finish_report"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]

# True once the clip box holds the finished upload of ``name``: its download link is there and no
# "Uploading N file..." progress is left. (While uploading, the box already shows the file's name;
# a Run pressed then reaches the server with no clip.)
UPLOADED_JS = """(name) => { const box = document.querySelector('#clip-input');
  return !!box && !box.querySelector('.uploading')
    && [...box.querySelectorAll('a[download]')].some((a) => a.getAttribute('download') === name); }"""

# The clip box was cleared: the old file is gone and the empty upload box (its file input) is back.
CLEARED_JS = """(old) => { const box = document.querySelector('#clip-input');
  return !!box && box.querySelector('input[type=file]') !== null
    && ![...box.querySelectorAll('a[download]')].some((a) => a.getAttribute('download') === old); }"""


def upload_clip(page, path: Path | str, timeout_ms: int = 90_000) -> None:
    """Choose ``path`` in the page's clip box and wait until its upload has finished (a busy CPU
    can make that take seconds)."""
    page.set_input_files("#clip-input input[type=file]", str(path))
    page.wait_for_function(UPLOADED_JS, arg=Path(path).name, timeout=timeout_ms, polling=100)


def print_report(report: dict, path: Path | None) -> int:
    """Print a benchmark's report as JSON, also write it to ``path`` when given; the exit code (0)."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
    return 0


def finish_report(report: dict, browser: Callable[[], dict] | None, path: Path | None) -> int:
    """Add the Chromium measurement (``browser()``; skipped, and said so, when Chromium is missing; None:
    not asked for) and the load average at the end, then print the report (``print_report``)."""
    if browser is not None:
        report["browser"] = browser() if Path(CHROMIUM).exists() else f"skipped: {CHROMIUM} not found"
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return print_report(report, path)
