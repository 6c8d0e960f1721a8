"""The presentation layout on a 1920x1080 projector and a 1366x768 laptop: every
tab's three views and colour bar fit the window, and the Connectivity tab's
(and its Group section's) input labels fit their boxes (large fonts made them
run into each other)."""

import time

import pytest

from tests.browser.conftest import SCREENSHOTS, open_page
from tests.browser.helpers import open_tab

LABEL_FITS = """el => { const root = el.shadowRoot || el;
  const label = root.querySelector('label') || root.querySelector('.bk-slider-title');
  return label ? [label.scrollWidth, label.clientWidth, label.innerText] : null; }"""


@pytest.mark.parametrize("width,height", [(1920, 1080), (1366, 768)])
def test_presentation_layout_fits_the_screen(browser, app_url, width, height):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": height})
    page = open_page(context.new_page(), app_url + "?present=1")
    try:
        for tab in ("Encoding", "Decoding", "Connectivity"):
            open_tab(page, tab)
            axial = page.locator(".slice-axial >> visible=true").first
            axial.locator("canvas").first.wait_for(state="visible", timeout=60_000)
            box = axial.bounding_box()
            # the axial view (with the colour bar) ends inside the window
            assert box["x"] + box["width"] <= width, (tab, box)
        # the Group section (collapsed until opened) has seed inputs too
        page.locator(".group-section").first.locator(".card-button, button").first.click()
        page.locator(".group-seed-x >> visible=true").first.wait_for(timeout=60_000)
        page.wait_for_function("() => Bokeh.documents[0].is_idle", timeout=60_000)
        for cls in ("seed-x", "seed-y", "seed-z", "high-pass", "low-pass",
                    "group-seed-x", "group-seed-y", "group-seed-z"):
            fits = page.locator(f".{cls} >> visible=true").first.evaluate(LABEL_FITS)
            assert fits is not None, cls
            scroll, client, text = fits
            assert scroll <= client, (cls, text, scroll, client)
        page.screenshot(path=str(SCREENSHOTS / f"present_connectivity_{width}.png"))
        assert page.js_errors == [], (page.js_errors, page.blocked_requests)
        assert page.blocked_requests == [], page.blocked_requests
    finally:
        context.close()


def _view_sizes(page) -> dict:
    """Each shown slice view's frame and canvas size (px)."""
    sizes = {}
    for view in ("sagittal", "coronal", "axial"):
        loc = page.locator(f".slice-{view} >> visible=true").first
        frame = loc.bounding_box()
        canvas = loc.locator("canvas").first.bounding_box()
        sizes[view] = (round(frame["width"]), round(frame["height"]),
                       round(canvas["width"]), round(canvas["height"]))
    return sizes


def _settled(page) -> None:
    page.wait_for_function("() => Bokeh.documents[0].is_idle", timeout=60_000)
    page.wait_for_timeout(1500)   # the browser's layout after the last message
    page.wait_for_function("() => Bokeh.documents[0].is_idle", timeout=60_000)


@pytest.mark.xfail(strict=False, reason="known intermittent defect (issue 15, item 2): after "
                   "many sessions on one server, the axial view is sometimes not drawn anew "
                   "on the toggle (seen once in a full local run); passes alone")
def test_toggling_present_gives_the_layout_of_loading_it(browser, app_url):
    """Present toggled live: each view's canvas grows with its frame (nothing clipped, the
    colour bar kept), to the size a page loaded with ?present=true has; and back."""
    sizes = {}
    for mode in ("loaded", "toggled"):
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        query = "?tab=connectivity" + ("&present=true" if mode == "loaded" else "")
        page = open_page(context.new_page(), app_url + query)
        try:
            page.locator(".slice-axial canvas >> visible=true").first.wait_for(timeout=60_000)
            if mode == "toggled":
                normal = _view_sizes(page)
                page.locator(".present-toggle button").first.click()
            _settled(page)
            sizes[mode] = _view_sizes(page)
            deadline = time.monotonic() + 20   # a loaded server replaces figures later
            while mode == "toggled" and time.monotonic() < deadline and any(
                    abs(sizes[mode][v][3] - sizes["loaded"][v][3]) > 8 for v in sizes[mode]):
                page.wait_for_timeout(500)
                sizes[mode] = _view_sizes(page)
            if mode == "toggled":
                page.locator(".present-toggle button").first.click()   # and back
                _settled(page)
                back = _view_sizes(page)
            assert page.js_errors == [], page.js_errors
        finally:
            context.close()
    for mode, views in sizes.items():
        for view, (fw, fh, cw, ch) in views.items():
            assert cw >= fw - 10 and ch >= fh - 2, (mode, view, views)
    for view in sizes["loaded"]:
        assert abs(sizes["toggled"][view][3] - sizes["loaded"][view][3]) <= 8, sizes
        assert abs(sizes["toggled"][view][2] - sizes["loaded"][view][2]) <= 12, sizes
    assert back == normal, (back, normal)


