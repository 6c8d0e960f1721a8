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

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import xarray as xr

from .config import MAX_IMAGE_ENV, max_image_bytes
from .errors import DataError
from .store import Store
from .xarray_compat import install as _lazy_dask

_lazy_dask()  # xarray imports Dask when something uses it, not at the first array
# (every analysis module imports this one)

DIMS = ("x", "y", "z")


def is_axis_aligned(affine: np.ndarray, atol: float = 1e-6) -> bool:
    """True when the affine's 3x3 part is diagonal (no rotation, no axis swap)."""
    rot = np.asarray(affine, dtype=float)[:3, :3]
    off = rot - np.diag(np.diag(rot))
    return bool(np.all(np.abs(off) <= atol * np.abs(np.diag(rot)).max()))


#: The one message for image data that end early or do not decompress.
TRUNCATED = "truncated or damaged image data"
#: Exceptions that reading damaged compressed image data raises (gzip, zlib, nibabel).
DAMAGED_DATA_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def stored_unscaled(img) -> bool:
    """Whether ``img``'s stored values are its values (no scale slope or intercept; an
    image made in memory holds its array as it is)."""
    slope = getattr(img.dataobj, "slope", 1.0)
    inter = getattr(img.dataobj, "inter", 0.0)
    return ((slope is None or np.isnan(slope) or slope == 1.0)
            and (inter is None or np.isnan(inter) or inter == 0.0))


def human_bytes(n: int) -> str:
    """``1.0 GB``, ``12.3 MB``: sizes in binary units, as the limits are set (MB = 2**20)."""
    n = float(n)
    if n >= 0.1 * 2 ** 30:
        return f"{n / 2 ** 30:.1f} GB"
    if n >= 0.1 * 2 ** 20:
        return f"{n / 2 ** 20:.1f} MB"
    return f"{n / 1024:.1f} KB"


def header_nbytes(img) -> int:
    """Bytes of image data the header describes (shape x itemsize), read from the header only."""
    shape = tuple(int(v) for v in img.header.get_data_shape())
    n = np.dtype(img.get_data_dtype()).itemsize
    for v in shape:
        n *= max(v, 0)
    return int(n)


def check_image_size(img, path=None, limit: int | None = None) -> int:
    """Refuse an image whose header claims more data than ``limit`` bytes.

    The limit defaults to :func:`~analysis.config.max_image_bytes`
    (``$FMRI_EXPLORER_MAX_IMAGE_MB``, 2 GB). Only the header is read: a small
    compressed file that claims a huge image (a "bomb") is refused before any
    data is decompressed. Returns the number of bytes claimed.
    """
    nbytes = header_nbytes(img)
    limit = max_image_bytes() if limit is None else int(limit)
    if nbytes > limit:
        shape = "x".join(str(int(v)) for v in img.header.get_data_shape())
        dtype = np.dtype(img.get_data_dtype())
        raise DataError(f"the header claims {human_bytes(nbytes)} of data ({shape} "
                        f"{dtype.name}), over the {human_bytes(limit)} limit "
                        f"(${MAX_IMAGE_ENV})", path)
    return nbytes


def _image_file(img) -> str | None:
    fmap = getattr(img, "file_map", None) or {}
    holder = fmap.get("image")
    name = getattr(holder, "filename", None)
    return str(name) if name else None


def _data_offset(img) -> int:
    offset = getattr(img.dataobj, "offset", None)
    if offset is None:
        get = getattr(img.header, "get_data_offset", None)
        offset = get() if get is not None else 0
    return int(offset)


def _gzip_size_at_least(filename: str, need: int, chunk: int = 1 << 22) -> bool:
    """True if ``filename`` decompresses to at least ``need`` bytes (read in chunks)."""
    total = 0
    try:
        with gzip.open(filename, "rb") as f:
            while total < need:
                block = f.read(min(chunk, need - total))
                if not block:
                    return False
                total += len(block)
    except (*DAMAGED_DATA_ERRORS, OSError):
        return False
    return True


_STREAM_CHECKED: set = set()  # gzip files whose length was checked by decompressing


