"""Dataset mode, two checkpoints and the model banner in a real browser (Playwright + /usr/bin/chromium).

The app serves a generated synthetic benchmark (``nsnet.data.synthetic``, tiny clips) with a
``--results`` file of known outcomes, a tiny "trained" model over the benchmark's classes (so
the banner must warn that it only knows synthetic classes) and a second checkpoint in
``--models-dir``. Screenshots go to the test's temp folder.
"""
from __future__ import annotations

import pytest

from chromium import require

require()  # skips this module without Chromium or Playwright

from app.bench.common import upload_clip  # noqa: E402  (waits for the finished upload)
from test_app_dataset import K, NUM_CLASSES, T, serve_dataset  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    yield from serve_dataset(tmp_path_factory.mktemp("dataset-browser"))


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#run-button", timeout=60_000)
    return page, errors


def wait_text(page, selector: str, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s);"
                           " return !!e && (e.innerText ?? e.textContent ?? '').includes(t); }",
                           arg=[selector, text], timeout=timeout, polling=100)


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def cell(page, row: int, col: int) -> str:
    """The text shown at row ``row`` (display order, after any sort) and column ``col``."""
    return page.locator(f"#ds-table .virtual-row[data-index='{row}'] [data-col='{col}']").inner_text().strip()


def test_banner_says_what_the_synthetic_model_knows(served, browser, tmp_path):
    url, _ = served
    page, errors = open_page(browser, url)
    banner = page.inner_text("#model-banner")
    assert "Model: tiny-synthetic" in banner and "trained on runs/tiny-benchmark" in banner
    assert f"forced into one of its {NUM_CLASSES} synthetic classes" in banner
    assert "--checkpoint" in banner and "--models-dir" in banner and "Hub id" in banner
    details = page.locator("#model-banner details")
    assert details.evaluate("d => !d.open")  # the label set is folded away...
    details.locator("summary").click()  # ...and one click shows it
    assert details.evaluate("d => d.open") and "spinning_star, bouncing_ring" in details.inner_text()
    page.locator("#model-banner").screenshot(path=str(tmp_path / "banner.png"))
    assert not errors, errors
    page.close()


def test_dataset_tab_filters_sorts_and_opens_a_row_with_ground_truth(served, browser, tmp_path):
    url, records = served
    page, errors = open_page(browser, url)
    page.click("#tab-dataset-button")
    wait_text(page, "#ds-table", records[-1].video_id)
    assert "Showing all 6 videos" in page.inner_text("#ds-count")
    assert "NSNet-3" in page.inner_text("#ds-summary") and "50.0%" in page.inner_text("#ds-summary")
    page.wait_for_selector("#ds-confusion .js-plotly-plot", timeout=30_000)
    assert "results file" in page.inner_text("#ds-status")

    pick(page, "#ds-outcome", "NSNet wrong, dense right")  # the pattern puts exactly record 0 there
    wait_text(page, "#ds-count", "Showing 1 of 6")
    assert cell(page, 0, 0) == records[0].video_id and cell(page, 0, 3) == "✗" and cell(page, 0, 5) == "✓"
    pick(page, "#ds-outcome", "all videos")
    wait_text(page, "#ds-count", "Showing all 6")
    page.fill("#ds-search textarea, #ds-search input", records[4].video_id)
    wait_text(page, "#ds-count", "Showing 1 of 6")
    assert cell(page, 0, 0) == records[4].video_id
    page.fill("#ds-search textarea, #ds-search input", "")
    wait_text(page, "#ds-count", "Showing all 6")

    pick(page, "#ds-sort", "NSNet wrong first")  # server-side sort: failures first
    page.wait_for_function("() => { const c = (r) => document.querySelector("
                           "`#ds-table .virtual-row[data-index='${r}'] [data-col='3']`).innerText.trim();"
                           " return c(0) === '✗' && c(5) === '✓'; }", timeout=15_000, polling=100)
    assert [cell(page, i, 3) for i in range(6)] == ["✗"] * 3 + ["✓"] * 3
    pick(page, "#ds-sort", "saliency AP, highest first")
    page.wait_for_timeout(300)
    wait_text(page, "#ds-count", "Showing all 6")
    aps = [float(cell(page, i, 7)) for i in range(6)]
    assert aps == sorted(aps, reverse=True)
    # the table's own column menu sorts too (in the page)
    page.locator("#ds-table th[data-heading='8']").hover()
    page.locator("#ds-table th[data-heading='8'] button.cell-menu-button").click(force=True)
    page.get_by_role("menuitem", name="Sort ascending").click()
    page.wait_for_timeout(300)
    durations = [float(cell(page, i, 8)) for i in range(6)]
    assert durations == sorted(durations)
    page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)

    # a row opens its video in the analysis view: ground truth beside the prediction, segments shaded
    pick(page, "#ds-sort", "dataset order")
    page.wait_for_timeout(300)
    target = records[2]
    page.locator("#ds-table [role=gridcell]", has_text=target.video_id).first.click()
    wait_text(page, "#summary", f"Ground truth: {target.label}", timeout=60_000)
    assert page.locator("#tab-analysis-button").get_attribute("aria-selected") == "true"
    summary = page.inner_text("#summary")
    assert f"{target.video_id}.mp4" in summary and ("✓ right" in summary or "✗ wrong" in summary)
    wait_text(page, "#saliency-plot .legend", "ground truth")
    assert page.inner_text("#model-banner").startswith("Model: tiny-synthetic")  # header = the result's model
    page.screenshot(path=str(tmp_path / "opened.png"), full_page=True)
    assert not errors, errors
    page.close()


def test_compare_two_checkpoints_on_one_clip(served, browser, tmp_path):
    url, records = served
    page, errors = open_page(browser, url)
    upload_clip(page, records[1].path)
    page.click("#cmp-button")
    wait_text(page, "#cmp-side-b", "B: models/tiny-b", timeout=60_000)
    wait_text(page, "#cmp-plot .legend", "B: selected")
    legend = page.locator("#cmp-plot .legend").first.text_content()
    for name in ("A: fused", "B: fused", f"A: selected (K={K})", f"B: selected (K={K})", "ground truth"):
        assert name in legend, legend
    assert "frame-level" not in legend
    assert "A: tiny-synthetic" in page.inner_text("#cmp-side-a") and "Ground truth" not in page.inner_text("#summary")
    assert "ground truth" in page.inner_text("#cmp-side-a")  # the clip is a dataset video
    assert "Sampler" in page.inner_text("#cmp-cost-a") and "Sampler" in page.inner_text("#cmp-cost-b")
    assert "Decoded once" in page.inner_text("#cmp-overlap")

    k_input = page.locator("#k-slider input[type=number]").first
    k_input.fill(str(K + 2))
    k_input.press("Enter")
    wait_text(page, "#cmp-plot .legend", f"B: selected (K={K + 2})")
    assert f"T={T}, K={K + 2}" in page.inner_text("#cmp-overlap")
    page.get_by_label("Also frame-level and attention curves").check()
    page.wait_for_function("() => document.querySelector('#cmp-plot .legend').textContent.includes('B: attention g')",
                           timeout=15_000, polling=100)
    page.locator("#cmp-accordion").screenshot(path=str(tmp_path / "compare.png"))
    assert not errors, errors
    page.close()
