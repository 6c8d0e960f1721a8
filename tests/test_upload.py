"""Uploads: limits, type checks, unsafe names refused, files per session, cleaned up."""

import gzip
import io

import nibabel as nib
import numpy as np
import pytest

from analysis.errors import DataError
from dashboard.upload import SessionUploads, UploadPanel, check_name


def _nifti_gz(shape=(4, 5, 6, 10)) -> bytes:
    img = nib.Nifti1Image(np.random.default_rng(0).standard_normal(shape).astype(np.float32),
                          np.eye(4))
    return gzip.compress(img.to_bytes())


@pytest.mark.parametrize("name", ["../etc/passwd.nii.gz", "..\\x.nii.gz", "/tmp/x.nii.gz",
                                  "a/b.nii.gz", ".hidden.nii.gz", "x..nii.gz", ""])
def test_unsafe_names_are_refused(name):
    with pytest.raises(DataError, match="refused file name|must end in"):
        check_name(name, "func")


def test_accepts_a_4d_nifti_under_a_server_chosen_name():
    uploads = SessionUploads()
    path = uploads.accept("func", "my run 1.nii.gz", _nifti_gz())
    assert path.parent == uploads.folder and path.name == "func.nii.gz"
    assert nib.load(path).shape == (4, 5, 6, 10)
    uploads.cleanup()
    assert not uploads.folder.exists()


def test_over_the_limit_is_refused_with_the_limit_named():
    uploads = SessionUploads(max_bytes=1000)
    with pytest.raises(DataError, match="over the upload limit"):
        uploads.accept("func", "big.nii.gz", _nifti_gz())
    assert list(uploads.folder.iterdir()) == []


def test_non_nifti_and_3d_func_are_refused():
    uploads = SessionUploads()
    with pytest.raises(DataError, match="not a gzipped NIfTI"):
        uploads.accept("func", "notes.nii.gz", b"hello, I am text")
    with pytest.raises(DataError, match="cannot read it|not a NIfTI"):
        uploads.accept("func", "corrupt.nii", b"\x00" * 400)
    with pytest.raises(DataError, match="4D"):
        uploads.accept("func", "anat.nii.gz", _nifti_gz(shape=(4, 5, 6)))
    with pytest.raises(DataError, match="must end in"):
        uploads.accept("func", "data.exe", b"MZ")
    assert list(uploads.folder.iterdir()) == []  # nothing half-written left


def test_two_sessions_have_separate_folders():
    a, b = SessionUploads(), SessionUploads()
    a.accept("labels", "labels.txt", b"labels chunks\nrest 0\n")
    assert a.folder != b.folder and not any(b.folder.iterdir())


def test_upload_panel_reports_and_keeps_going():
    panel = UploadPanel(roles=["func", "mask"])
    func = panel.inputs["func"]
    func.filename = "../../evil.nii.gz"
    func.value = _nifti_gz()
    assert panel.paths == {}
    assert "refused" in panel.status.object
    func.filename = "run.nii.gz"
    func.value = _nifti_gz()
    assert panel.paths["func"].name == "func.nii.gz"
    assert func.value is None  # bytes not kept in the widget
