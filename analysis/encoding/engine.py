"""Fast voxel-wise ridge regression with cross-validated R^2 (pure numpy).

The seed fits ``Ridge(alpha)`` once per fold. Here each fold is decomposed
once: the training stimuli are centred (as ``Ridge(fit_intercept=True)``
does) and ``Xc.T Xc = V diag(s^2) V.T`` (an eigendecomposition of that small
Gram matrix when it is well conditioned, else a thin SVD of ``Xc``), and
``W = V.T Xc.T Yc`` is cached. The ridge solution for any alpha is then
``V b`` with ``b = D W``, ``D = diag(d)``, ``d = 1 / (s^2 + alpha)``: a rescale
of the cached product. ``Xc.T Yc`` of a training fold is ``X.T Y`` of all
samples minus the test rows' product, and the test rows of the folds cover the
samples once (KFold, leave-one-run-out), so all folds together cost about one
pass over ``Y`` (a test fold's rows at a time: no copy of the whole); with
:class:`RowBlocks` (each run's products, made once) a fold's are sums of the runs'.

The held-out sum of squared errors needs no prediction either. With
``P = (X_test - x_mean) V``, ``G = P.T P``, ``a = P.T (Y_test - y_mean)``:

    SSE = ||Y_test - y_mean||^2 - 2 d.(w a) + sum_jl G_jl w_j w_l d_j d_l

per voxel (``w`` its column of ``W``). Since ``d_j d_l = (d_j - d_l) / (s_l^2 - s_j^2)``,
the pairs of distinct eigenvalues sum to ``2 sum_j d_j w_j (H w)_j`` with
``H_jl = G_jl / (s_l^2 - s_j^2)``, so with ``u = 2 w (H w - a)``, cached,

    SSE = ||Y_test - y_mean||^2 + d.u + (d^2 diag(G)).w^2 (+ the pairs of equal s^2)

is linear in ``d`` and ``d^2``: a new alpha costs two passes over ``(k, n_voxels)``
arrays per fold, and a whole alpha path one matrix product per fold. Eigenvalues
closer than :data:`CLUSTER_GAP` (relative) are grouped and their pairs summed
exactly (the partial fractions would cancel there); ``u`` is kept in float64 (it
holds the terms that cancel), whatever ``dtype``.
``r2`` follows :func:`sklearn.metrics.r2_score` (``multioutput="raw_values"``,
``force_finite=True``).
"""

from __future__ import annotations

import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from scipy.linalg.blas import get_blas_funcs  # loaded with the module, so BLAS limits apply to it

from ..errors import DataError
from ..progress import null_progress
from ..registry import CV_SPECS
from .rows import RowBlocks, _all_rows, _one_blas_thread, _TestRows  # noqa: F401 (RowBlocks)

#: the keys of :data:`analysis.registry.CV_SPECS` (CLI choices): ``("kfold", "run")``
CV_SCHEMES = tuple(CV_SPECS)
#: version of :meth:`RidgeCV.save`'s file (bump when the cached arrays change meaning)
FORMAT = 2
def make_folds(n_samples: int, cv: str = "kfold", n_folds: int = 10, runs=None) -> list:
    """CV splits as a list of ``(train, test)`` index arrays.

    ``cv="kfold"``: ``sklearn.model_selection.KFold(n_folds)`` (unshuffled, as
    the seed). ``cv="run"``: ``LeaveOneGroupOut`` over ``runs``. (The schemes of
    :data:`analysis.registry.CV_SPECS`.)
    """
    if cv not in CV_SPECS:
        raise DataError(f"cv must be one of {', '.join(CV_SPECS)}, not {cv!r}")
    spec = CV_SPECS[cv]
    index = np.arange(n_samples)
    if not spec.grouped:
        n_folds = int(n_folds)
        if n_folds < 2 or n_folds > n_samples:
            raise DataError(f"n_folds must be between 2 and the number of samples "
                            f"({n_samples}), not {n_folds}")
        return [(tr, te) for tr, te in spec.splitter(n_folds).split(index)]
    if runs is None:
        raise DataError("leave-one-run-out needs the run of each sample")
    runs = np.asarray(runs)
    if runs.shape[0] != n_samples:
        raise DataError(f"{runs.shape[0]} run labels for {n_samples} samples")
    if np.unique(runs).size < 2:
        raise DataError(f"{spec.label} needs at least 2 runs")
    return [(tr, te) for tr, te in spec.splitter(n_folds).split(index, groups=runs)]


