"""The presentation layout on a 1920x1080 projector and a 1366x768 laptop: every
tab's three views and colour bar fit the window, and the Connectivity tab's
(and its Group section's) input labels fit their boxes (large fonts made them
run into each other)."""

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
        assert page.js_errors == [], page.js_errors
        assert page.blocked_requests == [], page.blocked_requests
    finally:
        context.close()
