"""Core helpers: xarray volumes, atomic writes, errors, package boundaries, CLI."""

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import from_matvec

from analysis.atomic import atomic_dir, atomic_path, ensure_writable_dir, save_nifti
from analysis.errors import DataError
from analysis.volumes import (
    affine_of, is_axis_aligned, mm_to_voxel, to_masked, to_nifti, to_xarray, voxel_to_mm)


def _img(shape=(5, 6, 7), affine=None, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if affine is None:
        affine = np.array([[-3.0, 0, 0, 90], [0, 4.0, 0, -100], [0, 0, 5.0, -50], [0, 0, 0, 1]])
    return nib.Nifti1Image(rng.standard_normal(shape).astype(dtype), affine)


def test_volume_round_trip_is_exact():
    img = _img()
    da = to_xarray(img, name="map")
    assert da.dims == ("x", "y", "z")
    # x coordinates from the (negative) diagonal, in mm
    np.testing.assert_allclose(da.x.values, 90 - 3.0 * np.arange(5))
    np.testing.assert_allclose(da.z.values, -50 + 5.0 * np.arange(7))
    back = to_nifti(da)
    assert np.array_equal(np.asarray(back.dataobj), np.asarray(img.dataobj))
    assert np.array_equal(back.affine, img.affine)
    assert not da.attrs["resampled"]


def test_masked_vector_round_trip_is_exact():
    img = _img()
    data = np.asarray(img.dataobj)
    mask = nib.Nifti1Image((data > 0).astype(np.uint8), img.affine)
    vector = data[data > 0].astype(np.float64)
    da = to_xarray(vector, mask=mask)
    assert np.isnan(da.values[data <= 0]).all()
    assert np.array_equal(to_masked(da, mask), vector)
    with pytest.raises(DataError, match="one per mask voxel"):
        to_xarray(vector[:-1], mask=mask)


def test_coordinates_match_voxel_to_mm():
    img = _img()
    da = to_xarray(img)
    for ijk in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        xyz = voxel_to_mm(img.affine, ijk)
        assert da.x.values[ijk[0]] == pytest.approx(xyz[0])
        assert da.y.values[ijk[1]] == pytest.approx(xyz[1])
        assert da.z.values[ijk[2]] == pytest.approx(xyz[2])
        assert tuple(mm_to_voxel(affine_of(da), xyz)) == ijk
        assert float(da.sel(x=xyz[0], y=xyz[1], z=xyz[2])) == pytest.approx(
            np.asarray(img.dataobj)[ijk])


def test_oblique_image_is_resampled_once_and_says_so():
    theta = np.deg2rad(12)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                    [0, 0, 1]]) @ np.diag([3.0, 3.0, 4.0])
    img = _img(shape=(10, 12, 8), affine=from_matvec(rot, [-15, -18, -16]))
    assert not is_axis_aligned(img.affine)
    da = to_xarray(img)
    assert da.attrs["resampled"] is True
    assert "oblique" in da.attrs["note"]
    assert is_axis_aligned(da.attrs["affine"])
    # voxel sizes kept
    np.testing.assert_allclose(np.abs(np.diag(da.attrs["affine"])[:3]), [3.0, 3.0, 4.0])
    # and the resampled image still round-trips exactly
    back = to_nifti(da)
    assert np.array_equal(np.asarray(back.dataobj), da.values)


def test_not_nifti_and_4d_errors(tmp_path):
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("not an image")
    with pytest.raises(DataError, match="notes.nii.gz: not a NIfTI image"):
        to_xarray(bad)
    four_d = nib.Nifti1Image(np.zeros((3, 3, 3, 4), np.float32), np.eye(4))
    with pytest.raises(DataError, match="expected a 3D image"):
        to_xarray(four_d)


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "dataset"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            tmp.mkdir()
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        tmp.mkdir()
        (tmp / "whole.txt").write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
    assert (target / "whole.txt").read_text() == "whole"
    # a folder is never replaced
    with pytest.raises(DataError, match="already exists"):
        with atomic_dir(target) as tmp:
            tmp.mkdir()
            (tmp / "other.txt").write_text("other")
    assert sorted(p.name for p in target.iterdir()) == ["whole.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert target.read_text() == "whole"


def test_save_nifti_atomic(tmp_path):
    img = _img()
    path = save_nifti(img, tmp_path / "map.nii.gz")
    assert [p.name for p in tmp_path.iterdir()] == ["map.nii.gz"]
    assert np.array_equal(nib.load(path).get_fdata(), img.get_fdata())


def test_unwritable_cache_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="folder is not writable"):
        ensure_writable_dir(blocker / "cache")


def test_analysis_never_imports_panel_or_holoviews():
    code = (
        "import importlib, pkgutil, sys, analysis\n"
        "for m in pkgutil.walk_packages(analysis.__path__, 'analysis.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('panel', 'holoviews', 'bokeh'))\n"
        "print(len(list(pkgutil.walk_packages(analysis.__path__))))\n"
        "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 8  # it really walked the package


def test_cli_error_is_one_line_without_traceback(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = subprocess.run([sys.executable, "-m", "analysis.cli", "data", "encoding", "--size",
                          "small", "--out", str(blocker / "data"), "--quiet"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "not writable" in lines[0]
    assert "Traceback" not in out.stderr


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "analysis.cli", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0
    for name in ("data", "serve"):
        assert name in out.stdout


def test_xarray_imports_dask_only_when_something_uses_it():
    """Volumes do not import dask.array (0.5 s as the app starts); Dask arrays made
    afterwards are still Dask arrays to xarray (lazy, chunked)."""
    code = (
        "import sys\nimport numpy as np\nimport xarray as xr\n"
        "from analysis.volumes import to_xarray\nfrom analysis import xarray_compat\n"
        "assert xarray_compat.install()\n"
        "import nibabel as nib\nvol = to_xarray(nib.Nifti1Image(np.ones((3, 4, 5)), np.eye(4)))\n"
        "m = (vol.mean('x') + vol.sel(x=0)).where(vol.sel(x=1) > 0)\n"
        "xr.concat([vol, vol], 'x').to_dataframe('v')\n"
        "assert 'dask' not in sys.modules, 'dask imported'\n"
        "import dask.array as da\n"
        "d = xr.DataArray(da.zeros((4, 4), chunks=2))\n"
        "assert d.chunks == ((2, 2), (2, 2)), d.chunks\n"
        "assert type((d + 1).data).__module__.startswith('dask'), type((d + 1).data)\n"
        "assert xr.DataArray(np.zeros(3)).chunks is None\n"
        "from xarray.namedarray.pycompat import array_type\n"
        "assert array_type('dask') == (da.Array,)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
