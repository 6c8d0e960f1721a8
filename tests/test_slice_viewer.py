"""The shared slice viewer: slicing, thresholds, click-to-voxel mapping."""

import nibabel as nib
import numpy as np
import pytest

from analysis.volumes import to_xarray, voxel_to_mm
from dashboard.slice_viewer import SliceViewer, colour_range, threshold_map


@pytest.fixture
def volume():
    # dimensions all differ; x axis flipped as in radiological-convention headers
    rng = np.random.default_rng(0)
    data = rng.standard_normal((7, 9, 5))
    affine = np.array([[-3.0, 0, 0, 30], [0, 2.5, 0, -40], [0, 0, 4.0, -10], [0, 0, 0, 1]])
    return data, affine, to_xarray(nib.Nifti1Image(data, affine), name="t")


def _element_value(viewer, view, x, y):
    """The map value the rendered HoloViews element shows at data (x, y)."""
    overlay = viewer.view_element(view)
    image = [el for el in overlay if el.vdims and el.vdims[0].name == "t"][0]
    return image[x, y]


@pytest.mark.parametrize("view", ["sagittal", "coronal", "axial"])
def test_click_maps_to_voxel_and_element_shows_its_value(volume, view):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, map_label="t")
    ijk = (2, 6, 3)
    x, y, z = voxel_to_mm(affine, ijk)
    viewer.set_crosshair((x, y, z))
    # click on the view at the voxel's in-plane coordinates, slightly off-centre
    coords = {"x": x + 0.4, "y": y - 0.3, "z": z + 0.5}
    h, v = {"sagittal": ("y", "z"), "coronal": ("x", "z"), "axial": ("x", "y")}[view]
    viewer.tap(view, coords[h], coords[v])
    assert viewer.voxel_index() == ijk
    assert viewer.crosshair_mm == pytest.approx((x, y, z))
    assert viewer.value_at_crosshair() == pytest.approx(data[ijk])
    # the drawn element holds the same value at that point (row 0 of hv.Image is the top)
    assert _element_value(viewer, view, coords[h], coords[v]) == pytest.approx(data[ijk])


def test_click_moves_only_in_plane_coordinates(volume):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da)
    viewer.set_crosshair(voxel_to_mm(affine, (1, 1, 1)))
    x0 = viewer.crosshair_mm[0]
    target = voxel_to_mm(affine, (1, 7, 4))
    viewer.tap("sagittal", target[1], target[2])
    assert viewer.voxel_index() == (1, 7, 4)
    assert viewer.crosshair_mm[0] == x0


def test_threshold_hides_small_values_and_nan():
    values = np.array([-2.0, -0.5, 0.0, 0.5, 3.0, np.nan])
    out = threshold_map(values, 1.0)
    assert np.isnan(out[[1, 2, 3, 5]]).all()
    assert out[0] == -2.0 and out[4] == 3.0


def test_colour_range_symmetric_and_not():
    values = np.array([-1.0, 0.5, 4.0, np.nan])
    assert colour_range(values, symmetric=True) == (-4.0, 4.0)
    assert colour_range(values, symmetric=False) == (-1.0, 4.0)


def test_background_on_another_grid(volume):
    data, affine, da = volume
    fine = np.arange(14 * 18 * 10, dtype=float).reshape(14, 18, 10)
    fine_affine = affine.copy()
    fine_affine[:3, :3] /= 2
    bg = to_xarray(nib.Nifti1Image(fine, fine_affine))
    viewer = SliceViewer(stat_map=da, background=bg)
    viewer.set_crosshair(voxel_to_mm(affine, (3, 4, 2)))
    overlay = viewer.view_element("axial")
    assert len(overlay) >= 4  # background, map, two crosshair lines
    background = [el for el in overlay if el.vdims and el.vdims[0].name == "background"][0]
    assert background.dimension_values(2, flat=False).shape == (18, 14)  # on its own grid
    assert viewer.voxel_index() == (3, 4, 2)


