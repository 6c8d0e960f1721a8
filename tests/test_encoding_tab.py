"""EncodingTab headless: elements by their data, widgets drive the analysis, clicks select voxels."""

from __future__ import annotations

import numpy as np
import pytest


pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py


@pytest.fixture
def tab(encoding_dir):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import EncodingTab

    return EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))


def test_receptive_field_image_keeps_row_zero_at_the_top():
    from dashboard.encoding import receptive_field_image

    rf = np.zeros((10, 10))
    rf[1, 7] = 1.0
    overlay = receptive_field_image(rf, "t", planted=(1, 7))
    image = overlay.get(0)
    assert image.opts.get().kwargs["invert_yaxis"] is True
    assert image[7, 1] == 1.0  # (col, row) -> value
    boxes = [el for el in overlay if el.group == "Rectangles"]
    assert [tuple(b.array()[0]) for b in boxes] == [(6.5, 0.5, 7.5, 1.5)]  # the planted pixel
    no_box = receptive_field_image(rf, "t")
    assert not [el for el in no_box if el.group == "Rectangles"]


def test_histogram_and_threshold_line():
    from dashboard.encoding import r2_histogram

    r2 = np.random.default_rng(0).normal(0.05, 0.1, 500)
    overlay = r2_histogram(r2, 0.07, bins=20)
    hist, line = overlay.get(0), overlay.get(1)
    counts, edges = np.histogram(r2, bins=20)
    np.testing.assert_array_equal(hist.dimension_values(1), counts)
    np.testing.assert_allclose(hist.edges, edges)
    assert line.data == 0.07


def test_widgets_drive_the_analysis(tab):
    a = tab.analysis
    assert tab.summary.object == a.summary()
    assert a.voxel == int(np.argmax(a.mean_r2().values))
    tab.w_alpha.value = 1.0
    assert a.alpha == pytest.approx(10.0)
    assert tab.summary.object == a.summary() and tab.summary.object.startswith("alpha=10 ")
    r2 = a.mean_r2().values
    from analysis.volumes import to_masked

    np.testing.assert_allclose(to_masked(tab.viewer.stat_map, a.data().mask_img), np.maximum(r2, 0))
    tab.w_threshold.value = 0.1
    assert tab.viewer.threshold == pytest.approx(0.1) and "voxels above 0.1:" in tab.summary.object
    tab.w_folds.value = 5
    assert a.n_folds == 5 and "folds=5 " in tab.summary.object
    tab.w_sample.value = 3
    assert tab.stimulus_info.object.startswith("sample 3: run 1, image 3 paired with volume 5 "
                                               "(10 s into its run")


def test_click_selects_the_voxel(tab):
    a = tab.analysis
    target = 11
    x, y, z = a.voxel_mm(target)
    tab.viewer.crosshair_mm = (tab.viewer.crosshair_mm[0], tab.viewer.crosshair_mm[1], z)
    tab.viewer.tap("axial", x, y)
    assert a.voxel == target
    assert f"voxel {target}** at" in tab.voxel_info.object
    ridge = tab.plots["ridge"].element().get(0)
    shown = np.array([[ridge[c, r] for c in range(10)] for r in range(10)])
    np.testing.assert_allclose(shown, a.ridge_receptive_field(target).values)


def test_bad_structural_choice_is_reported_not_raised(tab, monkeypatch):
    import dashboard.encoding.tab as mod   # where _apply_structural looks it up

    seen = []
    monkeypatch.setattr(mod, "report_error", lambda exc: seen.append(str(exc)))
    tab.analysis.n_folds = 100_000
    assert seen and "n_folds must be between 2" in seen[0]


def _figure_ranges(live_plot) -> dict:
    """The drawn figure's axis ranges (what an in-place update must set as HoloViews does)."""
    (plot,) = next(iter(live_plot.layers.values())).plots
    fig = plot.handles["plot"]
    return {"x": (fig.x_range.start, fig.x_range.end), "y": (fig.y_range.start, fig.y_range.end)}


@pytest.mark.parametrize("change", [dict(lag=3, n_folds=6), dict(cv="run"),
                                    dict(dtype="float32")])
def test_a_structural_change_on_the_same_data_updates_the_views_in_place(encoding_dir, change):
    """New folds, lag, CV scheme or precision on the same data: every view shows the new
    results in its drawn figure (nothing redrawn by HoloViews: a redraw costs the page a
    new layout), exactly as a fresh tab at those settings draws them."""
    from panel.io.state import set_curdoc

    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import EncodingTab
    from tests.test_live import _assert_same, _drawn, _render, _same_sources, _sources

    tab = EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))
    doc = _render(tab)
    voxel = tab.analysis.voxel
    revs = {name: p.rev for name, p in tab.plots.items()}
    viewer_rev = tab.viewer.rev
    widgets = {"lag": tab.w_lag, "n_folds": tab.w_folds, "cv": tab.w_cv, "dtype": tab.w_dtype}
    with set_curdoc(doc):
        for name, value in change.items():
            widgets[name].value = value
    a = tab.analysis
    assert {k: getattr(a, k) for k in change} == change and a.voxel == voxel
    assert {name: p.rev for name, p in tab.plots.items()} == revs, "redrawn, not in place"
    assert tab.viewer.rev == viewer_rev
    fresh = EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir), voxel=voxel,
                                                  **change))
    _render(fresh)
    assert tab.summary.object == fresh.summary.object == fresh.analysis.summary()
    assert tab.voxel_info.object == fresh.voxel_info.object
    for name, p in tab.plots.items():
        _same_sources(_sources(p), _sources(fresh.plots[name]))
    for name in ("path", "timecourse"):
        got, want = _figure_ranges(tab.plots[name]), _figure_ranges(fresh.plots[name])
        assert got["y"] == pytest.approx(want["y"]), name
    _assert_same(_drawn(tab.viewer), _drawn(fresh.viewer))
