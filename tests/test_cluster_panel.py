"""Region names and cluster tables in the app (issue 17), headless, through public
interfaces: the cluster table kit (dashboard/clusters.py) in the Connectivity and
Decoding tabs equals ``nilearn.reporting.get_clusters_table`` on the tab's map and
threshold; a row's click moves the crosshair; the CSV holds the same rows; the slice
viewer's readout and hover name the region (MNI data) or say that the data is not in
MNI space (Haxby); the app's atlas selector drives every viewer of the session."""

from __future__ import annotations

import io
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import panel as pn
import pytest

from analysis.connectivity import SeedConnectivity
from analysis.reporting import NOT_MNI, cluster_table, regions_at
from analysis.reporting.clusters import COLUMNS
from analysis.volumes import affine_of, to_xarray


def nilearn_table(values, affine, threshold, min_size, two_sided=True):
    from nilearn.reporting import get_clusters_table

    img = nib.Nifti1Image(np.nan_to_num(np.asarray(values, dtype=np.float64)), affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_clusters_table(img, threshold, cluster_threshold=min_size,
                                  two_sided=two_sided)


def tab_map(viewer):
    """The map the tab shows, as (values (x, y, z), affine)."""
    da = viewer.stat_map
    return np.asarray(da.transpose("x", "y", "z").values), affine_of(da)


def assert_is_the_maps_table(panel, viewer, atlas="harvard_oxford", in_mni=True):
    """The panel's rows are cluster_table's and nilearn's for the viewer's map and
    threshold (two-sided, the panel's minimum size); what the widget shows is them."""
    values, affine = tab_map(viewer)
    threshold, min_size = float(viewer.threshold), int(panel.min_cluster_size)
    ours = cluster_table(values, affine, threshold, min_cluster_size=min_size,
                         two_sided=True, atlas=atlas, in_mni=in_mni)
    pd.testing.assert_frame_equal(panel.table, ours)
    pd.testing.assert_frame_equal(panel.widget.value.reset_index(drop=True), ours)
    ref = nilearn_table(values, affine, threshold, min_size)
    assert len(panel.table) == len(ref) > 0
    np.testing.assert_allclose(panel.table[["peak_x", "peak_y", "peak_z"]].to_numpy(),
                               ref[["X", "Y", "Z"]].to_numpy(float), atol=1e-6)
    np.testing.assert_allclose(panel.table["peak_value"], ref["Peak Stat"].astype(float),
                               rtol=1e-6)
    letters = ref["Cluster ID"].astype(str).str.extract(r"([a-z]*)$")[0].fillna("")
    assert panel.table["subpeak"].tolist() == letters.tolist()
    peak = letters.to_numpy() == ""
    np.testing.assert_allclose(panel.table.loc[peak, "size_mm3"],
                               ref.loc[peak, "Cluster Size (mm3)"].astype(float), atol=1)
    assert (panel.table["size_voxels"] >= min_size).all()
    return ours


# --------------------------------------------------------------------------- Connectivity

@pytest.fixture(scope="module")
def conn(connectivity_dir):
    from dashboard.connectivity import ConnectivityTab

    return ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))


