"""The Encoding tab in Chromium: the alpha slider updates the summary and the map;
a click on a voxel shows its receptive field."""

from __future__ import annotations


import numpy as np
import pytest

from analysis.encoding import EncodingAnalysis
from tests.browser.conftest import SCREENSHOTS
from tests.browser.helpers import (busy_record, click_data, record_busy, set_model_value,
                                   text_of, wait_image_change, wait_text_change)



@pytest.mark.browser
def test_alpha_slider_and_voxel_click(app_page):
    page = app_page
    # Encoding is the first (default) tab
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    page.locator(".rf-ridge canvas").first.wait_for(state="visible", timeout=60_000)

    enc = EncodingAnalysis(size="small")  # the app serves the small size in tests
    assert text_of(page, ".summary") == enc.summary()

    # moving the alpha slider (log10 scale) changes the summary line and the map
    axial = page.locator(".slice-axial").first
    map_before = axial.screenshot()
    before = text_of(page, ".summary")
    set_model_value(page, "alpha-slider", 0.0)
    after = wait_text_change(page, ".summary", before)
    assert after == EncodingAnalysis(size="small", alpha=1.0).summary()
    assert after.startswith("alpha=1 folds=10 mean R2=")
    wait_image_change(axial, map_before)

    # the tab starts on the best voxel at alpha=100; click another one in the same axial slice
    r2 = enc.mean_r2().values
    start = int(np.argmax(r2))
    k0 = enc.voxel_ijk(start)[2]
    same_slice = [v for v in np.argsort(r2)[::-1] if v != start and enc.voxel_ijk(v)[2] == k0]
    target = int(same_slice[0])
    assert f"voxel {start} at" in text_of(page, ".voxel-info")
    rf = page.locator(".rf-ridge").first
    rf_before = rf.screenshot()
    x, y, _ = enc.voxel_mm(target)
    info_before = text_of(page, ".voxel-info")
    click_data(page, "slice-axial", x, y)
    info = wait_text_change(page, ".voxel-info", info_before)
    assert f"voxel {target} at" in info
    peak = tuple(int(p) for p in enc.data().truth["peak"][target])
    assert f"planted peak (row {peak[0]}, col {peak[1]})" in info
    wait_image_change(rf, rf_before)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "encoding.png"), full_page=True)


@pytest.mark.browser
def test_a_structural_change_is_busy_until_every_view_shows_it(app_page):
    """Changing the lag (a new decomposition) runs as a job: the tab says so (status and progress, the
    views under a loading overlay) and then shows the new result in every view at once;
    the summary never states it before the map does."""
    page = app_page
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    page.locator(".rf-ridge canvas").first.wait_for(state="visible", timeout=60_000)
    before = text_of(page, ".summary")
    axial = page.locator(".slice-axial").first
    map_before = axial.screenshot()
    record_busy(page, "encoding-progress", "encoding-status")
    # a lag no other test uses: its decomposition is not cached yet (a cached one is shown
    # at once, without a job)
    set_model_value(page, "lag-slider", 4)
    after = wait_text_change(page, ".summary", before, timeout=60)
    expected = EncodingAnalysis(size="small", lag=4).summary()
    assert after == expected
    wait_image_change(axial, map_before)
    busy = busy_record(page)
    assert busy["progress"], busy
    assert any("decompos" in s or "queued" in s for s in busy["status"]), busy
    # done: no overlay, no status left
    assert page.locator(".encoding-views.pn-loading").count() == 0
    assert text_of(page, ".encoding-status") == ""
