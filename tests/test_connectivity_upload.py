"""Connectivity tab uploads (no browser): the user's own 4D NIfTI + confounds are
analysed in that session only, with the same numbers as on the files directly."""

from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis.connectivity import CACHE, SeedConnectivity
from analysis.connectivity.reference import reference_seed_map
from analysis.datasets import development as dev


@pytest.fixture(scope="module")
def user_files(connectivity_dir, tmp_path_factory):
    """A user's files written from the small synthetic dataset (subject 1): a 4D NIfTI
    and an fMRIPrep-style confounds TSV, under the user's own names."""
    files = dev.subject_files(connectivity_dir, subject=1)
    folder = tmp_path_factory.mktemp("user")
    img = nib.load(files["func"])
    func = folder / "sub-01_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), func)
    conf = pd.read_csv(files["confounds"], sep="\t")
    confounds = folder / "sub-01_confounds.tsv"
    conf.to_csv(confounds, sep="\t", index=False, na_rep="n/a")
    short = folder / "short_confounds.tsv"
    conf.iloc[:-3].to_csv(short, sep="\t", index=False, na_rep="n/a")
    return {"func": func, "confounds": confounds, "short": short, "n_volumes": img.shape[3]}


def upload(tab, role, path):
    """What the browser's file input does: a file name and its bytes."""
    widget = tab.upload.inputs[role]
    widget.filename = path.name
    widget.value = path.read_bytes()


def click(button):
    button.clicks += 1


@pytest.fixture
def tab(connectivity_dir):
    from dashboard.connectivity import ConnectivityTab

    tab = ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))
    yield tab
    tab.forget_uploads()
    tab.upload.uploads.cleanup()


def test_uploaded_files_give_the_map_of_the_files(tab, user_files):
    dataset_summary = tab.summary.object
    assert tab.w_analyse.disabled                    # nothing uploaded yet
    upload(tab, "func", user_files["func"])
    upload(tab, "confounds", user_files["confounds"])
    assert not tab.w_analyse.disabled
    click(tab.w_analyse)
    m = tab.model
    assert m.uses_own_data
    direct = SeedConnectivity.from_files(user_files["func"], confounds=user_files["confounds"])
    np.testing.assert_array_equal(m.result.r, direct.ensure().r)
    assert tab.summary.object == direct.summary() != dataset_summary
    np.testing.assert_array_equal(tab.viewer.stat_map.values, direct.r_map().values)
    assert list(tab.w_columns.value) == direct.confound_columns == list(
        pd.read_csv(user_files["confounds"], sep="\t").columns)
    assert "sub-01_bold.nii.gz" in tab.data_source.object and tab.w_subject.disabled
    assert not tab.w_dataset.disabled
    # the seed's own pipeline on the same files
    r, _ = reference_seed_map(user_files["func"], m.seed_mm, m.radius_mm,
                              confounds=str(user_files["confounds"]))
    assert np.abs(m.result.r - r).max() < 1e-5
    # moving the seed reuses the cleaned upload (no re-cleaning)
    data = m.cleaned_data()
    tab.viewer.tap("axial", 30.0, -20.0)
    assert m.seed_mm == (28.0, -20.0, 18.0) and m.cleaned_data() is data
    direct.seed_mm = (28.0, -20.0, 18.0)
    assert tab.summary.object == direct.summary()


def test_uploads_are_cached_under_this_sessions_folder_only(tab, user_files, connectivity_dir):
    from dashboard.connectivity import ConnectivityTab

    upload(tab, "func", user_files["func"])
    click(tab.w_analyse)
    key = tab.model.subject_data().key
    folder = str(tab.upload.uploads.folder)
    assert key.startswith(folder + os.sep)           # a path in this session's folder
    assert any(k[0] == key for k in CACHE.keys())
    other = ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))
    try:
        assert not other.model.uses_own_data           # another session: the dataset
        assert other.upload.uploads.folder != tab.upload.uploads.folder
        assert other.summary.object != tab.summary.object
    finally:
        other.upload.uploads.cleanup()
    # back to the built-in dataset: the upload's cleaned data leaves the shared cache
    click(tab.w_dataset)
    assert not tab.model.uses_own_data and not any(k[0] == key for k in CACHE.keys())
    assert tab.summary.object == SeedConnectivity(data_dir=str(connectivity_dir)).summary()
    assert tab.data_source.object == "**Data:** the built-in dataset"
    assert tab.w_dataset.disabled and not tab.w_subject.disabled
    # the session ends: its cleaned uploads and folder go
    click(tab.w_analyse)
    assert any(k[0] == key for k in CACHE.keys())
    tab.forget_uploads()
    tab.upload.uploads.cleanup()
    assert not any(k[0] == key for k in CACHE.keys())
    assert not tab.upload.uploads.folder.exists()


