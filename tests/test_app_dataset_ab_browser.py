"""Two result sets side by side in a real browser (Playwright + /usr/bin/chromium): B's columns show, the
"A right, B wrong" filter keeps exactly the rows of that outcome, a click on the per-class table filters
the rows to that class, and the faithfulness chart draws both result sets."""
from __future__ import annotations

import pytest

from chromium import require

require()  # skips this module without Chromium or Playwright

from test_app_dataset_ab import serve_ab  # noqa: E402
from test_app_dataset_browser import cell, open_page, pick, wait_text  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    yield from serve_ab(tmp_path_factory.mktemp("dataset-ab-browser"))


def test_a_b_columns_filter_and_class_click(served, browser, tmp_path):
    url, records = served
    n = len(records)
    page, errors = open_page(browser, url)
    page.click("#tab-dataset-button")
    wait_text(page, "#ds-table", records[-1].video_id)
    heads = page.locator("#ds-table thead").inner_text()
    assert "B: NSNet" in heads and "B ✓" in heads and "Overlap" in heads
    assert "| NSNet top-1" not in page.inner_text("#ds-compare") and "60.0%" in page.inner_text("#ds-compare")
    page.wait_for_selector("#ds-faith .js-plotly-plot", timeout=30_000)
    legend = page.locator("#ds-faith .legend").first.text_content()
    assert "A: keep most salient" in legend and "B: drop most salient" in legend and "AUC" in legend
    # B's mark and the overlap of record 0 (A right, B wrong; same selection): ✗ and 1
    assert cell(page, 0, 0) == records[0].video_id and cell(page, 0, 9) != ""
    assert cell(page, 0, 10) == "✗" and float(cell(page, 0, 11)) == 1.0

    pick(page, "#ds-outcome", "A right, B wrong")
    wait_text(page, "#ds-count", f"Showing 2 of {n}")
    assert [cell(page, i, 0) for i in range(2)] == [records[0].video_id, records[4].video_id]
    assert [cell(page, i, 3) for i in range(2)] == ["✓", "✓"]
    assert [cell(page, i, 10) for i in range(2)] == ["✗", "✗"]
    page.screenshot(path=str(tmp_path / "ab.png"), full_page=True)
    pick(page, "#ds-outcome", "all videos")
    wait_text(page, "#ds-count", f"Showing all {n}")

    # a click on a class of the per-class table filters the rows to it (through the class dropdown)
    cls = records[1].label
    page.locator("#ds-classes [role=gridcell]", has_text=cls).first.click()
    want = [r.video_id for r in records if r.label == cls]
    wait_text(page, "#ds-count", f"Showing {len(want)} of {n}")
    assert page.locator("#ds-class input").input_value() == cls
    assert [cell(page, i, 0) for i in range(len(want))] == want
    assert not errors, errors
    page.close()