def test_click_without_following_reports_only(volume):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, follow_clicks=False)
    viewer.set_crosshair(voxel_to_mm(affine, (1, 1, 1)))
    before = viewer.crosshair_mm
    clicks = []
    viewer.param.watch(lambda e: clicks.append(e.new), "click_mm")
    target = voxel_to_mm(affine, (4, 5, 1))
    viewer.tap("axial", target[0] + 0.3, target[1] - 0.2)
    viewer.tap("axial", target[0], target[1])  # the same voxel again: reported again
    assert viewer.crosshair_mm == before
    assert clicks == [pytest.approx(tuple(target))] * 2


def test_palette_is_what_holoviews_makes_of_the_name():
    from holoviews.plotting.util import process_cmap

    from dashboard.slice_viewer import palette

    for name in ("fire", "gray", "RdBu_r", "Blues"):
        assert list(palette(name)) == process_cmap(name)
        assert palette(name) is palette(name)  # looked up once
    assert palette(["#000000", "#ffffff"]) == ["#000000", "#ffffff"]


# ---- display options (issue 15, items 17-18) ---------------------------------------------
def _drawn(viewer):
    """Draw the viewer in a Bokeh document, as a served session does."""
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    doc = Document()
    with set_curdoc(doc):
        doc.add_root(pn.panel(viewer).get_root(doc))
    return doc


def _map_plot(viewer, view="axial"):
    (plot,) = viewer.layers[view]["map"].plots
    return plot


def test_hover_shows_voxel_centre_index_value_and_region(volume):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, map_label="t")
    _drawn(viewer)
    for view in ("sagittal", "coronal", "axial"):
        hover = _map_plot(viewer, view).handles["hover"]
        assert [label for label, _ in hover.tooltips] == [
            "voxel centre (mm)", "voxel (i, j, k)", "t", "region"]
        fields = dict(hover.tooltips)
        mm, index = (hover.formatters[fields[k].split("{")[0]]
                     for k in ("voxel centre (mm)", "voxel (i, j, k)"))
        assert (mm.args["part"], index.args["part"]) == ("mm", "index")
        # the grid the browser computes voxels from: origin, step and size of x, y, z,
        # in voxel order (x flipped here), so that (i, j, k) is the readout's voxel index
        assert mm.args["grid"] == pytest.approx([30.0, -3.0, 7, -40.0, 2.5, 9, -10.0, 4.0, 5])
    target = voxel_to_mm(affine, (4, 2, 3))
    viewer.set_crosshair(target)    # the sliced coordinate follows the crosshair
    for view in ("sagittal", "coronal", "axial"):
        for formatter in _map_plot(viewer, view).handles["hover"].formatters.values():
            if "xyz" in formatter.args:
                assert formatter.args["xyz"] == pytest.approx(list(target))


@pytest.mark.parametrize("view,letters", [("sagittal", "PAIS"), ("coronal", "LRIS"),
                                          ("axial", "LRPA")])
def test_orientation_letters_lie_around_the_image(volume, view, letters):
    import holoviews as hv

    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, map_label="t")
    overlay = viewer.view_element(view)
    (labels,) = [el for el in overlay if isinstance(el, hv.Labels)]
    (image,) = [el for el in overlay if el.vdims and el.vdims[0].name == "t"]
    assert "".join(labels.dimension_values("text")) == letters  # left, right, bottom, top
    xs, ys = labels.dimension_values(0), labels.dimension_values(1)
    left, bottom, right, top = image.bounds.lbrt()
    # in the margins: left of, right of, below and above the whole image (never over data)
    assert xs[0] < left and xs[1] > right and ys[2] < bottom and ys[3] > top
    plot = hv.renderer("bokeh").get_plot(overlay)
    x_range, y_range = plot.handles["x_range"], plot.handles["y_range"]
    # inside the drawn frame, whose x (mm, RAS+) increases to the right: R on the right
    assert x_range.start < xs[0] < left and right < xs[1] < x_range.end
    assert y_range.start < ys[2] < bottom and top < ys[3] < y_range.end
    assert x_range.start < x_range.end
    # on black, whatever the theme paints the figure (light letters must stay readable)
    assert [box.fill_color for box in plot.state.center if hasattr(box, "fill_color")
            and box.level == "underlay"] == ["black"]


