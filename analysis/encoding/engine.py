"""Fast voxel-wise ridge regression with cross-validated R^2 (pure numpy).

The seed fits ``Ridge(alpha)`` once per fold. Here each fold is decomposed
once: the training stimuli are centred (as ``Ridge(fit_intercept=True)``
does), ``Xc = U diag(s) Vt`` by a thin SVD, and ``W = Vt Xc.T Yc`` (which is
``diag(s) U.T Yc``) is cached. The ridge solution for any alpha is then
``V b`` with ``b = diag(1 / (s^2 + alpha)) W``: a rescale of the cached
product. ``Xc.T Yc`` of a training fold is ``X.T Y`` of all samples minus the
test rows' product, so all folds together cost about two passes over ``Y``.
The held-out sum of squared errors needs no prediction either: with
``P = (X_test - x_mean) @ V = Q R`` (thin QR) and ``c = Q.T (Y_test - y_mean)``,

    SSE = ||Y_test - y_mean||^2 - ||c||^2 + ||R b - c||^2

so one alpha costs one triangular ``(k, k) @ (k, n_voxels)`` product per fold.
``r2`` follows :func:`sklearn.metrics.r2_score` (``multioutput="raw_values"``,
``force_finite=True``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from scipy.linalg import solve_triangular
from scipy.linalg.blas import get_blas_funcs  # loaded with the module, so BLAS limits apply to it

from ..errors import DataError
from ..progress import null_progress
from ..registry import CV_SPECS

#: the keys of :data:`analysis.registry.CV_SPECS` (CLI choices): ``("kfold", "run")``
CV_SCHEMES = tuple(CV_SPECS)
#: version of :meth:`RidgeCV.save`'s file (bump when the cached arrays change meaning)
FORMAT = 1
_BLAS = None


def _one_blas_thread():
    """A context with every BLAS library on one thread.

    The per-alpha products are small; on a few busy cores, BLAS threads mostly
    wait for each other (one thread was 3-4x faster on this 2-core machine).
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


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


@dataclass
class _Fold:
    test: np.ndarray
    x_mean: np.ndarray   # (n_features,)
    y_mean: np.ndarray   # (n_voxels,)
    s2: np.ndarray       # (k,) squared singular values of the centred training stimuli
    v: np.ndarray        # (n_features, k)
    w: np.ndarray        # (k, n_voxels)   Vt @ Xc.T @ Yc  (training fold)
    p: np.ndarray        # (n_test, k)     (X_test - x_mean) @ V
    r: np.ndarray        # (r, k)          R of P = Q R (upper triangular; Fortran order)
    c: np.ndarray        # (r, n_voxels)   Q.T @ (Y_test - y_mean)
    sst: np.ndarray      # (n_voxels,)     ||Y_test - mean(Y_test)||^2
    rest: np.ndarray     # (n_voxels,)     ||Y_test - y_mean||^2 - ||c||^2 (float64)

    def b(self, alpha, dtype):
        """Ridge coefficients in the V basis: ``(k, n_voxels)``."""
        return (1.0 / (self.s2 + alpha)).astype(dtype)[:, None] * self.w


class _Products:
    """``X.T @ Y`` and column sums of all samples, computed once (float64)."""

    def __init__(self, x, y):
        self.xty = x.T @ y.astype(np.float64, copy=False)
        self.x_sum = x.sum(axis=0)
        self.y_sum = y.sum(axis=0, dtype=np.float64)
        self.n = x.shape[0]


def _decompose(x, y, prod: _Products, test, dtype) -> _Fold:
    """One fold: SVD of the centred training stimuli and the cached products.

    The training products come from the all-sample ones minus the test rows,
    so a fold costs one ``(n_features, n_test) @ (n_test, n_voxels)`` product.
    """
    if test is None:
        train = np.arange(prod.n)
        xty_te = np.zeros_like(prod.xty)
        x_sum_te = np.zeros_like(prod.x_sum)
        y_sum_te = np.zeros_like(prod.y_sum)
    else:
        train = np.setdiff1d(np.arange(prod.n), test)
        yte = y[test]
        yte64 = yte.astype(np.float64, copy=False)
        xty_te = x[test].T @ yte64
        x_sum_te = x[test].sum(axis=0)
        y_sum_te = yte64.sum(axis=0)
    n_tr = train.size
    x_mean = (prod.x_sum - x_sum_te) / n_tr
    y_mean = (prod.y_sum - y_sum_te) / n_tr
    _, s, vt = np.linalg.svd(x[train] - x_mean, full_matrices=False)
    keep = s > s.max() * max(n_tr, x.shape[1]) * np.finfo(float).eps
    s, vt = s[keep], vt[keep]
    xcyc = (prod.xty - xty_te) - n_tr * np.outer(x_mean, y_mean)
    w = (vt @ xcyc).astype(dtype)
    if test is None:
        return _Fold(None, x_mean, y_mean.astype(dtype), s ** 2, vt.T, w,
                     None, None, None, None, None)
    n_te = test.size
    p = (x[test] - x_mean) @ vt.T
    # (X_te - xm).T (Y_te - ym) from the test products
    cross = xty_te - np.outer(x_mean, y_sum_te) - np.outer(x_sum_te, y_mean) \
        + n_te * np.outer(x_mean, y_mean)
    a = vt @ cross
    te_mean = y_sum_te / n_te
    sst = ((yte64 - te_mean) ** 2).sum(axis=0)
    ssc = sst + n_te * (te_mean - y_mean) ** 2
    # SSE = ||Y_te_c - P b||^2 = ||Y_te_c||^2 - ||c||^2 + ||R b - c||^2 with P = Q R, c = Q.T Y_te_c
    q, r = np.linalg.qr(p)
    if r.shape[0] == r.shape[1] and np.linalg.cond(r) < 1e8:
        c = solve_triangular(r, a, trans="T", lower=False)  # R.T c = P.T Y_te_c
    else:  # rank-deficient test fold: project explicitly
        c = q.T @ (yte64 - y_mean)
    rest = ssc - (c ** 2).sum(axis=0)
    # c in the layout of the per-alpha product (C order): its subtraction is one pass
    return _Fold(test, x_mean, y_mean.astype(dtype), s ** 2, vt.T, w,
                 p.astype(dtype), np.asfortranarray(r, dtype=dtype),
                 np.ascontiguousarray(c, dtype=dtype), sst, rest)


