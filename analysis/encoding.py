"""Encoding analysis (Miyawaki 2008): voxel-wise ridge from 10x10 images to voxels.

:class:`EncodingAnalysis` is the single source of truth for the analysis'
parameters. **Structural** parameters (``data_dir``, ``size``, ``lag``,
``cv``, ``n_folds``, ``dtype``) key a cached heavy step: loading and cleaning
the runs (as the seed does) and one decomposition per CV fold
(:class:`analysis.encoding_engine.RidgeCV`). **Display** parameters
(``alpha``, ``threshold``, ``voxel``) only reuse it. The heavy steps live in
process-level caches, so several app sessions share them.

Results are xarray objects: R^2 per fold and voxel, the mean R^2 map as a
volume (x, y, z in mm), the alpha path, ridge coefficients as
(voxel, row, col), receptive fields as (row, col).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import param
import xarray as xr

from . import cache as disk_cache
from .config import SIZES, default_size
from .datasets import miyawaki
from .encoding_engine import CV_SCHEMES, FORMAT as ENGINE_FORMAT, RidgeCV, check_alpha, make_folds
from .errors import DataError
from .volumes import to_xarray, voxel_to_mm

log = logging.getLogger("fmri_explorer.encoding")

_LOCK = threading.RLock()
_DATA: "OrderedDict[tuple, miyawaki.EncodingData]" = OrderedDict()
_ENGINES: "OrderedDict[tuple, RidgeCV]" = OrderedDict()
_LASSO: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_PATHS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
#: R^2 per fold and voxel of recent alphas, shared by sessions (a slider has few positions).
_R2: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
R2_CACHE_SIZE = 64
_SAMPLES: "OrderedDict[tuple, tuple]" = OrderedDict()
_KEY_LOCKS: dict = {}
_INDEX: "OrderedDict[tuple, tuple]" = OrderedDict()


def _remember(cache: OrderedDict, key, value, limit: int):
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)
    return value


def _key_lock(key) -> threading.Lock:
    """The lock of one cache entry: who asks for it while it is computed waits for it."""
    with _LOCK:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only: it is shared by every session of the process."""
    a.flags.writeable = False
    return a


#: decompositions kept on disk (in the cache folder), the most recently used first
ENGINE_FILES = 3
ENGINE_PREFIX = "ridgecv-"


class _Rows:
    """``a[rows]`` without the copy, for what reads a column at a time (``[:, j]``)."""

    def __init__(self, a: np.ndarray, rows: np.ndarray):
        self.a, self.rows = a, rows
        self.shape = (len(rows), a.shape[1])
        self.dtype = a.dtype

    def __getitem__(self, key):
        r, c = key
        return self.a[self.rows[r], c]


def _load_engine(path, x, y, dtype) -> RidgeCV | None:
    """The decomposition saved at ``path``, or None (missing, unreadable, other data)."""
    if path is None or not os.path.lexists(path):
        return None
    try:
        eng = RidgeCV.load(path, x, y, dtype)
    except DataError as exc:
        log.info("ignoring %s: %s", path, exc)
        return None
    disk_cache.touch(path)  # recently used: kept when older ones are removed
    return eng


def _save_engine(eng: RidgeCV, path) -> None:
    """Keep the decomposition on disk (the ``ENGINE_FILES`` most recent ones), so a new
    process (a restarted server, another of ``--num-procs``) reads it instead of
    computing it. A cache folder that cannot be written only makes that slower."""
    if path is None:
        return
    try:
        eng.save(path)
    except (OSError, DataError) as exc:
        log.info("decomposition not saved to %s: %s", path, exc)
        return
    disk_cache.prune(ENGINE_PREFIX, ".npz", ENGINE_FILES, folder=path.parent)


def clear_caches() -> None:
    """Forget every cached dataset, decomposition, path and Lasso fit."""
    with _LOCK:
        for cache in (_DATA, _ENGINES, _LASSO, _PATHS, _SAMPLES, _INDEX):
            cache.clear()