def check_alpha(alpha) -> float:
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha <= 0:
        raise DataError(f"alpha must be a positive number, not {alpha}")
    return alpha


#: Neighbouring eigenvalues ``s^2`` of a fold's training stimuli closer than this (relative
#: to the larger) are one cluster: their pairs are scored exactly, not by partial fractions.
CLUSTER_GAP = 1e-3
#: The training stimuli's Gram matrix is eigendecomposed when its condition number is
#: below this (its eigenvalues then as accurate as the SVD's); else the SVD of the stimuli.
GRAM_COND = 1e4
#: Voxels scored at a time (the temporaries of a block stay in the processor's cache).
BLOCK = 2048


@dataclass
class _Fold:
    test: np.ndarray     # (n_test,) test rows (None for the all-samples fit)
    x_mean: np.ndarray   # (n_features,)
    y_mean: np.ndarray   # (n_voxels,)
    s2: np.ndarray       # (k,) eigenvalues of the centred training stimuli's Gram matrix, descending
    v: np.ndarray        # (n_features, k)
    w: np.ndarray        # (k, n_voxels)   V.T @ Xc.T @ Yc  (training fold)
    p: np.ndarray        # (n_test, k)     (X_test - x_mean) @ V
    g: np.ndarray        # (k, k)          P.T @ P (float64)
    bounds: np.ndarray   # (n_clusters + 1,) where each cluster of nearly equal s2 starts
    u: np.ndarray        # (k, n_voxels)   2 w (H w - a) (float64)
    sst: np.ndarray      # (n_voxels,)     ||Y_test - mean(Y_test)||^2 (float64)
    ssc: np.ndarray      # (n_voxels,)     ||Y_test - y_mean||^2 (float64)

    def b(self, alpha, dtype):
        """Ridge coefficients in the V basis: ``(k, n_voxels)``."""
        return (1.0 / (self.s2 + alpha)).astype(dtype)[:, None] * self.w


_FIELDS = tuple(f.name for f in fields(_Fold))


def _basis(xc: np.ndarray) -> tuple:
    """``(s2, V)`` of centred stimuli ``xc``: ``xc.T xc = V diag(s2) V.T``, ``s2`` descending,
    directions of (numerically) zero variance dropped as ``Ridge``'s SVD solver does."""
    n, p = xc.shape
    if n >= p and p:
        lam, vec = np.linalg.eigh(xc.T @ xc)
        if lam[0] > lam[-1] / GRAM_COND:    # well conditioned: as accurate as the SVD
            return lam[::-1].copy(), np.ascontiguousarray(vec[:, ::-1])
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    keep = s > (s.max() if s.size else 0.0) * max(n, p) * np.finfo(float).eps
    return s[keep] ** 2, np.ascontiguousarray(vt[keep].T)


def _clusters(s2: np.ndarray) -> np.ndarray:
    """Where each run of nearly equal eigenvalues (descending ``s2``) starts, and ``k``."""
    new = (s2[:-1] - s2[1:]) > CLUSTER_GAP * np.abs(s2[:-1])
    return np.concatenate([[0], np.flatnonzero(new) + 1, [s2.size]]).astype(np.int64)


