"""The Encoding tab's views (issue 15), headless, by their data: the time course in seconds
within the selected run, the crosshair readout's true R^2, the PNG cut through the
selected voxel, the receptive fields' gold box and ticks."""

from __future__ import annotations

import numpy as np
import panel as pn
import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc


pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py


@pytest.fixture
def tab(encoding_dir):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import EncodingTab

    return EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))


def _render(tab) -> Document:
    doc = Document()
    with set_curdoc(doc):
        doc.add_root(pn.panel(tab).get_root(doc))
    return doc


def _run_times(a, run: int) -> tuple:
    """The samples of ``run`` (1-based) and their volumes' seconds within the run."""
    _, runs, volumes = a.sample_index()
    start = sum(a.data().run_lengths[:run - 1])
    samples = np.flatnonzero(runs == run - 1)
    return samples, (volumes[samples] - start) * a.data().t_r


def _drawn_time_course(tab) -> dict:
    """What the time course's Bokeh models show: each curve's x column, the axes' ranges
    and label, and the sample's line."""
    plots = tab.plots["timecourse"].layers
    (predicted,) = plots["predicted"].plots
    (measured,) = plots["measured"].plots
    (line,) = plots["sample"].plots
    fig = predicted.handles["plot"]
    return {"predicted": np.asarray(predicted.handles["source"].data["time"], float),
            "measured": np.asarray(measured.handles["source"].data["time"], float),
            "x_range": (fig.x_range.start, fig.x_range.end),
            "y_range": (fig.y_range.start, fig.y_range.end),
            "xlabel": fig.xaxis[0].axis_label, "title": fig.title.text,
            "line": line.handles["glyph"].location}


def test_time_course_is_in_seconds_within_the_selected_run(tab):
    a = tab.analysis
    doc = _render(tab)
    with set_curdoc(doc):
        tab.w_run.value = 2
    samples, times = _run_times(a, 2)
    duration = (a.data().run_lengths[1] - 1) * a.data().t_r
    # the element a drawing would show
    overlay = tab.plots["timecourse"].element()
    for curve in overlay.Curve:
        np.testing.assert_allclose(curve.dimension_values(0), times)
    assert overlay.opts.get().kwargs["xlim"] == (0.0, duration)
    # the drawn plot, updated in place: run 2's seconds and range, not run 1's samples
    drawn = _drawn_time_course(tab)
    np.testing.assert_allclose(drawn["predicted"], times)
    np.testing.assert_allclose(drawn["measured"], times)
    assert drawn["x_range"] == pytest.approx((0.0, duration))
    assert not np.isin(drawn["predicted"], np.flatnonzero(a.sample_index()[1] == 0)).all()
    assert drawn["xlabel"] == "time in run (s)" and "run 2" in drawn["title"]
    tc = a.time_course().isel(sample=samples)
    lo = min(tc.measured.min(), tc.predicted.min())
    hi = max(tc.measured.max(), tc.predicted.max())
    assert drawn["y_range"][0] < lo and drawn["y_range"][1] > hi
    # the stimulus browser's sample: a line at its time when it is in the run shown
    with set_curdoc(doc):
        tab.w_sample.value = int(samples[5])
    assert _drawn_time_course(tab)["line"] == pytest.approx(times[5])
    with set_curdoc(doc):
        tab.w_sample.value = 0          # in run 1: no line on run 2
    assert np.isnan(_drawn_time_course(tab)["line"])
    # another voxel (a HoloViews redraw) keeps the run's axis
    with set_curdoc(doc):
        a.voxel = 3
    drawn = _drawn_time_course(tab)
    np.testing.assert_allclose(drawn["predicted"], times)
    assert drawn["x_range"] == pytest.approx((0.0, duration))
    assert a.t_r == a.data().t_r == 2.0   # Miyawaki 2008's TR, in the runs' headers


def test_crosshair_readout_gives_the_true_negative_r2(tab):
    a = tab.analysis
    r2 = a.mean_r2().values
    v = int(np.argmin(r2))
    assert r2[v] < 0
    a.voxel = v
    assert tab.viewer.value_at_crosshair() == pytest.approx(r2[v])
    (info,) = [m for m in pn.panel(tab.viewer).select(pn.pane.Markdown)
               if "crosshair-info" in m.css_classes]
    assert f", R2 {r2[v]:.3g}, " in info.object   # then the region (or why none)
    # the map shown is still cut at 0 (as the seed shows it)
    assert float(np.nanmin(tab.viewer.stat_map.values)) == 0.0


