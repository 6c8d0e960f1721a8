"""A subject's image read once, kept for its cleanings (:func:`raw_data`, :data:`RAW`).

The cleaning is linear in time and the same for every voxel (detrend, Butterworth
band-pass, confound projection: nilearn's ``signal.clean`` without standardisation), so
``clean(X) = L @ X`` with ``L = clean(identity)`` (:func:`cleaning_matrix`); spatial
smoothing acts on each volume, so it commutes with it. A new preprocessing setting is
then the smoothing of the raw volumes (:func:`smoothed_brain`: the voxels the mask's
smoothed values depend on, not the whole grid) and two matrix products, instead of
reading and decompressing the image and running the filters on every voxel again.
The numbers are those of nilearn's maskers (tests/test_connectivity_speed_cleaning.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..store import Store

#: The largest sphere radius (mm): the seed domain reaches this far outside the brain.
MAX_RADIUS_MM = 20.0


@dataclass
class RawData:
    """A subject's image as read, with what every cleaning of it shares.

    Attributes
    ----------
    volumes : ndarray, shape (n_volumes, z, y, x)
        The image's values (float32 when that holds them exactly, else float64), time
        first (the file's own memory order: no copy to reorder it).
    mask : ndarray of bool, shape (x, y, z)
    domain_ijk : ndarray, shape (n_domain, 3)
        The voxels a seed sphere can reach (C order), ``domain_raw`` their series
        ``(n_volumes, n_domain)``, ``domain_in_brain`` whether each is in the mask.
    """

    volumes: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    domain_ijk: np.ndarray
    domain_raw: np.ndarray
    domain_in_brain: np.ndarray

    @property
    def zooms(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def nbytes(self) -> int:
        return int(self.volumes.nbytes + self.domain_raw.nbytes)

    def image_array(self) -> np.ndarray:
        """The image as ``get_fdata(dtype=float64)`` returns it, ``(x, y, z, t)``."""
        return self.volumes.T.astype(np.float64)


def volumes_from(data: np.ndarray) -> np.ndarray:
    """``data`` ``(x, y, z, t)`` time first ``(n_volumes, z, y, x)``, its float64 values
    kept exactly, as float32 when that loses nothing."""
    data = np.asanyarray(data)
    if data.dtype != np.float32:
        data = np.asarray(data, dtype=np.float64)
    if not np.isfinite(data).all():
        raise DataError("the image contains NaN or infinite values")
    volumes = data.T                           # (t, z, y, x): C order of the F-ordered file
    low = np.ascontiguousarray(volumes, dtype=np.float32)
    if data.dtype == np.float32 or np.array_equal(low, volumes):
        return low
    return np.ascontiguousarray(volumes)


def volumes_of(img) -> np.ndarray:
    """The image's values as ``img.get_fdata(dtype=float64)`` gives them, time first."""
    return volumes_from(img.get_fdata(dtype=np.float64, caching="unchanged"))


def unscaled(img, native: np.ndarray) -> bool:
    """Whether ``native`` (``np.asanyarray(img.dataobj)``) holds exactly the values of
    ``img.get_fdata(dtype=float64)`` (no scaling, a dtype float64 holds exactly)."""
    from ..volumes import stored_unscaled

    return stored_unscaled(img) and native.dtype in (np.float32, np.float64, np.int8, np.uint8,
                                      np.int16, np.uint16, np.int32, np.uint32)


def _flat(ijk: np.ndarray, shape) -> np.ndarray:
    """Indices of ``(i, j, k)`` voxels into the ``(z, y, x)`` volumes, flattened."""
    return np.ravel_multi_index((ijk[:, 2], ijk[:, 1], ijk[:, 0]), shape[::-1])


def columns(volumes: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """The series of voxels ``ijk`` ``(n, 3)``: ``(n_volumes, n)`` (C-ordered)."""
    flat = volumes.reshape(volumes.shape[0], -1)
    return np.take(flat, _flat(ijk, volumes.shape[1:][::-1]), axis=1)


def build_raw(volumes: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> RawData:
    """The :class:`RawData` of ``volumes`` ``(t, z, y, x)`` and the brain ``mask``: the seed
    domain is the mask and the voxels within reach of a sphere whose series vary."""
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, dtype=bool)
    affine = np.asarray(affine, dtype=float)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    reach = distance_transform_edt(~mask, sampling=zooms) <= MAX_RADIUS_MM + max(zooms)
    varying = (volumes.max(axis=0) > volumes.min(axis=0)).T      # (x, y, z)
    domain = mask | (reach & varying)
    ijk = np.argwhere(domain)
    return RawData(volumes=volumes, mask=mask, affine=affine, domain_ijk=ijk,
                   domain_raw=columns(volumes, ijk), domain_in_brain=mask[domain])


#: Each subject's image, read once (float32 at full size: ~95 MB), for its cleanings;
#: the current subjects only (a subject read again costs one decompression).
RAW = Store("connectivity.raw", max_entries=2)

#: the image :func:`~analysis.connectivity.subject.load_subject` just read (to compute its
#: background mask), handed to the subject's first cleaning: read once, not twice
_HANDOFF: dict = {}
_HANDOFF_LOCK = threading.Lock()


def hand_over(key: str, volumes: np.ndarray) -> None:
    """Keep the volumes just read for ``key``'s cleaning (one slot: the last read)."""
    with _HANDOFF_LOCK:
        _HANDOFF.clear()
        _HANDOFF[key] = volumes


def forget(key: str) -> None:
    """Drop what is kept of subject ``key`` (its session ended)."""
    with _HANDOFF_LOCK:
        _HANDOFF.pop(key, None)
    RAW.discard(lambda k: k == key)


def raw_data(subject, keep: bool = True) -> RawData:
    """The subject's :class:`RawData`, kept per subject for the process (an upload's
    for its session); with ``keep=False`` the one kept if any, else read and not kept
    (a group's subjects, a prefetch: read once each)."""
    def compute():
        with _HANDOFF_LOCK:
            volumes = _HANDOFF.pop(subject.key, None)
        if volumes is None:
            try:
                volumes = volumes_of(subject.img)
            except DataError as exc:
                raise DataError(str(exc), subject.func) from None
        return build_raw(volumes, np.asarray(subject.mask_img.dataobj), subject.img.affine)

    if not keep:
        known = RAW.get(subject.key)
        return known if known is not None else compute()
    return RAW.get_or_compute(subject.key, compute, owner=subject.owner)


def cleaning_matrix(n_volumes: int, confounds, settings) -> np.ndarray:
    """``L`` (``n_volumes x n_volumes``): nilearn's ``signal.clean`` of the identity with
    these settings and confounds, without standardisation; ``clean(X) = L @ X``."""
    import warnings

    from nilearn import signal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return signal.clean(np.eye(n_volumes), confounds=confounds,
                            **settings.clean_kwargs(standardize=None))


def smoothing_margin(fwhm: float | None, zooms) -> tuple[np.ndarray, list]:
    """The Gaussian's sigma per axis in voxels (nilearn's ``smooth_array``) and the
    reach of scipy's kernel per axis (``int(4 sigma + 0.5)`` voxels)."""
    sigma = np.asarray(fwhm, float) / (np.sqrt(8 * np.log(2)) * np.asarray(zooms, float))
    return sigma, [int(4.0 * s + 0.5) for s in sigma]


def smoothed_brain(raw: RawData, fwhm: float | None, threads: int | None = None) -> np.ndarray:
    """The brain voxels' series of the smoothed image ``(n_volumes, n_voxels)``, float64:
    nilearn's ``smooth_img`` then the mask (the same floats), computed on the box of voxels
    the mask's smoothed values depend on (the mask's bounding box and the kernel's reach;
    where that meets the grid's edge, the same edge), each axis in nilearn's order, the
    box narrowed to the mask's extent along an axis once it is smoothed, the volumes
    split between ``threads`` (default: the CPUs; scipy's filter runs without the GIL)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from scipy.ndimage import gaussian_filter1d

    ijk = np.argwhere(raw.mask)
    if not fwhm:
        return columns(raw.volumes, ijk).astype(np.float64)
    sigma, reach = smoothing_margin(fwhm, raw.zooms)
    shape = np.asarray(raw.mask.shape)
    first, last = ijk.min(axis=0), ijk.max(axis=0) + 1
    lo = np.maximum(first - reach, 0)
    hi = np.minimum(last + np.asarray(reach), shape)
    out = np.empty((raw.volumes.shape[0], len(ijk)), dtype=np.float64)

    def smooth(rows: slice) -> None:
        box = raw.volumes[rows, lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        start = lo.copy()
        for axis, s in enumerate(sigma):        # x, y, z as nilearn: axes 3, 2, 1 here
            if box.dtype != np.float64:         # the first pass reads the stored values
                filtered = np.empty(box.shape, dtype=np.float64)   # (scipy: in float64)
                if s > 0.0:
                    gaussian_filter1d(box, s, output=filtered, axis=3 - axis)
                else:
                    filtered[...] = box
                box = filtered
            elif s > 0.0:
                gaussian_filter1d(box, s, output=box, axis=3 - axis)
            # the other axes' passes only need this axis' values within the mask's extent
            keep = [slice(None)] * 4
            keep[3 - axis] = slice(first[axis] - start[axis], last[axis] - start[axis])
            box = box[tuple(keep)]
            start[axis] = first[axis]
        out[rows] = columns(box, ijk - start)

    n = raw.volumes.shape[0]
    threads = max(1, min(threads or os.cpu_count() or 1, 4, n))
    if threads == 1:
        smooth(slice(0, n))
        return out
    bounds = np.linspace(0, n, threads + 1).astype(int)
    with ThreadPoolExecutor(threads, thread_name_prefix="smoothing") as pool:
        for f in [pool.submit(smooth, slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]:
            f.result()
    return out
