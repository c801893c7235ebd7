"""The explorer in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

Opens the page, uploads a clip, runs it, waits for the chart and the gallery, moves K,
inspects a frame, checks the console has no errors and that the page asked nothing of
any other host (it must work offline), then saves a screenshot in the test's temp folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chromium import require

require()  # skips this module without Chromium or Playwright

from clips import write_clip  # noqa: E402
from test_app_client import K, launch, make_examples, tiny_pipeline  # noqa: E402
from app.bench.common import CLEARED_JS, upload_clip  # noqa: E402  (the clip box's waits, as the bench's)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def app_url(work):
    from app.server.settings import AppSettings
    from app.shell import build_demo

    settings = AppSettings(examples_dir=make_examples(work / "examples"), max_upload_mb=5)
    demo = build_demo(tiny_pipeline(), settings, export_root=work / "exports")
    yield launch(demo, settings)   # a port the server picks itself
    demo.close()


@pytest.fixture(scope="module")
def export_root(work) -> Path:
    """Where the app of ``app_url`` writes its per-session files (preview JPEGs, downloads)."""
    return work / "exports"


def export_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".csv", ".json")) if root.is_dir() else []


def test_upload_run_and_explore(app_url, export_root, browser, tmp_path):
    clip = write_clip(tmp_path / "street.mp4", num_frames=40, fps=10, size=(160, 96))
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    console, foreign = [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.append(("error", str(e))))
    page.on("request", lambda r: foreign.append(r.url)
            if not r.url.startswith(app_url.rstrip("/")) and not r.url.startswith(("data:", "blob:")) else None)

    page.goto(app_url)
    page.wait_for_selector("#run-button", timeout=30_000)
    assert "untrained" in page.inner_text("#model-banner").lower()  # the tiny random model is labelled as such
    upload_clip(page, clip)
    page.click("#run-button")
    page.wait_for_selector("#saliency-plot .js-plotly-plot .scatterlayer .trace", timeout=60_000)
    page.wait_for_selector("#selected-gallery img", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#summary').innerText.includes('street.mp4')", polling=100)
    assert page.locator("#selected-gallery img").count() == K
    legend = page.locator("#saliency-plot .legend").first.text_content()
    for name in ("frame-level", "attention", "fused", f"selected (K={K})"):
        assert name in legend
    # NSNet's own result shows first; the dense pass then fills the comparison table
    page.wait_for_function("() => document.querySelector('#compare').innerText.includes('Dense-8')",
                           timeout=60_000, polling=100)
    assert "NSNet-3" in page.inner_text("#compare") and "Dense-8" in page.inner_text("#compare")
    assert "Decode" in page.inner_text("#cost") and "Device" in page.inner_text("#cost")

    # K moves: everything redraws from the cached per-frame outputs
    k_input = page.locator("#k-slider input[type=number]").first
    k_input.fill("5")
    k_input.press("Enter")
    page.wait_for_function("() => document.querySelector('#saliency-plot .legend').textContent.includes('K=5')",
                           timeout=15_000, polling=100)
    page.wait_for_function("() => document.querySelectorAll('#selected-gallery img').length === 5",
                           timeout=15_000, polling=100)
    assert export_files(export_root) == []  # runs and K/λ moves write no export file

    # exports are written on click, for the current K and λ
    with page.expect_download() as download:
        page.click("#download-csv")
    assert download.value.suggested_filename == "street_T8_K5_lam0.50.csv"
    assert len(Path(download.value.path()).read_text().splitlines()) == 8 + 1
    assert [p.name for p in export_files(export_root)] == ["street_T8_K5_lam0.50.csv"]
    with page.expect_download() as download:
        page.click("#download-json")
    assert json.loads(Path(download.value.path()).read_text())["selected"].__len__() == 5

    # after another move, the next click downloads the new K and λ (never the file of the last click)
    lam_input = page.locator("#lam-slider input[type=number]").first
    lam_input.fill("0.3")
    lam_input.press("Enter")
    page.wait_for_function("() => document.querySelector('#summary').innerText.includes('λ=0.30')",
                           timeout=15_000, polling=100)
    assert sorted(p.name for p in export_files(export_root)) == ["street_T8_K5_lam0.50.csv",
                                                                  "street_T8_K5_lam0.50.json"]
    with page.expect_download() as download:
        page.click("#download-csv")
    assert download.value.suggested_filename == "street_T8_K5_lam0.30.csv"

    # any preview frame: the slider and the gallery thumbnails
    frame_input = page.locator("#frame-slider input[type=number]").first
    frame_input.fill("2")
    frame_input.press("Enter")
    page.wait_for_function("() => document.querySelector('#frame-caption').innerText.includes('Frame 2 of 8')",
                           timeout=15_000, polling=100)
    page.locator("#selected-gallery img").first.click()
    page.wait_for_function("() => document.querySelector('#frame-caption').innerText.includes('selected, rank')",
                           timeout=15_000, polling=100)

    page.get_by_label("Show teacher curve").check()
    page.wait_for_function("() => document.querySelector('#saliency-plot .legend').textContent.includes('teacher')",
                           timeout=15_000, polling=100)
    page.wait_for_timeout(500)
    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000

    errors = [text for kind, text in console if kind == "error"]
    assert not errors, errors
    assert not foreign, f"the page fetched from other hosts: {foreign}"

    # a bad file: a clear error, and the page keeps working
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video " * 100)
    page.locator("#clip-input button[aria-label='Clear']").first.click()
    page.wait_for_function(CLEARED_JS, arg="street.mp4", timeout=30_000, polling=100)   # the upload box is back
    upload_clip(page, junk)
    page.click("#run-button")
    page.get_by_text("junk.mp4: not a video").first.wait_for(timeout=30_000)
    page.close()


def test_example_click_runs_with_ground_truth(app_url, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(app_url)
    page.wait_for_selector("#run-button", timeout=30_000)
    page.get_by_text("walk · walking").first.click()
    page.wait_for_selector("#selected-gallery img", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#saliency-plot .legend').textContent.includes('ground truth')",
                           timeout=30_000, polling=100)
    assert "walk.mp4" in page.inner_text("#summary")
    page.close()


def test_closing_the_page_removes_the_sessions_files(app_url, export_root, browser, tmp_path):
    """``demo.unload``: a visitor's preview JPEGs and downloads go when the tab closes, not hours later."""
    import time

    clip = write_clip(tmp_path / "leaving.mp4", num_frames=20, fps=10, size=(96, 64))
    before = set(export_root.glob("instance-*/session-*"))
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(app_url)
    page.wait_for_selector("#run-button", timeout=30_000)
    upload_clip(page, clip)
    page.click("#run-button")
    page.wait_for_function("() => document.querySelector('#summary').innerText.includes('leaving.mp4')",
                           timeout=60_000, polling=100)
    (mine,) = set(export_root.glob("instance-*/session-*")) - before
    assert len(list(mine.rglob("*.jpg"))) == 8
    page.close()
    deadline = time.monotonic() + 30
    while mine.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not mine.exists()