def test_slice_viewer_readout_map_is_optional():
    """The readout follows ``readout_map`` when given, the map's own values otherwise."""
    from analysis.volumes import to_xarray
    from dashboard.slice_viewer import SliceViewer
    import nibabel as nib

    values = np.random.default_rng(0).standard_normal((5, 6, 4))
    vol = to_xarray(nib.Nifti1Image(values, np.diag([2.0, 2.0, 2.0, 1.0])), name="t")
    cut = vol.copy(data=np.maximum(vol.values, 0))
    viewer = SliceViewer(stat_map=cut)
    ijk = tuple(int(i) for i in np.argwhere(values < 0)[0])
    viewer.set_crosshair([float(vol[d].values[i]) for d, i in zip("xyz", ijk)])
    assert viewer.voxel_index() == ijk
    assert viewer.value_at_crosshair() == 0.0
    viewer.readout_map = vol
    assert viewer.value_at_crosshair() == pytest.approx(values[ijk])


def test_png_export_cuts_through_the_selected_voxel(tab):
    from dashboard.export import ExportBar

    a = tab.analysis
    r2 = a.mean_r2().values
    order = np.argsort(r2)[::-1]
    first = int(order[0])
    other = next(int(v) for v in order if all(
        abs(p - q) > 1 for p, q in zip(a.voxel_mm(v), a.voxel_mm(first))))
    bar = ExportBar(source=tab, stem="encoding")
    pngs = []
    for v in (first, other):
        a.voxel = v
        assert tab.export_map()["cut_coords"] == pytest.approx(a.voxel_mm(v))
        pngs.append(bar.content("png"))
    assert pngs[0][:8] == b"\x89PNG\r\n\x1a\n" and pngs[0] != pngs[1]


def test_png_export_has_the_views_colour_map_and_range(tab):
    """The PNG shows what the page shows: the Display group's colour map and the views'
    colour range (the fixed one too)."""
    from dashboard.export import ExportBar, export_cmap

    assert export_cmap("fire") == "cet_fire" and export_cmap("viridis") == "viridis"
    assert export_cmap("no-such-map") is None
    bar = ExportBar(source=tab, stem="encoding")
    pngs = {}
    for cmap in ("fire", "viridis"):
        tab.viewer.cmap = cmap
        spec = tab.export_map()
        assert spec["cmap"] == cmap
        assert spec["vmax"] == pytest.approx(tab.viewer.colour_range()[1])
        pngs[cmap] = bar.content("png")
    assert pngs["fire"] != pngs["viridis"]
    tab.viewer.clim = (0.0, 0.9)   # a fixed range: the PNG's colour bar ends there
    assert tab.export_map()["vmax"] == pytest.approx(0.9)
    assert bar.content("png") != pngs["viridis"]


def test_receptive_fields_box_the_planted_pixel_only_and_are_ticked(tab):
    a = tab.analysis
    truth = a.data().truth
    r2 = a.mean_r2().values
    responsive = int(np.argmax(np.where(truth["responsive"], r2, -np.inf)))
    silent = int(np.argmax(np.where(truth["responsive"], -np.inf, r2)))
    a.voxel = responsive
    overlay = tab.plots["ridge"].element()
    boxes = [el for el in overlay if el.group == "Rectangles"]
    row, col = (int(p) for p in truth["peak"][responsive])
    assert [tuple(b.array()[0]) for b in boxes] == [(col - 0.5, row - 0.5, col + 0.5, row + 0.5)]
    assert boxes[0].opts.get().kwargs["line_color"] == "gold"
    image = overlay.get(0)
    options = image.opts.get().kwargs
    assert options["xticks"] == list(range(10)) and options["yticks"] == list(range(10))
    from dashboard.encoding import PLANTED_TEXT

    assert PLANTED_TEXT in tab.voxel_info.object
    assert f"row {row}, col {col}" in tab.voxel_info.object
    assert "red box" not in tab.voxel_info.object and "(4, 2)" not in tab.voxel_info.object
    # a voxel built to respond to nothing: no box at all, and no gold box legend
    a.voxel = silent
    assert not [el for el in tab.plots["ridge"].element() if el.group == "Rectangles"]
    assert "gold box" not in tab.voxel_info.object.replace("no gold box", "")