def test_connectivity_table_follows_the_seed_threshold_and_minimum_size(conn):
    clusters, viewer, m = conn.clusters, conn.viewer, conn.model
    assert clusters.two_sided and viewer.in_mni and viewer.atlas == "harvard_oxford"
    first = assert_is_the_maps_table(clusters, viewer)
    assert viewer.threshold == m.threshold == 0.5
    # regions of the peaks from Harvard-Oxford (MNI data): names, never "not in MNI space"
    np.testing.assert_array_equal(first["region"], regions_at(
        "harvard_oxford", first[["peak_x", "peak_y", "peak_z"]].to_numpy()))
    assert (first["region"] != NOT_MNI).all() and (first["region"] != "").all()
    # the minimum cluster size (its widget drives it)
    sizes = first.groupby("cluster")["size_voxels"].first()
    k = int(sizes.median()) + 1
    clusters.w_min_size.value = k
    assert clusters.min_cluster_size == k
    assert_is_the_maps_table(clusters, viewer)
    assert clusters.table["cluster"].nunique() == (sizes >= k).sum()
    # a new seed: the table is the new map's (any size: off the default-mode network
    # its clusters are small)
    clusters.w_min_size.value = 0
    conn.w_x.value, conn.w_y.value, conn.w_z.value = 28.0, -20.0, 18.0
    assert m.seed_mm == (28.0, -20.0, 18.0)
    assert_is_the_maps_table(clusters, viewer)
    # a new threshold, and Fisher z (the threshold in z units, same voxels)
    conn.w_threshold.value = 0.3
    assert_is_the_maps_table(clusters, viewer)
    conn.w_fisher.value = True
    assert viewer.threshold == pytest.approx(np.arctanh(0.3))
    assert_is_the_maps_table(clusters, viewer)
    conn.w_fisher.value = False
    clusters.w_min_size.value = 0
    conn.w_threshold.value = 0.5
    conn.w_x.value, conn.w_y.value, conn.w_z.value = 0.0, -52.0, 18.0
    assert_is_the_maps_table(clusters, viewer)


def test_a_row_click_moves_the_crosshair_not_the_seed(conn):
    clusters, viewer = conn.clusters, conn.viewer
    table = clusters.table
    row = len(table) - 1
    target = tuple(table.loc[row, ["peak_x", "peak_y", "peak_z"]].astype(float))
    assert viewer.crosshair_mm != target
    clusters.widget.selection = [row]          # what a click on the row does
    assert viewer.crosshair_mm == pytest.approx(target)
    assert conn.model.seed_mm == (0.0, -52.0, 18.0)
    clusters.go_to(0)
    assert viewer.crosshair_mm == pytest.approx(clusters.peak_mm(0))
    # the readout names the region of the crosshair, as the table names the peak's
    region = table.loc[0, "region"]
    assert viewer.region_at_crosshair() == region
    assert f"region {region} (Harvard-Oxford)" in viewer.readout()


def test_csv_holds_the_same_rows(conn):
    clusters = conn.clusters
    text = clusters.csv()
    parsed = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert list(parsed.columns) == COLUMNS
    pd.testing.assert_frame_equal(parsed, clusters.table, check_dtype=False)
    assert clusters.csv_file().getvalue() == text.encode("utf-8")   # the download, in memory
    assert clusters.download.filename == "connectivity_clusters.csv"


def test_the_atlas_names_regions_everywhere_and_none_turns_them_off(conn):
    viewer, clusters = conn.viewer, conn.clusters
    try:
        viewer.atlas = "aal"
        xyz = viewer.crosshair_mm
        assert viewer.region_at_crosshair() == regions_at("aal", [xyz])[0]
        assert "(AAL2)" in viewer.readout()
        assert_is_the_maps_table(clusters, viewer, atlas="aal")
        peaks = conn.peaks[["x", "y", "z"]].to_numpy()
        names = regions_at("aal", peaks)
        assert all(label.endswith(name) for label, name in zip(conn.peaks_table.options, names))
        viewer.atlas = "none"
        assert viewer.region_at_crosshair() == "" and "region" not in viewer.readout()
        assert (clusters.table["region"] == "").all()
    finally:
        viewer.atlas = "harvard_oxford"


def test_uploads_are_native_unless_said_to_be_mni(conn, monkeypatch):
    assert conn.map_in_mni()                        # the development data
    monkeypatch.setattr(type(conn.model), "uses_own_data", property(lambda self: True))
    assert not conn.map_in_mni()
    conn.files_in_mni = True
    assert conn.map_in_mni() and conn.viewer.in_mni
    conn.files_in_mni = False
    assert not conn.viewer.in_mni
    assert conn.viewer.region_at_crosshair() == NOT_MNI
    assert NOT_MNI in conn.viewer.readout()
    assert (conn.clusters.table["region"] == NOT_MNI).all()


