"""Cluster tables (issue 17 item 2): equal to ``nilearn.reporting.get_clusters_table`` on
the same map, threshold and minimum size (same clusters, peaks and sub-peaks, values,
sizes, order), and the CLI's ``--clusters``."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from analysis.cli import main
from analysis.errors import DataError
from analysis.reporting import NOT_MNI, cluster_table, clusters_json
from analysis.reporting.clusters import COLUMNS

SIZES = (0, 5, 20)


def nilearn_table(values, affine, threshold, min_size, two_sided):
    from nilearn.reporting import get_clusters_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_clusters_table(nib.Nifti1Image(values, affine), threshold,
                                  cluster_threshold=min_size, two_sided=two_sided)


def assert_same(values, affine, threshold, min_size, two_sided) -> pd.DataFrame:
    """Our table equals nilearn's, row by row; returns ours."""
    ref = nilearn_table(values, affine, threshold, min_size, two_sided)
    ours = cluster_table(values, affine, threshold, min_size, two_sided, atlas="none")
    assert list(ours.columns) == COLUMNS
    assert len(ours) == len(ref)
    if ref.empty:
        return ours
    np.testing.assert_allclose(ours[["peak_x", "peak_y", "peak_z"]].to_numpy(),
                               ref[["X", "Y", "Z"]].to_numpy(float), atol=1e-6)
    np.testing.assert_array_equal(ours["peak_value"].to_numpy(),
                                  ref["Peak Stat"].to_numpy(float))
    ids = ref["Cluster ID"].astype(str)
    letters = ids.str.extract(r"([a-z]*)$")[0].fillna("").to_numpy()
    np.testing.assert_array_equal(ours["subpeak"].to_numpy(), letters)
    peak = letters == ""
    # same cluster boundaries; nilearn numbers the negative tail after its row count
    assert np.array_equal(np.diff(ours["cluster"].to_numpy()) > 0, peak[1:])
    assert list(ours.loc[peak, "cluster"]) == list(range(1, peak.sum() + 1))
    sizes = ref.loc[peak, "Cluster Size (mm3)"].astype(float).to_numpy()
    assert np.all(np.abs(ours.loc[peak, "size_mm3"].to_numpy() - sizes) < 1)
    voxel = abs(np.linalg.det(affine[:3, :3]))
    np.testing.assert_allclose(ours["size_mm3"], ours["size_voxels"] * voxel)
    return ours


def smooth_map(seed, shape=(26, 30, 24), fwhm_vox=1.7, dtype=np.float64):
    rng = np.random.default_rng(seed)
    values = ndimage.gaussian_filter(rng.standard_normal(shape), fwhm_vox)
    return (values / values.std()).astype(dtype)


# --------------------------------------------------------------------------- equal to nilearn

@pytest.fixture(scope="module")
def r_map(connectivity_dir):
    from analysis.connectivity import SeedConnectivity

    img = SeedConnectivity(data_dir=str(connectivity_dir)).to_nifti()
    return np.asarray(img.dataobj), img.affine


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("min_size", SIZES)
@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_connectivity_r_map(r_map, threshold, min_size, two_sided):
    values, affine = r_map
    assert values.dtype == np.float32
    table = assert_same(values, affine, threshold, min_size, two_sided)
    assert len(table) >= (3 if min_size < 20 else 1)


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("min_size", SIZES)
@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_signed_smooth_maps(threshold, min_size, two_sided):
    tables = []
    for seed, dtype, affine in [
            (0, np.float64, np.diag([3.0, 3.0, 3.5, 1.0])),
            (1, np.float32, np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72],
                                      [0, 0, 0, 1]]))]:
        tables.append(assert_same(smooth_map(seed, dtype=dtype), affine, threshold, min_size,
                                  two_sided))
    table = pd.concat(tables)
    if threshold <= 1.0 and min_size <= 5:
        # several clusters with sub-peaks, of both signs when two-sided
        assert table["cluster"].max() >= 5 and (table["subpeak"] != "").sum() >= 5
        assert (table["peak_value"] < 0).any() == two_sided


def test_plateaus_binary_and_ring_clusters():
    """Equal values: plateaus reduced to their centre of mass, binary clusters, a ring
    whose centre falls outside it (nilearn takes the nearest voxel), values exactly at
    the threshold, clusters on the volume's border."""
    values = smooth_map(3, shape=(20, 22, 18))
    values[values > 1.2] = np.round(values[values > 1.2], 1)
    assert_same(values, np.eye(4), 1.0, 0, True)
    binary = np.zeros((20, 20, 20))
    binary[2:6, 2:6, 2:6] = 3.0
    binary[10:15, 10:12, 3:9] = 2.0
    binary[14, 3, 3] = 5.0
    binary[0:3, 15:20, 0:4] = 2.0          # on the border
    for vol in (binary, -binary):
        for min_size in (0, 5):
            assert_same(vol, np.eye(4), 1.0, min_size, True)
    ring = np.zeros((15, 15, 5))
    ring[3:12, 3:12, 2] = 4.0
    ring[5:10, 5:10, 2] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = assert_same(ring, np.eye(4), 1.0, 0, False)
    assert table["size_voxels"].tolist() == [56]
    at = np.round(smooth_map(4, shape=(16, 16, 16)) * 2) / 2   # many values == threshold
    for two_sided in (True, False):
        assert_same(at, np.eye(4), 0.5, 5, two_sided)
        assert_same(at, np.eye(4), 0.0, 0, two_sided)