def _add_outer(a: np.ndarray, scale: float, col: np.ndarray, row: np.ndarray) -> None:
    """``a += scale * outer(col, row)`` in place (one pass, no temporary), ``a`` float64."""
    if a.flags.c_contiguous and a.dtype == np.float64 and a.size:
        ger = get_blas_funcs("ger", (a,))
        # a.T is Fortran-ordered: a.T += scale * outer(row, col), written into a
        out = ger(scale, np.ascontiguousarray(row, dtype=np.float64),
                  np.ascontiguousarray(col, dtype=np.float64), a=a.T, overwrite_a=1)
        if np.shares_memory(out, a):
            return
    a += scale * np.outer(col, row)


def _decompose(x, xty, y_sum, test, rows: _TestRows | None, dtype, work=None) -> _Fold:
    """One fold from the all-sample products (``xty``, ``y_sum``) and its test rows' ones
    (``rows``; ``test=None``: the fit on all samples). ``work``: a scratch array shaped
    as ``xty``."""
    n = x.shape[0]
    if test is None:
        x_mean, y_mean = x.mean(axis=0), y_sum / n
        s2, v = _basis(x - x_mean)
        vt = v.T
        w = vt @ xty
        _add_outer(w, -n, vt @ x_mean, y_mean)
        return _Fold(None, x_mean, y_mean.astype(dtype), s2, v, w.astype(dtype, copy=False),
                     None, None, None, None, None, None)
    n_te = test.size
    n_tr = n - n_te
    x_mean = (x.sum(axis=0) - rows.x_sum) / n_tr
    y_mean = (y_sum - rows.y_sum) / n_tr
    train = np.ones(n, bool)
    train[test] = False
    s2, v = _basis(x[train] - x_mean)
    vt = v.T
    vxm = vt @ x_mean
    work = np.subtract(xty, rows.xty, out=work)   # X.T Y of the training rows
    w = vt @ work                                  # V.T Xc.T Yc of the training rows
    _add_outer(w, -n_tr, vxm, y_mean)
    # a = P.T (Y_te - y_mean) = V.T (X_te - xm).T (Y_te - ym), from the test products
    a = np.matmul(vt, rows.xty, out=work[:vt.shape[0]])
    _add_outer(a, -1.0, vxm, rows.y_sum)
    _add_outer(a, -1.0, vt @ rows.x_sum - n_te * vxm, y_mean)
    p = (x[test] - x_mean) @ v
    g = p.T @ p
    bounds = _clusters(s2)
    label = np.repeat(np.arange(bounds.size - 1), np.diff(bounds))
    same = label[:, None] == label[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(same, 0.0, g / (s2[None, :] - s2[:, None]))
    u = h @ w
    u -= a
    u *= w
    u *= 2.0
    te_mean = rows.y_sum / n_te
    ssc = rows.sst + n_te * (te_mean - y_mean) ** 2
    return _Fold(test, x_mean, y_mean.astype(dtype), s2, v, w.astype(dtype, copy=False),
                 p.astype(dtype), g, bounds, u, rows.sst, ssc)


#: Threads decomposing folds at once (each with one BLAS thread); at most the CPUs.
FOLD_THREADS = 2


def fold_workers(n_folds: int) -> int:
    """Threads for ``n_folds`` decompositions: :data:`FOLD_THREADS`, at most the CPUs this
    process may use, 1 for fewer than 4 folds (a thread pool costs more than it saves)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 1 if n_folds < 4 else max(1, min(FOLD_THREADS, cpus))


def _is_partition(tests, n: int) -> bool:
    """The test folds cover each of the ``n`` samples exactly once."""
    order = np.concatenate(tests) if tests else np.zeros(0, int)
    return order.size == n and np.array_equal(np.sort(order), np.arange(n))


class RidgeCV:
    """Cross-validated ridge R^2 for every voxel, any alpha, from one decomposition per fold.

    Parameters
    ----------
    x : ndarray (n_samples, n_features)
        Stimuli (the seed's ``stimuli``, 100 pixels).
    y : ndarray (n_samples, n_voxels)
        Responses (the seed's ``fmri_data``), or rows of a larger array read a test
        fold (``y[rows]``) or a voxel (``y[:, j]``) at a time (no copy is made).
    folds : list of (train, test)
        CV splits, e.g. from :func:`make_folds`.
    dtype : numpy dtype
        ``float64`` or ``float32``: the responses are read as this type, the cached
        products ``W`` and ``P`` and the results are of it (``u``, whose terms cancel,
        is float64).
    full_fit : bool
        Also decompose all samples, for coefficients (receptive fields).
    blocks : RowBlocks, optional
        The products of blocks of these samples (made for the same ``x``, ``y`` and
        ``dtype``): the test folds' are assembled from them.
    """

    def __init__(self, x, y, folds, dtype=np.float64, full_fit=True, progress=None,
                 blocks: RowBlocks | None = None):
        progress = progress or null_progress
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise DataError(f"dtype must be float32 or float64, not {self.dtype}")
        x = np.asarray(x, dtype=np.float64)
        if not (hasattr(y, "shape") and hasattr(y, "dtype") and hasattr(y, "__getitem__")):
            y = np.asarray(y)
        if not np.issubdtype(y.dtype, np.floating):
            y = np.asarray(y, dtype=self.dtype)
        if x.ndim != 2 or len(y.shape) != 2 or x.shape[0] != y.shape[0]:
            raise DataError(f"stimuli {x.shape} and responses {y.shape} need the same "
                            f"number of rows")
        self.n_samples, self.n_features = x.shape
        self.n_voxels = y.shape[1]
        self.folds = [(np.asarray(tr), np.asarray(te)) for tr, te in folds]
        if not self.folds:
            raise DataError("no CV folds")
        # as given (no copy): read as ``dtype`` a test fold (or a voxel) at a time
        self._y = y
        self._folds = []
        n = len(self.folds) + 1
        tests = [te for _, te in self.folds]
        if blocks is not None and not blocks.fits(x, self.dtype):
            blocks = None

        def test_rows(te):
            return blocks.rows(x, y, te) if blocks is not None else _TestRows.of(
                x, y, te, self.dtype)

        with _one_blas_thread():   # on a few busy cores BLAS threads wait for each other
            if _is_partition(tests, self.n_samples):
                # the test folds' products add up to the all-sample ones: one pass over Y
                rows = [test_rows(te) for te in tests]
                xty, y_sum = rows[0].xty.copy(), rows[0].y_sum.copy()
                for r in rows[1:]:
                    xty += r.xty
                    y_sum += r.y_sum
            else:
                rows = [None] * len(tests)
                xty, y_sum = _all_rows(x, y, self.dtype)
            progress(1 / n, "stimuli x responses")
            self._folds = [None] * len(tests)
            done = []
            scratch = threading.local()   # each thread's scratch array
            reporting = threading.Lock()   # progress in order, one fold at a time

            def fold(i):
                work = getattr(scratch, "work", None)
                if work is None:
                    work = scratch.work = np.empty_like(xty)
                te = tests[i]
                r = rows[i] if rows[i] is not None else test_rows(te)
                rows[i] = None
                self._folds[i] = _decompose(x, xty, y_sum, te, r, self.dtype, work)
                with reporting:   # (a cancelled job raises here: the other folds are dropped)
                    done.append(i)
                    progress((len(done) + 1) / n, f"decomposing fold {len(done)}/{len(tests)}")

            workers = fold_workers(len(tests))
            if workers > 1:   # the folds are independent: BLAS runs without the GIL
                with ThreadPoolExecutor(workers, thread_name_prefix="ridge-folds") as pool:
                    futures = [pool.submit(fold, i) for i in range(len(tests))]
                    try:
                        for future in futures:
                            future.result()
                    except BaseException:
                        for future in futures:
                            future.cancel()
                        raise
            else:
                for i in range(len(tests)):
                    fold(i)
            self._full = (_decompose(x, xty, y_sum, None, None, self.dtype)
                          if full_fit else None)
        progress(1.0, "decomposed")

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    # ---- on disk: a restarted server (or another of --num-procs) reads it
    def save(self, path) -> Path:
        """Write the decomposition to ``path`` (an uncompressed ``.npz``, atomically; the
        folder is created if needed); :class:`DataError` if it cannot be written."""
        from ..cache import write_atomic

        parts = self._folds + ([self._full] if self._full is not None else [])
        arrays = {"meta": np.array([FORMAT, self.n_samples, self.n_features, self.n_voxels,
                                    len(self._folds), self._full is not None]),
                  "dtype": np.array(self.dtype.str)}
        for i, f in enumerate(parts):
            for name in _FIELDS:
                value = getattr(f, name)
                if value is not None:
                    arrays[f"{i}.{name}"] = value
        path = Path(path)
        write_atomic(path, lambda fh: np.savez(fh, **arrays))
        return path

    @classmethod
    def load(cls, path, x, y, dtype=np.float64) -> "RidgeCV":
        """The decomposition :meth:`save` wrote, for the same stimuli ``x`` and responses
        ``y``; :class:`DataError` if the file is not one (another format, shape or dtype).

        The file holds the folds' test rows; the training rows are the others.
        """
        from ..cache import open_entry

        dtype = np.dtype(dtype)
        x = np.asarray(x)
        try:
            with open_entry(path) as fh, np.load(fh, allow_pickle=False) as z:
                meta = [int(v) for v in z["meta"]]
                stored = np.dtype(str(z["dtype"]))
                if meta[0] != FORMAT or meta[1:4] != [x.shape[0], x.shape[1], y.shape[1]] \
                        or stored != dtype:
                    raise DataError("a decomposition of other data", path)
                parts = [_Fold(**{name: (z[f"{i}.{name}"] if f"{i}.{name}" in z.files
                                         else None) for name in _FIELDS})
                         for i in range(meta[4] + meta[5])]
        except DataError:
            raise
        except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError,
                zipfile.BadZipFile) as exc:
            raise DataError(f"not a saved decomposition ({type(exc).__name__})", path) from exc
        self = cls.__new__(cls)
        self.dtype = dtype
        self.n_samples, self.n_features = x.shape
        self.n_voxels = y.shape[1]
        index = np.arange(self.n_samples)
        self._folds = parts[:meta[4]]
        self._full = parts[meta[4]] if meta[5] else None
        self.folds = [(np.setdiff1d(index, f.test), f.test) for f in self._folds]
        self._y = y  # as given: converted one voxel at a time (a whole copy: 0.25 s)
        return self

    @staticmethod
    def _sse(f: _Fold, alphas: np.ndarray) -> np.ndarray:
        """Held-out sum of squared errors for each alpha and voxel: ``(n_alphas, n_voxels)``
        (float64): ``ssc + d.u + (d^2 diag(G)).w^2`` and the pairs within clusters."""
        d = 1.0 / (f.s2[None, :] + alphas[:, None])          # (n_alphas, k)
        d2g = d * d * np.diag(f.g)
        clusters = [(a, b) for a, b in zip(f.bounds[:-1], f.bounds[1:]) if b - a > 1]
        off = {(a, b): f.g[a:b, a:b] - np.diag(np.diag(f.g[a:b, a:b])) for a, b in clusters}
        out = np.empty((alphas.size, f.u.shape[1]))
        for start in range(0, out.shape[1], BLOCK):
            cols = slice(start, start + BLOCK)
            w = np.asarray(f.w[:, cols], dtype=np.float64)
            o = d @ f.u[:, cols]
            o += d2g @ (w * w)
            for (a, b), g0 in off.items():   # nearly equal eigenvalues: their pairs exactly
                for i in range(alphas.size):
                    z = d[i, a:b, None] * w[a:b]
                    o[i] += np.einsum("jv,jv->v", z, g0 @ z)
            o += f.ssc[cols]
            out[:, cols] = np.maximum(o, 0.0, out=o)
        return out

    def r2(self, alpha) -> np.ndarray:
        """R^2 per fold and voxel at ``alpha``: ``(n_folds, n_voxels)``."""
        alpha = check_alpha(alpha)
        with _one_blas_thread():
            return self._r2(np.array([alpha]))[0]

    def _r2(self, alphas: np.ndarray) -> np.ndarray:
        """R^2 for each of ``alphas``, fold and voxel: ``(n_alphas, n_folds, n_voxels)``."""
        out = np.empty((alphas.size, self.n_folds, self.n_voxels), dtype=self.dtype)
        for i, f in enumerate(self._folds):
            sse = self._sse(f, alphas)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = 1.0 - sse / f.sst
            zero = f.sst == 0
            if zero.any():  # sklearn's force_finite: 1 for a perfect fit, else 0
                # (sse of a constant voxel is zero up to rounding of the cached products)
                tol = 1e-10 * (1.0 + f.test.size * np.asarray(f.y_mean[zero], float) ** 2)
                r2[:, zero] = np.where(sse[:, zero] <= tol, 1.0, 0.0)
            out[:, i] = r2
        return out

    def mean_r2(self, alpha) -> np.ndarray:
        """Fold-mean R^2 per voxel: ``(n_voxels,)`` (the seed's ``np.mean(scores, axis=0)``)."""
        return self.r2(alpha).mean(axis=0)

    def r2_path(self, alphas, progress=None) -> np.ndarray:
        """R^2 for each alpha, fold and voxel: ``(n_alphas, n_folds, n_voxels)`` (every
        alpha of a fold in one product)."""
        progress = progress or null_progress
        alphas = np.array([check_alpha(a) for a in np.atleast_1d(alphas)], dtype=np.float64)
        with _one_blas_thread():
            out = self._r2(alphas)
        if alphas.size:
            progress(1.0, f"{alphas.size} alphas")
        return out

    def coef(self, alpha, voxels=None) -> np.ndarray:
        """Ridge coefficients fitted on all samples: ``(n_voxels, n_features)``."""
        if self._full is None:
            raise DataError("this engine was built without the full-data fit")
        alpha = check_alpha(alpha)
        f = self._full
        b = f.b(alpha, self.dtype)
        if voxels is not None:
            b = b[:, np.atleast_1d(voxels)]
        return (f.v.astype(self.dtype) @ b).T

    def intercept(self, alpha, voxels=None) -> np.ndarray:
        """Intercepts of the all-samples fit (``y_mean - x_mean @ coef``)."""
        f = self._full
        coef = self.coef(alpha, voxels)
        y_mean = f.y_mean if voxels is None else f.y_mean[np.atleast_1d(voxels)]
        return y_mean - coef @ f.x_mean.astype(self.dtype)

    def predict_cv(self, alpha, voxel: int) -> np.ndarray:
        """Out-of-fold predictions of one voxel: ``(n_samples,)`` (NaN where never tested)."""
        alpha = check_alpha(alpha)
        voxel = self.check_voxel(voxel)
        out = np.full(self.n_samples, np.nan, dtype=self.dtype)
        for f in self._folds:
            d = (1.0 / (f.s2 + alpha)).astype(self.dtype)
            out[f.test] = f.p @ (d * f.w[:, voxel]) + f.y_mean[voxel]
        return out

    def measured(self, voxel: int) -> np.ndarray:
        """The responses of one voxel: ``(n_samples,)``."""
        return np.asarray(self._y[:, self.check_voxel(voxel)], dtype=self.dtype)

    def check_voxel(self, voxel) -> int:
        v = int(voxel)
        if not 0 <= v < self.n_voxels:
            raise DataError(f"voxel index {voxel} is outside the mask "
                            f"(0 to {self.n_voxels - 1})")
        return v
