"""The Connectivity tab in Chromium: a click on a slice moves the seed and redraws."""

from __future__ import annotations

import time

from tests.browser.conftest import SCREENSHOTS
from tests.browser.helpers import wait_image_change, _views_js, model_value, text_of, wait_idle, wait_text_change

SUMMARY = ".connectivity-summary"


def open_connectivity(page) -> str:
    page.locator(".bk-tab", has_text="Connectivity").first.click()
    wait_idle(page)
    page.locator(".slice-axial canvas >> visible=true").first.wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while not text_of(page, SUMMARY).startswith("seed (") and time.monotonic() < deadline:
        time.sleep(0.1)
    return text_of(page, SUMMARY)


def visible_figure_point(page, name: str, x: float, y: float) -> tuple:
    """Page pixels of data point (x, y) in the *visible* figure named ``name``
    (every tab has its own slice viewer; the others are hidden)."""
    point = page.evaluate(
        "([cls, x, y]) => {" + _views_js() + """
        const v = all.find(v => v.frame && has(v.model, cls) && v.canvas_view
                            && v.canvas_view.el.getBoundingClientRect().width > 0);
        if (!v) return null;
        const r = v.canvas_view.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)]; }""",
        [name, x, y])
    assert point is not None, f"no visible figure {name}"
    return tuple(point)



def test_click_on_a_slice_moves_the_seed(app_page, connectivity_dir):
    from analysis.connectivity import SeedConnectivity

    page = app_page
    before = open_connectivity(page)
    expected = SeedConnectivity(data_dir=str(connectivity_dir))
    assert before == expected.summary()                       # the seed's PCC map
    assert before.startswith("seed (0, -52, 18) r=8 mm: ")
    coronal = page.locator(".slice-coronal >> visible=true").first
    image_before = coronal.screenshot()
    page.mouse.click(*visible_figure_point(page, "slice-axial", 30.0, -20.0))  # -> (28, -20)
    after = wait_text_change(page, SUMMARY, before)
    expected.seed_mm = (28.0, -20.0, 18.0)
    assert after == expected.summary()
    assert after.startswith("seed (28, -20, 18) r=8 mm: ")
    assert [float(model_value(page, c)) for c in ("seed-x", "seed-y", "seed-z")] == [28, -20, 18]
    wait_image_change(coronal, image_before)                   # the map was redrawn
    wait_idle(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "connectivity-click.png"), full_page=True)
    assert page.blocked_requests == []


def test_a_shared_link_reopens_the_seed(page, app_url):
    from tests.browser.conftest import open_page

    open_page(page, app_url + "?tab=connectivity&conn_seed=[28,-20,18]&conn_threshold=0.3")
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        text = text_of(page, SUMMARY)
        if text.startswith("seed ("):
            break
        time.sleep(0.2)
    assert text.startswith("seed (28, -20, 18) r=8 mm: ") and "above 0.3" in text
    assert float(model_value(page, "seed-x")) == 28


def test_a_new_preprocessing_is_busy_until_the_map_shows_it(app_page, connectivity_dir):
    """Another smoothing means cleaning again: a job, with the progress bar and the
    status line, the views busy; then the summary is the new setting's, never a mix."""
    from analysis.connectivity import SeedConnectivity

    from tests.browser.helpers import busy_record, record_busy, set_model_value

    page = app_page
    before = open_connectivity(page)
    record_busy(page, "clean-progress", "clean-status")
    set_model_value(page, "smoothing-slider", 3.0)
    after = wait_text_change(page, SUMMARY, before, timeout=120)
    expected = SeedConnectivity(data_dir=str(connectivity_dir), smoothing_fwhm=3.0)
    assert after == expected.summary()
    busy = busy_record(page)
    assert busy["progress"] and any("cleaning" in t or "queued" in t for t in busy["status"]), busy
    wait_idle(page)
    assert text_of(page, ".clean-status") == ""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "connectivity-smoothing.png"), full_page=True)