def test_normal_layout_fits_a_laptop(browser, app_url):
    """At 1366x768 (not presenting) the sidebar starts closed and every tab's three
    views and colour bar end inside the window (they ran 150-250 px off it)."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = open_page(context.new_page(), app_url)
    try:
        for tab in ("Encoding", "Decoding", "Connectivity"):
            open_tab(page, tab)
            axial = page.locator(".slice-axial >> visible=true").first
            axial.locator("canvas").first.wait_for(state="visible", timeout=60_000)
            deadline = time.monotonic() + 30   # the views shrink once the width arrived
            while True:
                _settled(page)
                # None while the view is drawn anew (its old element left the page)
                box = axial.bounding_box()
                if (box is not None and box["x"] + box["width"] <= 1366) or \
                        time.monotonic() > deadline:
                    break
                page.wait_for_timeout(300)
            assert box is not None and box["x"] + box["width"] <= 1366, (tab, box)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366, tab
        page.screenshot(path=str(SCREENSHOTS / "laptop_connectivity_1366.png"))
        assert not page.evaluate(
            "() => document.getElementById('sidebar').classList.contains('show')")
        assert page.js_errors == [], page.js_errors
    finally:
        context.close()


#: each shown slice view's title and tick label sizes, as the page draws them
FIGURE_TEXT = """() => { const out = {}; const seen = new Set();
  const walk = v => { if (!v || seen.has(v)) return; seen.add(v);
    const m = v.model, css = (m && m.css_classes) || [];
    const view = css.find(c => /^slice-(sagittal|coronal|axial)$/.test(c));
    if (view && m.title && v.el && v.el.offsetParent !== null)
      out[view] = [m.title.text_font_size, m.left[0].major_label_text_font_size];
    if (v.child_views) for (const c of v.child_views) walk(c); };
  [...Bokeh.index.all_views()].forEach(walk); return out; }"""


#: the presentation's title and tick label sizes (PRESENT_FONTS)
PRESENTING = ["19px", "15px"]


def _figure_text(page, expected) -> dict:
    deadline = time.monotonic() + 20
    while True:   # the sizes may follow the page's first drawing (a theme sent after it)
        sizes = page.evaluate(FIGURE_TEXT)
        if (len(sizes) == 3 and all(s == expected for s in sizes.values())) or \
                time.monotonic() > deadline:
            return sizes
        page.wait_for_timeout(300)


@pytest.mark.parametrize("theme", ["default", "dark"])
def test_presenting_enlarges_the_figures_text(browser, app_url, theme):
    """Presenting, the views' titles and tick labels have the presentation's sizes
    (19 / 15 px, dashboard/render/theme.py), loaded so or toggled on; a tab opened later
    too. Before the fix, titles stayed at Bokeh's 13 px in the page."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        for query in (f"?theme={theme}&present=true", f"?theme={theme}"):
            page = open_page(context.new_page(), app_url + query)
            page.locator(".slice-axial canvas >> visible=true").first.wait_for(timeout=60_000)
            if "present" not in query:
                page.locator(".present-toggle button").first.click()
                _settled(page)
            sizes = _figure_text(page, PRESENTING)
            assert set(sizes) == {"slice-sagittal", "slice-coronal", "slice-axial"}, sizes
            assert all(s == PRESENTING for s in sizes.values()), (query, sizes)
            if "present" in query:   # a tab built later
                open_tab(page, "Decoding")
                page.locator(".slice-axial canvas >> visible=true").first.wait_for(
                    timeout=60_000)
                _settled(page)
                sizes = _figure_text(page, PRESENTING)
                assert all(s == PRESENTING for s in sizes.values()), ("later", sizes)
            assert page.js_errors == [], page.js_errors
            page.close()
    finally:
        context.close()
