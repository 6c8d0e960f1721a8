"""The seed's scikit-learn code path: folds, classifiers, cross-validation, final fit.

``KFold(n_folds)`` (unshuffled) or ``LeaveOneGroupOut`` on the runs
(:func:`cv_splits`), ``SVC(kernel='linear')`` or ``LogisticRegression``
(:func:`make_classifier`), the fold-by-fold fits of ``cross_val_score``
(:func:`cross_validate`, the linear SVC on a Gram matrix computed once, equal
fold scores), the fit on all samples (:func:`fit_all`) and the names of its
decoders (:func:`contrast_names`); with more than two conditions, the map of a
class is that of its one-vs-rest decoder (:func:`fit_one_vs_rest`).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError
from ..registry import CV_SPECS
from .engine import Cancelled, accuracy
from .registry import CLASSIFIER_SPECS


def cv_splits(cv: str, n_folds: int, y: np.ndarray, groups: np.ndarray):
    """The (train, test) index pairs of ``KFold(n_folds)`` or ``LeaveOneGroupOut``
    (the scheme ``cv`` of :data:`analysis.registry.CV_SPECS`)."""
    spec = CV_SPECS.spec(cv)
    n = len(y)
    if spec.grouped:
        n_runs = len(np.unique(groups))
        if n_runs < 2:
            raise DataError(f"{spec.label} needs at least 2 runs with these "
                            f"conditions, found {n_runs}")
        split_groups = groups
    else:
        if n_folds < 2:
            raise DataError(f"{spec.label} needs at least 2 folds, got {n_folds}")
        if n_folds > n:
            raise DataError(f"{n_folds} folds for only {n} samples: use fewer folds")
        split_groups = None
    splitter = spec.splitter(n_folds)
    splits = list(splitter.split(np.zeros((n, 1)), y, split_groups))
    for train, _ in splits:
        if len(np.unique(y[train])) < 2:
            raise DataError("a training fold holds only one condition (the samples are "
                            "ordered by condition): use leave-one-run-out or more folds")
    return splitter, split_groups, splits


def make_classifier(classifier: str = "svc", C: float = 1.0):
    """The estimator of :data:`.registry.CLASSIFIER_SPECS`: the seed's
    ``SVC(kernel='linear', C=C)`` or ``LogisticRegression(C=C)``."""
    return CLASSIFIER_SPECS.spec(classifier).make(C)


def cross_validate(X, y, splits, classifier="svc", C=1.0, cancel=None) -> dict:
    """Fit on each training fold, score on its test fold (as ``cross_val_score``).

    Returns ``fold_scores (n_folds,)``, ``train_scores (n_folds,)`` and the
    out-of-fold ``predictions (n_samples,)``.
    """
    from sklearn.base import clone

    spec = CLASSIFIER_SPECS.spec(classifier)
    base = spec.make(C)

    def check():
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")

    if spec.fast_cv is not None:  # e.g. the linear SVC on a Gram matrix computed once
        fold = spec.fast_cv(X, y, C, check)
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
    """Train on all samples (the seed's meaningless 1.0): ``(estimator, train_score)``
    (the classifier's ``fast_fit`` where it applies: the same weights and predictions)."""
    fast = CLASSIFIER_SPECS.spec(classifier).fast_fit
    out = fast(X, y, C) if fast is not None else None
    if out is not None:
        fitted, train_pred = out
        return fitted, accuracy(y, train_pred)
    est = make_classifier(classifier, C).fit(X, y)
    return est, accuracy(y, est.predict(X))


def contrast_names(est, one_vs_one: bool | None = None) -> list[str]:
    """A name for each row of ``est.coef_`` (positive weights favour the first class).

    ``one_vs_one``: its rows are pairs of classes (a :class:`.registry.ClassifierSpec`'s
    flag); None: if ``est`` is an ``SVC``.
    """
    classes = [str(c) for c in est.classes_]
    n_rows = est.coef_.shape[0]
    if len(classes) == 2:
        return [f"{classes[1]} (+) vs {classes[0]} (-)"]
    if one_vs_one is None:
        from sklearn.svm import SVC

        one_vs_one = isinstance(est, SVC)
    if not one_vs_one and n_rows == len(classes):  # multinomial / one-vs-rest
        return [f"{c} (+) vs rest" for c in classes]
    # SVC one-vs-one: pairs (i, j), i < j; positive decision favours classes[i]
    return [f"{classes[i]} (+) vs {classes[j]} (-)"
            for i in range(len(classes)) for j in range(i + 1, len(classes))]


def fit_one_vs_rest(X, y, target, classifier="svc", C=1.0):
    """The binary decoder of ``target`` against every other condition in ``y`` (one vs
    rest), the same classifier and ``C`` on the same samples: the map of ``target``
    when there are more than two conditions (a one-vs-one SVC's rows are pairs).

    Trained on ``y == target``: positive weights favour ``target``.
    """
    y = np.asarray(y).astype(str)
    if not (y == str(target)).any():
        raise DataError(f"no sample of condition {target!r}")
    labels = y == str(target)
    fast = CLASSIFIER_SPECS.spec(classifier).fast_fit
    out = fast(X, labels, C) if fast is not None else None
    return out[0] if out is not None else make_classifier(classifier, C).fit(X, labels)


def one_vs_rest_name(target) -> str:
    """The name of :func:`fit_one_vs_rest`'s decoder of ``target``."""
    return f"{target} (+) vs others (-)"
