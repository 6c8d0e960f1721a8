"""The whole app in Chromium, every outside request blocked: three tabs, a click."""

import re

from tests.browser.helpers import click_data, open_tab, text_of, wait_text, wait_text_change

TABS = ["Encoding", "Decoding", "Connectivity"]


def test_three_tabs_render_with_no_outside_request(app_page):
    page = app_page
    for name in TABS:
        open_tab(page, name)
        page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
        wait_text(page, ".summary", lambda t: bool(t.strip()))
    if name == "Connectivity":  # the Group section opens without errors
        page.locator(".group-section").first.locator(".card-button, button").first.click()
        page.wait_for_function("() => Bokeh.documents[0].is_idle", timeout=60_000)
    assert page.blocked_requests == [], page.blocked_requests
    assert page.js_errors == [], page.js_errors


def test_click_on_a_slice_moves_the_crosshair(app_page):
    page = app_page
    open_tab(page, "Decoding")
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    info = page.locator(".crosshair-info").first
    before = text_of(page, ".crosshair-info")
    match = re.search(r"crosshair \(([-\d.]+), ([-\d.]+), ([-\d.]+)\) mm", before)
    assert match, before
    x, y, _ = map(float, match.groups())
    # click one voxel-ish step away in the axial view
    click_data(page, "slice-axial", x + 8.0, y - 8.0)
    after = wait_text_change(page, ".crosshair-info", before)
    assert after != before and info.is_visible()


def test_bokeh_skips_rewriting_an_unchanged_stylesheet(app_page):
    """dashboard/browser.py: a repaint no longer rewrites each renderer's unchanged <style>."""
    page = app_page
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("""() => Bokeh.require("core/dom").InlineStyleSheet
        .prototype._update.__unchanged_skipped === true""", timeout=30_000)
    kept, changed, text = page.evaluate("""() => {
      const {InlineStyleSheet} = Bokeh.require("core/dom");
      const sheet = new InlineStyleSheet(":host { width: 1px; }");
      const node = sheet.el.firstChild;
      sheet.replace(":host { width: 1px; }");      // the same text: not written again
      const kept = sheet.el.firstChild === node;
      sheet.replace(":host { width: 2px; }");      // new text: written
      return [kept, sheet.el.firstChild !== node, sheet.css];
    }""")
    assert kept and changed and text == ":host { width: 2px; }"
    assert page.js_errors == [], page.js_errors