def test_every_colour_map_starts_visibly_above_the_background(volume):
    from dashboard.slice_data import palette
    from dashboard.slice_options import COLOUR_MAPS, luminance

    data, affine, da = volume
    assert luminance(palette("hot")[0]) < 0.01   # as HoloViews has it: black
    positive = da.copy(data=np.abs(data))
    for cmap in COLOUR_MAPS.values():
        viewer = SliceViewer(stat_map=positive, cmap=cmap, symmetric=False, threshold=0.5)
        _drawn(viewer)
        mapper = _map_plot(viewer).handles["color_mapper"]
        assert list(mapper.palette) == viewer.colours()   # what the views draw with
        low, high = mapper.low, mapper.high
        at = int((0.5 - low) / (high - low) * len(mapper.palette))   # just above threshold
        first = mapper.palette[at]
        # a contrast of at least 3:1 against the black background, and not white
        assert 0.1 <= luminance(first) < 0.85, (cmap, first)


def test_colour_bar_greys_the_values_below_the_threshold(volume):
    from dashboard.slice_options import (BELOW_ON_DARK, BELOW_ON_LIGHT, shown_palette,
                                         threshold_band)

    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, clim=(-4.0, 4.0), threshold=1.0)
    _drawn(viewer)
    mapper = _map_plot(viewer).handles["color_mapper"]
    colours = list(mapper.palette)
    n = len(colours)

    def colour_at(value):   # as Bokeh's linear mapper picks a value's colour
        return colours[min(int((value - mapper.low) / (mapper.high - mapper.low) * n), n - 1)]

    grey = colour_at(0.0)
    # grey within one bin of +-threshold (a bin holding -1 and a bit more is coloured)
    assert all(colour_at(v) == grey for v in np.linspace(-1 + 8 / n, 0.999, 50))
    assert all(colour_at(v) != grey for v in (-4.0, -1.0, 1.0, 3.99))  # shown values
    start, end = threshold_band(-4.0, 4.0, 1.0, n)
    assert -1.0 <= start <= -1.0 + 8 / n and 1.0 - 8 / n <= end <= 1.0
    viewer.threshold = 2.0      # the mark follows the threshold, in place
    colours = list(_map_plot(viewer).handles["color_mapper"].palette)
    grey = colour_at(0.0)
    assert colour_at(1.5) == grey and colour_at(-1.5) == grey and colour_at(2.0) != grey
    # a threshold beyond the colour range: the values shown are clipped to the ends, which
    # keep their colours
    ends = shown_palette("RdBu_r", -1.0, 1.0, 2.0)
    assert ends[1] in (BELOW_ON_DARK, BELOW_ON_LIGHT)
    assert ends[0] not in (BELOW_ON_DARK, BELOW_ON_LIGHT) and ends[-1] != ends[1]


def test_opacity_changes_in_place_a_colour_map_redraws_as_a_fresh_drawing_shows(volume):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, threshold=0.5)
    _drawn(viewer)
    rev = viewer.rev
    viewer.opacity, viewer.threshold = 0.4, 0.7
    assert viewer.rev == rev            # in place: no HoloViews redraw
    for view in ("sagittal", "coronal", "axial"):
        plot = _map_plot(viewer, view)
        assert plot.handles["glyph"].global_alpha == 0.4
        assert list(plot.handles["color_mapper"].palette) == viewer.colours()
    viewer.cmap = "viridis"
    assert viewer.rev > rev             # a new colour map: drawn anew by HoloViews
    fresh = SliceViewer(stat_map=da, threshold=0.7, opacity=0.4, cmap="viridis")
    _drawn(fresh)
    for view in ("sagittal", "coronal", "axial"):
        a, b = _map_plot(viewer, view), _map_plot(fresh, view)
        assert a.handles["glyph"].global_alpha == b.handles["glyph"].global_alpha == 0.4
        assert list(a.handles["color_mapper"].palette) == list(
            b.handles["color_mapper"].palette) == fresh.colours()
    with pytest.raises(ValueError):
        viewer.opacity = 0.0


