"""The Decoding tab in Chromium: CV scheme switch, permutations, the real slice."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.browser.helpers import (busy_record, record_busy, set_model_value, text_of,
                                   wait_idle, wait_image_change, wait_text_change)


def open_decoding(page):
    page.locator(".bk-tab", has_text="Decoding").first.click()
    wait_idle(page)
    page.locator(".fold-bars canvas").first.wait_for(state="visible", timeout=60_000)
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    deadline = time.monotonic() + 30
    while "vs" not in text_of(page, ".summary") and time.monotonic() < deadline:
        time.sleep(0.1)
    return text_of(page, ".summary")



def test_switching_cv_changes_summary_and_bars(app_page, decoding_dir):
    from analysis.decoding import DecodingAnalysis

    page = app_page
    before = open_decoding(page)
    expected = DecodingAnalysis.from_dataset(decoding_dir)
    assert before == expected.summary()  # leave-one-run-out by default
    bars = page.locator(".fold-bars").first
    bars_before = bars.screenshot()
    set_model_value(page, "cv-select", "KFold")
    after = wait_text_change(page, ".summary", before)
    expected.cv = "kfold"
    assert after == expected.summary()
    assert "KFold(5)" in after and "leave-one-run-out" not in after
    wait_image_change(bars, bars_before)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "decoding-kfold.png"), full_page=True)
    assert page.blocked_requests == []


FACTORS_JS = """() => {
  const seen = new Set(); const all = [];
  const walk = v => { if (!v || seen.has(v)) return; seen.add(v); all.push(v);
    if (v.child_views) for (const c of v.child_views) walk(c); };
  [...Bokeh.index.all_views()].forEach(walk);
  const pane = all.find(v => (v.model.css_classes || []).includes('fold-bars'));
  const inner = []; seen.clear();
  const down = v => { if (!v || seen.has(v)) return; seen.add(v); inner.push(v);
    if (v.child_views) for (const c of v.child_views) down(c); };
  down(pane);
  const fig = inner.find(v => v.model.x_range && v.model.x_range.factors);
  return fig ? [...fig.model.x_range.factors] : null; }"""


def test_fewer_folds_redraw_the_bars_without_a_page_error(app_page):
    """KFold(8) then KFold(3): three bars on a three-fold axis, and no error in the page
    (HoloViews' redraw sent the axis' new folds before the shorter bars: BokehJS threw
    "Size mismatch" while drawing the old bars on the new axis)."""
    page = app_page
    before = open_decoding(page)
    set_model_value(page, "cv-select", "KFold")
    before = wait_text_change(page, ".summary", before)
    for k in (8, 3, 6, 2):
        set_model_value(page, "folds-slider", k)
        before = wait_text_change(page, ".summary", before)
        assert f"KFold({k})" in before
        wait_idle(page)
        page.wait_for_timeout(300)
        assert page.evaluate(FACTORS_JS) == [f"fold {i + 1}" for i in range(k)]
    assert not [e for e in page.js_errors if "mismatch" in e], page.js_errors
    assert page.js_errors == [], page.js_errors


def test_a_new_mask_is_busy_until_every_view_shows_it(app_page, decoding_dir):
    """A new mask means masking the data again and refitting: a job, with a progress
    bar and a status line, the views busy; then the summary, bars and map all show it."""
    from analysis.decoding import DecodingAnalysis

    page = app_page
    before = open_decoding(page)
    axial = page.locator(".slice-axial").first
    map_before = axial.screenshot()
    record_busy(page, "decoding-progress", "decoding-status")
    set_model_value(page, "mask-select", "whole brain")
    after = wait_text_change(page, ".summary", before, timeout=60)
    expected = DecodingAnalysis.from_dataset(decoding_dir, mask="whole brain")
    assert after == expected.summary()
    wait_image_change(axial, map_before)
    busy = busy_record(page)
    assert busy["progress"] and any("masking" in t or "queued" in t for t in busy["status"]), busy
    assert text_of(page, ".decoding-status") == ""
    set_model_value(page, "mask-select", "ventral-temporal")
    wait_text_change(page, ".summary", after, timeout=60)


def test_permutations_run_in_background(app_page):
    page = app_page
    open_decoding(page)
    null = page.locator(".null-hist").first
    null_before = null.screenshot()
    set_model_value(page, "perm-count", 30)
    page.locator(".perm-run button").first.click()
    deadline = time.monotonic() + 120
    status = ""
    while time.monotonic() < deadline:
        status = text_of(page, ".perm-status")
        if re.match(r"p(=|<=)", status):
            break
        time.sleep(0.2)
    assert re.match(r"p(=|<=)", status) and "30 permutations" in status
    # the p beside the accuracy, in its own pane (dashboard/decoding/auto_p.py)
    assert re.match(r"p (=|<=) .*30 permutations\)$", text_of(page, ".summary-p"))
    wait_image_change(null, null_before)
    page.screenshot(path=str(SCREENSHOTS / "decoding-permutations.png"), full_page=True)


def test_real_slice_source(app_page):
    from dashboard.decoding import REAL_SLICE, real_slice_dir

    if real_slice_dir() is None:
        pytest.fail("the real Haxby slice is missing")
    page = app_page
    before = open_decoding(page)
    hist = page.locator(".map-hist").first
    hist_before = hist.screenshot()
    set_model_value(page, "source-select", REAL_SLICE)
    after = wait_text_change(page, ".summary", before, timeout=60)
    # the seed's face vs cat, leave-one-run-out, on the real slice (see tests/test_decoding.py)
    assert after.startswith("face vs cat, SVC C=1, leave-one-run-out: 0.741")
    wait_image_change(hist, hist_before, timeout=60)  # the map (530 voxels) follows
    deadline = time.monotonic() + 30
    while ", 0.0) mm, voxel" not in text_of(page, ".crosshair-info"):
        assert time.monotonic() < deadline, text_of(page, ".crosshair-info")
        time.sleep(0.1)  # the crosshair moves onto the slice (z = 0 mm)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SCREENSHOTS / "decoding-real-slice.png"), full_page=True)


def test_the_automatic_p_shown_in_a_hidden_tab_asks_nothing_outside(app_page, monkeypatch):
    """The automatic permutation test's result arrives while another tab is shown (the
    Decoding tab's models are out of the page, Panel keeps them): the page's stylesheets
    stay on this server (they went to Panel's CDN, dashboard/render/server.py); shown
    again, the tab has the p beside the accuracy."""
    from dashboard import jobs
    from dashboard.decoding import auto_p

    # the first automatic test starts 4 s after the page loaded: the tab is hidden by then
    monkeypatch.setattr(auto_p, "AUTO_FIRST_DELAY_MS", 4000)
    monkeypatch.setattr(auto_p, "AUTO_SECONDS", 120.0)   # a shared machine: let it run
    page = app_page
    open_decoding(page)
    assert text_of(page, ".summary-p") == "p: computing (100 permutations) ..."
    page.locator(".bk-tab", has_text="Encoding").first.click()
    wait_idle(page)
    deadline, job = time.monotonic() + 60, None
    while job is None and time.monotonic() < deadline:
        job = next((j for j in jobs.REGISTRY.jobs() if j.name == "auto-permutations"), None)
        time.sleep(0.05)
    assert job is not None and job.wait(120) and job.state == "done", job
    time.sleep(1.0)   # its result delivered to the hidden tab
    wait_idle(page)
    page.wait_for_timeout(500)
    assert page.blocked_requests == [], page.blocked_requests
    page.locator(".bk-tab", has_text="Decoding").first.click()
    wait_idle(page)
    assert re.match(r"p (=|<=) .*\(.*100 permutations\)$", text_of(page, ".summary-p"))
    page.wait_for_timeout(500)
    assert page.blocked_requests == [], page.blocked_requests
    assert page.js_errors == [], page.js_errors