_FIELDS = tuple(f.name for f in fields(_Fold))


def _triangular_product(r: np.ndarray, b: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """``r @ b`` for an upper-triangular square ``r`` (half the flops of a matmul), as ``(k, n)``.

    With ``overwrite`` and a C-contiguous ``b`` the result is written into ``b``.
    """
    if r.shape[0] != r.shape[1]:
        return r @ b
    trmm = get_blas_funcs("trmm", (r, b))
    # b.T is Fortran-ordered (n, k): compute b.T @ r.T = (r @ b).T, in place when allowed
    return trmm(1.0, r, b.T, side=1, lower=0, trans_a=1, overwrite_b=int(overwrite)).T


class RidgeCV:
    """Cross-validated ridge R^2 for every voxel, any alpha, from one decomposition per fold.

    Parameters
    ----------
    x : ndarray (n_samples, n_features)
        Stimuli (the seed's ``stimuli``, 100 pixels).
    y : ndarray (n_samples, n_voxels)
        Responses (the seed's ``fmri_data``).
    folds : list of (train, test)
        CV splits, e.g. from :func:`make_folds`.
    dtype : numpy dtype
        ``float64`` or ``float32`` for the cached products and results.
    full_fit : bool
        Also decompose all samples, for coefficients (receptive fields).
    """

    def __init__(self, x, y, folds, dtype=np.float64, full_fit=True, progress=None):
        progress = progress or null_progress
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise DataError(f"dtype must be float32 or float64, not {self.dtype}")
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=self.dtype)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
            raise DataError(f"stimuli {x.shape} and responses {y.shape} need the same "
                            f"number of rows")
        self.n_samples, self.n_features = x.shape
        self.n_voxels = y.shape[1]
        self.folds = [(np.asarray(tr), np.asarray(te)) for tr, te in folds]
        if not self.folds:
            raise DataError("no CV folds")
        self._y = y
        self._folds = []
        prod = _Products(x, y)
        n = len(self.folds) + 1
        progress(1 / n, "stimuli x responses")
        for i, (_, te) in enumerate(self.folds):
            self._folds.append(_decompose(x, y, prod, te, self.dtype))
            progress((i + 2) / n, f"decomposing fold {i + 1}/{len(self.folds)}")
        self._full = _decompose(x, y, prod, None, self.dtype) if full_fit else None
        progress(1.0, "decomposed")

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    # ---- on disk: the decomposition is the slow part of a first page (1.5 s at full size)
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

    def _sse(self, f: _Fold, alpha: float, work: np.ndarray | None = None) -> np.ndarray:
        # one triangular (k, k) @ (k, n_voxels) product per fold, in one reused buffer
        k = f.w.shape[0]
        work = np.empty_like(f.w) if work is None else work[:k]
        d = (1.0 / (f.s2 + alpha)).astype(self.dtype)
        np.multiply(d[:, None], f.w, out=work)
        t = _triangular_product(f.r, work, overwrite=True)
        t -= f.c
        return np.maximum(f.rest + np.einsum("ij,ij->j", t, t), 0.0)

    def r2(self, alpha) -> np.ndarray:
        """R^2 per fold and voxel at ``alpha``: ``(n_folds, n_voxels)``."""
        alpha = check_alpha(alpha)
        with _one_blas_thread():
            return self._r2(alpha)

    def _r2(self, alpha: float) -> np.ndarray:
        out = np.empty((self.n_folds, self.n_voxels), dtype=self.dtype)
        work = np.empty((self.n_features, self.n_voxels), dtype=self.dtype)
        for i, f in enumerate(self._folds):
            sse = self._sse(f, alpha, work)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = 1.0 - sse / f.sst
            zero = f.sst == 0
            if zero.any():  # sklearn's force_finite: 1 for a perfect fit, else 0
                # (sse of a constant voxel is zero up to rounding of the cached products)
                tol = 1e-10 * (1.0 + f.test.size * np.asarray(f.y_mean[zero], float) ** 2)
                r2[zero] = np.where(sse[zero] <= tol, 1.0, 0.0)
            out[i] = r2
        return out

    def mean_r2(self, alpha) -> np.ndarray:
        """Fold-mean R^2 per voxel: ``(n_voxels,)`` (the seed's ``np.mean(scores, axis=0)``)."""
        return self.r2(alpha).mean(axis=0)

    def r2_path(self, alphas, progress=None) -> np.ndarray:
        """R^2 for each alpha, fold and voxel: ``(n_alphas, n_folds, n_voxels)``."""
        progress = progress or null_progress
        alphas = [check_alpha(a) for a in np.atleast_1d(alphas)]
        out = np.empty((len(alphas), self.n_folds, self.n_voxels), dtype=self.dtype)
        with _one_blas_thread():
            for i, a in enumerate(alphas):
                out[i] = self._r2(a)
            progress((i + 1) / len(alphas), f"alpha {a:g}")
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