def test_nan_and_empty():
    values = smooth_map(5)
    values[:, :, :3] = np.nan
    values[0, 0, 10] = np.inf
    assert_same(values, np.eye(4), 1.0, 0, True)
    empty = cluster_table(values, np.eye(4), 50.0)
    assert empty.empty and list(empty.columns) == COLUMNS
    assert clusters_json(empty) == []


def test_centre_size_and_regions():
    values = np.zeros((40, 48, 40))
    values[18:22, 10:14, 20:24] = np.arange(1, 5)[:, None, None]   # peak on its x = 21
    affine = np.array([[-4.0, 0, 0, 80], [0, 4, 0, -112], [0, 0, 4, -70], [0, 0, 0, 1]])
    table = cluster_table(values, affine, 0.5)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["size_voxels"] == 64 and row["size_mm3"] == 64 * 64
    weights = np.arange(1, 5)
    com_i = (weights * np.arange(18, 22)).sum() / weights.sum()
    assert row["com_x"] == pytest.approx(-4 * com_i + 80)
    assert row["com_y"] == pytest.approx(4 * 11.5 - 112) and row["com_z"] == pytest.approx(4 * 21.5 - 70)
    assert row["region"] == cluster_table(values, affine, 0.5, atlas="harvard_oxford")["region"][0]
    assert table["region"].str.len().gt(0).all()
    native = cluster_table(values, affine, 0.5, in_mni=False)
    assert (native["region"] == NOT_MNI).all()
    assert (cluster_table(values, affine, 0.5, atlas="none")["region"] == "").all()


def test_json():
    values = smooth_map(6)
    table = cluster_table(values, np.eye(4), 1.0, 5, True)
    clusters = clusters_json(table)
    assert len(clusters) == table["cluster"].nunique()
    keys = {"cluster", "peak_mm", "peak_value", "centre_mm", "size_voxels", "size_mm3", "region",
            "subpeaks"}
    for c in clusters:
        assert keys <= set(c) and len(c["peak_mm"]) == 3 and len(c["centre_mm"]) == 3
        assert len(c["subpeaks"]) <= 3
    assert sum(len(c["subpeaks"]) for c in clusters) == (table["subpeak"] != "").sum()
    json.dumps(clusters)


def test_bad_arguments():
    with pytest.raises(DataError, match="at least 0"):
        cluster_table(smooth_map(0), np.eye(4), -1.0)
    with pytest.raises(DataError, match="3D map"):
        cluster_table(np.zeros((4, 4)), np.eye(4), 1.0)
    with pytest.raises(DataError, match="whole number"):
        cluster_table(smooth_map(0), np.eye(4), 1.0, min_cluster_size=2.5)


# --------------------------------------------------------------------------- the CLI

def test_connectivity_cli_clusters(connectivity_dir, capsys):
    code = main(["connectivity", "--data", str(connectivity_dir), "--seed", "0", "-52", "18",
                 "--clusters", "--min-cluster-size", "5", "--json", "--quiet"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["atlas"] == "harvard_oxford" and info["space"] == "mni"
    assert info["clusters"] and info["min_cluster_size"] == 5
    for c in info["clusters"]:
        assert {"peak_mm", "peak_value", "size_voxels", "size_mm3", "region"} <= set(c)
        assert c["size_voxels"] >= 5 and abs(c["peak_value"]) > info["threshold"]
        assert c["region"] and c["region"] != NOT_MNI
    assert all(p["region"] for p in info["peaks"])
    # the top peak's region is the top cluster's
    assert info["peaks"][0]["region"] == info["clusters"][0]["region"]


def test_connectivity_cli_atlas_none_and_native(connectivity_dir, capsys):
    base = ["connectivity", "--data", str(connectivity_dir), "--seed", "0", "-52", "18",
            "--json", "--quiet"]
    assert main(base + ["--atlas", "none"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "clusters" not in info and {p["region"] for p in info["peaks"]} == {""}
    assert main(base + ["--space", "native", "--clusters"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {c["region"] for c in info["clusters"]} == {NOT_MNI}


@pytest.mark.parametrize("argv, words", [
    (["--atlas", "nonsense"], ["--atlas", "nonsense"]),
    (["--min-cluster-size", "-3"], ["--min-cluster-size"]),
    (["--min-cluster-size", "5"], ["--min-cluster-size", "--clusters"]),
    (["--clusters", "--threshold", "-0.2"], ["--threshold", "at least 0"]),
    (["--space", "talairach"], ["--space"]),
])
def test_cli_errors_one_line(capsys, argv, words):
    assert main(["connectivity", "--seed", "0", "-52", "18", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert all(w in err for w in words), err


def test_decoding_needs_a_cluster_threshold(capsys):
    assert main(["decoding", "--clusters"]) == 2
    err = capsys.readouterr().err
    assert "--cluster-threshold" in err and len(err.strip().splitlines()) == 1
