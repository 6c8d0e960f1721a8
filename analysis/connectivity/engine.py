"""Per seed: the sphere's voxels (nilearn's rule), the seed signal, one matrix-vector
product for the correlation map; peaks of a map. Plain numpy functions of their inputs
(no cache, no global state)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import DataError
from ..volumes import to_xarray
from .cleaning import MAX_RADIUS_MM, PCC_MM, RADIUS_MM, CleanedData  # noqa: F401


# --------------------------------------------------------------------------- seeds

@dataclass
class SeedMap:
    """One seed's correlation map.

    Attributes
    ----------
    r : ndarray, shape (n_voxels,)
        ``dot(brain.T, seed) / n_volumes`` in brain-mask (C) order.
    seed_signal : ndarray, shape (n_volumes,)
        The seed's standardised time series.
    n_seed_voxels : int
    seed_mm : tuple
    radius_mm : float
    """

    r: np.ndarray
    seed_signal: np.ndarray
    n_seed_voxels: int
    seed_mm: tuple
    radius_mm: float

    @property
    def z(self) -> np.ndarray:
        """Fisher z: ``arctanh(r)``."""
        return np.arctanh(self.r)


def sphere_voxels(data: CleanedData, seed_mm, radius_mm: float) -> np.ndarray:
    """Indices (into the seed domain) of the voxels in the sphere, nilearn's rule.

    As ``NiftiSpheresMasker``: the voxels whose centre lies within
    ``radius_mm`` of the seed, plus the voxel nearest to the seed and the one
    whose coordinates truncate to the seed's.
    """
    seed = np.asarray(seed_mm, dtype=float)
    if seed.shape != (3,) or not np.isfinite(seed).all():
        raise DataError(f"a seed needs three finite coordinates in mm, got {seed_mm!r}")
    if not radius_mm or radius_mm <= 0:
        raise DataError(f"the sphere radius must be above 0 mm, not {radius_mm}")
    # candidates: the voxels of a box around the seed (a sphere fits in it)
    centre = nib.affines.apply_affine(data.inverse_affine, seed)
    nearest = np.round(centre).astype(int)
    half = np.ceil(radius_mm / data.zooms).astype(int) + 1
    lo = np.maximum(nearest - half, 0)
    hi = np.minimum(nearest + half + 1, data.mask.shape)
    if np.any(hi <= lo):
        cand = np.zeros(0, dtype=np.int64)
    else:
        cand = data.domain_lookup[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].ravel()
        cand = cand[cand >= 0]
    mm = data.domain_mm[cand]
    inside = np.sqrt(((mm - seed) ** 2).sum(axis=1)) <= radius_mm
    inside |= (data.domain_ijk[cand] == nearest).all(axis=1)
    inside |= (mm.astype(int) == seed.astype(int)).all(axis=1)
    idx = cand[inside]
    if not data.domain_in_brain[idx].any():
        where = _format_mm(seed)
        if not _in_grid(nearest, data.mask.shape) or not data.mask[tuple(nearest)]:
            raise DataError(f"seed {where} mm is outside the brain: its {radius_mm:g} mm "
                            f"sphere captures no brain voxel")
        raise DataError(f"the {radius_mm:g} mm sphere at {where} mm captures no voxel")
    return idx


def central_seed(data: CleanedData) -> tuple:
    """The brain voxel nearest the brain mask's centre (mm): a seed any data has."""
    ijk = np.argwhere(data.mask)
    mm = nib.affines.apply_affine(data.affine, ijk)
    best = np.argmin(((mm - mm.mean(axis=0)) ** 2).sum(axis=1))
    return tuple(float(v) for v in mm[best])


def _in_grid(ijk, shape) -> bool:
    return all(0 <= i < n for i, n in zip(ijk, shape))


def _format_mm(xyz) -> str:
    return "(" + ", ".join(f"{v:g}" for v in np.round(np.asarray(xyz, float), 2)) + ")"