# --------------------------------------------------------------------------- Decoding

@pytest.fixture(scope="module")
def dec(decoding_dir):
    from dashboard.decoding import DecodingTab

    return DecodingTab()


def test_decoding_table_is_the_weight_maps_at_the_tab_threshold(dec):
    clusters, viewer = dec.clusters, dec.viewer
    assert viewer.map_label == "weights" and not viewer.in_mni
    assert viewer.threshold == dec.threshold
    # the weight map as the tab shows it (the Haxby-like data's own grid)
    np.testing.assert_array_equal(viewer.stat_map.values, dec.analysis.weight_map().values)
    top = float(np.nanmax(np.abs(viewer.stat_map.values)))
    for threshold in (0.0, 0.3 * top, 0.6 * top):
        dec.w_threshold.value = threshold
        assert viewer.threshold == pytest.approx(threshold)
        table = assert_is_the_maps_table(clusters, viewer, in_mni=False)
        assert (table["region"] == NOT_MNI).all()     # Haxby: the subject's own space
    dec.map_kind = "pattern"
    np.testing.assert_array_equal(viewer.stat_map.values, dec.analysis.pattern_map().values)
    assert_is_the_maps_table(clusters, viewer, in_mni=False)
    dec.map_kind = "weights"
    clusters.go_to(1)
    assert viewer.crosshair_mm == pytest.approx(clusters.peak_mm(1))
    assert viewer.region_at_crosshair() == NOT_MNI
    assert f", {NOT_MNI}" in viewer.readout() and "region" not in viewer.readout()
    parsed = pd.read_csv(io.StringIO(clusters.csv()), keep_default_na=False)
    pd.testing.assert_frame_equal(parsed, clusters.table, check_dtype=False)
    dec.w_threshold.value = 0.0


def test_decoding_upload_said_to_be_mni_names_regions(dec, haxby_slice):
    from dashboard.decoding import USER_FILES

    assert not dec.map_in_mni()
    dec.files_in_mni = True          # only the user's files can be in MNI space
    assert not dec.map_in_mni() and not dec.viewer.in_mni
    dec.files_in_mni = False
    up = dec.upload                  # the real Haxby slice, uploaded
    for role, name in (("func", "bold.nii.gz"), ("mask", "mask.nii.gz"),
                       ("labels", "attributes.txt")):
        up.uploads.accept(role, name, (haxby_slice / name).read_bytes())
        up.paths = {**up.paths, role: up.uploads.files[role]}
    assert dec.upload_job.wait(120)
    assert dec.source == USER_FILES and not dec.viewer.in_mni
    assert (dec.clusters.table["region"] == NOT_MNI).all()
    dec.files_in_mni = True          # the user says so: the atlas names the peaks
    assert dec.map_in_mni() and dec.viewer.in_mni
    table = assert_is_the_maps_table(dec.clusters, dec.viewer, in_mni=True)
    assert (table["region"] != NOT_MNI).all()
    assert dec.viewer.region_at_crosshair() == regions_at(
        "harvard_oxford", [dec.viewer.crosshair_mm])[0]
    dec.files_in_mni = False
    assert (dec.clusters.table["region"] == NOT_MNI).all()


# --------------------------------------------------------------------------- slice viewer

def mni_map(seed=0):
    """A smooth signed map on a 4 mm MNI grid (the built-in data's)."""
    from scipy import ndimage

    from analysis.volumes import mni_background

    bg = mni_background(4)
    values = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(bg.shape), 2)
    return bg, bg.copy(data=values / values.std())


