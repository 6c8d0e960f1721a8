"""The seed's scikit-learn code path: folds, classifiers, cross-validation, final fit.

``KFold(n_folds)`` (unshuffled) or ``LeaveOneGroupOut`` on the runs
(:func:`cv_splits`), ``SVC(kernel='linear')`` or ``LogisticRegression``
(:func:`make_classifier`), the fold-by-fold fits of ``cross_val_score``
(:func:`cross_validate`, the linear SVC on a Gram matrix computed once, equal
fold scores), the fit on all samples (:func:`fit_all`) and the names of its
decoders (:func:`contrast_names`).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError
from .engine import Cancelled, accuracy


def cv_splits(cv: str, n_folds: int, y: np.ndarray, groups: np.ndarray):
    """The (train, test) index pairs of ``KFold(n_folds)`` or ``LeaveOneGroupOut``."""
    from sklearn.model_selection import KFold, LeaveOneGroupOut

    n = len(y)
    if cv == "kfold":
        if n_folds < 2:
            raise DataError(f"KFold needs at least 2 folds, got {n_folds}")
        if n_folds > n:
            raise DataError(f"{n_folds} folds for only {n} samples: use fewer folds")
        splitter, split_groups = KFold(n_splits=n_folds), None
    elif cv == "run":
        n_runs = len(np.unique(groups))
        if n_runs < 2:
            raise DataError(f"leave-one-run-out needs at least 2 runs with these "
                            f"conditions, found {n_runs}")
        splitter, split_groups = LeaveOneGroupOut(), groups
    else:
        raise DataError(f"unknown CV scheme {cv!r}; choose kfold or run")
    splits = list(splitter.split(np.zeros((n, 1)), y, split_groups))
    for train, _ in splits:
        if len(np.unique(y[train])) < 2:
            raise DataError("a training fold holds only one condition (the samples are "
                            "ordered by condition): use leave-one-run-out or more folds")
    return splitter, split_groups, splits


def make_classifier(classifier: str = "svc", C: float = 1.0):
    """The seed's ``SVC(kernel='linear', C=C)`` or ``LogisticRegression(C=C)``."""
    if classifier == "svc":
        from sklearn.svm import SVC

        return SVC(kernel="linear", C=C)
    if classifier == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=2000)
    raise DataError(f"unknown classifier {classifier!r}; choose svc or logistic")


def cross_validate(X, y, splits, classifier="svc", C=1.0, cancel=None) -> dict:
    """Fit on each training fold, score on its test fold (as ``cross_val_score``).

    Returns ``fold_scores (n_folds,)``, ``train_scores (n_folds,)`` and the
    out-of-fold ``predictions (n_samples,)``.
    """
    from sklearn.base import clone

    base = make_classifier(classifier, C)

    def check():
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")

    if classifier == "svc":
        # a linear SVC sees the data only through dot products: fitted on the Gram matrix
        # (computed once), libsvm finds the same solution without recomputing them in
        # every fold (3-4x faster; fold scores still equal cross_val_score, tested)
        from sklearn.svm import SVC

        gram = X @ X.T

        def fold(split):
            check()
            train, test = split
            est = SVC(kernel="precomputed", C=C).fit(gram[np.ix_(train, train)], y[train])
            return est.predict(gram[np.ix_(test, train)]), est.predict(gram[np.ix_(train, train)])
    else:
        def fold(split):
            check()  # a cancelled permutation test stops between fits, not after all folds
            train, test = split
            est = clone(base).fit(X[train], y[train])
            return est.predict(X[test]), est.predict(X[train])

    splits = list(splits)
    workers = min(len(splits), os.cpu_count() or 1, 4)
    if workers > 1:  # the fits release the GIL: the folds run side by side, same results
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            fitted = list(pool.map(fold, splits))
    else:
        fitted = [fold(split) for split in splits]
    scores, train_scores = [], []
    predictions = np.empty(len(y), dtype=object)
    for (train, test), (pred, train_pred) in zip(splits, fitted):
        predictions[test] = pred
        scores.append(accuracy(y[test], pred))
        train_scores.append(accuracy(y[train], train_pred))
    return {"fold_scores": np.asarray(scores), "train_scores": np.asarray(train_scores),
            "predictions": predictions.astype(str)}


def fit_all(X, y, classifier="svc", C=1.0):
    """Train on all samples (the seed's meaningless 1.0): ``(estimator, train_score)``."""
    est = make_classifier(classifier, C).fit(X, y)
    return est, accuracy(y, est.predict(X))


def contrast_names(est) -> list[str]:
    """A name for each row of ``est.coef_`` (positive weights favour the first class)."""
    classes = [str(c) for c in est.classes_]
    n_rows = est.coef_.shape[0]
    if len(classes) == 2:
        return [f"{classes[1]} (+) vs {classes[0]} (-)"]
    from sklearn.svm import SVC

    if not isinstance(est, SVC) and n_rows == len(classes):  # multinomial / one-vs-rest
        return [f"{c} (+) vs rest" for c in classes]
    # SVC one-vs-one: pairs (i, j), i < j; positive decision favours classes[i]
    return [f"{classes[i]} (+) vs {classes[j]} (-)"
            for i in range(len(classes)) for j in range(i + 1, len(classes))]
