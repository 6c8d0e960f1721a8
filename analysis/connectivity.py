"""Seed-to-voxel connectivity: clean once, then any seed is instant (InstaCorr-like).

Reference (the seed example, :mod:`analysis.connectivity_reference`): a
``NiftiSpheresMasker`` (sphere mean of the *unsmoothed* voxels, then cleaned
and z-scored) and a ``NiftiMasker`` (smoothed, cleaned, z-scored), then
``dot(brain.T, seed) / n_volumes``.

Fast engine, exact because cleaning (detrend, Butterworth band-pass, confound
projection) is one linear operator on time applied to every voxel:

1. :func:`clean_data` (once per preprocessing setting and subject, cached by
   :func:`cleaned`): the brain matrix ``(n_volumes, n_voxels)`` exactly as the
   brain masker makes it (smoothing, cleaning, standardisation), and the
   *seed-domain* matrix: the unsmoothed voxels that a sphere can reach,
   cleaned with the same settings but not standardised.
2. :func:`seed_correlation` (per seed): the sphere's voxels (nilearn's rule,
   on precomputed voxel coordinates), their mean cleaned signal z-scored like
   the sphere masker does (``ddof=1`` for ``zscore_sample``), and one
   matrix-vector product. Voxels outside the domain are constant in time:
   cleaning plus z-scoring removes them from the sphere mean exactly.

:func:`clean_data` and :func:`seed_correlation` are plain functions of their
inputs (no cache, no global state), so a group analysis can run them per
subject on Dask workers. :class:`SeedConnectivity` is the Param class the
notebook, the CLI and the dashboard share.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import param
import xarray as xr

from .errors import DataError
# the preprocessing parameters and the settings they make are declared once there
# (CleaningSettings and STANDARDIZE re-exported: callers use C.CleaningSettings)
from .preprocessing import PARAMETERS as PREPROCESSING
from .preprocessing import STANDARDIZE, T_R, CleaningSettings, Preprocessing  # noqa: F401
from .progress import null_progress, scaled
from .volumes import to_xarray

#: The seed example's PCC seed (MNI mm) and sphere radius.
PCC_MM = (0.0, -52.0, 18.0)
RADIUS_MM = 8.0
#: Largest sphere radius (mm): the seed domain reaches this far outside the brain.
MAX_RADIUS_MM = 20.0


# --------------------------------------------------------------------------- subject data

@dataclass
class SubjectData:
    """One subject's inputs: the 4D image, its confounds table and brain mask.

    Attributes
    ----------
    func : Path or None
        The 4D NIfTI file (None for an in-memory image).
    img : nibabel.Nifti1Image
    confounds : pandas.DataFrame or None
        Numeric confounds (``n/a`` read as NaN, then set to 0), one row a volume.
    mask_img : nibabel.Nifti1Image
        Brain mask: given, or computed as the seed's ``NiftiMasker`` does.
    t_r : float
    key : str
        Identifies the data for caching (file, size, mtime, mask, confounds).
    name : str
    """

    func: Path | None
    img: nib.Nifti1Image
    confounds: pd.DataFrame | None
    mask_img: nib.Nifti1Image
    t_r: float
    key: str
    name: str = ""
    confounds_path: Path | None = None
    info: dict = field(default_factory=dict)
    #: the mask file given to :func:`load_subject` (None: computed, or an image in memory)
    mask_path: Path | None = None

    @property
    def n_volumes(self) -> int:
        return int(self.img.shape[3])

    @property
    def confound_names(self) -> list[str]:
        return [] if self.confounds is None else [str(c) for c in self.confounds.columns]


def _file_key(path) -> str:
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def load_subject(func, confounds=None, mask=None, t_r=None, name: str | None = None,
                 info: dict | None = None) -> SubjectData:
    """Read (and check) one subject's files.

    Parameters
    ----------
    func : path or Nifti1Image
        4D functional image.
    confounds : path, DataFrame or None
        fMRIPrep-style TSV (``n/a`` handled: set to 0, e.g. the first row of
        ``framewise_displacement``); rows must match the volumes.
    mask : path, Nifti1Image or None
        Brain mask on the functional grid; None: computed with
        ``nilearn.masking.compute_background_mask``, as the seed's
        ``NiftiMasker`` does.
    t_r : float, optional
        Repetition time; default from the image header.
    """
    from .io import load_confounds, load_func, load_mask, t_r_of

    if isinstance(func, nib.spatialimages.SpatialImage):
        img, func_path = func, None
        if len(img.shape) != 4:
            raise DataError(f"a 4D image (x, y, z, time) is needed, got shape {img.shape}")
        key = "img:" + hashlib.sha1(np.ascontiguousarray(img.get_fdata()[..., :3])
                                    .tobytes()).hexdigest()
    else:
        func_path = Path(func)
        img = load_func(func_path)
        key = _file_key(func_path)
    n_volumes = int(img.shape[3])
    t_r = float(t_r) if t_r else t_r_of(img)
    if not t_r:
        raise DataError("no repetition time in the header: give --t-r", func_path)
    conf_df, conf_path = None, None
    if confounds is not None:
        if isinstance(confounds, pd.DataFrame):
            conf_df = confounds.copy()
            if len(conf_df) != n_volumes:
                raise DataError(f"{len(conf_df)} confound rows for {n_volumes} volumes")
            key += ":conf-df:" + hashlib.sha1(pd.util.hash_pandas_object(conf_df).values
                                              .tobytes()).hexdigest()
        else:
            conf_path = Path(confounds)
            conf_df = load_confounds(conf_path, n_volumes=n_volumes)
            key += ":conf:" + _file_key(conf_path)
        conf_df = conf_df.astype(float).fillna(0.0)
    if mask is None:
        from nilearn.masking import compute_background_mask

        mask_img = compute_background_mask(img)
        mask_img = nib.Nifti1Image(np.asarray(mask_img.dataobj).astype(np.uint8), img.affine)
        key += ":mask:background"
    else:
        mask_img = load_mask(mask, img)
        key += ":mask:" + (_file_key(mask) if isinstance(mask, (str, Path)) else hashlib.sha1(
            np.asarray(mask_img.dataobj).tobytes()).hexdigest())
    if not np.asarray(mask_img.dataobj).any():
        raise DataError("the brain mask selects no voxel", func_path)
    return SubjectData(func=func_path, img=img, confounds=conf_df, mask_img=mask_img,
                       t_r=t_r, key=key, name=name or (func_path.name if func_path else "image"),
                       confounds_path=conf_path, info=dict(info or {}),
                       mask_path=Path(mask) if isinstance(mask, (str, Path)) else None)


# --------------------------------------------------------------------------- cleaning

@dataclass
class CleanedData:
    """A subject's cleaned signals for one preprocessing setting.

    Attributes
    ----------
    brain : ndarray, shape (n_volumes, n_voxels)
        Smoothed, cleaned, standardised brain voxels (the brain masker's output).
    domain : ndarray, shape (n_volumes, n_domain)
        Unsmoothed voxels a sphere can reach, cleaned, not standardised.
    domain_mm : ndarray, shape (n_domain, 3)
        Their MNI coordinates; ``domain_ijk`` their voxel indices,
        ``domain_in_brain`` whether they are brain voxels.
    mask : ndarray of bool, shape (x, y, z)
        The brain mask (voxel order of ``brain``'s columns: C order).
    """

    brain: np.ndarray
    domain: np.ndarray
    domain_mm: np.ndarray
    domain_ijk: np.ndarray
    domain_in_brain: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    settings: CleaningSettings
    subject_key: str
    name: str = ""
    domain_lookup: np.ndarray | None = None

    def __post_init__(self):
        if self.domain_lookup is None:
            lookup = np.full(self.mask.shape, -1, dtype=np.int64)
            lookup[tuple(self.domain_ijk.T)] = np.arange(len(self.domain_ijk))
            self.domain_lookup = lookup
        self.inverse_affine = np.linalg.inv(self.affine)
        self.zooms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def n_volumes(self) -> int:
        return int(self.brain.shape[0])

    @property
    def n_voxels(self) -> int:
        return int(self.brain.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.brain.nbytes + self.domain.nbytes)


def _domain_mask(data: np.ndarray, mask: np.ndarray, zooms) -> np.ndarray:
    """Voxels a sphere of at most MAX_RADIUS_MM around a brain voxel can reach,
    with a time series that is not constant (constant ones drop out exactly)."""
    from scipy.ndimage import distance_transform_edt

    reach = distance_transform_edt(~mask, sampling=zooms) <= MAX_RADIUS_MM + max(zooms)
    varying = np.zeros(mask.shape, bool)
    idx = np.nonzero(reach)
    series = data[idx]
    varying[idx] = (series.max(axis=1) > series.min(axis=1))
    return mask | (reach & varying)


def clean_data(subject: SubjectData, settings: CleaningSettings, progress=None) -> CleanedData:
    """Clean one subject's data for one preprocessing setting (no cache).

    Returns the brain matrix exactly as the seed's ``NiftiMasker`` (same
    mask, smoothing, detrend, band-pass, confounds, high-variance confounds,
    standardisation; float64)
    and the unsmoothed, unstandardised seed-domain matrix.
    """
    from nilearn import signal
    from nilearn.image import smooth_img

    progress = progress or null_progress
    settings.check()
    progress(0.0, f"{subject.name}: loading")
    data = subject.img.get_fdata(dtype=np.float64)
    if not np.isfinite(data).all():
        raise DataError("the image contains NaN or infinite values", subject.func)
    mask = np.asarray(subject.mask_img.dataobj).astype(bool)
    affine = np.asarray(subject.img.affine, dtype=float)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    confounds = None
    if settings.confound_columns and subject.confounds is not None:
        missing = [c for c in settings.confound_columns if c not in subject.confounds.columns]
        if missing:
            raise DataError(f"no confound column(s) {', '.join(missing)}", subject.confounds_path)
        confounds = subject.confounds[list(settings.confound_columns)].to_numpy(dtype=float)
    if settings.high_variance_confounds:
        # as nilearn's maskers: the 5 highest-variance components of the whole image's
        # voxels (unmasked, unsmoothed), before the table's columns; both cleanings use them
        from nilearn.image import high_variance_confounds

        hv = high_variance_confounds(nib.Nifti1Image(data, affine))
        confounds = hv if confounds is None else np.hstack([hv, confounds])

    progress(0.15, f"{subject.name}: cleaning the seed voxels")
    domain = _domain_mask(data, mask, zooms)
    ijk = np.argwhere(domain)
    domain_raw = data[domain].T                                   # (n_volumes, n_domain)
    domain_clean = signal.clean(domain_raw, confounds=confounds,
                                **settings.clean_kwargs(standardize=None))
    del domain_raw
    progress(0.45, f"{subject.name}: smoothing ({settings.fwhm or 0:g} mm)")
    if settings.fwhm:
        smoothed = np.asarray(smooth_img(nib.Nifti1Image(data, affine), settings.fwhm).dataobj)
    else:
        smoothed = data
    brain_raw = smoothed[mask].T
    del smoothed, data
    progress(0.7, f"{subject.name}: cleaning the brain voxels")
    brain = settings.standardized(signal.clean(
        brain_raw, confounds=confounds,
        **settings.clean_kwargs(standardize=settings.nilearn_standardize)))
    progress(1.0, f"{subject.name}: cleaned")
    return CleanedData(
        brain=np.ascontiguousarray(brain), domain=np.ascontiguousarray(domain_clean),
        domain_mm=nib.affines.apply_affine(affine, ijk), domain_ijk=ijk,
        domain_in_brain=mask[domain], mask=mask, affine=affine, settings=settings,
        subject_key=subject.key, name=subject.name)


class _CleanCache:
    """Process-level LRU cache of cleaned data, shared by every session."""

    def __init__(self, maxsize: int = 4):
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict = {}
        self.misses = 0

    def get(self, subject: SubjectData, settings: CleaningSettings, progress=None) -> CleanedData:
        key = (subject.key, settings)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one session cleans, the others wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
            result = clean_data(subject, settings, progress=progress)
            with self._lock:
                self.misses += 1
                self._items[key] = result
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._key_locks.pop(key, None)
            return result

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def discard(self, subject_key: str) -> int:
        """Drop every cleaned matrix of one subject (e.g. a session's upload, when the
        session ends or leaves it); return how many were dropped."""
        with self._lock:
            keys = [k for k in self._items if k[0] == subject_key]
            for k in keys:
                del self._items[k]
            return len(keys)


CACHE = _CleanCache()


def cleaned(subject: SubjectData, settings: CleaningSettings, progress=None) -> CleanedData:
    """:func:`clean_data`, cached per (subject data, settings) for the whole process."""
    return CACHE.get(subject, settings, progress=progress)


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

    from .volumes import affine_of

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


# --------------------------------------------------------------------------- Param class

_SUBJECTS: dict = {}
_SUBJECTS_LOCK = threading.Lock()


def _dataset_subject(data_dir, subject: int, size=None) -> SubjectData:
    """A dataset subject (synthetic by default), loaded once per process."""
    from .datasets import development

    files = development.subject_files(data_dir, subject=subject, size=size)
    key = ("dataset", files["func"], files["confounds"])
    with _SUBJECTS_LOCK:
        if key not in _SUBJECTS:
            _SUBJECTS[key] = load_subject(
                files["func"], confounds=files["confounds"], t_r=files["t_r"],
                name=f"{files['participant_id']}",
                info={"truth": files["truth"], "n_subjects": files["n_subjects"],
                      "participant_id": files["participant_id"], "data_dir": files["data_dir"]})
        return _SUBJECTS[key]


class SeedConnectivity(Preprocessing):
    """Seed-to-voxel correlation, as the seed example, live.

    *Structural* parameters (the preprocessing group, inherited from
    :class:`~analysis.preprocessing.Preprocessing`: ``smoothing_fwhm``, ``detrend``,
    the band, ``standardize``, ...; the data's ``t_r`` and ``confound_columns``) and
    the ``subject`` key the cleaned data (cached for the whole process, shared
    between sessions).
    *Display* parameters (``seed_mm``, ``radius_mm``, ``threshold``,
    ``fisher_z``, ``clim``, ``n_peaks``) reuse it: a new seed is one
    matrix-vector product.

    A bad seed or setting raises :class:`DataError`, the parameter goes back
    to its previous value and the previous map stays.

    Data: ``data_dir`` (a ``fetch_development_fmri`` folder; default the
    synthetic dataset) and ``subject``; or the user's files with
    :meth:`from_files`.
    """

    # ---- data
    data_dir = param.String(default=None, allow_None=True, constant=True,
                            doc="nilearn data_dir holding development_fmri (None: the synthetic dataset)")
    subject = param.Integer(default=0, bounds=(0, None),
                            doc="Subject (adults first, then by id)")

    # ---- structural: key the cleaned data (the preprocessing group's parameters are
    # inherited from analysis.preprocessing.Preprocessing; these two are the data's)
    t_r = param.Number(default=T_R, bounds=(0.0, None), inclusive_bounds=(False, True),
                       doc="Repetition time in s (from the data)")
    confound_columns = param.ListSelector(default=[], objects=[],
                                          doc="Confound columns to regress out")

    # ---- display: reuse the cleaned data
    seed_mm = param.NumericTuple(default=PCC_MM, length=3,
                                 doc="Seed centre (x, y, z) in MNI mm")
    radius_mm = param.Number(default=RADIUS_MM, bounds=(1.0, MAX_RADIUS_MM), step=1.0,
                             doc="Seed sphere radius in mm")
    threshold = param.Number(default=0.5, bounds=(0.0, 0.99), step=0.05,
                             doc="Threshold on |r| (z maps: arctanh of it)")
    fisher_z = param.Boolean(default=False, doc="Show Fisher z = arctanh(r) instead of r")
    clim = param.NumericTuple(default=None, length=2, allow_None=True,
                              doc="Colour range (None: symmetric, max |value|)")
    n_peaks = param.Integer(default=10, bounds=(1, 100), doc="Peaks listed")

    # ---- state
    result = param.ClassSelector(class_=SeedMap, default=None, precedence=-1,
                                 doc="The current seed map")
    error = param.String(default="", precedence=-1, doc="Last error message")

    STRUCTURAL = ("subject", *PREPROCESSING, "t_r", "confound_columns")
    DISPLAY = ("seed_mm", "radius_mm")

    def __init__(self, subject_data: SubjectData | None = None, size: str | None = None,
                 progress=None, **params):
        super().__init__(**params)
        self._size = size
        self._fixed = subject_data          # the user's own files
        self.progress = progress            # callable(fraction, message), e.g. the app's bar
        self._data: CleanedData | None = None
        self._subject: SubjectData | None = None
        self._reverting = False
        self._setup_subject(initial=True, explicit=set(params))
        self.param.watch(self._on_structural, list(self.STRUCTURAL))
        self.param.watch(self._on_seed, list(self.DISPLAY))

    @classmethod
    def from_files(cls, func, confounds=None, mask=None, t_r=None, **params):
        """On the user's own files (see :func:`load_subject`)."""
        return cls(subject_data=load_subject(func, confounds=confounds, mask=mask, t_r=t_r),
                   **params)

    # ---- data handling
    def subject_data(self) -> SubjectData:
        """The current subject's inputs."""
        if self._fixed is not None:
            return self._fixed
        return self.dataset_subject()

    def dataset_subject(self) -> SubjectData:
        """The dataset's current ``subject`` (loaded once per process)."""
        return _dataset_subject(self.data_dir, self.subject, size=self._size)

    @property
    def truth(self) -> dict | None:
        """The planted truth of the synthetic dataset (None for other data)."""
        return (self._subject.info.get("truth") if self._subject else None)

    @property
    def n_subjects(self) -> int:
        return int(self._subject.info.get("n_subjects", 1)) if self._subject else 1

    def _setup_subject(self, initial=False, explicit=()):
        subject = self.subject_data()
        self._subject = subject
        names = subject.confound_names
        updates = {}
        with param.parameterized.discard_events(self):
            self.param.confound_columns.objects = names
            self.param.subject.bounds = (0, max(self.n_subjects - 1, 0))
            if initial:
                if not self.confound_columns or any(c not in names for c in self.confound_columns):
                    updates["confound_columns"] = list(names)
                if "t_r" not in explicit:
                    updates["t_r"] = subject.t_r
            else:
                keep = [c for c in self.confound_columns if c in names]
                updates["confound_columns"] = keep if keep or not names else list(names)
            self.param.update(**updates)

    def settings_for(self, subject: SubjectData) -> CleaningSettings:
        """The settings :meth:`use_data` will clean ``subject`` with: the current
        preprocessing, ``t_r`` from that data and all of its confound columns (as
        :meth:`from_files` and the CLI's ``--confounds``)."""
        return self.cleaning_settings(subject.t_r, subject.confound_names)

    def use_data(self, subject_data: SubjectData | None) -> SeedMap:
        """Switch to other data: the user's files (a :class:`SubjectData`, see
        :func:`load_subject`) or, with None, back to the dataset's ``subject``.

        The preprocessing stays; ``t_r`` comes from the data and every confound
        column of its table is regressed (as :meth:`from_files`). When the current
        seed's sphere captures no brain voxel of the new data, the seed moves to the
        brain voxel nearest the mask's centre. A :class:`DataError` (e.g. a band
        above the new data's Nyquist frequency) leaves everything as it was.
        """
        names = ("t_r", "confound_columns", "seed_mm")
        saved = (self._fixed, self._subject, self._data, self.result,
                 {n: getattr(self, n) for n in names},
                 list(self.param.confound_columns.objects), self.param.subject.bounds)
        self._fixed = subject_data
        self._reverting = True            # the watchers stay quiet: one compute below
        try:
            subject = self.subject_data()
            self._subject = subject
            settings = self.settings_for(subject)
            self.param.confound_columns.objects = subject.confound_names
            self.param.subject.bounds = (0, max(self.n_subjects - 1, 0))
            self.param.update(t_r=subject.t_r,
                              confound_columns=list(settings.confound_columns or ()))
            self._data = None
            data = self.cleaned_data()
            try:
                sphere_voxels(data, self.seed_mm, self.radius_mm)
            except DataError:
                self.seed_mm = central_seed(data)
            result = self.compute()
        except Exception:
            self._fixed, self._subject, self._data, self.result = saved[:4]
            self.param.confound_columns.objects = saved[5]
            self.param.subject.bounds = saved[6]
            self.param.update(**saved[4])
            raise
        finally:
            self._reverting = False
        return result

    @property
    def uses_own_data(self) -> bool:
        """True on the user's files (:meth:`from_files`, :meth:`use_data`)."""
        return self._fixed is not None

    def settings(self) -> CleaningSettings:
        """The structural parameters as :class:`CleaningSettings`."""
        return self.cleaning_settings(self.t_r, self.confound_columns)

    def cleaned_data(self) -> CleanedData:
        """The cleaned data for the current structural parameters (cached)."""
        if self._data is None:
            self._data = cleaned(self.subject_data(), self.settings().check(),
                                 progress=scaled(self.progress, 0.0, 1.0) if self.progress else None)
        return self._data

    def compute(self) -> SeedMap:
        """(Re)compute the map for the current parameters; returns it."""
        data = self.cleaned_data()
        result = seed_correlation(data, self.seed_mm, self.radius_mm)
        self.error = ""
        self.result = result
        return result

    def ensure(self) -> SeedMap:
        return self.result if self.result is not None else self.compute()

    # ---- watchers (side effects)
    def _revert(self, events, exc):
        self.error = str(exc)
        self._reverting = True
        try:
            self.param.update(**{e.name: e.old for e in events})
        finally:
            self._reverting = False

    def _on_structural(self, *events):
        if self._reverting:
            return
        old_data, old_subject = self._data, self._subject
        try:
            if any(e.name == "subject" for e in events):
                self._setup_subject()
            self._data = None
            self.compute()
        except DataError as exc:
            self._data, self._subject = old_data, old_subject
            self._revert(events, exc)
            raise

    def _on_seed(self, *events):
        if self._reverting:
            return
        try:
            self.compute()
        except DataError as exc:
            self._revert(events, exc)
            raise

    # ---- derived results
    def _volume(self, values, name):
        return to_volume(self.cleaned_data(), values, name)

    @param.depends("result")
    def r_map(self) -> xr.DataArray:
        """The r map, ``(x, y, z)`` in mm, NaN outside the brain."""
        return self._volume(self.ensure().r, "r")

    @param.depends("result")
    def z_map(self) -> xr.DataArray:
        """The Fisher z map, ``arctanh(r)``."""
        return self._volume(self.ensure().z, "fisher_z")

    @param.depends("result", "fisher_z")
    def stat_map(self) -> xr.DataArray:
        """The map shown: z when ``fisher_z``, else r."""
        return self.z_map() if self.fisher_z else self.r_map()

    @param.depends("threshold", "fisher_z")
    def display_threshold(self) -> float:
        """The threshold in the shown map's units (``arctanh`` for z)."""
        return float(np.arctanh(self.threshold)) if self.fisher_z else float(self.threshold)

    @param.depends("result", "fisher_z", "clim")
    def colour_range(self) -> tuple:
        if self.clim is not None:
            return tuple(self.clim)
        values = self.ensure().z if self.fisher_z else self.ensure().r
        m = float(np.nanmax(np.abs(values[np.isfinite(values)]))) if values.size else 1.0
        return (-m, m)

    @param.depends("result")
    def seed_time_series(self) -> xr.DataArray:
        """The seed's standardised time series, dim ``time`` in s."""
        ts = self.ensure().seed_signal
        return xr.DataArray(ts, dims=("time",), coords={"time": np.arange(ts.size) * self.t_r},
                            name="seed", attrs={"seed_mm": self.ensure().seed_mm,
                                                "radius_mm": self.ensure().radius_mm})

    @param.depends("result", "threshold", "fisher_z", "n_peaks")
    def peaks(self) -> pd.DataFrame:
        """Top local maxima of r above the threshold: MNI ``x, y, z``, ``r``, ``fisher_z``."""
        table = find_peaks(self.r_map(), self.threshold, self.n_peaks)
        table = table.rename(columns={"value": "r"})
        table["fisher_z"] = np.arctanh(table["r"].to_numpy())
        return label_peaks(table, self.truth)

    @param.depends("result", "threshold", "fisher_z")
    def n_above(self) -> int:
        """Voxels with |r| at or above the threshold."""
        return int((np.abs(self.ensure().r) >= self.threshold).sum())

    @param.depends("result", "threshold", "fisher_z")
    def summary(self) -> str:
        """One line: ``seed (0, -52, 18) r=8 mm: 33 voxels; r in [-0.64, 0.95]; 1,204 voxels above 0.5``."""
        res = self.ensure()
        if self.fisher_z:
            z = res.z
            rng = f"z in [{np.nanmin(z):.2f}, {np.nanmax(z):.2f}]"
            thr = f"|z| >= {self.display_threshold():.2f}"
        else:
            rng = f"r in [{res.r.min():.2f}, {res.r.max():.2f}]"
            thr = f"above {self.threshold:g}"
        return (f"seed {_format_mm(res.seed_mm)} r={res.radius_mm:g} mm: "
                f"{res.n_seed_voxels:,} voxels; {rng}; {self.n_above():,} voxels {thr}")

    def to_nifti(self, fisher_z: bool | None = None) -> nib.Nifti1Image:
        """The r (or z) map as a NIfTI image (float32), as the seed saves it."""
        from .volumes import to_nifti

        z = self.fisher_z if fisher_z is None else fisher_z
        da = self.z_map() if z else self.r_map()
        return to_nifti(da.fillna(0.0), dtype=np.float32)

    def voxels_info(self) -> dict:
        res = self.ensure()
        return {"seed": list(res.seed_mm), "radius_mm": res.radius_mm,
                "n_seed_voxels": res.n_seed_voxels, "n_voxels": int(res.r.size),
                "r_min": float(res.r.min()), "r_max": float(res.r.max())}


def with_settings(settings: CleaningSettings, **changes) -> CleaningSettings:
    """A copy of ``settings`` with ``changes`` (dataclasses.replace, checked)."""
    return replace(settings, **changes).check()
