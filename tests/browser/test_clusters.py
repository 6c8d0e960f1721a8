"""Region names and cluster tables in Chromium (issue 17): the Connectivity tab shows the
cluster table with region names, the readout names the region at the crosshair, a click
on a row moves the crosshair there, the hover names the region under the mouse; the
Decoding tab (Haxby: the subject's own space) says "no atlas: not in MNI space"."""

from __future__ import annotations

import re
import time

from analysis.reporting import NOT_MNI
from tests.browser.conftest import open_page
from tests.browser.helpers import (figure_point, model_value, open_tab, set_model_value, text_of,
                                   wait_idle, wait_text)

INFO = ".crosshair-info"
SHOTS = {"connectivity": "/tmp/clusters.png", "hover": "/tmp/clusters_hover.png",
         "decoding": "/tmp/clusters_decoding.png"}


def cells(page, field: str) -> list[str]:
    """The visible texts of the cluster table's column ``field`` (its page shown)."""
    return [t.strip() for t in page.locator(
        f".cluster-table .tabulator-row .tabulator-cell[tabulator-field={field}] "
        ">> visible=true").all_inner_texts()]


def wait_rows(page, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        regions = cells(page, "region")
        if regions and all(regions):
            return regions
        time.sleep(0.2)
    raise AssertionError("the cluster table shows no rows")


def hover_text(page, figure: str, x: float, y: float) -> str:
    """The tooltip's text with the mouse at data point (x, y) of ``figure``."""
    page.locator(f".{figure} >> visible=true").first.scroll_into_view_if_needed()
    px, py = figure_point(page, figure, x, y)
    page.mouse.move(px - 1, py - 1)
    page.mouse.move(px, py)
    tooltip = page.locator(".bk-tooltip-content >> visible=true").first
    tooltip.wait_for(timeout=10_000)
    return tooltip.inner_text()


def test_connectivity_regions_and_cluster_table(page, app_url):
    page = open_page(page, app_url + "?tab=connectivity")
    readout = wait_text(page, INFO, lambda t: "region " in t)
    assert "(Harvard-Oxford)" in readout and NOT_MNI not in readout
    regions = wait_rows(page)
    assert all(r and r != NOT_MNI for r in regions)
    caption = text_of(page, ".clusters-caption")
    assert re.match(r"\d+ clusters? of \|r\| > 0\.5 \(two-sided\)", caption), caption
    # a click on a row's region: the crosshair goes to that peak
    xs, ys, zs = (cells(page, f) for f in ("peak_x", "peak_y", "peak_z"))
    row = len(regions) - 1
    page.locator(".cluster-table .tabulator-row >> visible=true").nth(row).locator(
        ".tabulator-cell[tabulator-field=region]").click()
    peak = f"crosshair ({float(xs[row]):.1f}, {float(ys[row]):.1f}, {float(zs[row]):.1f}) mm"
    readout = wait_text(page, INFO, lambda t: t.startswith(peak))
    assert f"region {regions[row]} (Harvard-Oxford)" in readout
    # the hover names the region under the mouse (the peak's, at the peak)
    text = hover_text(page, "slice-axial", float(xs[row]), float(ys[row]))
    assert re.search(r"region\s*:?\s*" + re.escape(regions[row]), text), text
    page.screenshot(path=SHOTS["hover"])                   # the views, the tooltip
    page.mouse.move(5, 5)
    page.locator(".cluster-panel >> visible=true").first.scroll_into_view_if_needed()
    wait_idle(page)
    page.screenshot(path=SHOTS["connectivity"])            # the peaks and cluster tables
    assert page.blocked_requests == [] and page.js_errors == []


def test_decoding_says_not_in_mni_space(page, app_url):
    page = open_page(page, app_url)
    open_tab(page, "Decoding")      # a table in a tab built after the page: its script loaded
    readout = wait_text(page, INFO, lambda t: "crosshair" in t)
    assert readout.endswith(NOT_MNI) and "region " not in readout
    regions = wait_rows(page)
    assert set(regions) == {NOT_MNI}
    assert "(two-sided)" in text_of(page, ".clusters-caption")
    page.locator(".cluster-panel >> visible=true").first.scroll_into_view_if_needed()
    wait_idle(page)
    page.screenshot(path=SHOTS["decoding"])
    assert page.blocked_requests == [] and page.js_errors == []


def test_the_atlas_of_a_link_and_the_sidebar_selector(page, app_url):
    page = open_page(page, app_url + "?tab=connectivity&atlas=aal")
    readout = wait_text(page, INFO, lambda t: "(AAL2)" in t)
    assert "Harvard-Oxford" not in readout
    assert model_value(page, "atlas-select") == '"aal"'
    set_model_value(page, "atlas-select", "none")        # as a choice in the sidebar
    readout = wait_text(page, INFO, lambda t: "crosshair" in t and "AAL2" not in t)
    assert "region" not in readout and NOT_MNI not in readout
    wait_text(page, ".clusters-caption", bool)
    page.wait_for_function("() => window.location.search.includes('atlas=none')")
    assert set(cells(page, "region")) <= {""}
    assert page.blocked_requests == [] and page.js_errors == []
