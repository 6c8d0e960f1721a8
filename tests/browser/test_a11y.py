"""The page's live region in Chromium: a visually hidden ``role="status"`` element that
says the active tab's new summary line (dashboard/a11y.py)."""

import time

from tests.browser.helpers import set_model_value, text_of, wait_text_change


def test_a_new_summary_is_in_the_live_region(app_page):
    page = app_page
    region = page.locator(".sr-announcer").first
    region.wait_for(state="attached", timeout=30_000)
    assert region.get_attribute("role") == "status"
    assert region.get_attribute("aria-live") == "polite"
    box = region.bounding_box()
    assert box is None or (box["width"] <= 1 and box["height"] <= 1)   # not seen, only heard
    before = text_of(page, ".summary")
    set_model_value(page, "alpha-slider", 3.0)
    after = wait_text_change(page, ".summary", before, timeout=60)
    assert "alpha=1000" in after
    deadline = time.monotonic() + 30
    while "alpha=1000" not in (region.text_content() or ""):
        assert time.monotonic() < deadline, region.text_content()
        time.sleep(0.1)