def test_confounds_with_the_wrong_rows_are_refused_and_the_map_stays(tab, user_files):
    before_map, before_summary = tab.viewer.stat_map, tab.summary.object
    upload(tab, "func", user_files["func"])
    upload(tab, "confounds", user_files["short"])
    click(tab.w_analyse)
    n = user_files["n_volumes"]
    assert tab.upload_status.object == (f"**refused:** short_confounds.tsv: {n - 3} "
                                        f"confound rows for {n} volumes")   # the user's name
    assert not tab.model.uses_own_data
    assert tab.viewer.stat_map is before_map and tab.summary.object == before_summary
    assert not tab.w_analyse.disabled
    folder = str(tab.upload.uploads.folder) + os.sep                  # nothing cached
    assert not any(str(k[0]).startswith(folder) for k in CACHE.keys())
    # the tab keeps working, and a good confounds file is then accepted
    tab.w_threshold.value = 0.3
    assert "above 0.3" in tab.summary.object
    upload(tab, "confounds", user_files["confounds"])
    click(tab.w_analyse)
    assert tab.model.uses_own_data and tab.upload_status.object == ""


def test_a_corrupt_func_is_refused_at_upload(tab, tmp_path):
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"\x00" * 50)
    upload(tab, "func", bad)
    assert "refused" in tab.upload.status.object and "scan.nii.gz" in tab.upload.status.object
    assert tab.upload.paths == {} and tab.w_analyse.disabled


def test_a_seed_outside_the_uploaded_brain_moves_inside(tab, user_files, tmp_path):
    """Files covering only part of the brain: the seed goes to the brain's centre."""
    img = nib.load(user_files["func"])
    data = np.asarray(img.dataobj).copy()
    data[:, : data.shape[1] // 2 + 2] = 0                 # the posterior half is gone
    part = tmp_path / "front.nii.gz"
    nib.save(nib.Nifti1Image(data, img.affine, img.header), part)
    upload(tab, "func", part)
    click(tab.w_analyse)
    m = tab.model
    assert m.uses_own_data and m.seed_mm != (0.0, -52.0, 18.0)
    assert m.cleaned_data().mask[tuple(np.round(nib.affines.apply_affine(
        np.linalg.inv(m.cleaned_data().affine), m.seed_mm)).astype(int))]
    assert tab.viewer.marker_mm == tuple(m.seed_mm)


def test_a_header_without_repetition_time_asks_for_it(tab, user_files, tmp_path):
    img = nib.load(user_files["func"])
    header = img.header.copy()
    header.set_zooms(header.get_zooms()[:3] + (0.0,))
    no_tr = tmp_path / "no_tr.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, header), no_tr)
    upload(tab, "func", no_tr)
    click(tab.w_analyse)
    assert not tab.model.uses_own_data
    assert tab.upload_status.object == ("**refused:** no_tr.nii.gz: no repetition time in the "
                                        "header: enter it (s) under 'repetition time'")
    tab.w_upload_tr.value = 6.0                      # the 0.1 Hz low-pass is above Nyquist
    click(tab.w_analyse)
    assert not tab.model.uses_own_data
    assert tab.upload_status.object == ("**refused:** low_pass 0.1 Hz is at or above the "
                                        "Nyquist frequency 0.0833333 Hz (t_r 6 s)")
    tab.w_upload_tr.value = 2.5
    click(tab.w_analyse)
    assert tab.model.uses_own_data and tab.model.t_r == 2.5
    direct = SeedConnectivity.from_files(no_tr, t_r=2.5)
    np.testing.assert_array_equal(tab.model.result.r, direct.ensure().r)


def test_show_code_on_uploads_runs_beside_the_users_files(tab, user_files):
    upload(tab, "func", user_files["func"])
    upload(tab, "confounds", user_files["confounds"])
    click(tab.w_analyse)
    tab.model.seed_mm = (-40.0, -66.0, 40.0)
    code = tab.export_code()
    assert 'FUNC = "sub-01_bold.nii.gz"' in code and 'CONFOUNDS = "sub-01_confounds.tsv"' in code
    assert str(tab.upload.uploads.folder) not in code
    assert "import analysis" not in code and "from analysis" not in code
    assert tab.export_params()["data"] == ("your files: func sub-01_bold.nii.gz, "
                                           "confounds sub-01_confounds.tsv")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=user_files["func"].parent, timeout=600,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"summary: {tab.export_summary()}" in out.stdout.splitlines()
