"""In-place updates (dashboard/render/live.py) show exactly what a HoloViews redraw shows."""

import nibabel as nib
import numpy as np
import panel as pn
import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc

from analysis.volumes import to_xarray
from dashboard.batch import batched
from dashboard.slice_viewer import VIEWS, SliceViewer, slice_arrays


def _volume(seed, shape=(7, 9, 5), flip=True):
    rng = np.random.default_rng(seed)
    affine = np.array([[-3.0 if flip else 3.0, 0, 0, 30], [0, 2.5, 0, -40],
                       [0, 0, 4.0, -10], [0, 0, 0, 1]])
    return to_xarray(nib.Nifti1Image(rng.standard_normal(shape), affine), name="t")


def _drawn(viewer):
    """What each view's Bokeh models show now."""
    out = {}
    for view, layers in viewer.layers.items():
        (bg,), (mp,) = layers["background"].plots, layers["map"].plots
        (vl,), (hl,), (mk,) = (layers[n].plots for n in ("vline", "hline", "marker"))
        mapper = mp.handles["color_mapper"]
        out[view] = {
            "background": np.asarray(bg.handles["source"].data["image"][0], dtype=float),
            "map": np.asarray(mp.handles["source"].data["image"][0], dtype=float),
            "frame": [float(mp.handles["source"].data[k][0]) for k in ("x", "y", "dw", "dh")],
            "clim": (mapper.low, mapper.high),
            "title": bg.handles["plot"].title.text,
            "lines": (vl.handles["glyph"].location, hl.handles["glyph"].location),
            "marker": {k: list(np.asarray(v, dtype=float))
                       for k, v in mk.handles["source"].data.items()},
        }
    return out


def _render(viewer):
    doc = Document()
    with set_curdoc(doc):
        doc.add_root(pn.panel(viewer).get_root(doc))
    return doc


def _assert_same(a, b):
    for view in VIEWS:
        for key in a[view]:
            if isinstance(a[view][key], np.ndarray):
                np.testing.assert_array_equal(a[view][key], b[view][key])
            elif isinstance(a[view][key], dict):  # columns (pytest.approx takes no nesting)
                assert a[view][key].keys() == b[view][key].keys(), (view, key)
                for col in a[view][key]:
                    assert a[view][key][col] == pytest.approx(b[view][key][col]), (view, key, col)
            else:
                assert a[view][key] == pytest.approx(b[view][key]), (view, key)


def test_slice_arrays_equal_xarray_selection():
    da = _volume(1)
    for view, (h, v, s) in VIEWS.items():
        for position in (-10.0, -3.1, 2.0, 6.0):
            xs, ys, values = slice_arrays(da, view, position)
            ref = da.sortby(list(da.dims)).sel({s: position}, method="nearest").transpose(v, h)
            np.testing.assert_array_equal(values, ref.values)
            np.testing.assert_array_equal(xs, ref[h].values)
            np.testing.assert_array_equal(ys, ref[v].values)


def test_in_place_updates_show_what_a_redraw_shows():
    bg, first, second = _volume(1), _volume(2), _volume(3)
    viewer = SliceViewer(stat_map=first, background=bg, threshold=0.5)
    doc = _render(viewer)
    rev = viewer.rev
    with set_curdoc(doc), batched():  # a new map, threshold, colour range, crosshair, marker
        viewer.param.update(stat_map=second, threshold=1.0, clim=(-2.0, 3.0))
        viewer.set_crosshair((21.0, -35.0, 2.0))
        viewer.marker_mm = (18.0, -30.0, -2.0)
    assert viewer.rev == rev, "the views were redrawn, not updated in place"
    updated = _drawn(viewer)

    fresh = SliceViewer(stat_map=second, background=bg, threshold=1.0, clim=(-2.0, 3.0),
                        crosshair_mm=viewer.crosshair_mm, marker_mm=viewer.marker_mm)
    _render(fresh)
    _assert_same(updated, _drawn(fresh))
    # and the values really moved: thresholded voxels hidden, the slice is the new one
    xs, ys, values = slice_arrays(second, "axial", viewer.crosshair_mm[2])
    expected = np.where(np.abs(values) >= 1.0, values, np.nan)
    np.testing.assert_array_equal(updated["axial"]["map"], expected)


def test_a_new_grid_is_redrawn_by_holoviews():
    viewer = SliceViewer(stat_map=_volume(2), background=_volume(1))
    _render(viewer)
    rev = viewer.rev
    viewer.stat_map = _volume(4, shape=(6, 9, 5))  # another grid: the frame must change
    assert viewer.rev == rev + 1
    fresh = SliceViewer(stat_map=viewer.stat_map, background=viewer.background,
                        crosshair_mm=viewer.crosshair_mm)
    _render(fresh)
    _assert_same(_drawn(viewer), _drawn(fresh))


def test_a_new_drawing_shows_the_current_state_not_a_cached_one():
    viewer = SliceViewer(stat_map=_volume(2), background=_volume(1))
    _render(viewer)
    viewer.stat_map = _volume(3)  # in place: the DynamicMaps' cached elements are stale
    again = _render(viewer)  # e.g. the tab shown again
    assert again is not None
    latest = {view: layers["map"].plots for view, layers in viewer.layers.items()}
    fresh = SliceViewer(stat_map=viewer.stat_map, background=viewer.background,
                        crosshair_mm=viewer.crosshair_mm)
    _render(fresh)
    for view in VIEWS:
        newest = [p for p in latest[view] if p.handles["plot"].document is again]
        assert newest, view
        np.testing.assert_array_equal(
            np.asarray(newest[0].handles["source"].data["image"][0], dtype=float),
            _drawn(fresh)[view]["map"])