def check_image_complete(img, path=None) -> None:
    """Refuse an image file whose data end before the header says they do.

    Cheap: an uncompressed file's size is compared with the data offset plus
    the header's shape x itemsize; a ``.gz`` file's trailer (the uncompressed
    size modulo 2**32) with the same. Only when the trailer does not match
    (a truncated file, or a multi-member gzip) is the file decompressed, in
    chunks, up to the size needed.
    """
    filename = _image_file(img)
    if filename is None or not os.path.isfile(filename):
        return
    need = _data_offset(img) + header_nbytes(img)
    name = path if path is not None else filename
    if filename.lower().endswith(".gz"):
        with open(filename, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < 18:  # smaller than an empty gzip member
                raise DataError(TRUNCATED, name)
            f.seek(-4, os.SEEK_END)
            isize = int.from_bytes(f.read(4), "little")
        if isize == need % 2 ** 32:
            return
        st = os.stat(filename)
        key = (os.path.realpath(filename), st.st_size, st.st_mtime_ns, need)
        if key in _STREAM_CHECKED:  # a multi-member gzip read once already
            return
        if not _gzip_size_at_least(filename, need):
            raise DataError(TRUNCATED, name)
        if len(_STREAM_CHECKED) > 256:
            _STREAM_CHECKED.clear()
        _STREAM_CHECKED.add(key)
    elif filename.lower().endswith((".bz2", ".zst")):
        return  # not checked here; reading the data reports damage
    elif os.path.getsize(filename) < need:
        raise DataError(TRUNCATED, name)


def verify_image_data(path) -> str | None:
    """Read a whole image file (decompressing it, CRC checked) and say what is wrong, or None.

    For error messages only (it reads everything): which of several input
    files is the damaged one.
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
        check_image_size(img, path)
        check_image_complete(img, path)
        filename = _image_file(img) or str(path)
        if filename.lower().endswith(".gz"):
            with gzip.open(filename, "rb") as f:
                while f.read(1 << 22):
                    pass
    except DataError as exc:
        return str(exc)
    except (*DAMAGED_DATA_ERRORS, ValueError):
        return DataError(TRUNCATED, path).args[0]
    except Exception:  # noqa: BLE001 - not an image at all: not our question
        return None
    return None


def load_img(img, path_hint=None) -> nib.Nifti1Image:
    """A nibabel image from a path or an image; a clear error for non-NIfTI.

    Before any data is read, a path's header is checked: its data must fit
    under :func:`~analysis.config.max_image_bytes` (``$FMRI_EXPLORER_MAX_IMAGE_MB``)
    and the file must be long enough to hold them (truncated or damaged files
    refused). Every reader of the CLI and the app goes through here.
    """
    if isinstance(img, (str, Path)):
        path = Path(img)
        if not path.exists():
            raise DataError("file not found", path)
        if path.is_dir():
            raise DataError("is a directory, not an image file", path)
        try:
            img = nib.load(str(path))
        except DAMAGED_DATA_ERRORS:
            raise DataError(TRUNCATED, path) from None
        except PermissionError as exc:
            raise DataError(f"cannot read ({exc.strerror or exc})", path) from None
        except MemoryError:
            raise DataError("not enough memory to read the header", path) from None
        except Exception as exc:  # nibabel raises several types
            raise DataError(f"not a NIfTI image ({type(exc).__name__})", path) from None
        if isinstance(img, nib.spatialimages.SpatialImage):
            check_image_size(img, path)
            try:
                check_image_complete(img, path)
            except OSError as exc:
                raise DataError(f"cannot read ({exc.strerror or exc})", path) from None
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise DataError(f"expected a NIfTI image, got {type(img).__name__}", path_hint)
    if nib.is_proxy(img.dataobj):  # data still on disk: the same cap
        check_image_size(img, path_hint or _image_file(img))
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


def unmask(values, mask, dtype=np.float32, fill: float = 0.0) -> nib.Nifti1Image:
    """A vector in mask order as an image on the mask's own grid and affine (as nilearn's
    ``masker.inverse_transform`` writes it), ``fill`` outside the mask.

    Every map written to a file goes through here, never through the display's
    :func:`to_xarray` volume, which an oblique affine resamples to an axis-aligned grid.
    ``mask`` is a mask image (or path), or a boolean array with ``affine`` as a pair
    ``(array, affine)``.
    """
    if isinstance(mask, tuple):
        mask_data, affine = np.asarray(mask[0]).astype(bool), np.asarray(mask[1], float)
    else:
        mask_img = load_img(mask)
        mask_data, affine = np.asarray(mask_img.dataobj).astype(bool), mask_img.affine
    vector = np.asarray(values)
    if vector.ndim != 1 or vector.shape[0] != mask_data.sum():
        raise DataError(f"a masked vector needs {int(mask_data.sum())} values "
                        f"(one per mask voxel), got shape {vector.shape}")
    data = np.full(mask_data.shape, fill, dtype=dtype)
    data[mask_data] = np.nan_to_num(vector.astype(dtype), nan=fill)
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(dtype)
    return img


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


#: MNI152 templates as volumes, per resolution (analysis/store.py)
BACKGROUNDS = Store("volumes.mni_background", max_entries=4)


def mni_background(resolution: int) -> xr.DataArray:
    """The MNI152 template shipped with nilearn, at ``resolution`` mm, as a volume (a
    background for maps on its grid; once per process and resolution)."""
    from nilearn.datasets import load_mni152_template

    return BACKGROUNDS.get_or_compute(int(resolution), lambda: to_xarray(
        load_mni152_template(resolution=resolution), name="MNI152"))
