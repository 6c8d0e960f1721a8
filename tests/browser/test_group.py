"""The Group panel in Chromium: Run fills the t map, histogram and subject strip while
the server keeps serving; a click on the group map moves the seed (cheap re-run)."""

from __future__ import annotations

import time

import pytest

from analysis import group as G
from tests.browser.conftest import SCREENSHOTS, open_page, served
from tests.browser.helpers import click_data, text_of, wait_text_change

SUMMARY = ".group-summary"


@pytest.fixture(scope="module")
def group_url(group_dir):
    import panel as pn

    from dashboard.group import GroupPanel

    def app():
        pn.extension("tabulator", notifications=True)   # the cluster table, as the app
        model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=5, processes=False)
        return pn.Column(GroupPanel(model=model))

    with served(app) as url:
        yield url


def wait_summary(page, predicate, timeout=90.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = text_of(page, SUMMARY)
        if predicate(text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"summary still {text!r}; status {text_of(page, '.group-status')!r}")


def test_run_shows_group_map_and_a_click_moves_the_seed(page, group_url, group_dir):
    open_page(page, group_url)
    page.locator(".slice-axial canvas").first.wait_for(state="visible")
    assert text_of(page, SUMMARY).startswith("Press")
    page.locator(".group-run button").click()
    # the server keeps serving while the cluster works: the page reports progress
    page.locator(".group-progress").first.wait_for(state="visible", timeout=30_000)
    after = wait_summary(page, lambda t: t.startswith("5 subjects"))
    assert after.startswith("5 subjects, seed (0, -52, 18) r=8 mm: peak t ")

    # the same numbers as the engine run headless
    ref = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=5, processes=False)
    ref.run()
    assert after == ref.summary()
    page.locator(".group-strip canvas").nth(4).wait_for(state="visible", timeout=30_000)
    # issue 15 item 4: each subject's slice is drawn at its size (not a 0 x 0 figure)
    for i in range(5):
        box = page.locator(".group-strip canvas").nth(i).bounding_box()
        assert box["width"] >= 60 and box["height"] >= 60, box
    page.locator(".group-hist canvas").first.wait_for(state="visible", timeout=30_000)
    page.locator(".group-peaks").first.wait_for(state="visible", timeout=30_000)
    link = page.locator(".dask-link a").first
    assert link.get_attribute("href").endswith("/status")
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "group.png"), full_page=True)

    # a click on the group map: the seed moves there (snapped to the voxel centre, the
    # crosshair's z), and only the cheap step re-runs
    from dashboard.slice_viewer import snap

    grid = ref.t_map()
    expected_seed = snap(grid, (-40.0, -70.0, snap(grid, G.PCC_MM)[2]))
    click_data(page, "slice-axial", -40.0, -70.0)
    moved = wait_text_change(page, SUMMARY, after, timeout=60)
    ref.seed_mm = expected_seed
    ref.run()
    assert ref.result.timings["cleaned_now"] == 0
    assert moved == ref.summary()
    assert float(page.locator(".group-seed-x input").input_value()) == expected_seed[0]
    assert page.blocked_requests == []


def test_group_preprocessing_widgets_set_the_run(page, group_url, group_dir):
    """The Group section's own preprocessing (the single subject's Parameters): a new
    smoothing gives the group map of that smoothing, as headless."""
    from tests.browser.helpers import set_model_value

    open_page(page, group_url)
    page.locator(".slice-axial canvas").first.wait_for(state="visible")
    page.locator(".group-preprocessing .card-header").first.click()
    page.locator(".group-smoothing-fwhm").first.wait_for(state="visible", timeout=30_000)
    set_model_value(page, "group-smoothing-fwhm", 4.0)
    set_model_value(page, "group-high-variance-confounds", True, prop="active")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "group-preprocessing.png"), full_page=True)
    page.locator(".group-run button").click()
    after = wait_summary(page, lambda t: t.startswith("5 subjects"))
    ref = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=5, processes=False,
                              smoothing_fwhm=4.0, high_variance_confounds=True)
    ref.run()
    assert after == ref.summary()
