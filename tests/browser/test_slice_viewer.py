"""The slice viewer in Chromium: a click on a view moves the crosshair to that voxel; the
orientation letters, the colour bar's threshold mark and the hover (issue 15, items 17-18)."""

import io
import time

import nibabel as nib
import numpy as np
import pytest

from analysis.volumes import to_xarray, voxel_to_mm
from tests.browser.conftest import open_page, served
from tests.browser.helpers import (click_data, figure_point, set_model_value, text_of,
                                   wait_image_change, wait_text_change)

AFFINE = np.array([[-4.0, 0, 0, 40], [0, 4.0, 0, -60], [0, 0, 4.0, -20], [0, 0, 0, 1]])
DATA = np.random.default_rng(1).standard_normal((20, 24, 16))
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def viewer_url():
    import panel as pn

    from dashboard.slice_viewer import SliceViewer

    def app():
        da = to_xarray(nib.Nifti1Image(DATA, AFFINE), name="t")
        viewer = SliceViewer(stat_map=da, background=da.copy(data=np.abs(DATA)), map_label="t",
                             threshold=THRESHOLD)
        viewer.set_crosshair(voxel_to_mm(AFFINE, (10, 12, 8)))
        return pn.Column(pn.Row(*viewer.controls()), viewer)

    with served(app) as url:
        yield url


@pytest.mark.parametrize("view,ijk", [("axial", (3, 20, 8)), ("sagittal", (10, 5, 13)),
                                      ("coronal", (17, 12, 2))])
def test_click_reports_voxel(page, viewer_url, view, ijk):
    open_page(page, viewer_url)
    page.locator(".slice-axial canvas").first.wait_for(state="visible")
    before = text_of(page, ".crosshair-info")
    assert "voxel (10, 12, 8)" in before
    x, y, z = voxel_to_mm(AFFINE, ijk)
    h, v = {"sagittal": (y, z), "coronal": (x, z), "axial": (x, y)}[view]
    click_data(page, f"slice-{view}", h, v)
    after = wait_text_change(page, ".crosshair-info", before)
    assert f"voxel {ijk}" in after
    assert f"t {DATA[ijk]:.3g}" in after
    assert page.blocked_requests == []


#: the drawn letters of a figure: text, page position and colour bar palette
_LETTERS_JS = """(name) => {
  const views = [...Bokeh.index.all_views()];
  const seen = new Set(), all = [];
  const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); all.push(v);
    for (const c of (v.child_views ? [...v.child_views] : [])) walk(c);
    if (v.renderer_views) for (const c of v.renderer_views.values()) walk(c); };
  views.forEach(walk);
  const fig = all.find(v => v.frame && v.model.name === name);
  const r = fig.canvas_view.el.getBoundingClientRect();
  const letters = [];
  for (const g of fig.model.renderers) {
    const data = g.data_source ? g.data_source.data : {};
    if (g.glyph && g.glyph.type === "Text") {
      const col = (f) => data[f.field];
      const xs = col(g.glyph.x), ys = col(g.glyph.y), ts = col(g.glyph.text);
      for (let i = 0; i < ts.length; i++)
        letters.push([ts[i], r.left + fig.frame.x_scale.compute(xs[i]),
                      r.top + fig.frame.y_scale.compute(ys[i])]);
    }
  }
  const bar = fig.model.right.find(m => m.type === "ColorBar");
  return {letters, palette: bar ? [...bar.color_mapper.palette] : null};
}"""


def _pixels(page):
    from PIL import Image

    return Image.open(io.BytesIO(page.screenshot())).convert("RGB")


def _assert_letters_and_mark(page):
    from dashboard.slice_options import ORIENTATION

    image = _pixels(page)
    for view in ("sagittal", "coronal", "axial"):
        drawn = page.evaluate(_LETTERS_JS, f"slice-{view}")
        assert [t for t, _, _ in drawn["letters"]] == list(ORIENTATION[view])
        for text, x, y in drawn["letters"]:   # light text drawn around each letter's place
            box = [image.getpixel((int(x) + dx, int(y) + dy))
                   for dx in range(-5, 6) for dy in range(-6, 7)]
            assert max(min(p) for p in box) > 180, (view, text)
    # the colour bar greys the values below the threshold: its palette and its pixels
    palette = page.evaluate(_LETTERS_JS, "slice-axial")["palette"]
    greys = {c for c in palette if c in ("#505050", "#d0d0d0")}
    assert len(greys) == 1
    (hex_grey,) = greys
    grey = tuple(int(hex_grey[i:i + 2], 16) for i in (1, 3, 5))
    box = page.locator(".slice-axial").first.bounding_box()
    crop = image.crop((box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]))
    assert list(crop.getdata()).count(grey) > 50


def test_letters_threshold_mark_and_hover_render(page, viewer_url):
    open_page(page, viewer_url)
    page.locator(".slice-axial canvas").first.wait_for(state="visible")
    deadline = time.monotonic() + 30
    while True:   # the canvases are painted a little after Bokeh is idle: look again
        try:
            _assert_letters_and_mark(page)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    # the hover: the voxel's centre (mm), its index and value
    ijk = (3, 20, 8)
    x, y, z = voxel_to_mm(AFFINE, ijk)
    page.mouse.move(*figure_point(page, "slice-axial", x + 1.0, y - 1.0))
    tip = page.locator(".bk-tooltip-content").first
    tip.wait_for(state="visible")
    deadline = time.monotonic() + 10
    while str(ijk) not in (text := tip.inner_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"({x:.1f}, {y:.1f}, {z:.1f})" in text and str(ijk) in text
    assert f"{DATA[ijk]:.3f}" in text
    assert page.js_errors == [] and page.blocked_requests == []


def test_colour_map_change_redraws_without_errors(page, viewer_url):
    from dashboard.slice_options import shown_palette

    open_page(page, viewer_url)
    axial = page.locator(".slice-axial").first
    axial.locator("canvas").first.wait_for(state="visible")
    time.sleep(0.5)
    before = axial.screenshot()
    low, high = [float(v) for v in (-np.abs(DATA).max(), np.abs(DATA).max())]
    set_model_value(page, "slice-cmap", "viridis")
    wait_image_change(axial, before)
    expected = shown_palette("viridis", low, high, THRESHOLD)
    deadline = time.monotonic() + 30
    while page.evaluate(_LETTERS_JS, "slice-axial")["palette"] != expected:
        assert time.monotonic() < deadline, "the colour bar did not take the new map"
        time.sleep(0.1)
    assert page.js_errors == []
