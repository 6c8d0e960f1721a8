"""The Connectivity tab without a browser: clicks, widgets in sync, elements' data."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from analysis.connectivity import SeedConnectivity


@pytest.fixture(scope="module")
def tab(connectivity_dir):
    from dashboard.connectivity import ConnectivityTab

    return ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))


def test_first_view_is_the_seeds_pcc_map(tab):
    m = tab.model
    assert tab.summary.object == m.summary()
    assert tab.summary.object.startswith("seed (0, -52, 18) r=8 mm: ")
    assert tab.viewer.marker_mm == (0.0, -52.0, 18.0)
    assert tab.viewer.crosshair_mm == (0.0, -52.0, 18.0)
    assert tab.viewer.stat_map is not None and tab.viewer.threshold == 0.5
    np.testing.assert_array_equal(tab.viewer.stat_map.values, m.r_map().values)
    assert tab.viewer.background.shape == tab.viewer.stat_map.shape   # MNI template, same grid
    assert tab.peaks.equals(m.peaks()) and len(tab.peaks_table.options) == m.n_peaks
    first = next(iter(tab.peaks_table.options))
    row = tab.peaks.iloc[0]
    assert first.startswith(f" 1. ({row.x:5.0f}, {row.y:5.0f}, {row.z:5.0f})  r={row.r:5.2f}")
    assert "DefaultMode" in first


def test_click_moves_the_seed_and_keeps_widgets_in_sync(tab):
    m = tab.model
    calls_before = m.cleaned_data()
    tab.viewer.tap("axial", 30.0, -20.0)            # snapped to the voxel centre (28, -20)
    assert m.seed_mm == (28.0, -20.0, 18.0)
    assert (tab.w_x.value, tab.w_y.value, tab.w_z.value) == (28.0, -20.0, 18.0)
    assert tab.summary.object.startswith("seed (28, -20, 18) r=8 mm: ")
    assert tab.viewer.marker_mm == (28.0, -20.0, 18.0)
    np.testing.assert_array_equal(tab.viewer.stat_map.values, m.r_map().values)
    assert m.cleaned_data() is calls_before           # no re-cleaning
    # a click outside the brain: the seed and the map stay
    before = tab.viewer.stat_map
    tab.viewer.tap("axial", 95.0, 95.0)
    assert m.seed_mm == (28.0, -20.0, 18.0) and tab.viewer.stat_map is before
    assert tab.viewer.crosshair_mm == (28.0, -20.0, 18.0)
    # typing coordinates moves the seed too
    tab.w_x.value, tab.w_y.value, tab.w_z.value = 0.0, -52.0, 18.0
    assert m.seed_mm == (0.0, -52.0, 18.0)
    assert tab.summary.object.startswith("seed (0, -52, 18)")


def test_histogram_series_and_threshold_lines(tab):
    m = tab.model
    tab.w_threshold.value = 0.3
    hist = tab.plots["hist"].element()
    h = hist.get(0)
    assert int(h.dimension_values("voxels").sum()) == m.result.r.size
    assert [hist.get(1).data, hist.get(2).data] == [-0.3, 0.3]
    assert tab.viewer.threshold == 0.3 and "above 0.3" in tab.summary.object
    tab.w_fisher.value = True
    assert tab.viewer.threshold == pytest.approx(np.arctanh(0.3))
    # named "Fisher z" everywhere, never a bare z (the coordinate) or "fisher_z" (issue 15
    # items 11 and 14): colour bar and readout, title, histogram axis, summary, peaks
    assert tab.viewer.map_label == "Fisher z" and "Fisher z map" in tab.viewer.title
    assert tab.plots["hist"].element().get(0).opts.get("plot").kwargs["xlabel"] == "Fisher z"
    assert "Fisher z in [" in tab.summary.object and "|Fisher z| >= 0.31" in tab.summary.object
    assert all("Fisher z=" in label and " z=" not in label.replace("Fisher z=", "")
               for label in tab.peaks_table.options)
    assert tab.plots["hist"].element().get(2).data == pytest.approx(np.arctanh(0.3))
    np.testing.assert_allclose(tab.viewer.stat_map.values, np.arctanh(m.r_map().values))
    tab.w_fisher.value = False
    tab.w_threshold.value = 0.5
    curve = tab.plots["series"].element()
    np.testing.assert_allclose(curve.dimension_values(1), m.result.seed_signal)


def test_bad_preprocessing_is_refused_and_widgets_follow(tab):
    before = tab.model.result
    tab.w_prep["low_pass"].value = 0.005        # below the high-pass: refused
    assert tab.model.low_pass == 0.1 and tab.w_prep["low_pass"].value == 0.1
    assert tab.model.result is before


def test_preprocessing_widgets_are_made_from_the_parameter_group(tab):
    """One widget per Parameter of the preprocessing group, in one loop: the Parameter's
    label, its doc as the tooltip, its bounds and step; synced both ways (the new
    high_variance_confounds option too, with no code of its own in the tab)."""
    import panel as pn

    from analysis.preprocessing import PARAMETERS, Preprocessing

    m = tab.model
    assert list(tab.w_prep) == list(PARAMETERS)
    icons = {item[1].value for item in tab.prep.views()
             if isinstance(item, pn.Row) and isinstance(item[-1], pn.widgets.TooltipIcon)}
    for name in PARAMETERS:
        p, widget = Preprocessing.param[name], tab.w_prep[name]
        doc = " ".join(p.doc.split())
        assert widget.label == p.label, name
        assert getattr(widget, "description", None) == doc or doc in icons, name
    slider = tab.w_prep["smoothing_fwhm"]
    assert (slider.start, slider.end, slider.step) == (0.0, 20.0, 1.0)
    assert "smoothing-slider" in slider.css_classes              # the class tests use
    assert "high-pass" in tab.w_prep["high_pass"].css_classes
    assert tab.w_prep["high_pass"].step == Preprocessing.param.high_pass.step
    hv = tab.w_prep["high_variance_confounds"]
    assert isinstance(hv, pn.widgets.Checkbox) and hv.value is False
    before = m.result
    hv.value = True                                               # widget -> model
    try:
        assert m.high_variance_confounds is True and m.result is not before
        assert m.cleaned_data().settings.high_variance_confounds is True
        assert tab.summary.object == m.summary()
        assert tab.export_params()["high_variance_confounds"] is True
    finally:
        m.high_variance_confounds = False                         # model -> widget
    assert hv.value is False and m.settings().high_variance_confounds is False


def test_peak_row_moves_the_crosshair_and_exports(tab):
    peaks = tab.peaks
    tab.peaks_table.value = 2
    assert tab.viewer.crosshair_mm == tuple(float(v) for v in peaks.iloc[2][["x", "y", "z"]])
    assert tab.model.seed_mm == (0.0, -52.0, 18.0)  # a row shows a peak, the seed stays
    for fisher in (False, True):
        raw = tab.nifti_bytes(fisher).getvalue()
        img = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
        mask = tab.model.cleaned_data().mask
        expected = tab.model.result.z if fisher else tab.model.result.r
        np.testing.assert_allclose(np.asarray(img.dataobj)[mask], expected, atol=1e-6)


def test_group_section_shares_the_seed(connectivity_dir):
    from dashboard.connectivity import ConnectivityTab

    tab = ConnectivityTab()
    group = tab.group_panel()
    assert group is tab.group_panel()  # built once
    tab.model.seed_mm = (-40.0, -66.0, 40.0)
    assert tuple(group.model.seed_mm) == pytest.approx((-40.0, -66.0, 40.0), abs=6.0)
