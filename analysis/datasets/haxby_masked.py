"""Haxby masked data: what ``NiftiMasker(mask, standardize).fit_transform`` returns, cached.

Two caches, both keyed on the functional file's content, the mask's content and
``standardize``: ``.npy`` files in the cache folder
(``data_home()/cache/masked-*.npy``, never beside the data) and, in this
process, the :data:`MEMORY_ENTRIES` most recently used arrays (the store
:data:`MEMORY`, shared by every session); :func:`masked_data` reads through both and masks
with nilearn when both miss.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np

from ..cache import cache_file, content_key, load_npy, npy_header, save_npy
from ..progress import null_progress
from ..store import Store

# --------------------------------------------------------------------------- masking cache

def _masked_from_raw(raw: np.ndarray, standardize) -> np.ndarray:
    """What ``NiftiMasker(mask, standardize=...)`` returns from raw masked values."""
    from nilearn.signal import standardize_signal

    # what NiftiMasker's clean step does with only ``standardize`` set (the same
    # numbers, tested), without clean()'s other passes over the data
    x = raw.astype(np.float32, copy=False)
    std = _std_arg(standardize)
    return standardize_signal(x, detrend=False, standardize=std) if std else x.copy()


def _std_arg(standardize):
    # nilearn >= 0.14: True means "zscore_sample" (the seed's standardize=True)
    return "zscore_sample" if standardize is True else (None if standardize is False else standardize)


def _mask_digest(mask_img) -> str:
    data = np.asarray(mask_img.dataobj).astype(bool)
    h = hashlib.sha1(np.packbits(data).tobytes())
    h.update(str(data.shape).encode())
    h.update(np.round(np.asarray(mask_img.affine, float), 4).tobytes())
    return h.hexdigest()[:16]


def cache_name(func_path, mask_img, standardize) -> str:
    """File name of the ``.npy`` cache of one (functional file's content, mask, standardize)."""
    return (f"masked-{content_key(func_path)[:16]}-{_mask_digest(mask_img)}"
            f"-std{_std_arg(standardize)}.npy")


def _write_cache(func_path, mask_img, standardize, data) -> Path | None:
    """Keep the masked data in the cache folder (never beside the data); None if the
    cache folder cannot be written (just slower next time)."""
    path = cache_file(cache_name(func_path, mask_img, standardize))
    return path if save_npy(path, data) else None


def _read_cache(func_path, mask_img, standardize):
    """The cached masked data, or None (missing, unreadable, truncated, other shape)."""
    n_voxels = int(np.asarray(mask_img.dataobj).astype(bool).sum())
    try:
        n_volumes = int(nib.load(str(func_path)).shape[3])
    except Exception:  # noqa: BLE001 - the loader reports a bad file; here: check less
        n_volumes = None

    def fits(a):
        return (a.ndim == 2 and a.dtype.kind == "f" and a.shape[1] == n_voxels
                and (n_volumes is None or a.shape[0] == n_volumes))

    return load_npy(cache_file(cache_name(func_path, mask_img, standardize)), check=fits)


def _cache_header_fits(func_path, mask_img, standardize) -> bool:
    """True when the cached ``.npy`` exists with the expected shape (its header only)."""
    path = cache_file(cache_name(func_path, mask_img, standardize))
    try:
        with open(path, "rb") as fh:
            shape, _, dtype = npy_header(fh)
        n_voxels = int(np.asarray(mask_img.dataobj).astype(bool).sum())
        n_volumes = int(nib.load(str(func_path)).shape[3])
    except Exception:  # noqa: BLE001 - missing or damaged: compute it
        return False
    return tuple(shape) == (n_volumes, n_voxels) and np.dtype(dtype).kind == "f"


#: Masked arrays kept in this process (the most recently used), shared by every session.
MEMORY_ENTRIES = 4
MEMORY = Store("haxby.masked", max_entries=MEMORY_ENTRIES)


#: On-disk data types the direct path reads (unscaled): NiftiMasker gives them as float32.
DIRECT_DTYPES = ("int8", "uint8", "int16", "uint16", "float32")


#: Voxels per block of the direct path (each block's temporaries stay small).
DIRECT_BLOCK = 4096


def _direct_masked(img, mask_img, standardize) -> np.ndarray | None:
    """``NiftiMasker(mask_img, standardize).fit_transform(img)`` read straight from the
    image, block of voxels by block: the same float32 numbers, 4-6x faster and without
    a float copy of the whole 4D image (fresh memory is slow to touch here). None when
    the direct path does not apply and NiftiMasker must do it: another grid (it would
    resample), scaled or other data types, non-finite values (it reads them as 0)."""
    from ..volumes import stored_unscaled

    header_dtype = np.dtype(img.get_data_dtype())
    if (header_dtype.name not in DIRECT_DTYPES or len(img.shape) != 4
            or tuple(img.shape[:3]) != tuple(mask_img.shape[:3])
            or not np.allclose(img.affine, mask_img.affine) or not stored_unscaled(img)):
        return None
    mask = np.asarray(mask_img.dataobj).astype(bool)
    raw = np.asanyarray(img.dataobj)
    if raw.dtype != header_dtype:
        return None
    n_volumes = raw.shape[3]
    i, j, k = np.nonzero(mask)                               # NiftiMasker's voxel order
    if raw.flags.f_contiguous:
        # (x, y, z, t) in Fortran order is (t, z, y, x) in C order: a row per volume
        rows = raw.T.reshape(n_volumes, -1)
        columns = (k * mask.shape[1] + j) * mask.shape[0] + i
    else:
        rows = raw.reshape(-1, n_volumes).T
        columns = (i * mask.shape[1] + j) * mask.shape[2] + k
    out = np.empty((n_volumes, len(columns)), dtype=np.float32)
    for t in range(n_volumes):       # a volume at a time: contiguous reads and writes
        out[t] = rows[t, columns]
    del rows, raw
    if header_dtype.kind == "f" and not np.isfinite(out).all():
        return None
    for start in range(0, len(columns), DIRECT_BLOCK):
        block = out[:, start:start + DIRECT_BLOCK]
        block[...] = _masked_from_raw(block, standardize)
    return out


def _compute_masked(func_path, mask_img, standardize, progress) -> np.ndarray:
    from nilearn.maskers import NiftiMasker

    from ..io import check_masked, load_func

    progress(0.05, "masking the functional image (once)")
    img = load_func(func_path)
    data = _direct_masked(img, mask_img, standardize)
    if data is None:
        masker = NiftiMasker(mask_img=mask_img, standardize=_std_arg(standardize))
        data = masker.fit_transform(img)
    check_masked(data, func_path)
    return data


def masked_data(func_path, mask_img, standardize=True, progress=None,
                shared: bool = True) -> np.ndarray:
    """Masked data ``(n_volumes, n_voxels)`` as ``NiftiMasker(mask, standardize).fit_transform``.

    With ``shared`` (datasets), cached twice: in this process (the
    :data:`MEMORY_ENTRIES` most recently used, shared by every session) and as
    ``.npy`` in the cache folder (``data_home()/cache``, never beside the
    data), keyed on the functional file's content, the mask's content and
    ``standardize``; an unreadable cache entry is computed again and rewritten.
    With ``shared=False`` (a session's uploads) nothing is kept: neither in the
    process nor on disk. Computed with nilearn's ``NiftiMasker`` when missing.
    The array is read-only.
    """
    progress = progress or null_progress
    from ..volumes import load_img

    mask_img = load_img(mask_img)
    if not shared:
        data = np.asarray(_compute_masked(func_path, mask_img, standardize, progress))
        data.setflags(write=False)
        progress(1.0, "masked data ready")
        return data
    key = (content_key(func_path), _mask_digest(mask_img), str(_std_arg(standardize)))

    def read_or_mask():
        data = _read_cache(func_path, mask_img, standardize)
        if data is None:
            data = _compute_masked(func_path, mask_img, standardize, progress)
            _write_cache(func_path, mask_img, standardize, data)
        data = np.asarray(data)
        data.setflags(write=False)
        progress(1.0, "masked data ready")
        return data

    return MEMORY.get_or_compute(key, read_or_mask)  # sessions asking at once wait for one


def ensure_on_disk(func_path, mask_img, standardize=True) -> bool:
    """Mask into the cache folder's ``.npy`` if it is not there yet, without keeping the
    array in this process (the server's warm-up: a later change of mask reads it in a
    fraction of a second instead of masking for seconds). True when the file is there."""
    from ..volumes import load_img

    mask_img = load_img(mask_img)
    key = (content_key(func_path), _mask_digest(mask_img), str(_std_arg(standardize)))
    if key in MEMORY or _cache_header_fits(func_path, mask_img, standardize):
        return True
    data = _compute_masked(func_path, mask_img, standardize, null_progress)
    return _write_cache(func_path, mask_img, standardize, data) is not None


def clear_memory_cache() -> None:
    """Forget the in-process masked-data cache (tests, benchmarks)."""
    MEMORY.clear()

