""":class:`EncodingAnalysis`, the Param class of the encoding analysis, and its caches.

:class:`EncodingAnalysis` is the single source of truth for the analysis'
parameters. **Structural** parameters (``data_dir``, ``size``, ``own``, ``lag``,
``cv``, ``n_folds``, ``dtype``) key a cached heavy step: loading and cleaning
the runs (as the seed does) and one decomposition per CV fold
(:class:`analysis.encoding.engine.RidgeCV`). **Display** parameters
(``alpha``, ``threshold``, ``voxel``) only reuse it. The heavy steps live in
process-level caches, so several app sessions share them; a server defers what the
views do not need (disk writes, each run's products: ``analysis/encoding/persist.py``).

Results are xarray objects: R^2 per fold and voxel, the mean R^2 map as a
volume (x, y, z in mm), the alpha path, ridge coefficients as
(voxel, row, col), receptive fields as (row, col).

With ``own`` (the user's files, :class:`analysis.encoding.user.UserEncodingData`) the
analysis runs on them instead: their samples are their volumes (the features already
delayed; ``lag`` does not apply), their receptive fields are ``(delay, row, col)`` when
the features form a grid and ``(delay, feature)`` otherwise, and what is computed from
them is kept in the stores for their ``owner`` (a session) only, under their unguessable
``key``: it goes when that session ends, and never to disk.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import param
import xarray as xr

from .. import cache as disk_cache
from ..config import SIZES, default_size
from ..datasets import miyawaki
from ..registry import CV_SPECS
from .engine import (CV_SCHEMES, FORMAT as ENGINE_FORMAT, RidgeCV, RowBlocks,
                     _one_blas_thread, check_alpha, make_folds)
from ..errors import DataError
from ..store import Store
from ..volumes import to_xarray
from .persist import (ENGINE_FILES, ENGINE_PREFIX, _PREFETCH, _SAVER,  # noqa: F401
                      _Rows, _load_engine, _save_engine)
from .reference import lasso_receptive_field
from .space import VoxelSpace
from .user import UserEncodingData

log = logging.getLogger("fmri_explorer.encoding")

#: The process' caches (analysis/store.py), shared by every session.
DATA = Store("encoding.data", max_entries=3)
ENGINES = Store("encoding.engines", max_entries=4)
#: R^2 per fold and voxel of recent alphas (a slider has few positions).
R2 = Store("encoding.r2", max_entries=64)
PATHS = Store("encoding.alpha_paths", max_entries=8)
LASSO = Store("encoding.lasso", max_entries=512)
SAMPLES = Store("encoding.samples", max_entries=4)
INDEX = Store("encoding.sample_index", max_entries=8)
#: Each run's products with the stimuli (engine.RowBlocks) at the most recent data, lag and
#: precision (86 MB at full size): a new number of folds or CV scheme there decomposes
#: without reading the responses again.
RUN_BLOCKS = Store("encoding.run_blocks", max_entries=1)
R2_CACHE_SIZE = R2.max_entries


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only: it is shared by every session of the process."""
    a.flags.writeable = False
    return a


def clear_caches() -> None:
    """Forget every cached dataset, decomposition, path, Lasso fit and runs' products."""
    for store in (DATA, ENGINES, R2, LASSO, PATHS, SAMPLES, INDEX, RUN_BLOCKS):
        store.clear()


def load_data(data_dir=None, size=None, progress=None) -> miyawaki.EncodingData:
    """The cleaned dataset, cached per folder for the whole process."""
    if data_dir is None:
        from ..config import synthetic_dir
        from ..datasets import ensure_synthetic

        size = size or default_size()
        # known already: skip checking each of the dataset's files again (every update asks)
        known = (str(Path(synthetic_dir(size)).resolve()),)
        data = DATA.get(known)
        if data is not None:
            return data
        data_dir = ensure_synthetic("encoding", size)
    key = (str(Path(data_dir).resolve()),)
    return DATA.get_or_compute(key, lambda: miyawaki.load(data_dir, progress=progress))


