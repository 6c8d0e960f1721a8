"""The linear SVC's cross-validated accuracy for many labelings, on one Gram matrix.

The only use of scikit-learn internals in the project: its private
``sklearn.svm._libsvm`` (``fit``, ``predict``, ``set_verbosity_wrap``), called
as ``SVC(kernel="precomputed")`` calls it but without scikit-learn's per-call
validation, which holds the GIL for most of a fit's time (so permutations run
in parallel threads). Whether that path may be used is decided once per process
(:func:`private_libsvm`): the module must import, take the arguments used here
and predict exactly what the public ``SVC(kernel="precomputed")`` predicts on a
small problem. Otherwise every fit goes through the public estimator (the same
results, slower). ``tests/test_render_hooks.py`` checks both paths give the same
permutation null.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import weakref

import numpy as np

log = logging.getLogger(__name__)

#: scikit-learn's private module (``sklearn/svm/_libsvm.pyx``)
PRIVATE_MODULE = "sklearn.svm._libsvm"
_EMPTY = np.empty(0, dtype=np.float64)


def _private_fit_predict(libsvm, k_train, codes_train, k_test, C: float,
                         n_classes: int) -> np.ndarray:
    """libsvm's fit and predict with the arguments ``SVC(kernel="precomputed", C=C)``
    passes (scikit-learn's defaults; ``codes_train`` are class codes 0..n_classes-1 as
    floats)."""
    class_weight = np.ones(n_classes, dtype=np.float64)
    support, sv, n_support, dual, intercept, prob_a, prob_b, _status, _ = libsvm.fit(
        k_train, codes_train, svm_type=0, sample_weight=_EMPTY,
        class_weight=class_weight, kernel="precomputed", C=float(C), nu=0.5,
        probability=0, degree=3, shrinking=True, tol=1e-3, cache_size=200,
        coef0=0.0, gamma=0.0, epsilon=0.1, max_iter=-1, random_seed=0)
    return libsvm.predict(k_test, support, sv, n_support, dual, intercept, prob_a,
                          prob_b, svm_type=0, kernel="precomputed", degree=3,
                          coef0=0.0, gamma=0.0, cache_size=200)


def _public_fit_predict(k_train, codes_train, k_test, C: float) -> np.ndarray:
    from sklearn.svm import SVC

    return SVC(kernel="precomputed", C=float(C)).fit(k_train, codes_train).predict(k_test)


def _probe() -> list:
    """Small problems (two and three classes) on which both paths must agree."""
    rng = np.random.default_rng(0)
    problems = []
    for n_classes in (2, 3):
        y = np.repeat(np.arange(n_classes), 8)
        X = rng.standard_normal((len(y), 5)) + y[:, None] * 0.7
        K = X @ X.T
        train, test = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
        problems.append((np.ascontiguousarray(K[np.ix_(train, train)]),
                         y[train].astype(np.float64),
                         np.ascontiguousarray(K[np.ix_(test, train)])))
    return problems


def usable(libsvm) -> str | None:
    """None if ``libsvm`` (the private module) gives the public estimator's predictions
    with the arguments used here; else why not."""
    for name in ("fit", "predict", "set_verbosity_wrap"):
        if not callable(getattr(libsvm, name, None)):
            return f"{PRIVATE_MODULE} has no {name}()"
    try:
        libsvm.set_verbosity_wrap(0)
        for k_train, codes, k_test in _probe():
            for C in (0.01, 1.0):
                private = _private_fit_predict(libsvm, k_train, codes, k_test, C,
                                               len(np.unique(codes)))
                public = _public_fit_predict(k_train, codes, k_test, C)
                if not np.array_equal(np.asarray(private), np.asarray(public)):
                    return f"{PRIVATE_MODULE} predicts differently from SVC(kernel='precomputed')"
    except Exception as exc:  # noqa: BLE001 - a changed signature: TypeError, ValueError...
        return f"{PRIVATE_MODULE} failed: {type(exc).__name__}: {exc}"
    return None


@functools.lru_cache(maxsize=1)
def private_libsvm():
    """scikit-learn's private libsvm module if it can be used (checked once), else None
    (logged once: the public estimator is used instead)."""
    try:
        libsvm = importlib.import_module(PRIVATE_MODULE)
    except Exception as exc:  # noqa: BLE001 - moved or renamed in this scikit-learn
        why = f"{PRIVATE_MODULE} cannot be imported ({type(exc).__name__}: {exc})"
    else:
        why = usable(libsvm)
        if why is None:
            return libsvm
    log.warning("the linear SVC's permutations use the public SVC (slower): %s; "
                "analysis/decoding/svm_fast.py must be updated for this scikit-learn", why)
    return None


def precomputed_scorer(X, splits, C, private: bool | None = None):
    """Mean CV accuracy of ``SVC(kernel='linear', C)`` for any labels, via one Gram matrix.

    ``K = X X^T`` is computed once; each fold's train/test blocks are reused by
    every labeling. Returns ``score(labels) -> float``. ``private`` chooses the
    path (None: the private libsvm when :func:`private_libsvm` allows it); both
    give the same scores (tested against ``permutation_test_score``).
    """
    libsvm = private_libsvm() if private is None or private else None
    if private and libsvm is None:
        raise RuntimeError(f"{PRIVATE_MODULE} cannot be used with this scikit-learn")
    if libsvm is not None:
        libsvm.set_verbosity_wrap(0)  # as SVC(verbose=False) does before each fit
    K = np.ascontiguousarray(X @ X.T, dtype=np.float64)
    blocks = [(train, test, np.ascontiguousarray(K[np.ix_(train, train)]),
               np.ascontiguousarray(K[np.ix_(test, train)])) for train, test in splits]

    def score(labels):
        classes, codes = np.unique(labels, return_inverse=True)
        codes = codes.astype(np.float64)
        accs = []
        for train, test, k_train, k_test in blocks:
            codes_train = np.ascontiguousarray(codes[train])
            if libsvm is not None:
                pred = _private_fit_predict(libsvm, k_train, codes_train, k_test, C,
                                            len(classes))
            else:
                pred = _public_fit_predict(k_train, codes_train, k_test, C)
            accs.append(np.average(pred == codes[test]))
        return float(np.mean(accs))

    return score


_GRAM_LOCK = threading.Lock()
_GRAM: list = [None]   # (weak reference to the last X, its Gram matrix)
#: voxels per block of :func:`gram`'s float64 product
GRAM_BLOCK = 2048


def gram(X) -> np.ndarray:
    """``X X^T`` in float64 (as the linear kernel computes it), kept for the last ``X``
    (a weak reference; read-only): the CV, a later CV scheme or fold count and the fit
    on all samples share it (the whole brain's costs a second)."""
    with _GRAM_LOCK:
        last = _GRAM[0]
    if last is not None and last[0]() is X:
        return last[1]
    X = np.asarray(X)
    if X.dtype == np.float64:
        K = X @ X.T
    else:   # by blocks of voxels: no float64 copy of X (fresh memory is slow to touch)
        K = np.zeros((len(X), len(X)))
        for start in range(0, X.shape[1], GRAM_BLOCK):
            part = X[:, start:start + GRAM_BLOCK].astype(np.float64)
            K += part @ part.T
    K.setflags(write=False)
    try:
        entry = (weakref.ref(X), K)
    except TypeError:   # not weak-referenceable: not kept
        return K
    with _GRAM_LOCK:
        _GRAM[0] = entry
    return K


def gram_folds(X, y, C, check=None):
    """One fold's fit of ``SVC(kernel='linear', C)`` on a Gram matrix computed once.

    A linear SVC sees the data only through dot products: fitted on ``X X^T``
    (computed once), libsvm finds the same solution without recomputing them in
    every fold (3-4x faster; fold scores still equal ``cross_val_score``, tested).
    Returns ``fold((train, test)) -> (test predictions, train predictions)``;
    ``check()`` is called first (it raises to cancel).
    """
    from sklearn.svm import SVC

    K = gram(X)

    def fold(split):
        if check is not None:
            check()
        train, test = split
        est = SVC(kernel="precomputed", C=C).fit(K[np.ix_(train, train)], y[train])
        return est.predict(K[np.ix_(test, train)]), est.predict(K[np.ix_(train, train)])

    return fold


class GramFit:
    """A two-class linear SVC fitted on a Gram matrix (:func:`gram_fit`): what the
    tab reads of ``SVC(kernel='linear').fit(X, y)``: ``classes_``, ``coef_`` and
    ``intercept_`` (the same signs: positive favours ``classes_[1]``)."""

    def __init__(self, classes, coef, intercept):
        self.classes_ = classes
        self.coef_ = coef
        self.intercept_ = intercept

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64) @ self.coef_[0] + self.intercept_[0]

    def predict(self, X):
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


def gram_fit(X, y, C):
    """``SVC(kernel='linear', C).fit(X, y)`` for two classes, on ``X X^T``: ``(fit, train
    predictions)``, or None for more classes (the caller fits the estimator).

    The weights are the dual coefficients times the support vectors, as scikit-learn
    computes ``coef_``; the same solution as the linear kernel's (tested to 1e-6 of the
    largest weight, the same predictions), 3-5x faster on the whole brain, where
    scikit-learn's linear kernel also takes the variance of X for a gamma it ignores.
    """
    from sklearn.svm import SVC

    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) != 2:
        return None
    K = gram(X)
    est = SVC(kernel="precomputed", C=C).fit(K, y)
    coef = est.dual_coef_ @ np.asarray(X[est.support_], dtype=np.float64)  # (1, n_voxels)
    fit = GramFit(est.classes_, coef, np.asarray(est.intercept_, dtype=np.float64))
    return fit, est.predict(K)
