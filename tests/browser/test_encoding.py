"""The Encoding tab in Chromium: the alpha slider updates the summary and the map;
a click on a voxel shows its receptive field; the run and sample sliders move the time
course (seconds within the run) in place."""

from __future__ import annotations

import time

import numpy as np
import pytest

from analysis.encoding import EncodingAnalysis
from tests.browser.conftest import SCREENSHOTS
from tests.browser.helpers import (_views_js, busy_record, click_data, record_busy, set_model_value,
                                   text_of,
                                   wait_image_change, wait_text_change)



def _time_course(page) -> dict:
    """The time course figure as the page has it: title, x axis label and range, the
    curves' first and last times, the vertical lines' positions."""
    return page.evaluate("""() => {
      const fig = Bokeh.documents[0].get_model_by_name("time-course");
      const times = fig.renderers.flatMap(r => r.data_source && r.data_source.data.time
                                          ? [...r.data_source.data.time] : []);
      const lines = [...fig.center, ...fig.renderers]
                              .filter(m => m.dimension === "height" && "location" in m)
                              .map(m => m.location).filter(v => v !== null && !isNaN(v));
      const xaxis = fig.below.find(m => "axis_label" in m);
      return {title: fig.title.text, xlabel: xaxis ? xaxis.axis_label : null,
              x_range: [fig.x_range.start, fig.x_range.end],
              times: [Math.min(...times), Math.max(...times)], lines: lines};
    }""")


def _wait_time_course(page, done, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = _time_course(page)
        if done(shown):
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"time course not updated: {shown}")
        time.sleep(0.1)


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
    assert f"built to respond to the pixel at row {peak[0]}, col {peak[1]}" in info
    assert "gold box: the pixel this voxel was built to respond to" in info
    assert "red box" not in info
    wait_image_change(rf, rf_before)

    # the time course: seconds within the run shown; run 2 and a sample of it, in place
    assert _time_course(page)["xlabel"] == "time in run (s)"
    set_model_value(page, "run-slider", 2)
    shown = _wait_time_course(page, lambda t: "run 2" in t["title"])
    _, runs, volumes = enc.sample_index()
    in_run2 = np.flatnonzero(runs == 1)
    start = enc.data().run_lengths[0]
    times = (volumes[in_run2] - start) * enc.t_r
    assert shown["x_range"] == pytest.approx([0.0, (enc.data().run_lengths[1] - 1) * enc.t_r])
    assert shown["times"] == pytest.approx([times.min(), times.max()])
    stimulus = page.locator(".stimulus").first
    stimulus_before = stimulus.screenshot()
    set_model_value(page, "sample-slider", int(in_run2[10]))
    _wait_time_course(page, lambda t: t["lines"] == pytest.approx([times[10]]))
    wait_image_change(stimulus, stimulus_before)   # the browser's image too (screenshot)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "encoding.png"), full_page=True)
    # below the page's first screen: the time course on its own
    page.locator(".time-course").first.screenshot(
        path=str(SCREENSHOTS / "encoding-timecourse.png"))


def _title(page, name: str) -> str:
    """The title of the figure whose model has css class or name ``name``."""
    return page.evaluate("(cls) => {" + _views_js() + """
      const v = all.find((v) => v.model.title !== undefined && v.model.title !== null
                           && v.model.title.text !== undefined && has(v.model, cls));
      return v ? v.model.title.text : null; }""", name)


@pytest.mark.browser
def test_a_structural_change_is_busy_until_every_view_shows_it(app_page):
    """Changing the lag (a new decomposition) runs as a job: the tab says so (status and
    progress, the views greyed out) and then shows the new result in every view at once;
    the summary never states it before the map does. The voxel's LassoLarsCV field, fitted
    anew at the new lag, says "fitting ..." until its own job is done."""
    page = app_page
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    page.locator(".rf-ridge canvas").first.wait_for(state="visible", timeout=60_000)
    before = text_of(page, ".summary")
    axial = page.locator(".slice-axial").first
    map_before = axial.screenshot()
    record_busy(page, "encoding-progress", "encoding-status", "encoding-views")
    # a lag no other test uses: its decomposition is not cached yet (a cached one is shown
    # at once, without a job)
    set_model_value(page, "lag-slider", 4)
    after = wait_text_change(page, ".summary", before, timeout=60)
    expected = EncodingAnalysis(size="small", lag=4).summary()
    assert after == expected
    wait_image_change(axial, map_before)
    busy = busy_record(page)
    assert busy["greyed"] and busy["progress"], busy
    assert any("decompos" in s or "queued" in s for s in busy["status"]), busy
    # done: views not greyed, progress hidden (its room kept), no status left, as the
    # page draws them (computed styles: BokehJS keeps a property an update leaves out)
    styles = page.evaluate("() => {" + _views_js() + """
      const v = all.find((v) => has(v.model, 'encoding-views'));
      const p = all.find((v) => has(v.model, 'encoding-progress'));
      const vs = getComputedStyle(v.el), ps = getComputedStyle(p.el);
      return [vs.opacity, vs.pointerEvents, ps.visibility]; }""")
    assert styles == ["1", "auto", "hidden"], styles
    assert page.locator(".encoding-views.pn-loading").count() == 0
    assert text_of(page, ".encoding-status") == ""
    # the Lasso field at the new lag: fitted in its own job, then shown in place (the
    # voxel stays the one selected: the tab's start, the best at lag 2)
    voxel = int(np.argmax(EncodingAnalysis(size="small").mean_r2().values))
    rf = EncodingAnalysis(size="small", lag=4).lasso_receptive_field(voxel).values
    deadline = time.monotonic() + 60
    while _title(page, "rf-lasso") != f"LassoLarsCV, voxel {voxel}":
        assert time.monotonic() < deadline, _title(page, "rf-lasso")
        time.sleep(0.1)
    shown = page.evaluate("() => {" + _views_js() + """
      const v = all.find((v) => v.model.renderers && has(v.model, 'rf-lasso'));
      const r = v.model.renderers.find((r) => r.data_source && r.data_source.data.image);
      return Array.from(r.data_source.data.image[0]); }""")
    # the image's data: row i at y = i (the view flips its array for hv.Image, which flips
    # it back for Bokeh); at lag 4 the HRF's tail leaves a field to see (not all zero)
    assert np.abs(rf).max() > 0
    np.testing.assert_allclose(shown, rf.ravel(), rtol=1e-6, atol=1e-12)
