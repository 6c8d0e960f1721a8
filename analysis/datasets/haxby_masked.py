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

from ..cache import cache_file, content_key, load_npy, save_npy
from ..progress import null_progress
from ..store import Store

# --------------------------------------------------------------------------- masking cache

def _masked_from_raw(raw: np.ndarray, standardize) -> np.ndarray:
    """What ``NiftiMasker(mask, standardize=...)`` returns from raw masked values."""
    from nilearn.signal import clean

    x = raw.astype(np.float32)
    return clean(x, detrend=False, standardize=_std_arg(standardize),
                 standardize_confounds=True, t_r=None, low_pass=None, high_pass=None,
                 ensure_finite=False)


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


#: Masked arrays kept in this process (the most recently used), shared by every session.
MEMORY_ENTRIES = 4
MEMORY = Store("haxby.masked", max_entries=MEMORY_ENTRIES)


def _compute_masked(func_path, mask_img, standardize, progress) -> np.ndarray:
    from nilearn.maskers import NiftiMasker

    from ..io import check_masked

    progress(0.05, "masking the functional image (once)")
    masker = NiftiMasker(mask_img=mask_img, standardize=_std_arg(standardize))
    data = masker.fit_transform(str(func_path))
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


def clear_memory_cache() -> None:
    """Forget the in-process masked-data cache (tests, benchmarks)."""
    MEMORY.clear()

