"""Volumes as xarray: one helper from NIfTI (or a masked vector) to
``xr.DataArray`` with ``x``, ``y``, ``z`` coordinates in mm, and back.

The array keeps the image's voxel order (``values[i, j, k]`` is voxel
``(i, j, k)``) and its affine in ``attrs["affine"]``, so the round trip is
exact. Coordinates come from the affine's diagonal: an image whose affine is
oblique (rotated or with permuted axes, as scanner data often is) is resampled
once onto an axis-aligned grid of the same voxel sizes; ``attrs["resampled"]``
says so and ``attrs["note"]`` says it in words.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import xarray as xr

from .errors import DataError
from .xarray_compat import install as _lazy_dask

_lazy_dask()  # xarray imports Dask when something uses it, not at the first array
# (every analysis module imports this one)

DIMS = ("x", "y", "z")


def is_axis_aligned(affine: np.ndarray, atol: float = 1e-6) -> bool:
    """True when the affine's 3x3 part is diagonal (no rotation, no axis swap)."""
    rot = np.asarray(affine, dtype=float)[:3, :3]
    off = rot - np.diag(np.diag(rot))
    return bool(np.all(np.abs(off) <= atol * np.abs(np.diag(rot)).max()))


def load_img(img, path_hint=None) -> nib.Nifti1Image:
    """A nibabel image from a path or an image; a clear error for non-NIfTI."""
    if isinstance(img, (str, Path)):
        path = Path(img)
        if not path.exists():
            raise DataError("file not found", path)
        try:
            img = nib.load(str(path))
        except Exception as exc:  # nibabel raises several types
            raise DataError(f"not a NIfTI image ({type(exc).__name__})", path) from None
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise DataError(f"expected a NIfTI image, got {type(img).__name__}", path_hint)
    return img


def axis_aligned(img: nib.Nifti1Image, interpolation: str = "continuous"):
    """Return ``(img, resampled)``: ``img`` itself if axis-aligned, else resampled once."""
    if is_axis_aligned(img.affine):
        return img, False
    from nilearn.image import resample_img

    zooms = np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(axis=0))
    target = np.diag(np.abs(zooms))
    out = resample_img(img, target_affine=target, interpolation=interpolation,
                       force_resample=True, copy_header=True)
    return out, True


def _coords(affine: np.ndarray, shape) -> dict:
    affine = np.asarray(affine, dtype=float)
    return {dim: affine[i, i] * np.arange(shape[i]) + affine[i, 3]
            for i, dim in enumerate(DIMS)}


def to_xarray(img, mask=None, name: str | None = None, fill: float = np.nan,
              interpolation: str = "continuous") -> xr.DataArray:
    """A 3D volume as ``xr.DataArray`` with dims ``(x, y, z)`` in mm.

    Parameters
    ----------
    img : Nifti1Image, path, or array
        A 3D image, or a 1D vector of ``n_voxels`` values in mask order
        (then ``mask`` is required).
    mask : Nifti1Image or path, optional
        The mask that ``img`` (a vector) was taken with.
    name : str, optional
        The DataArray's name.
    fill : float
        Value outside the mask when unmasking a vector (NaN: transparent).
    interpolation : str
        Used only to resample an oblique image (``"nearest"`` for masks).
    """
    if mask is not None and not isinstance(img, (nib.spatialimages.SpatialImage, str, Path)):
        mask_img = load_img(mask)
        mask_data = np.asarray(mask_img.dataobj).astype(bool)
        vector = np.asarray(img)
        if vector.ndim != 1 or vector.shape[0] != mask_data.sum():
            raise DataError(f"a masked vector needs {int(mask_data.sum())} values "
                            f"(one per mask voxel), got shape {vector.shape}")
        dtype = np.result_type(vector.dtype, np.asarray(fill).dtype) \
            if not np.isnan(fill) else np.result_type(vector.dtype, np.float32)
        data = np.full(mask_data.shape, fill, dtype=dtype)
        data[mask_data] = vector
        img = nib.Nifti1Image(data, mask_img.affine)
    img = load_img(img)
    if len(img.shape) != 3:
        if len(img.shape) == 4 and img.shape[3] == 1:
            img = nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine)
        else:
            raise DataError(f"expected a 3D image, got shape {img.shape}")
    img, resampled = axis_aligned(img, interpolation=interpolation)
    data = np.asanyarray(img.dataobj)
    attrs = {"affine": np.asarray(img.affine, dtype=float), "units": "mm",
             "resampled": resampled}
    if resampled:
        attrs["note"] = "resampled from an oblique affine to an axis-aligned grid for display"
    return xr.DataArray(data, dims=DIMS, coords=_coords(img.affine, data.shape),
                        name=name, attrs=attrs)


def affine_of(da: xr.DataArray) -> np.ndarray:
    """The affine of a volume: ``attrs["affine"]`` or one built from the coordinates."""
    if "affine" in da.attrs:
        return np.asarray(da.attrs["affine"], dtype=float)
    affine = np.eye(4)
    for i, dim in enumerate(DIMS):
        c = np.asarray(da[dim].values, dtype=float)
        affine[i, i] = (c[1] - c[0]) if c.size > 1 else 1.0
        affine[i, 3] = c[0]
    return affine


def to_nifti(da: xr.DataArray, dtype=None) -> nib.Nifti1Image:
    """Back to a NIfTI image (exact inverse of :func:`to_xarray`)."""
    data = np.asarray(da.transpose(*DIMS).values)
    if dtype is not None:
        data = data.astype(dtype)
    return nib.Nifti1Image(data, affine_of(da))


def to_masked(da: xr.DataArray, mask) -> np.ndarray:
    """The values of a volume inside ``mask``, in mask order: shape ``(n_voxels,)``."""
    mask_data = np.asarray(load_img(mask).dataobj).astype(bool)
    data = np.asarray(da.transpose(*DIMS).values)
    if data.shape != mask_data.shape:
        raise DataError(f"volume shape {data.shape} does not match mask shape {mask_data.shape}")
    return data[mask_data]


def voxel_to_mm(affine, ijk) -> np.ndarray:
    """Voxel indices ``(i, j, k)`` to mm coordinates."""
    ijk = np.asarray(ijk, dtype=float)
    return nib.affines.apply_affine(np.asarray(affine, dtype=float), ijk)


def mm_to_voxel(affine, xyz) -> np.ndarray:
    """mm coordinates to the nearest voxel indices ``(i, j, k)`` (ints)."""
    inv = np.linalg.inv(np.asarray(affine, dtype=float))
    return np.rint(nib.affines.apply_affine(inv, np.asarray(xyz, dtype=float))).astype(int)