def seed_signal(data: CleanedData, seed_mm, radius_mm: float = RADIUS_MM):
    """The seed's time series as the sphere masker makes it: ``(signal, n_voxels)``.

    The mean of the sphere's cleaned, unstandardised, unsmoothed voxels,
    z-scored (``ddof=1`` for ``zscore_sample``); equal to cleaning the mean.
    """
    idx = sphere_voxels(data, seed_mm, radius_mm)
    ts = data.domain[:, idx].mean(axis=1)
    ts = ts - ts.mean()
    ddof = 1 if data.settings.standardize == "zscore_sample" else 0
    std = ts.std(ddof=ddof)
    if std < np.finfo(np.float64).eps:
        std = 1.0
    return ts / std, int(idx.size)


class _OneBlasThread:
    """Run a memory-bound matrix-vector product on one BLAS thread.

    On a busy machine BLAS threads wait for each other: a (168 x 29k) product
    took 11 ms with the default threads and 1.3 ms with one. threadpoolctl's
    controllers are found once; switching is then two cheap library calls.
    """

    def __init__(self):
        self._controllers = None
        self._lock = threading.Lock()

    def _blas(self):
        if self._controllers is None:
            try:
                from threadpoolctl import ThreadpoolController

                self._controllers = [c for c in ThreadpoolController().lib_controllers
                                     if c.user_api == "blas"]
            except Exception:  # noqa: BLE001 - without it, numpy's defaults
                self._controllers = []
        return self._controllers

    def __enter__(self):
        self._lock.acquire()
        self._saved = [(c, c.get_num_threads()) for c in self._blas()]
        for c, _ in self._saved:
            c.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        try:
            for c, n in self._saved:
                c.set_num_threads(n)
        finally:
            self._lock.release()


ONE_BLAS_THREAD = _OneBlasThread()


def seed_correlation(data: CleanedData, seed_mm, radius_mm: float = RADIUS_MM) -> SeedMap:
    """The seed-to-voxel map: a sphere mean and one matrix-vector product."""
    ts, n = seed_signal(data, seed_mm, radius_mm)
    with ONE_BLAS_THREAD:
        r = data.brain.T @ ts / ts.shape[0]
    return SeedMap(r=r, seed_signal=ts, n_seed_voxels=n,
                   seed_mm=tuple(float(v) for v in seed_mm), radius_mm=float(radius_mm))


# --------------------------------------------------------------------------- results

def to_volume(data: CleanedData, values: np.ndarray, name: str) -> xr.DataArray:
    """A brain vector as an ``(x, y, z)`` DataArray in mm (NaN outside the brain)."""
    vol = np.full(data.mask.shape, np.nan, dtype=np.float64)
    vol[data.mask] = values
    return to_xarray(nib.Nifti1Image(vol, data.affine), name=name)


def find_peaks(volume: xr.DataArray, threshold: float, n_peaks: int = 10) -> pd.DataFrame:
    """Local maxima above ``threshold`` (26-neighbourhood), highest first.

    Returns a DataFrame with ``x, y, z`` (mm), ``i, j, k`` (voxel) and ``value``.
    """
    from scipy.ndimage import maximum_filter

    from ..volumes import affine_of

    vals = np.asarray(volume.transpose("x", "y", "z").values, dtype=float)
    work = np.where(np.isfinite(vals), vals, -np.inf)
    is_max = (work == maximum_filter(work, size=3, mode="constant", cval=-np.inf))
    is_max &= np.isfinite(vals) & (work > threshold)
    ijk = np.argwhere(is_max)
    order = np.argsort(-work[is_max], kind="stable")[:n_peaks]
    ijk = ijk[order]
    xyz = nib.affines.apply_affine(affine_of(volume), ijk) if len(ijk) else np.zeros((0, 3))
    return pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                         "i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2],
                         "value": vals[tuple(ijk.T)] if len(ijk) else np.zeros(0)})


def label_peaks(peaks: pd.DataFrame, truth: dict | None) -> pd.DataFrame:
    """Add the nearest planted node's ``network`` and its distance (synthetic data)."""
    if truth is None or peaks.empty:
        return peaks
    nodes = np.array([[n["x"], n["y"], n["z"]] for n in truth["nodes"]])
    labels = [n["network"] for n in truth["nodes"]]
    d = np.linalg.norm(peaks[["x", "y", "z"]].to_numpy()[:, None, :] - nodes[None], axis=2)
    k = d.argmin(axis=1)
    out = peaks.copy()
    out["network"] = [labels[i] for i in k]
    out["node_distance_mm"] = d[np.arange(len(k)), k].round(1)
    return out