class EncodingAnalysis(VoxelSpace, param.Parameterized):
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
    lag = param.Integer(default=miyawaki.LAG, bounds=(0, 20), softbounds=(0, 5),
                        label="Lag (volumes)", doc="""
        Volumes between an image and its response: the first `lag` volumes and the
        last `lag` images of each run are dropped (the seed's 2).""")
    cv = param.Selector(default="kfold", objects={CV_SPECS[k].label: k for k in CV_SCHEMES},
                        label="Cross-validation", doc="""
        Cross-validation: unshuffled KFold(n_folds) as in the seed, or leave-one-run-out.""")
    n_folds = param.Integer(default=10, bounds=(2, None), softbounds=(2, 20),
                            label="Folds (K)", doc="""
        Number of KFold folds (ignored for leave-one-run-out).""")
    dtype = param.Selector(default="float64", objects={"64-bit": "float64", "32-bit": "float32"},
                           label="Precision", doc="""
        Floating point type of the responses and of the cached products.""")
    own = param.ClassSelector(class_=UserEncodingData, default=None, allow_None=True,
                              precedence=-1, doc="""
        The user's own files, read by analysis.encoding.user.load_user_encoding (runs,
        mask, delayed features); None: the dataset of data_dir (or size).""")

    # ---- display: reuse the heavy step
    alpha = param.Number(default=100.0, bounds=(0, None), inclusive_bounds=(False, True),
                         softbounds=(1e-2, 1e5), label="Ridge alpha", doc="""
        Ridge regularisation (sklearn's Ridge alpha); shown on a log scale.""")
    threshold = param.Number(default=0.05, bounds=(-1.0, 1.0), softbounds=(0.0, 0.5),
                             step=0.005, label="R\u00b2 threshold", doc="""
        R^2 below which voxels are hidden in the map and not counted.""")
    voxel = param.Integer(default=None, allow_None=True, bounds=(0, None), doc="""
        Selected voxel (index in mask order) for receptive fields and time courses.""")
    alpha_range = param.Range(default=(-2.0, 5.0), bounds=(-6, 9), doc="""
        log10 range of the alpha path (by default the alpha slider's: alpha's softbounds).""")
    n_alphas = param.Integer(default=20, bounds=(2, 200), doc="""
        Number of alphas (log-spaced) on the alpha path.""")

    STRUCTURAL = ("data_dir", "size", "own", "lag", "cv", "n_folds", "dtype")
    DISPLAY = ("alpha", "threshold", "voxel", "alpha_range", "n_alphas")

    def __init__(self, **params):
        params.setdefault("size", default_size())
        if "alpha" in params:
            params["alpha"] = check_alpha(params["alpha"])
        super().__init__(**params)

    # ------------------------------------------------------------------ heavy, cached
    def data(self, progress=None) -> miyawaki.EncodingData:
        """The cleaned random-image runs (the seed's ``masker.transform`` output), or the
        user's own files (``own``)."""
        if self.own is not None:
            return self.own
        return load_data(self.data_dir, self.size, progress=progress)

    @property
    def uses_own_data(self) -> bool:
        """True when the analysis runs on the user's own files (``own``)."""
        return self.own is not None

    def _owner(self):
        """The own files' session (holding the stores' entries made here), else None."""
        return None if self.own is None else self.own.owner

    def _data_key(self):
        from ..config import data_home, synthetic_dir

        if self.own is not None:
            return self.own.key
        # resolved once per folder (every view asks, on every alpha move)
        raw = (self.data_dir, self.size, str(data_home()))
        memo = self.__dict__.get("_data_key_memo")
        if memo is None or memo[0] != raw:
            d = self.data_dir
            key = str(Path(d).resolve()) if d else str(synthetic_dir(self.size).resolve())
            memo = self.__dict__["_data_key_memo"] = (raw, key)
        return memo[1]

    def _shared(self, memo: str, store: Store, key, make):
        """``make()`` once per ``key`` for every instance (session), kept in ``store``,
        and remembered on this instance as ``memo``."""
        cached = self.__dict__.get(memo)
        if cached is None or cached[0] != key:
            cached = self.__dict__[memo] = (key, store.get_or_compute(key, make))
        return cached[1]

    @param.depends("data_dir", "size", "own", "lag")
    def sample_index(self):
        """``(X (n_samples, 100), runs (n_samples,), volumes)`` of :meth:`samples`, without
        ``Y`` (which copies the data: 58 MB, 0.15 s at full size). The user's own files:
        their delayed features, runs and every volume."""
        own = self.own
        if own is not None:
            return own.x, own.runs, np.arange(own.n_samples)
        return self._shared(
            "_index_cache", INDEX, (self._data_key(), int(self.lag)),
            lambda: tuple(_read_only(a) for a in self.data().lagged_index(self.lag)))

    @param.depends("data_dir", "size", "own", "lag")
    def samples(self):
        """``(Y (n_samples, n_voxels), X (n_samples, 100), runs (n_samples,), volumes)``.

        Sliced once per dataset and lag, shared by every instance (session): Y is the
        size of the data (58 MB at full size). The user's own files: as they are.
        """
        if self.own is not None:
            return (self.own.y,) + tuple(self.sample_index())

        def make():
            x, runs, volumes = self.sample_index()
            return (_read_only(self.data().fmri[volumes]), x, runs, volumes)

        return self._shared("_samples_cache", SAMPLES, (self._data_key(), int(self.lag)), make)

    def structural_key(self) -> tuple:
        return (self._data_key(), None if self.own is not None else self.lag, self.cv,
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

    def engine_path(self) -> Path | None:
        """The disk-cache file of the decomposition for the current structural parameters
        (None for data without a cache key: its decomposition is not kept on disk)."""
        if self.data().cache_key is None:
            return None
        return self._engine_file(len(self.sample_index()[0]))

    def has_engine(self) -> bool:
        """True when the decomposition for the current structural parameters is in this
        process' cache (showing their results is quick); False when it must be read from
        the disk cache or computed."""
        return self.structural_key() in ENGINES

    @param.depends(*STRUCTURAL)
    def engine(self, progress=None, save_later: bool = False) -> RidgeCV:
        """The per-fold decompositions (cached per structural parameters). A new one is
        written to the disk cache (see :meth:`engine_path`); ``save_later``: by a
        background thread once no decomposition has been built for :data:`SAVE_DELAY`
        seconds (the caller shows its results first)."""
        def build():
            x, runs, volumes = self.sample_index()
            path = self._engine_file(len(x))
            # the data's rows at this lag, not a copy (the engine reads a test fold's
            # rows, or a voxel, at a time)
            y = self.own.y if self.own is not None else _Rows(self.data().fmri, volumes)
            eng = _load_engine(path, x, y, self.dtype)
            if eng is None:
                _SAVER.postpone()   # no disk writes while decomposing
                _PREFETCH.interrupt()   # nor products computed in the background
                folds = make_folds(len(x), self.cv, self.n_folds, runs)
                eng = RidgeCV(x, y, folds, dtype=np.dtype(self.dtype), progress=progress,
                              blocks=RUN_BLOCKS.get(self._blocks_key()))
                _save_engine(eng, path, later=save_later)
            return eng

        # sessions asking for the same decomposition wait for one build
        eng = ENGINES.get_or_compute(self.structural_key(), build, owner=self._owner())
        self.param.voxel.bounds = (0, eng.n_voxels - 1)
        return eng

    def _blocks_key(self) -> tuple:
        return (self._data_key(), None if self.own is not None else int(self.lag),
                self.dtype)

    def run_blocks(self, cancel=None) -> RowBlocks | None:
        """Each run's products with the stimuli at the current data, lag and precision
        (:class:`analysis.encoding.engine.RowBlocks`), computed once and kept for the next
        decompositions there: a new number of folds or CV scheme then costs the folds'
        decompositions only. ``cancel``: see ``RowBlocks``; None when it stopped them."""
        key = self._blocks_key()
        blocks = RUN_BLOCKS.get(key)
        if blocks is not None:
            return blocks
        x, runs, volumes = self.sample_index()
        y = self.own.y if self.own is not None else _Rows(self.data().fmri, volumes)
        starts = np.flatnonzero(np.diff(np.asarray(runs), prepend=np.nan))
        ranges = list(zip(starts, list(starts[1:]) + [len(runs)]))
        blocks = RowBlocks(x, y, ranges, np.dtype(self.dtype), cancel=cancel)
        if not blocks.complete:
            return None
        return RUN_BLOCKS.put(key, blocks, owner=self._owner())

    def prefetch_run_blocks(self) -> None:
        """Compute :meth:`run_blocks` in a background thread once no decomposition has
        begun for :data:`PREFETCH_DELAY` seconds (one begun meanwhile stops it): for a
        server, after a result is shown."""
        _PREFETCH.schedule(EncodingAnalysis(**{k: getattr(self, k) for k in self.STRUCTURAL}))

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
            # shared: nobody may change it in place
            r2 = R2.get_or_compute(shared, lambda: _read_only(eng.r2(self.alpha)),
                                   owner=self._owner())
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
        # sessions asking at once wait for one computation
        r2 = PATHS.get_or_compute(key, lambda: self.engine().r2_path(alphas).mean(axis=1),
                                  owner=self._owner())
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
        """Ridge coefficients fitted on all samples: dims ``(voxel, row, col)`` (the own
        files: ``(voxel, delay, row, col)`` or ``(voxel, delay, feature)``)."""
        eng = self.engine()
        coef = eng.coef(self.alpha)
        if self.own is not None:
            return self.own.coefficients(coef, alpha=self.alpha)
        coef = coef.reshape(eng.n_voxels, *miyawaki.STIMULUS_SHAPE)
        return xr.DataArray(coef, dims=("voxel", "row", "col"), name="coef",
                            coords={"voxel": np.arange(eng.n_voxels)}, attrs={"alpha": self.alpha})

    def _field(self, coef, name: str, attrs: dict) -> xr.DataArray:
        """One voxel's coefficients as a receptive field (see :meth:`ridge_receptive_field`)."""
        if self.own is not None:
            rf = self.own.weights(coef)
        else:
            rf = xr.DataArray(np.asarray(coef).reshape(miyawaki.STIMULUS_SHAPE),
                              dims=("row", "col"))
        rf.name, rf.attrs = name, attrs
        return rf

    def _voxel(self, voxel):
        voxel = self.voxel if voxel is None else voxel
        if voxel is None:
            raise DataError("no voxel selected")
        return self.engine().check_voxel(voxel)

    def ridge_receptive_field(self, voxel=None) -> xr.DataArray:
        """Ridge coefficients of one voxel (all samples, ``alpha``) as ``(row, col)``; the
        user's own files: ``(delay, row, col)`` when the features form a grid
        (:meth:`feature_grid`), else ``(delay, feature)`` (the features' names in
        ``name``)."""
        v = self._voxel(voxel)
        return self._field(self.engine().coef(self.alpha, voxels=v)[0], "ridge",
                           {"voxel": v, "alpha": self.alpha})

    def _lasso_key(self, v: int) -> tuple:
        return (self._data_key(), None if self.own is not None else self.lag, v)

    def has_lasso(self, voxel=None) -> bool:
        """True when the LassoLarsCV receptive field of ``voxel`` (default: the selected
        one) at the current data and lag is in this process' cache (showing it is quick);
        False when it must be fitted (tens of ms at full size, the first fit of a process
        about a second)."""
        voxel = self.voxel if voxel is None else voxel
        if voxel is None:
            return False
        return self._lasso_key(int(voxel)) in LASSO

    def lasso_receptive_field(self, voxel=None) -> xr.DataArray:
        """The seed's LassoLarsCV receptive field of one voxel, computed on demand, cached."""
        v = self._voxel(voxel)
        key = self._lasso_key(v)
        def fit():
            x, _, volumes = self.sample_index()
            # the voxel's column of the seed's fmri_data (no copy of the whole)
            y = self.data().fmri[volumes, v]
            with _one_blas_thread():   # small products: BLAS threads only wait (10x slower)
                return lasso_receptive_field(x, np.asarray(y, dtype=np.float64))

        # sessions asking at once wait for one fit
        coef = LASSO.get_or_compute(key, fit, owner=self._owner())
        return self._field(coef, "lasso", {"voxel": v})

    @property
    def t_r(self) -> float:
        """The repetition time in seconds: the data's (its runs' NIfTI header), else
        Miyawaki 2008's 2 s."""
        t_r = self.data().t_r
        return float(t_r) if t_r and np.isfinite(t_r) else float(miyawaki.T_R)

    def time_course(self, voxel=None) -> xr.Dataset:
        """Measured and cross-validated predicted responses of one voxel over samples;
        ``time`` is the seconds of each sample's volume within its run (attrs ``t_r``)."""
        v = self._voxel(voxel)
        eng = self.engine()
        _, runs, volumes = self.sample_index()
        starts = np.concatenate([[0], np.cumsum(self.data().run_lengths)[:-1]])
        t_r = self.t_r
        return xr.Dataset({"measured": ("sample", np.asarray(eng.measured(v), float)),
                           "predicted": ("sample", np.asarray(eng.predict_cv(self.alpha, v), float))},
                          coords={"sample": np.arange(eng.n_samples), "run": ("sample", runs),
                                  "volume": ("sample", volumes),
                                  "time": ("sample", (volumes - starts[runs]) * t_r)},
                          attrs={"voxel": v, "alpha": self.alpha, "t_r": t_r})

    def stimulus(self, sample: int) -> xr.DataArray:
        """The 10x10 image paired with ``sample`` (after the lag): ``(row, col)``; the
        user's own files: the features of that volume, before any delay (``(row, col)``
        on a grid, else ``(feature,)``)."""
        x, _, volumes = self.sample_index()
        s = int(sample)
        if not 0 <= s < len(x):
            raise DataError(f"sample {sample} is outside 0 to {len(x) - 1}")
        if self.own is not None:
            stim = self.own.stimulus(s)
            stim.name, stim.attrs = "stimulus", {"sample": s, "volume": s}
            return stim
        return xr.DataArray(x[s].reshape(miyawaki.STIMULUS_SHAPE), dims=("row", "col"),
                            name="stimulus", attrs={"sample": s, "volume": int(volumes[s])})