def drawn_regions(viewer):
    """view -> (region names the drawn map's hover shows per pixel, the pixels' mm)."""
    out = {}
    for view, layers in viewer.layers.items():
        (plot,) = layers["map"].plots
        source, hover = plot.handles["source"], plot.handles["hover"]
        codes = np.asarray(source.data["region"][0])
        names = np.array(next(iter(hover.formatters.values())).args["names"], dtype=object)
        out[view] = names[codes]
    return out


def render(viewer):
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    doc = Document()
    with set_curdoc(doc):
        doc.add_root(pn.panel(viewer).get_root(doc))
    return doc


def test_hover_names_each_pixels_region_and_follows_the_crosshair():
    from dashboard.slice_viewer import VIEWS, SliceViewer, slice_arrays

    bg, da = mni_map()
    viewer = SliceViewer(stat_map=da, background=bg, threshold=1.0, in_mni=True)
    viewer.set_crosshair((0.0, -52.0, 18.0))
    render(viewer)
    rev = viewer.rev
    viewer.set_crosshair((-40.0, 20.0, 30.0))      # in place: no new drawing
    assert viewer.rev == rev
    shown = drawn_regions(viewer)
    for view, (h, v, s) in VIEWS.items():
        xs, ys, _ = slice_arrays(da, view, dict(zip("xyz", viewer.crosshair_mm))[s])
        hh, vv = np.meshgrid(xs, ys)
        points = {h: hh.ravel(), v: vv.ravel(), s: np.full(hh.size, dict(
            zip("xyz", viewer.crosshair_mm))[s])}
        expected = regions_at("harvard_oxford", np.column_stack([points[d] for d in "xyz"]))
        np.testing.assert_array_equal(shown[view].ravel(), expected)
        assert len(set(expected)) > 3
    # a fresh drawing of the same state shows the same names
    fresh = SliceViewer(stat_map=da, background=bg, threshold=1.0, in_mni=True,
                        crosshair_mm=viewer.crosshair_mm)
    render(fresh)
    for view, names in drawn_regions(fresh).items():
        np.testing.assert_array_equal(names, shown[view])
    # not in MNI space: every pixel says so; the atlas "none": no names (in place, the
    # hover's names replaced: HoloViews keeps a drawn hover tool's formatters)
    viewer.in_mni = False
    assert all((names == NOT_MNI).all() for names in drawn_regions(viewer).values())
    viewer.atlas = "none"
    assert all((names == "").all() for names in drawn_regions(viewer).values())
    # a redraw by HoloViews (a new colour map) keeps the names in step
    viewer.param.update(atlas="aal", in_mni=True, cmap="viridis")
    assert viewer.rev > rev
    for view, names in drawn_regions(viewer).items():
        h, v, s = VIEWS[view]
        position = dict(zip("xyz", viewer.crosshair_mm))[s]
        xs, ys, _ = slice_arrays(da, view, position)
        hh, vv = np.meshgrid(xs, ys)
        points = {h: hh.ravel(), v: vv.ravel(), s: np.full(hh.size, position)}
        np.testing.assert_array_equal(names.ravel(), regions_at(
            "aal", np.column_stack([points[d] for d in "xyz"])))


def test_readout_names_the_region_of_mni_data_only():
    from dashboard.slice_viewer import SliceViewer

    bg, da = mni_map(1)
    viewer = SliceViewer(stat_map=da, background=bg, in_mni=True)
    viewer.set_crosshair((0.0, -52.0, 18.0))
    name = regions_at("harvard_oxford", [viewer.crosshair_mm])[0]
    assert name and name != "no label"
    assert viewer.readout().endswith(f", region {name} (Harvard-Oxford)")
    native = SliceViewer(stat_map=da, background=bg)   # the default: not said to be MNI
    native.set_crosshair((0.0, -52.0, 18.0))
    assert native.region_at_crosshair() == NOT_MNI
    assert native.readout().endswith(f", {NOT_MNI}")