def _sources(live_plot):
    """Each in-place layer's drawn columns (one drawing), and the figure's title."""
    out = {}
    for name, layer in live_plot.layers.items():
        (plot,) = layer.plots
        glyph = plot.handles["glyph"]
        if hasattr(glyph, "location"):
            out[name] = glyph.location
        else:
            out[name] = {k: np.asarray(v[0] if k == "image" else v)
                         for k, v in plot.handles["source"].data.items()}
        out[name + " title"] = plot.handles["plot"].title.text
    return out


def _same_sources(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert a[key].keys() == b[key].keys(), key
            for col in a[key]:
                if a[key][col].dtype.kind in "OUS":  # categories, labels
                    assert list(a[key][col]) == list(b[key][col]), (key, col)
                else:
                    np.testing.assert_allclose(a[key][col], b[key][col], err_msg=f"{key} {col}")
        else:
            assert a[key] == b[key], key


def test_encoding_alpha_and_threshold_update_in_place_as_a_fresh_tab_draws(encoding_dir):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import EncodingTab

    tab = EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))
    doc = _render(tab)
    plots = tab.plots
    revs = {name: p.rev for name, p in plots.items()}
    with set_curdoc(doc):
        tab.w_alpha.value = 0.5  # outside a server, the next-tick half runs at once
        tab.w_threshold.value = 0.02
    assert {name: p.rev for name, p in plots.items()} == revs, "redrawn, not updated in place"
    fresh = EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir), alpha=10 ** 0.5,
                                                  threshold=0.02, voxel=tab.analysis.voxel))
    _render(fresh)
    for name, p in plots.items():
        _same_sources(_sources(p), _sources(fresh.plots[name]))
    _assert_same(_drawn(tab.viewer), _drawn(fresh.viewer))


def test_connectivity_click_and_threshold_update_in_place_as_a_fresh_tab_draws(
        connectivity_dir):
    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity import ConnectivityTab

    tab = ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))
    doc = _render(tab)
    revs = (tab.viewer.rev, tab.plots["hist"].rev, tab.plots["series"].rev)
    with set_curdoc(doc):
        tab.viewer.tap("axial", 30.0, -20.0)   # a new seed: map, marker, series, histogram
        tab.w_threshold.value = 0.3
    assert (tab.viewer.rev, tab.plots["hist"].rev, tab.plots["series"].rev) == revs, \
        "redrawn, not in place"
    m = tab.model
    assert tuple(m.seed_mm) != (0.0, -52.0, 18.0) and m.threshold == 0.3
    fresh = ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir),
                                             seed_mm=m.seed_mm, threshold=m.threshold))
    _render(fresh)
    assert fresh.summary.object == tab.summary.object
    for name in ("hist", "series"):
        _same_sources(_sources(tab.plots[name]), _sources(fresh.plots[name]))
    _assert_same(_drawn(tab.viewer), _drawn(fresh.viewer))


def test_decoding_c_and_threshold_update_in_place_as_a_fresh_tab_draws(decoding_dir):
    from dashboard.decoding import DecodingTab

    tab = DecodingTab()
    doc = _render(tab)
    revs = {key: p.rev for key, p in tab.plots.items()}
    with set_curdoc(doc):
        tab.w_C.value = 0.01
        tab.w_threshold.value = tab.w_threshold.end / 4
    assert tab.analysis.C == 0.01
    assert {key: p.rev for key, p in tab.plots.items()} == revs, "redrawn, not in place"
    fresh = DecodingTab()
    fresh.w_C.value = 0.01
    fresh.w_threshold.value = tab.w_threshold.value
    _render(fresh)
    assert fresh.summary.object == tab.summary.object
    for key in ("bars", "confusion", "map_hist"):
        _same_sources(_sources(tab.plots[key]), _sources(fresh.plots[key]))
    _assert_same(_drawn(tab.viewer), _drawn(fresh.viewer))
    # a new CV scheme has other folds: the bars and the axis' categories change in place
    # (the columns first: dashboard/render/live.py, Layer.categories), as a fresh tab
    # draws them
    with set_curdoc(doc):
        tab.w_cv.value = "run" if tab.analysis.cv == "kfold" else "kfold"
    assert tab.plots["bars"].rev == revs["bars"], "redrawn, not in place"
    fresh.w_cv.value = tab.w_cv.value
    _same_sources(_sources(tab.plots["bars"]), _sources(fresh.plots["bars"]))
    (drawn,), (new,) = tab.plots["bars"].layers["bars"].plots, \
        fresh.plots["bars"].layers["bars"].plots
    assert list(drawn.handles["x_range"].factors) == list(new.handles["x_range"].factors)
    assert len(drawn.handles["x_range"].factors) == len(tab.analysis.scores().fold_score)


def test_views_draw_on_a_canvas_not_webgl():
    """A WebGL layer would be copied onto each plot's canvas at every repaint, for nothing:
    Bokeh's WebGL does not draw images (dashboard/slice_viewer.py)."""
    viewer = SliceViewer(stat_map=_volume(11))
    _render(viewer)
    plots = [p for layers in viewer.layers.values() for layer in layers.values()
             for p in layer.plots]
    assert plots and {p.handles["plot"].output_backend for p in plots} == {"canvas"}
