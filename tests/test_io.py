"""User-file readers in analysis.io: the real Haxby slice, and every bad input."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis import io
from analysis.atomic import ensure_writable_dir
from analysis.errors import DataError


@pytest.fixture
def func_img():
    rng = np.random.default_rng(0)
    return nib.Nifti1Image(rng.standard_normal((4, 5, 3, 10)).astype(np.float32), np.eye(4))


@pytest.fixture
def func_path(tmp_path, func_img):
    path = tmp_path / "bold.nii.gz"
    func_img.to_filename(str(path))
    return path


def test_real_slice_loads(haxby_slice):
    img = io.load_func(haxby_slice / "bold.nii.gz")
    assert img.shape == (40, 20, 1, 1452)
    mask = io.load_mask(haxby_slice / "mask.nii.gz", img)
    assert int(np.asarray(mask.dataobj).sum()) == 530
    labels = io.load_labels(haxby_slice / "attributes.txt", n_volumes=img.shape[3])
    assert len(labels) == 1452
    assert labels.chunks.nunique() == 12
    assert set(labels.labels) == {"rest", "face", "house", "shoe", "cat", "scissors",
                                  "scrambledpix", "bottle", "chair"}
    assert (labels.loc[labels.code == 1, "labels"] == "face").all()
    assert io.resolve_label("4", labels) == "cat"
    assert io.resolve_label("cat", labels) == "cat"
    assert io.t_r_of(img) == pytest.approx(2.5)


def test_label_names_table(tmp_path, haxby_slice):
    table = tmp_path / "names.txt"
    table.write_text("\n".join(f"{k} {v.upper()}" for k, v in io.HAXBY_CODES.items()))
    labels = io.load_labels(haxby_slice / "attributes.txt", names=table)
    assert "FACE" in set(labels.labels)
    js = tmp_path / "names.json"
    js.write_text('{"0": "rest", "1": "face"}')
    with pytest.raises(DataError, match=r"attributes.txt: label codes \[2, 3"):
        io.load_labels(haxby_slice / "attributes.txt", names=js)


def test_haxby_text_format(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("labels chunks\nrest 0\nface 0\ncat 1\n")
    labels = io.load_labels(path, n_volumes=3)
    assert list(labels.labels) == ["rest", "face", "cat"]
    assert list(labels.chunks) == [0, 0, 1]


def test_not_nifti(tmp_path):
    path = tmp_path / "bold.nii.gz"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"bold.nii.gz: not a NIfTI image"):
        io.load_func(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.nii.gz: file not found"):
        io.load_func(tmp_path / "nope.nii.gz")


def test_3d_where_4d_needed(tmp_path):
    path = tmp_path / "anat.nii.gz"
    nib.Nifti1Image(np.ones((4, 5, 3), np.float32), np.eye(4)).to_filename(str(path))
    with pytest.raises(DataError, match=r"anat.nii.gz: a 4D image .* 3D"):
        io.load_func(path)


def test_mask_shape_mismatch(tmp_path, func_img):
    path = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(np.ones((4, 5, 2), np.uint8), np.eye(4)).to_filename(str(path))
    with pytest.raises(DataError, match=r"mask.nii.gz: mask shape \(4, 5, 2\) does not match"):
        io.load_mask(path, func_img)


def test_mask_affine_mismatch(tmp_path, func_img):
    path = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.diag([2, 2, 2, 1])).to_filename(str(path))
    with pytest.raises(DataError, match="mask.nii.gz: mask affine does not match"):
        io.load_mask(path, func_img)


def test_mask_selecting_no_voxel(tmp_path, func_img):
    path = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(np.zeros((4, 5, 3), np.uint8), np.eye(4)).to_filename(str(path))
    with pytest.raises(DataError, match="mask.nii.gz: the mask selects no voxel"):
        io.load_mask(path, func_img)


def test_labels_length_mismatch(haxby_slice):
    with pytest.raises(DataError, match="attributes.txt: 1452 labels for 1000 volumes"):
        io.load_labels(haxby_slice / "attributes.txt", n_volumes=1000)


def test_unknown_label_name(haxby_slice):
    labels = io.load_labels(haxby_slice / "attributes.txt")
    with pytest.raises(DataError, match="unknown label 'dog'"):
        io.resolve_label("dog", labels)
    with pytest.raises(DataError, match="unknown label '42'"):
        io.resolve_label("42", labels)


def test_confounds_wrong_rows(tmp_path):
    path = tmp_path / "confounds.tsv"
    pd.DataFrame({"trans_x": [np.nan, 0.1, 0.2], "csf": [1.0, 2.0, 3.0]}).to_csv(
        path, sep="\t", index=False, na_rep="n/a")
    df = io.load_confounds(path, n_volumes=3)
    assert np.isnan(df.trans_x[0])
    with pytest.raises(DataError, match="confounds.tsv: 3 confound rows for 10 volumes"):
        io.load_confounds(path, n_volumes=10)


def test_nan_and_constant_voxels():
    data = np.random.default_rng(0).standard_normal((10, 4))
    io.check_masked(data)
    nan = data.copy()
    nan[3, 1] = np.nan
    with pytest.raises(DataError, match="bold.nii.gz: 1 voxels in the mask contain NaN"):
        io.check_masked(nan, "bold.nii.gz")
    const = data.copy()
    const[:, 2] = 5.0
    with pytest.raises(DataError, match="1 voxels in the mask have a constant"):
        io.check_masked(const, "bold.nii.gz")


def test_constant_voxels_through_masked_data(tmp_path, func_img):
    # the decoding loader refuses a mask that covers constant voxels
    from analysis.datasets import haxby

    data = np.asarray(func_img.dataobj).copy()
    data[0, 0, 0, :] = 3.0
    path = tmp_path / "bold.nii.gz"
    nib.Nifti1Image(data, np.eye(4)).to_filename(str(path))
    mask = nib.Nifti1Image(np.ones((4, 5, 3), np.uint8), np.eye(4))
    with pytest.raises(DataError, match="bold.nii.gz: 1 voxels in the mask have a constant"):
        haxby.masked_data(path, mask, standardize=False)


def test_cache_folder_not_writable(tmp_path):
    # a path below a regular file cannot be a folder, whoever runs the tests (even root)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(DataError, match="cache: folder is not writable"):
        ensure_writable_dir(blocker / "cache")
    from analysis.datasets import haxby

    with pytest.raises(DataError, match="not writable"):
        haxby.generate(blocker / "cache", size="small")