def test_controls_follow_the_viewer_both_ways(volume):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da)
    cmap, opacity = viewer.controls()
    assert cmap.name == "Colour map" and "colour-blind" in cmap.description
    assert "cividis" in cmap.options.values()
    cmap.value, opacity.value = "cividis", 0.5
    assert (viewer.cmap, viewer.opacity) == ("cividis", 0.5)
    viewer.cmap = "fire"
    assert cmap.value == "fire"


def test_a_one_slice_image_padded_for_display_reports_its_own_voxel_index():
    """Issue 15 item 3: the Decoding tab pads a 40 x 20 x 1 image with empty slices so
    every view has an extent; the readout and the hover give the image's own (i, j, k)
    (k = 0), and "outside the image" in the padding, not the padded grid's index."""
    from dashboard.decoding import displayable
    from dashboard.slice_options import grid_args

    rng = np.random.default_rng(1)
    data = rng.standard_normal((40, 20, 1))
    affine = np.array([[3.0, 0, 0, -60], [0, 3.0, 0, -90], [0, 0, 3.5, 12], [0, 0, 0, 1]])
    shown = displayable(to_xarray(nib.Nifti1Image(data, affine), name="t"))
    assert shown.sizes["z"] > 1   # padded
    viewer = SliceViewer(stat_map=shown, map_label="t")
    viewer.set_crosshair(voxel_to_mm(affine, (8, 9, 0)))
    assert viewer.voxel_index() == (8, 9, 0)
    assert viewer.value_at_crosshair() == pytest.approx(data[8, 9, 0])
    assert "voxel (8, 9, 0)" in viewer.readout()
    # the hover's grid: the image's origin and shape, not the padded grid's
    assert grid_args(shown) == [-60.0, 3.0, 40, -90.0, 3.0, 20, 12.0, 3.5, 1]
    viewer.set_crosshair(voxel_to_mm(affine, (8, 9, 2)))   # in the padding, above the image
    assert viewer.voxel_index() is None
    assert "outside the image" in viewer.readout()


def _colour_bar(viewer):
    fig = _map_plot(viewer, "axial").state
    (bar,) = [r for r in fig.right if type(r).__name__ == "ColorBar"]
    return bar


@pytest.mark.parametrize("label, words", [
    ("R2", "CV R²"), ("r", "correlation r"), ("Fisher z", "Fisher z"),
    ("t", "t statistic"), ("weights", "SVC weight"), ("pattern", "activation"),
    ("my_stat", "my_stat")])
def test_colour_bar_says_the_quantity_in_words(volume, label, words):
    """Issue 15 #11/#14: the colour bar's title was the map's short name ("r", "t"), a
    lone letter; it names the quantity in words, the readout keeps the short name."""
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, map_label=label)
    _drawn(viewer)
    assert _colour_bar(viewer).title == words
    viewer.set_crosshair(voxel_to_mm(affine, (3, 4, 2)))
    assert f", {label} {viewer.value_at_crosshair():.3g}" in viewer.readout()


def test_colour_bar_title_follows_a_new_quantity(volume):
    """Connectivity's Fisher z switch changes the map's quantity live: the drawn colour bar
    says the new one (as a fresh drawing does), and an empty viewer names it too."""
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, map_label="r")
    _drawn(viewer)
    assert _colour_bar(viewer).title == "correlation r"
    viewer.map_label = "Fisher z"
    assert _colour_bar(viewer).title == "Fisher z"
    empty = SliceViewer(map_label="t")
    _drawn(empty)
    assert _colour_bar(empty).title == "t statistic"
