"""The image reader's cap and damage checks (issue 13, item 6).

One reader (``analysis.volumes.load_img``, behind ``analysis.io.load_func`` and
``load_mask``) serves the CLI and the app's uploads: it refuses, from the
header alone, an image whose data would be larger than
``$FMRI_EXPLORER_MAX_IMAGE_MB`` (2 GB by default), and a file too short for
the data its header describes, before any data is read.
"""

from __future__ import annotations

import gzip
import time
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from analysis import io
from analysis.config import DEFAULT_MAX_IMAGE_MB, MAX_IMAGE_ENV, max_image_bytes
from analysis.errors import DataError
from analysis.volumes import TRUNCATED, check_image_complete, load_img, verify_image_data

#: Nothing the checks do may allocate more than this (the claimed images are GBs).
SMALL = 16 * 2 ** 20


def header_bytes(shape, dtype) -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    return hdr.binaryblock + b"\0" * 4  # 352 bytes: header + empty extension flag


def write_bomb(path, shape=(128, 128, 128, 125), dtype=np.float32, data=b"\0" * 64):
    """A tiny ``.nii.gz`` whose header claims ``shape`` x ``dtype`` (1 GB by default)."""
    path.write_bytes(gzip.compress(header_bytes(shape, dtype) + data))
    return path


@pytest.fixture(autouse=True)
def no_cap_env(monkeypatch):
    monkeypatch.delenv(MAX_IMAGE_ENV, raising=False)


def refused(fn, *args):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError) as info:
            fn(*args)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < SMALL, f"allocated {peak / 2**20:.0f} MB before refusing"
    return str(info.value)


def test_default_cap_is_2_gb():
    assert DEFAULT_MAX_IMAGE_MB == 2048 and max_image_bytes() == 2 * 2 ** 30


@pytest.mark.parametrize("value", ["abc", "nan", "-1", "0", "inf"])
def test_bad_cap_env_falls_back_to_default(monkeypatch, value):
    monkeypatch.setenv(MAX_IMAGE_ENV, value)
    assert max_image_bytes() == 2 * 2 ** 30


def test_bomb_over_the_env_cap_refused_before_reading(tmp_path, monkeypatch):
    bomb = write_bomb(tmp_path / "bomb.nii.gz")
    assert bomb.stat().st_size < 4096
    monkeypatch.setenv(MAX_IMAGE_ENV, "512")
    message = refused(io.load_func, bomb)
    assert message == ("bomb.nii.gz: the header claims 1.0 GB of data (128x128x128x125 "
                       "float32), over the 0.5 GB limit ($FMRI_EXPLORER_MAX_IMAGE_MB)")
    # the same file, as a mask or through the generic reader
    assert "over the 0.5 GB limit" in refused(io.load_mask, bomb)
    assert "over the 0.5 GB limit" in refused(load_img, bomb)
    # a proxy image opened elsewhere is held to the same cap
    assert "over the 0.5 GB limit" in refused(load_img, nib.load(str(bomb)))


def test_bomb_under_the_cap_is_refused_as_truncated_without_decompressing_1_gb(tmp_path):
    bomb = write_bomb(tmp_path / "bomb.nii.gz")  # 1 GB claimed, under 2 GB: no data there
    assert refused(io.load_func, bomb) == f"bomb.nii.gz: {TRUNCATED}"


def test_header_bomb_of_a_terabyte_is_no_memory_error(tmp_path):
    bomb = write_bomb(tmp_path / "huge.nii.gz", (512, 512, 512, 1000), np.float64, b"")
    assert bomb.stat().st_size < 200  # the "99-byte header"
    message = refused(io.load_func, bomb)
    assert message.startswith("huge.nii.gz: the header claims 1000.0 GB of data "
                              "(512x512x512x1000 float64), over the 2.0 GB limit")


def test_uncompressed_bomb_and_truncated_nii(tmp_path, haxby_slice):
    bomb = tmp_path / "bomb.nii"
    bomb.write_bytes(header_bytes((2048, 2048, 2048, 10), np.int16))
    assert "over the 2.0 GB limit" in refused(io.load_func, bomb)
    img = nib.load(str(haxby_slice / "bold.nii.gz"))
    whole = tmp_path / "whole.nii"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), str(whole))
    short = tmp_path / "short.nii"
    short.write_bytes(whole.read_bytes()[:-1])  # one byte missing
    assert refused(io.load_func, short) == f"short.nii: {TRUNCATED}"
    assert io.load_func(whole).shape == img.shape


