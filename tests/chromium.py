"""What the real-browser tests share: Debian's Chromium driven by Playwright, one browser per module.

``require()`` at the top of a test module skips the whole module when ``/usr/bin/chromium``
or the ``playwright`` package is missing (``.ci/run`` installs the browser); the module's
tests then take the ``browser`` fixture of ``conftest.py`` (one browser per module, made by
``launch``). The executable and its flags are the benchmarks' (``app.bench.common``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from app.bench.common import CHROMIUM, CHROMIUM_ARGS

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "require", "launch"]


def require():
    """``playwright.sync_api``; skips the calling test module when the browser or Playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: the browser tests drive Debian's Chromium (apt-get install chromium)",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


def launch():
    """A headless Chromium for one test module (a generator, for the ``browser`` fixture)."""
    with require().sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