def test_cluster_table_of_a_map_given_with_its_own_grid_and_minimum_size():
    from dashboard.clusters import ClusterTable
    from dashboard.slice_viewer import SliceViewer

    rng = np.random.default_rng(3)
    from scipy import ndimage

    values = ndimage.gaussian_filter(rng.standard_normal((21, 17, 13)), 1.5)
    values /= values.std()
    affine = np.array([[-3.0, 0, 0, 30], [0, 2.5, 0, -40], [0, 0, 4.0, -10], [0, 0, 0, 1]])
    da = to_xarray(nib.Nifti1Image(values, affine), name="t")
    viewer = SliceViewer(stat_map=da, threshold=1.0, atlas="none")
    panel = ClusterTable(viewer, two_sided=False, min_cluster_size=3)
    ref = nilearn_table(values, affine, 1.0, 3, two_sided=False)
    assert len(panel.table) == len(ref) > 3 and (panel.table["peak_value"] > 0).all()
    np.testing.assert_allclose(panel.table[["peak_x", "peak_y", "peak_z"]].to_numpy(),
                               ref[["X", "Y", "Z"]].to_numpy(float), atol=1e-6)
    assert "> 1" in panel.caption.object and "two-sided" not in panel.caption.object
    moved = []
    custom = ClusterTable(viewer, move=moved.append)
    custom.go_to(0)
    assert moved == [custom.peak_mm(0)]
    custom.go_to(10 ** 6)                 # no such row: nothing happens
    assert len(moved) == 1
    viewer.stat_map = None
    assert panel.table is None and panel.csv().strip() == ",".join(COLUMNS)


# --------------------------------------------------------------------------- the app

def test_the_app_has_one_atlas_selector_every_viewer_follows(connectivity_dir):
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from dashboard import app
    from dashboard.clusters import session_atlas

    doc = Document()
    with set_curdoc(doc):
        template = app.create_app()
        tab = template.build_tab("connectivity")
        (selector,) = [w for item in template.sidebar for w in item.select(pn.widgets.Select)
                       if "atlas-select" in w.css_classes]
    assert selector.label == "Atlas (region names)" and "MNI space" in selector.description
    assert selector.options["Harvard-Oxford"] == "harvard_oxford" and "none" in selector.options
    assert tab.viewer.atlas == session_atlas(doc).atlas == "harvard_oxford"
    selector.value = "aal"                      # outside a server: applied at once
    assert session_atlas(doc).atlas == "aal" and tab.viewer.atlas == "aal"
    assert tab.clusters.table["region"].tolist() == regions_at(
        "aal", tab.clusters.table[["peak_x", "peak_y", "peak_z"]].to_numpy())
    with set_curdoc(doc):
        decoding = template.build_tab("decoding")
    assert decoding.viewer.atlas == "aal"       # a tab built later takes the choice too
    selector.value = "none"
    assert tab.viewer.atlas == decoding.viewer.atlas == "none"


# --------------------------------------------------------------------------- Encoding

def test_encoding_table_is_the_r2_maps_clusters_one_sided(encoding_dir):
    """The Encoding tab's table: R^2 above the tab's threshold (one-sided), equal to
    nilearn's get_clusters_table; Miyawaki's data is not in MNI space."""
    from dashboard.encoding import EncodingTab

    tab = EncodingTab()
    tab.__panel__()
    clusters, viewer = tab.clusters, tab.viewer
    assert not clusters.two_sided and not viewer.in_mni
    for threshold in (0.05, 0.1):
        tab.w_threshold.value = threshold
        values, affine = tab_map(viewer)
        ours = cluster_table(values, affine, float(viewer.threshold), two_sided=False,
                             atlas=viewer.atlas, in_mni=False)
        pd.testing.assert_frame_equal(clusters.table, ours)
        ref = nilearn_table(values, affine, float(viewer.threshold), 0, two_sided=False)
        assert len(ours) == len(ref) > 0
        np.testing.assert_allclose(ours["peak_value"], ref["Peak Stat"].astype(float),
                                   rtol=1e-6)
        assert (ours["region"] == NOT_MNI).all()