def test_truncated_gz_refused_at_load(tmp_path, haxby_slice):
    raw = (haxby_slice / "bold.nii.gz").read_bytes()
    for name, cut in (("half.nii.gz", len(raw) // 2), ("end_missing.nii.gz", len(raw) - 1000),
                      ("header_only.nii.gz", 40)):
        path = tmp_path / name
        path.write_bytes(raw[:cut])
        message = refused(io.load_func, path)
        assert message.startswith(f"{name}: ")
        assert TRUNCATED in message or "not a NIfTI image" in message


def test_damaged_gz_found_by_verify(tmp_path, haxby_slice):
    """Damage inside the stream (trailer intact) shows when read; verify names it."""
    raw = bytearray((haxby_slice / "bold.nii.gz").read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 200] = bytes(200)
    path = tmp_path / "damaged.nii.gz"
    path.write_bytes(bytes(raw))
    assert verify_image_data(path) == f"damaged.nii.gz: {TRUNCATED}"
    assert verify_image_data(haxby_slice / "bold.nii.gz") is None


def test_normal_images_load(tmp_path, haxby_slice):
    img = io.load_func(haxby_slice / "bold.nii.gz")
    assert img.shape == (40, 20, 1, 1452)
    assert io.load_mask(haxby_slice / "mask.nii.gz", img).shape == (40, 20, 1)
    small = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(4, 5, 6, 7))
                             .astype(np.float32), np.eye(4)), str(small))
    assert np.isfinite(io.load_func(small).get_fdata()).all()


def test_multi_member_gzip_is_not_mistaken_for_truncation(tmp_path, haxby_slice):
    """A valid file whose gzip trailer does not give the whole size (two members)."""
    img = nib.load(str(haxby_slice / "bold.nii.gz"))
    whole = tmp_path / "whole.nii"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), str(whole))
    raw = whole.read_bytes()
    two = tmp_path / "two.nii.gz"
    two.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    loaded = io.load_func(two)
    assert np.array_equal(np.asarray(loaded.dataobj), np.asarray(img.dataobj))
    two.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:-10]))
    with pytest.raises(DataError, match=TRUNCATED):
        io.load_func(two)


def test_cap_lowered_by_env_refuses_a_real_image(monkeypatch, haxby_slice):
    monkeypatch.setenv(MAX_IMAGE_ENV, "1")
    message = refused(io.load_func, haxby_slice / "bold.nii.gz")
    assert message == ("bold.nii.gz: the header claims 2.2 MB of data (40x20x1x1452 int16), "
                       "over the 1.0 MB limit ($FMRI_EXPLORER_MAX_IMAGE_MB)")
    monkeypatch.setenv(MAX_IMAGE_ENV, "3")
    assert io.load_func(haxby_slice / "bold.nii.gz").shape[3] == 1452


def test_check_image_complete_ignores_in_memory_images():
    check_image_complete(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)))


# --------------------------------------------------------------------------- NaN images

def nan_image(tmp_path, haxby_slice, where="mask"):
    img = nib.load(str(haxby_slice / "bold.nii.gz"))
    mask = np.asarray(nib.load(str(haxby_slice / "mask.nii.gz")).dataobj).astype(bool)
    data = np.asarray(img.dataobj).astype(np.float32)
    if where == "mask":
        data[mask] = np.nan
    else:
        data[~mask] = np.inf
    hdr = img.header.copy()
    hdr.set_data_dtype(np.float32)
    path = tmp_path / f"nan_{where}.nii.gz"
    nib.save(nib.Nifti1Image(data, img.affine, hdr), str(path))
    return path


def test_nan_image_is_named_as_such_not_constant(tmp_path, haxby_slice):
    path = nan_image(tmp_path, haxby_slice)
    mask = haxby_slice / "mask.nii.gz"
    assert io.count_nonfinite(path, mask) == 530
    with pytest.raises(DataError, match="nan_mask.nii.gz: the image contains NaN or infinite"):
        io.check_finite(path, mask)
    # what nilearn's masker returns for it: zeros, i.e. "constant" voxels
    zeros = np.zeros((1452, 530), np.float32)
    with pytest.raises(DataError, match="NaN or infinite") as info:
        io.check_masked(zeros, path)
    assert "constant" not in str(info.value)
    # an integer image cannot hold NaN: nothing read
    assert io.count_nonfinite(haxby_slice / "bold.nii.gz", mask) == 0


def test_nan_outside_the_mask_is_allowed(tmp_path, haxby_slice):
    path = nan_image(tmp_path, haxby_slice, where="outside")
    mask = haxby_slice / "mask.nii.gz"
    assert io.count_nonfinite(path, mask) == 0
    io.check_finite(path, mask)
    assert io.count_nonfinite(path) == 40 * 20 - 530
