"""The Display group of every tab in Chromium (issue 15, item 17): a colour map picked in a
tab's controls column recolours its axial view; the group and the column's widgets fit
the column (no clipped select or slider handle); Encoding's fixed colour range."""

import time

import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.browser.helpers import open_tab, set_model_value, wait_idle, wait_image_change

VIRIDIS = "viridis (uniform, colour-blind safe)"
#: The controls column's widgets (a slider's handle, a select) that must not be clipped.
COLUMN_WIDGETS = {
    "Encoding": [".alpha-slider .noUi-handle", ".threshold-slider .noUi-handle",
                 ".cv-select select", ".lag-slider .noUi-handle", ".dtype-select select"],
    "Decoding": [".mask-select select", ".cv-select select"],
    "Connectivity": [".subject-select select", ".radius-slider .noUi-handle"],
}


def _visible(page, selector: str):
    return page.locator(f"{selector} >> visible=true").first


def _open_display(page):
    card = _visible(page, ".display-controls")
    card.locator(".card-header").first.click()   # collapsed until opened
    _visible(page, ".slice-cmap select").wait_for(timeout=30_000)
    wait_idle(page)
    return card


def _views_left(page) -> float:
    """The left edge of the views (the sagittal slice): the controls column ends there."""
    return _visible(page, ".slice-sagittal").bounding_box()["x"]


@pytest.mark.parametrize("tab", ["Encoding", "Decoding", "Connectivity"])
def test_colour_map_in_the_controls_recolours_the_axial_view(app_page, tab):
    page = app_page
    open_tab(page, tab)
    axial = _visible(page, ".slice-axial")
    axial.locator("canvas").first.wait_for(state="visible", timeout=60_000)
    card = _open_display(page)
    # the group, its widgets and the column's own widgets lie left of the views
    left = _views_left(page)
    for selector in [".display-controls", ".slice-cmap select", ".slice-opacity .noUi-handle"
                     ] + COLUMN_WIDGETS[tab]:
        box = _visible(page, selector).bounding_box()
        assert box is not None and box["x"] + box["width"] <= left, (tab, selector, box, left)
    time.sleep(0.5)
    before = axial.screenshot()
    _visible(page, ".slice-cmap select").select_option(label=VIRIDIS)
    wait_image_change(axial, before)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    box = card.bounding_box()
    page.screenshot(path=str(SCREENSHOTS / f"display-controls-{tab.lower()}.png"),
                    clip={"x": 0, "y": 0, "width": left + 10,
                          "height": min(box["y"] + box["height"] + 20, 1000)})
    assert page.js_errors == [] and page.blocked_requests == []


#: The drawn colour range of a figure's colour bar (its colour mapper's low and high).
_BAR_RANGE_JS = """(name) => {
  const seen = new Set(), all = [];
  const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); all.push(v);
    for (const c of (v.child_views ? [...v.child_views] : [])) walk(c); };
  [...Bokeh.index.all_views()].forEach(walk);
  const fig = all.find(v => v.frame && v.model.name === name && v.el.offsetParent);
  const bar = fig && fig.model.right.find(m => m.type === "ColorBar");
  return bar ? [bar.color_mapper.low, bar.color_mapper.high] : null;
}"""


def _bar_range(page) -> list:
    return page.evaluate(_BAR_RANGE_JS, "slice-axial")


def _wait_bar_range(page, predicate, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        now = _bar_range(page)
        if now is not None and predicate(now):
            return now
        assert time.monotonic() < deadline, f"colour bar range {now}"
        time.sleep(0.1)


def test_encoding_fixed_colour_range_holds_when_alpha_moves(app_page):
    page = app_page
    open_tab(page, "Encoding")
    axial = _visible(page, ".slice-axial")
    axial.locator("canvas").first.wait_for(state="visible", timeout=60_000)
    _open_display(page)
    start = _wait_bar_range(page, lambda r: r[1] > 0)
    _visible(page, ".fixed-clim input").check()
    _visible(page, ".clim-max input").wait_for(timeout=30_000)
    wait_idle(page)
    # the range held: the map's when the option was turned on
    assert float(_visible(page, ".clim-min input").input_value()) == 0.0
    assert float(_visible(page, ".clim-max input").input_value()) == pytest.approx(
        start[1], abs=5e-4)
    set_model_value(page, "alpha-slider", 5.0)   # strong ridge: a much smaller R^2
    wait_idle(page)
    time.sleep(1.0)
    assert _bar_range(page) == pytest.approx(start)
    _visible(page, ".fixed-clim input").uncheck()   # off: rescaled to this alpha's map
    rescaled = _wait_bar_range(page, lambda r: r[1] != pytest.approx(start[1]))
    assert rescaled[0] == 0.0 and rescaled[1] < start[1]
    assert page.js_errors == []
