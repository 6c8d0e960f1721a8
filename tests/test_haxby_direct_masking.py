"""The masked data read straight from the image equal NiftiMasker's, bit for bit.

``haxby.masked_data`` reads unscaled 8/16-bit integer and float32 images itself (a
volume at a time, standardized by blocks of voxels), 4-6x faster than NiftiMasker on
the full-size data; every other image (another grid, float64, scaled, NaN) goes
through NiftiMasker. Either way the numbers are NiftiMasker's.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiMasker

from analysis.datasets import haxby

AFFINE = np.array([[3.0, 0, 0, -30], [0, 3, 0, -40], [0, 0, 3, -20], [0, 0, 0, 1]])


def _mask(shape=(24, 20, 14)):
    """More voxels than one block of the direct path (4,096), with holes."""
    m = np.zeros(shape, dtype=bool)
    m[1:-1, 1:-1, 1:-1] = True
    m[::5, ::3, ::2] = False
    assert m.sum() > 4096
    return nib.Nifti1Image(m.astype(np.uint8), AFFINE)


def _image(tmp_path, dtype, shape=(24, 20, 14, 12), name="bold.nii.gz", slope=None,
           affine=AFFINE, nan=False):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape) * 20 + 100
    x[..., :] += np.linspace(0, 5, shape[3])          # a drift: the mean matters
    x = x.astype(dtype)
    if nan:
        x[5, 5, 5, 3] = np.nan
    img = nib.Nifti1Image(x, affine)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    path = tmp_path / name
    nib.save(img, str(path))
    return path


def _reference(img, mask, standardize):
    img = img if isinstance(img, nib.Nifti1Image) else str(img)
    return NiftiMasker(mask_img=mask, standardize="zscore_sample" if standardize else None
                       ).fit_transform(img)


@pytest.mark.parametrize("dtype", ["int16", "uint8", "uint16", "float32", "float64", "int32"])
@pytest.mark.parametrize("standardize", [True, False])
def test_masked_data_equals_niftimasker(tmp_path, dtype, standardize):
    path = _image(tmp_path, dtype)
    mask = _mask()
    got = haxby.masked_data(path, mask, standardize, shared=False)
    ref = _reference(path, mask, standardize)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


def test_c_ordered_image_equals_niftimasker(tmp_path):
    """An uncompressed image read as a C-ordered array (not nibabel's usual Fortran
    order) is gathered by its own index arithmetic."""
    path = _image(tmp_path, "int16", name="bold.nii")
    img = nib.load(str(path))
    c_img = nib.Nifti1Image(np.ascontiguousarray(np.asarray(img.dataobj)), AFFINE,
                            img.header)
    mask = _mask()
    assert not np.asanyarray(c_img.dataobj).flags.f_contiguous
    got = haxby.masked_data(c_img, mask, True, shared=False)
    np.testing.assert_array_equal(got, _reference(c_img, mask, True))


@pytest.mark.parametrize("case", ["scaled", "other grid", "nan"])
def test_other_images_still_equal_niftimasker(tmp_path, case):
    if case == "scaled":
        path = _image(tmp_path, "int16", slope=0.5)
    elif case == "other grid":   # NiftiMasker resamples the image to the mask's grid
        shifted = AFFINE.copy()
        shifted[:3, 3] += 1.5
        path = _image(tmp_path, "int16", affine=shifted)
    else:                        # NiftiMasker reads a NaN as 0
        path = _image(tmp_path, "float32", nan=True)
    mask = _mask()
    ref = _reference(path, mask, True)
    got = haxby.masked_data(path, mask, True, shared=False)
    np.testing.assert_array_equal(got, ref)


def test_warm_up_masks_into_the_cache_folder_only(tmp_path):
    """``ensure_on_disk`` (the server's warm-up of the other masks) writes the masked data
    into the cache folder, keeps nothing in memory, and a later read gives NiftiMasker's
    numbers from that file."""
    from analysis.cache import cache_file
    from analysis.datasets.haxby_masked import MEMORY, cache_name, ensure_on_disk

    path, mask = _image(tmp_path, "int16"), _mask()
    before = sorted(p.name for p in tmp_path.iterdir())
    target = cache_file(cache_name(path, mask, True))
    assert not target.exists()
    haxby.clear_memory_cache()
    assert ensure_on_disk(path, mask, True)
    assert target.is_file() and len(MEMORY) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # nothing beside the data
    mtime = target.stat().st_mtime_ns
    assert ensure_on_disk(path, mask, True) and target.stat().st_mtime_ns == mtime  # once
    np.testing.assert_array_equal(haxby.masked_data(path, mask, True),
                                  _reference(path, mask, True))