def load_data(data_dir=None, size=None, progress=None) -> miyawaki.EncodingData:
    """The cleaned dataset, cached per folder for the whole process."""
    if data_dir is None:
        from .config import synthetic_dir
        from .datasets import ensure_synthetic

        size = size or default_size()
        # known already: skip checking each of the dataset's files again (every update asks)
        known = (str(Path(synthetic_dir(size)).resolve()),)
        with _LOCK:
            if known in _DATA:
                return _DATA[known]
        data_dir = ensure_synthetic("encoding", size)
    key = (str(Path(data_dir).resolve()),)
    with _LOCK:
        if key not in _DATA:
            _remember(_DATA, key, miyawaki.load(data_dir, progress=progress), 3)
        return _DATA[key]


def lasso_receptive_field(x, y) -> np.ndarray:
    """The seed's ``make_pipeline(StandardScaler(), LassoLarsCV(max_iter=10))`` coefficients."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LassoLarsCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lasso = make_pipeline(StandardScaler(), LassoLarsCV(max_iter=10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lasso.fit(x, y)
    return lasso.named_steps["lassolarscv"].coef_.copy()


class EncodingAnalysis(param.Parameterized):
    """Voxel-wise ridge encoding model with cross-validated R^2, as in the Miyawaki seed.

    Examples
    --------
    >>> enc = EncodingAnalysis(size="small", alpha=100, n_folds=10)
    >>> enc.r2_map()          # xr.DataArray (x, y, z), fold-mean R^2
    >>> enc.alpha = 10        # reuses the decomposition: one product
    """

    # ---- structural: key the cached heavy step
    data_dir = param.String(default=None, allow_None=True, doc="""
        nilearn data_dir holding miyawaki2008/ (synthetic or real); None uses the
        synthetic dataset of `size`.""")
    size = param.Selector(default="full", objects=list(SIZES), doc="""
        Synthetic dataset size when no data_dir is given.""")
    lag = param.Integer(default=miyawaki.LAG, bounds=(0, 20), doc="""
        Volumes between an image and its response: the first `lag` volumes and the
        last `lag` images of each run are dropped (the seed's 2).""")
    cv = param.Selector(default="kfold", objects=list(CV_SCHEMES), doc="""
        Cross-validation: unshuffled KFold(n_folds) as in the seed, or leave-one-run-out.""")
    n_folds = param.Integer(default=10, bounds=(2, None), doc="""
        Number of KFold folds (ignored for leave-one-run-out).""")
    dtype = param.Selector(default="float64", objects=["float64", "float32"], doc="""
        Floating point type of the responses and of the cached products.""")

    # ---- display: reuse the heavy step
    alpha = param.Number(default=100.0, bounds=(0, None), inclusive_bounds=(False, True),
                         softbounds=(1e-2, 1e5), doc="""
        Ridge regularisation (sklearn's Ridge alpha); shown on a log scale.""")
    threshold = param.Number(default=0.05, bounds=(-1.0, 1.0), softbounds=(0.0, 0.5), doc="""
        R^2 below which voxels are hidden in the map and not counted.""")
    voxel = param.Integer(default=None, allow_None=True, bounds=(0, None), doc="""
        Selected voxel (index in mask order) for receptive fields and time courses.""")
    alpha_range = param.Range(default=(-1.0, 5.0), bounds=(-6, 9), doc="""
        log10 range of the alpha path.""")
    n_alphas = param.Integer(default=20, bounds=(2, 200), doc="""
        Number of alphas (log-spaced) on the alpha path.""")

    STRUCTURAL = ("data_dir", "size", "lag", "cv", "n_folds", "dtype")
    DISPLAY = ("alpha", "threshold", "voxel", "alpha_range", "n_alphas")

    def __init__(self, **params):
        params.setdefault("size", default_size())
        if "alpha" in params:
            params["alpha"] = check_alpha(params["alpha"])
        super().__init__(**params)

    # ------------------------------------------------------------------ heavy, cached
    def data(self, progress=None) -> miyawaki.EncodingData:
        """The cleaned random-image runs (the seed's ``masker.transform`` output)."""
        return load_data(self.data_dir, self.size, progress=progress)

    def _data_key(self):
        from .config import data_home, synthetic_dir

        # resolved once per folder (every view asks, on every alpha move)
        raw = (self.data_dir, self.size, str(data_home()))
        memo = self.__dict__.get("_data_key_memo")
        if memo is None or memo[0] != raw:
            d = self.data_dir
            key = str(Path(d).resolve()) if d else str(synthetic_dir(self.size).resolve())
            memo = self.__dict__["_data_key_memo"] = (raw, key)
        return memo[1]

    def _shared(self, memo: str, cache: OrderedDict, key, make, limit: int):
        """``make()`` once per ``key`` for every instance (session) in ``cache`` (the
        ``limit`` most recent), and remembered on this instance as ``memo``."""
        cached = self.__dict__.get(memo)
        if cached is None or cached[0] != key:
            with _LOCK:
                shared = cache.get(key)
                if shared is not None:
                    cache.move_to_end(key)
            if shared is None:
                shared = make()
                with _LOCK:
                    shared = cache.setdefault(key, shared)
                    _remember(cache, key, shared, limit)
            cached = self.__dict__[memo] = (key, shared)
        return cached[1]

    @param.depends("data_dir", "size", "lag")
    def sample_index(self):
        """``(X (n_samples, 100), runs (n_samples,), volumes)`` of :meth:`samples`, without
        ``Y`` (which copies the data: 58 MB, 0.15 s at full size)."""
        return self._shared(
            "_index_cache", _INDEX, (self._data_key(), int(self.lag)),
            lambda: tuple(_read_only(a) for a in self.data().lagged_index(self.lag)), 8)

    @param.depends("data_dir", "size", "lag")
    def samples(self):
        """``(Y (n_samples, n_voxels), X (n_samples, 100), runs (n_samples,), volumes)``.

        Sliced once per dataset and lag, shared by every instance (session): Y is the
        size of the data (58 MB at full size).
        """
        def make():
            x, runs, volumes = self.sample_index()
            return (_read_only(self.data().fmri[volumes]), x, runs, volumes)

        return self._shared("_samples_cache", _SAMPLES, (self._data_key(), int(self.lag)),
                            make, 4)

    def structural_key(self) -> tuple:
        return (self._data_key(), self.lag, self.cv,
                self.n_folds if self.cv == "kfold" else None, self.dtype)

    def _engine_file(self, n_samples: int) -> Path | None:
        """Where this decomposition is kept on disk (None for data without a cache key)."""
        data_key = self.data().cache_key
        if data_key is None:
            return None
        parts = (data_key, self.lag, self.cv, self.n_folds if self.cv == "kfold" else None,
                 self.dtype, n_samples, ENGINE_FORMAT)
        digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:16]
        return disk_cache.cache_file(f"{ENGINE_PREFIX}{digest}.npz")

    def has_engine(self) -> bool:
        """True when the decomposition for the current structural parameters is in this
        process' cache (showing their results is quick); False when it must be read from
        the disk cache or computed."""
        with _LOCK:
            return self.structural_key() in _ENGINES

    @param.depends(*STRUCTURAL)
    def engine(self, progress=None) -> RidgeCV:
        """The per-fold decompositions (cached per structural parameters)."""
        key = self.structural_key()
        with _LOCK:
            key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
        with key_lock:  # sessions asking for the same decomposition wait for one build
            with _LOCK:
                eng = _ENGINES.get(key)
                if eng is not None:
                    _ENGINES.move_to_end(key)
            if eng is None:
                x, runs, volumes = self.sample_index()
                path = self._engine_file(len(x))
                # read from disk, it keeps the data's rows, not a copy (it reads one voxel
                # at a time)
                eng = _load_engine(path, x, _Rows(self.data().fmri, volumes), self.dtype)
                if eng is None:
                    y = self.samples()[0]
                    folds = make_folds(len(x), self.cv, self.n_folds, runs)
                    eng = RidgeCV(x, y, folds, dtype=np.dtype(self.dtype), progress=progress)
                    _save_engine(eng, path)
                with _LOCK:
                    _remember(_ENGINES, key, eng, 4)
        self.param.voxel.bounds = (0, eng.n_voxels - 1)
        return eng

    # ------------------------------------------------------------------ results
    @property
    def n_voxels(self) -> int:
        return self.data().n_voxels

    @param.depends(*STRUCTURAL, "alpha")
    def r2_folds(self) -> xr.DataArray:
        """R^2 per fold and voxel at ``alpha``: dims ``(fold, voxel)``."""
        eng = self.engine()
        key = (id(eng), self.alpha)
        memo = self.__dict__.get("_r2_memo")
        if memo is not None and memo[0] == key:
            r2 = memo[1]
        else:  # one product per alpha, however many views (and sessions) ask for it
            shared = (self.structural_key(), id(eng), float(self.alpha))
            with _LOCK:
                r2 = _R2.get(shared)
                if r2 is not None:
                    _R2.move_to_end(shared)
            if r2 is None:
                r2 = eng.r2(self.alpha)
                r2.flags.writeable = False  # shared: nobody may change it in place
                with _LOCK:
                    _remember(_R2, shared, r2, R2_CACHE_SIZE)
            self.__dict__["_r2_memo"] = (key, r2)
        return xr.DataArray(r2, dims=("fold", "voxel"),
                            coords={"fold": np.arange(eng.n_folds), "voxel": np.arange(eng.n_voxels)},
                            name="r2", attrs={"alpha": self.alpha, "cv": self.cv})

    @param.depends(*STRUCTURAL, "alpha")
    def mean_r2(self) -> xr.DataArray:
        """Fold-mean R^2 per voxel (negatives kept): dims ``(voxel,)``, mask order."""
        eng = self.engine()
        key = (id(eng), self.alpha)
        memo = self.__dict__.get("_mean_r2_memo")
        if memo is None or memo[0] != key:
            r2 = self.r2_folds().mean("fold")
            r2.name = "r2"
            r2.attrs.update(alpha=self.alpha, n_folds=eng.n_folds)
            memo = self.__dict__["_mean_r2_memo"] = (key, r2)
        return memo[1].copy(deep=False)

    @param.depends(*STRUCTURAL, "alpha")
    def r2_map(self) -> xr.DataArray:
        """The fold-mean R^2 as a volume, dims ``(x, y, z)`` in mm (NaN outside the mask)."""
        da = to_xarray(self.mean_r2().values, mask=self.data().mask_img, name="r2")
        da.attrs.update(alpha=self.alpha, n_folds=self.engine().n_folds)
        return da

    @param.depends(*STRUCTURAL, "alpha", "threshold")
    def n_above(self) -> int:
        """Voxels whose fold-mean R^2 exceeds ``threshold``."""
        return int((self.mean_r2().values > self.threshold).sum())

    @param.depends(*STRUCTURAL, "alpha", "threshold")
    def summary(self) -> str:
        """One line, e.g. ``alpha=100 folds=10 mean R2=0.108 voxels above 0.05: 812``."""
        r2 = self.mean_r2().values
        return (f"alpha={self.alpha:.4g} folds={self.engine().n_folds} "
                f"mean R2={float(r2.mean()):.3f} voxels above {self.threshold:g}: "
                f"{int((r2 > self.threshold).sum())}")

    @param.depends(*STRUCTURAL, "alpha_range", "n_alphas")
    def alphas(self) -> np.ndarray:
        lo, hi = self.alpha_range
        return np.logspace(lo, hi, self.n_alphas)

    @param.depends(*STRUCTURAL, "alpha_range", "n_alphas")
    def alpha_path(self) -> xr.Dataset:
        """Score vs alpha: ``mean_r2 (alpha)``, ``r2 (alpha, voxel)`` (fold means),
        ``best_alpha (voxel)`` and ``best_r2 (voxel)``."""
        alphas = self.alphas()
        key = self.structural_key() + (tuple(np.round(np.log10(alphas), 12)),)
        with _LOCK:
            r2 = _PATHS.get(key)
        if r2 is None:
            with _key_lock(("path",) + key):  # sessions asking at once wait for one computation
                with _LOCK:
                    r2 = _PATHS.get(key)
                if r2 is None:
                    r2 = self.engine().r2_path(alphas).mean(axis=1)
                    with _LOCK:
                        _remember(_PATHS, key, r2, 8)
        best = r2.argmax(axis=0)
        vox = np.arange(r2.shape[1])
        return xr.Dataset(
            {"mean_r2": ("alpha", r2.mean(axis=1)),
             "r2": (("alpha", "voxel"), r2),
             "best_alpha": ("voxel", alphas[best]),
             "best_r2": ("voxel", r2[best, vox])},
            coords={"alpha": alphas, "voxel": vox})

    @param.depends(*STRUCTURAL, "alpha")
    def coefficients(self) -> xr.DataArray:
        """Ridge coefficients fitted on all samples: dims ``(voxel, row, col)``."""
        eng = self.engine()
        coef = eng.coef(self.alpha).reshape(eng.n_voxels, *miyawaki.STIMULUS_SHAPE)
        return xr.DataArray(coef, dims=("voxel", "row", "col"), name="coef",
                            coords={"voxel": np.arange(eng.n_voxels)}, attrs={"alpha": self.alpha})

    def _voxel(self, voxel):
        voxel = self.voxel if voxel is None else voxel
        if voxel is None:
            raise DataError("no voxel selected")
        return self.engine().check_voxel(voxel)

    def ridge_receptive_field(self, voxel=None) -> xr.DataArray:
        """Ridge coefficients of one voxel (all samples, ``alpha``) as ``(row, col)``."""
        v = self._voxel(voxel)
        rf = self.engine().coef(self.alpha, voxels=v)[0].reshape(miyawaki.STIMULUS_SHAPE)
        return xr.DataArray(rf, dims=("row", "col"), name="ridge",
                            attrs={"voxel": v, "alpha": self.alpha})

    def lasso_receptive_field(self, voxel=None) -> xr.DataArray:
        """The seed's LassoLarsCV receptive field of one voxel, computed on demand, cached."""
        v = self._voxel(voxel)
        key = (self._data_key(), self.lag, v)
        with _LOCK:
            coef = _LASSO.get(key)
        if coef is None:
            with _key_lock(("lasso",) + key):  # sessions asking at once wait for one fit
                with _LOCK:
                    coef = _LASSO.get(key)
                if coef is None:
                    x, _, volumes = self.sample_index()
                    # the voxel's column of the seed's fmri_data (no copy of the whole)
                    y = self.data().fmri[volumes, v]
                    coef = lasso_receptive_field(x, np.asarray(y, dtype=np.float64))
                    with _LOCK:
                        _remember(_LASSO, key, coef, 512)
        return xr.DataArray(coef.reshape(miyawaki.STIMULUS_SHAPE), dims=("row", "col"),
                            name="lasso", attrs={"voxel": v})

    def time_course(self, voxel=None) -> xr.Dataset:
        """Measured and cross-validated predicted responses of one voxel over samples."""
        v = self._voxel(voxel)
        eng = self.engine()
        _, runs, volumes = self.sample_index()
        return xr.Dataset({"measured": ("sample", np.asarray(eng.measured(v), float)),
                           "predicted": ("sample", np.asarray(eng.predict_cv(self.alpha, v), float))},
                          coords={"sample": np.arange(eng.n_samples), "run": ("sample", runs),
                                  "volume": ("sample", volumes)},
                          attrs={"voxel": v, "alpha": self.alpha})

    def stimulus(self, sample: int) -> xr.DataArray:
        """The 10x10 image paired with ``sample`` (after the lag): ``(row, col)``."""
        x, _, volumes = self.sample_index()
        s = int(sample)
        if not 0 <= s < len(x):
            raise DataError(f"sample {sample} is outside 0 to {len(x) - 1}")
        return xr.DataArray(x[s].reshape(miyawaki.STIMULUS_SHAPE), dims=("row", "col"),
                            name="stimulus", attrs={"sample": s, "volume": int(volumes[s])})

    # ------------------------------------------------------------------ voxels <-> space
    def voxel_ijk(self, voxel=None) -> tuple:
        """Grid indices (i, j, k) of a voxel given in mask order."""
        v = self._voxel(voxel)
        mask = np.asarray(self.data().mask_img.dataobj).astype(bool)
        return tuple(int(a[v]) for a in np.nonzero(mask))

    def voxel_mm(self, voxel=None) -> tuple:
        ijk = self.voxel_ijk(voxel)
        return tuple(float(c) for c in voxel_to_mm(self.data().mask_img.affine, ijk))

    def voxel_at(self, ijk) -> int | None:
        """Mask-order index of grid voxel ``(i, j, k)``, or None outside the mask."""
        mask = np.asarray(self.data().mask_img.dataobj).astype(bool)
        i, j, k = (int(a) for a in ijk)
        if not (0 <= i < mask.shape[0] and 0 <= j < mask.shape[1] and 0 <= k < mask.shape[2]):
            return None
        if not mask[i, j, k]:
            return None
        flat = np.ravel_multi_index((i, j, k), mask.shape)
        return int(np.searchsorted(np.flatnonzero(mask.ravel()), flat))

    def background(self) -> xr.DataArray | None:
        bg = self.data().background
        return None if bg is None else to_xarray(bg, name="background")
