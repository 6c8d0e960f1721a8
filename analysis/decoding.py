"""Decoding (Haxby 2001): linear classifiers on masked fMRI, honest cross-validation.

Reference: ``../shared/seeds/haxby_decoding_tutorial.rst.txt``:
``NiftiMasker(mask_img=mask, standardize=True)`` on all volumes, the conditions
selected, ``SVC(kernel='linear')``, ``cross_val_score`` with ``KFold(n_folds)``
(unshuffled) or ``LeaveOneGroupOut`` on the runs; ``permutation_test_score``
for significance; ``coef_`` back on the brain.

Two layers:

* pure functions (:func:`select_samples`, :func:`cv_splits`,
  :func:`cross_validate`, :func:`fit_all`, :func:`haufe_pattern`,
  :func:`permutation_null`) that take arrays ``X (n_samples, n_voxels)``;
* :class:`DecodingAnalysis`, the ``param.Parameterized`` class the notebook, the
  CLI and the dashboard share. Its structural parameters (mask,
  standardisation) key the cached masked data; the rest (conditions,
  classifier, ``C``, CV scheme) recompute from it in milliseconds.
"""

from __future__ import annotations

import os

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import param
import xarray as xr

from .datasets import haxby
from .errors import DataError
from .io import resolve_label
from .progress import null_progress
from .volumes import to_xarray

CV_SCHEMES = {"KFold": "kfold", "leave-one-run-out": "run"}
CV_NAMES = {v: k for k, v in CV_SCHEMES.items()}
CLASSIFIERS = {"linear SVC": "svc", "logistic regression": "logistic"}
CLASSIFIER_NAMES = {"svc": "SVC", "logistic": "LogisticRegression"}


# --------------------------------------------------------------------------- engine

def select_samples(labels: pd.DataFrame, conditions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The volumes of ``conditions`` (names or numeric codes), as in the seed.

    Returns ``(index, y, groups)``: volume indices ``(n_samples,)``, their labels
    (names) and runs (``chunks``).
    """
    conditions = list(conditions)
    if len(conditions) < 2:
        raise DataError(f"choose at least two conditions to discriminate, got {conditions}")
    names = resolve_conditions(labels, conditions)
    if len(set(names)) < len(names):
        raise DataError(f"conditions must differ, got {names}")
    index = np.flatnonzero(labels["labels"].isin(names).to_numpy())
    y = labels["labels"].to_numpy()[index].astype(str)
    groups = labels["chunks"].to_numpy()[index]
    return index, y, groups


def resolve_conditions(labels: pd.DataFrame, conditions) -> list[str]:
    """Conditions given as names or numeric codes, as names; a clear error for
    a condition with no samples."""
    names = []
    known = list(dict.fromkeys(labels["labels"]))
    for c in conditions:
        try:
            names.append(resolve_label(c, labels))
        except DataError:
            raise DataError(f"condition {c!r} has no samples in the labels "
                            f"(known: {', '.join(map(str, known))})") from None
    return names


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


def accuracy(y_true, y_pred) -> float:
    """``sklearn.metrics.accuracy_score`` (the mean of correct predictions), without its
    input checks (a millisecond each, 26 calls per change of C)."""
    return float(np.average(np.asarray(y_true) == np.asarray(y_pred)))


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


def haufe_pattern(X, coef) -> np.ndarray:
    """Activation patterns ``A = cov(X) W cov(s)^-1`` with ``s = X W`` (Haufe et al. 2014).

    ``X (n_samples, n_voxels)``, ``coef (n_rows, n_voxels)`` -> ``(n_rows, n_voxels)``;
    computed row by row (each decoder separately), without forming ``cov(X)``.
    """
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0)
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    s = Xc @ coef.T                                   # (n_samples, n_rows)
    cov_w = Xc.T @ s / (len(Xc) - 1)                  # cov(X) @ w, (n_voxels, n_rows)
    var_s = s.var(axis=0, ddof=1)
    var_s[var_s == 0] = 1.0
    return (cov_w / var_s).T


def shuffled_labels(y, groups, n_permutations: int, random_state=0) -> list[np.ndarray]:
    """The permuted labels ``permutation_test_score`` draws (within groups when given).

    The same draws as scikit-learn's ``_shuffle`` (one ``permutation`` per group, groups
    in sorted order, from one generator), without its per-call ``np.unique`` and masks:
    about 5x less time holding the GIL, which a served page's event loop shares.
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    y = np.asarray(y)
    if groups is None:
        return [y[rng.permutation(len(y))] for _ in range(n_permutations)]
    groups = np.asarray(groups)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    out = []
    for _ in range(n_permutations):
        indices = np.arange(len(groups))
        for m in members:
            indices[m] = rng.permutation(m)
        out.append(y[indices])
    return out


def permutation_null(X, y, groups, splits, classifier="svc", C=1.0, n_permutations=100,
                     random_state=0, n_jobs=2, progress=None, cancel=None,
                     precomputed: bool = True) -> np.ndarray:
    """Null distribution of the mean CV accuracy, as ``permutation_test_score``.

    The same permuted labels (same ``random_state``, shuffled within runs for
    leave-one-run-out) and the same folds; the work is split over ``n_jobs``
    threads (libsvm and BLAS release the GIL). ``cancel`` is a
    ``threading.Event``: when set, the computation stops and
    :class:`Cancelled` is raised. ``progress(fraction, message)`` is called as
    permutations finish. For the linear SVC, ``precomputed`` fits on a Gram
    matrix computed once (about 1.7x faster at the full size; the tests check
    the null against ``permutation_test_score``).
    """
    progress = progress or null_progress
    perms = shuffled_labels(y, groups, n_permutations, random_state)
    null = np.full(n_permutations, np.nan)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if classifier == "svc" and precomputed:
        from .svm_fast import precomputed_scorer  # scikit-learn's private libsvm, or SVC

        score_of = precomputed_scorer(X, splits, C)
    else:
        def score_of(labels):
            return float(cross_validate(X, labels, splits, classifier, C,
                                        cancel=cancel)["fold_scores"].mean())
    done = [0]
    lock = threading.Lock()
    t0 = time.perf_counter()

    def work(indices):
        for i in indices:
            if cancel is not None and cancel.is_set():
                return
            try:
                null[i] = score_of(perms[i])
            except Cancelled:
                return
            with lock:
                done[0] += 1
                n = done[0]
            elapsed = time.perf_counter() - t0
            progress(n / n_permutations, f"{n}/{n_permutations} permutations ({elapsed:.0f} s)")

    n_jobs = max(1, min(int(n_jobs), n_permutations or 1))
    chunks = [range(k, n_permutations, n_jobs) for k in range(n_jobs)]
    if n_jobs == 1:
        work(chunks[0])
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for f in [pool.submit(work, c) for c in chunks]:
                f.result()
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"permutation test cancelled after {done[0]} of {n_permutations}")
    return null


#: ``HaxbyData.info`` key: True for a session's own files (an upload), whose masked data
#: is kept with the data object only (never in the process-wide cache nor on disk).
PRIVATE = "private"


def masked_of(data: haxby.HaxbyData, mask_img, mask_name: str, standardize,
              progress=None) -> np.ndarray:
    """The masked data of ``data`` under a mask: the process-wide cache for shared data;
    for private data (``data.info["private"]``, a session's upload) computed once and
    kept on ``data`` itself, so it leaves with the session that holds ``data``."""
    if not data.info.get(PRIVATE):
        return haxby.masked_data(data.func, mask_img, standardize, progress=progress)
    store = data.info.setdefault("_masked", {})
    key = (mask_name, str(standardize))
    if key not in store:
        store[key] = haxby.masked_data(data.func, mask_img, standardize, progress=progress,
                                       shared=False)
    return store[key]


def p_value(score: float, null: np.ndarray) -> float:
    """``(#{null >= score} + 1) / (n_permutations + 1)``, as ``permutation_test_score``."""
    return float((np.sum(null >= score) + 1.0) / (len(null) + 1.0))


class Cancelled(RuntimeError):
    """A background computation was cancelled."""


# --------------------------------------------------------------------------- Param class

class DecodingAnalysis(param.Parameterized):
    """Haxby-style decoding with live parameters; results as xarray.

    Parameters are split into *structural* ones (``mask``, ``standardize``)
    that key the cached masked data ``(n_volumes, n_voxels)`` (shared by every
    instance in the process and stored as ``.npy`` in the cache folder, keyed by
    the file's content; an upload's is kept by its session alone), and the
    rest, which reuse it: a change of ``C`` or of the CV scheme refits only the
    classifiers.

    Construct with :meth:`from_dataset` (synthetic or fetcher layout),
    :meth:`from_files` (the user's own files) or with no argument (the
    synthetic dataset of the default size).
    """

    conditions = param.ListSelector(default=["face", "cat"], objects=["face", "cat"], doc=(
        "Conditions (labels) to discriminate: two for a binary decoder, more for multi-class."))
    mask = param.Selector(default="ventral-temporal", objects=["ventral-temporal", "whole brain"],
                          doc="Voxels to decode from (structural: keys the masked-data cache).")
    standardize = param.Boolean(default=True, doc=(
        "z-score each voxel's time series over all volumes, as NiftiMasker(standardize=True) "
        "(structural)."))
    classifier = param.Selector(default="svc", objects=CLASSIFIERS,
                                doc="Linear SVC (the seed) or L2 logistic regression.")
    C = param.Number(default=1.0, bounds=(1e-5, 1e5), softbounds=(1e-4, 1e3),
                     doc="Inverse regularisation strength (use a log scale).")
    cv = param.Selector(default="run", objects=CV_SCHEMES, doc=(
        "Cross-validation: unshuffled KFold(n_folds), or leave-one-run-out (runs as groups)."))
    n_folds = param.Integer(default=5, bounds=(2, 10000), softbounds=(2, 20), doc="Number of folds for KFold.")
    n_permutations = param.Integer(default=100, bounds=(0, 100000), doc=(
        "Permutations for the permutation test (labels shuffled within runs for "
        "leave-one-run-out)."))
    random_state = param.Integer(default=0, doc="Seed of the permutations (fixed: reproducible).")
    n_jobs = param.Integer(default=2, bounds=(1, 64), doc="Threads for the permutation test.")
    contrast = param.Integer(default=0, bounds=(0, None), doc=(
        "Which decoder's weights to map when there are several (multi-class)."))

    data = param.ClassSelector(class_=haxby.HaxbyData, precedence=-1, doc="The loaded dataset.")
    permutation_result = param.ClassSelector(class_=xr.Dataset, default=None, precedence=-1,
                                             doc="Null distribution and p-value (or None).")
    permutation_progress = param.Number(default=0.0, bounds=(0, 1), precedence=-1,
                                        doc="Fraction of the running permutation test done.")
    permutation_status = param.String(default="", precedence=-1,
                                      doc="State of the permutation test, in words.")
    permutation_running = param.Boolean(default=False, precedence=-1)

    def __init__(self, data: haxby.HaxbyData | None = None, **params):
        if data is None:
            data = haxby.load()
        names = sorted(set(data.labels["labels"]) - {"rest"})
        masks = list(data.masks)
        super().__init__(data=data, **{k: v for k, v in params.items()
                                       if k not in ("conditions", "mask")})
        self.param.conditions.objects = names + (["rest"] if "rest" in set(data.labels["labels"])
                                                 else [])
        self.param.mask.objects = masks
        conditions = params.get("conditions")
        if conditions is None:
            conditions = [c for c in ("face", "cat") if c in names] or names[:2]
        self.conditions = resolve_conditions(data.labels, conditions)
        self.mask = params.get("mask", masks[0])
        self._masked_key = None
        self._masked = None
        self._cv_cache: dict = {}
        self._fit_cache: dict = {}
        self._worker = None
        self._cancel = threading.Event()
        self.n_maskings = 0  # how many times the heavy masked data was fetched

    #: the parameters that decide the scores and maps (with the data)
    SETTINGS = ("conditions", "mask", "standardize", "classifier", "C", "cv", "n_folds",
                "contrast", "n_permutations", "random_state", "n_jobs")

    def copy(self) -> "DecodingAnalysis":
        """A new analysis of the same data, with the same settings and caches of its own:
        a background job computes on it while this analysis' parameters may move on;
        :meth:`adopt` then takes its results."""
        return DecodingAnalysis(self.data, **{k: getattr(self, k) for k in self.SETTINGS})

    def has_masked(self) -> bool:
        """True when the masked data for the current mask and standardization is loaded
        (a new mask, standardization or dataset needs masking again: seconds)."""
        return self._masked_key == (self.mask, self.standardize)

    def is_computed(self) -> bool:
        """True when the scores and the fit for the current parameters are cached (showing
        them is quick); False when they need the masked data, the CV fits or both."""
        key = self._cv_key()
        return (self._masked_key == (self.mask, self.standardize)
                and key in self._cv_cache and key[:5] in self._fit_cache)

    def adopt(self, other: "DecodingAnalysis") -> bool:
        """Take the cached masked data and fits of ``other`` (a :meth:`copy` of this
        analysis, same data) that match; returns :meth:`is_computed`."""
        if other.data is not self.data:
            return self.is_computed()
        if other._masked_key is not None and other._masked_key == (self.mask, self.standardize):
            self._masked_key, self._masked = other._masked_key, other._masked
        for key, value in other._cv_cache.items():
            self._cv_cache.setdefault(key, value)
        for key, value in other._fit_cache.items():
            self._fit_cache.setdefault(key, value)
        return self.is_computed()

    def set_data(self, data: haxby.HaxbyData, conditions=None, mask=None) -> None:
        """Switch to another dataset (e.g. synthetic -> real slice), keeping the
        classifier and CV settings; conditions default to the current ones when
        the new data has them, else face vs cat, else the first two."""
        self.cancel_permutations(wait=False)
        names = sorted(set(data.labels["labels"]) - {"rest"})
        present = set(data.labels["labels"])
        if conditions is None:
            conditions = [c for c in self.conditions if c in present]
            if len(conditions) < 2:
                conditions = [c for c in ("face", "cat") if c in names] or names[:2]
        conditions = resolve_conditions(data.labels, conditions)
        masks = list(data.masks)
        mask = mask if mask is not None else (self.mask if self.mask in masks else masks[0])
        self._masked_key = None
        self._masked = None
        self._cv_cache.clear()
        self._fit_cache.clear()
        self.param.conditions.objects = names + (["rest"] if "rest" in present else [])
        self.param.mask.objects = masks
        self.param.update(data=data, conditions=conditions, mask=mask, contrast=0,
                          permutation_result=None, permutation_progress=0.0,
                          permutation_status="")

    # -- construction helpers
    @classmethod
    def from_dataset(cls, data_dir=None, size=None, **params) -> "DecodingAnalysis":
        """On a dataset in ``fetch_haxby``'s layout (default: synthetic, default size)."""
        return cls(haxby.load(data_dir, size=size), **params)

    @classmethod
    def from_files(cls, func, mask, labels, label_names=None, **params) -> "DecodingAnalysis":
        """On the user's own 4D NIfTI, mask and labels (names or numeric codes + table)."""
        return cls(haxby.load_user(func, mask, labels, label_names), mask="user mask", **params)

    def add_mask(self, name: str, mask) -> None:
        """Offer another mask (a path or image on the data's grid) under ``name``."""
        from .io import load_func, load_mask

        self.data.masks[name] = load_mask(mask, load_func(self.data.func))
        files = self.data.info.setdefault("mask_files", {})
        if isinstance(mask, (str, Path)):
            files[name] = str(mask)       # the file, for an exported script
        else:
            files.pop(name, None)
        self.param.mask.objects = list(self.data.masks)

    # -- heavy, cached step
    def mask_img(self):
        from .io import load_func, load_mask

        m = self.data.masks[self.mask]
        if isinstance(m, (str, Path)):
            m = load_mask(m, load_func(self.data.func))
            self.data.masks[self.mask] = m
        return m

    def masked(self, progress=None) -> np.ndarray:
        """The masked data ``(n_volumes, n_voxels)`` (cached per mask + standardize)."""
        key = (self.mask, self.standardize)
        if self._masked_key != key:
            self._masked = masked_of(self.data, self.mask_img(), self.mask, self.standardize,
                                     progress=progress)
            self._masked_key = key
            self.n_maskings += 1
        return self._masked

    # -- samples and fits (cached per parameters)
    def samples(self):
        """``(X, y, groups)`` of the chosen conditions: ``X (n_samples, n_voxels)``."""
        index, y, groups = select_samples(self.data.labels, self.conditions)
        return self.masked()[index], y, groups

    def _cv_key(self):
        return (self.mask, self.standardize, tuple(self.conditions), self.classifier,
                float(self.C), self.cv, int(self.n_folds))

    def _cross_validated(self):
        key = self._cv_key()
        if key not in self._cv_cache:
            X, y, groups = self.samples()
            _, split_groups, splits = cv_splits(self.cv, self.n_folds, y, groups)
            out = cross_validate(X, y, splits, self.classifier, self.C)
            out.update(splits=splits, y=y, groups=groups, split_groups=split_groups)
            self._cv_cache[key] = out
        return self._cv_cache[key]

    def _fitted(self):
        key = self._cv_key()[:5]
        if key not in self._fit_cache:
            X, y, _ = self.samples()
            est, train_score = fit_all(X, y, self.classifier, self.C)
            coef = np.atleast_2d(est.coef_)
            self._fit_cache[key] = dict(est=est, train_score=train_score, coef=coef,
                                        pattern=haufe_pattern(X, coef),
                                        contrasts=contrast_names(est))
        return self._fit_cache[key]

    # -- results
    @param.depends("conditions", "mask", "standardize", "classifier", "C", "cv", "n_folds")
    def scores(self) -> xr.Dataset:
        """CV results: ``fold_score (fold)``, ``mean_score``, ``chance``, ``train_score``,
        ``confusion (true, predicted)`` (out-of-fold counts)."""
        from sklearn.metrics import confusion_matrix

        cvr = self._cross_validated()
        fit = self._fitted()
        memo = self.__dict__.get("_scores_memo")
        if memo is not None and memo[0] is cvr and memo[1] is fit:
            return memo[2]  # the same fits: the same results (the views all ask)
        y = cvr["y"]
        classes = sorted(set(y))
        counts = pd.Series(y).value_counts()
        chance = float(counts.max() / counts.sum())
        confusion = confusion_matrix(y, cvr["predictions"], labels=classes)
        n = len(cvr["fold_scores"])
        test_runs = [",".join(map(str, np.unique(cvr["groups"][test])))
                     for _, test in cvr["splits"]]
        ds = xr.Dataset(
            {
                "fold_score": ("fold", cvr["fold_scores"]),
                "fold_train_score": ("fold", cvr["train_scores"]),
                "n_test": ("fold", [len(t) for _, t in cvr["splits"]]),
                "mean_score": ((), float(np.mean(cvr["fold_scores"]))),
                "chance": ((), chance),
                "train_score": ((), float(fit["train_score"])),
                "confusion": (("true", "predicted"), confusion),
            },
            coords={"fold": np.arange(n), "test_runs": ("fold", test_runs),
                    "true": classes, "predicted": classes},
            attrs={"conditions": list(self.conditions), "cv": self.cv,
                   "cv_name": CV_NAMES[self.cv], "classifier": self.classifier, "C": self.C,
                   "n_folds": n, "mask": self.mask, "standardize": self.standardize,
                   "n_samples": int(len(y)), "n_voxels": int(self.masked().shape[1])},
        )
        self.__dict__["_scores_memo"] = (cvr, fit, ds)
        return ds

    @param.depends("conditions", "mask", "standardize", "classifier", "C", "cv", "n_folds")
    def summary(self) -> str:
        """One line, e.g. ``face vs cat, SVC C=1, leave-one-run-out: 0.741 (chance 0.5, train 1.0)``."""
        s = self.scores()
        cv = "leave-one-run-out" if self.cv == "run" else f"KFold({s.attrs['n_folds']})"
        line = (f"{' vs '.join(self.conditions)}, {CLASSIFIER_NAMES[self.classifier]} "
                f"C={self.C:g}, {cv}: {float(s.mean_score):.3f} "
                f"(chance {round(float(s.chance), 3)}, train {round(float(s.train_score), 3)})")
        perm = self.permutation_result
        if perm is not None and perm.attrs.get("key") == repr(self._cv_key()):
            line += f", p={float(perm.p_value):.3g} ({perm.sizes['permutation']} permutations)"
        return line

    def contrasts(self) -> list[str]:
        """Names of the decoders whose weights can be mapped (one for two conditions)."""
        return self._fitted()["contrasts"]

    def _volume(self, vector, name):
        da = to_xarray(np.asarray(vector, dtype=np.float64), mask=self.mask_img(), name=name)
        da.attrs["contrast"] = self.contrasts()[min(self.contrast, len(self.contrasts()) - 1)]
        return da

    @param.depends("conditions", "mask", "standardize", "classifier", "C", "contrast")
    def weight_map(self) -> xr.DataArray:
        """The decoder's weights (train on all samples, as the seed) as a volume (x, y, z)."""
        coef = self._fitted()["coef"]
        return self._volume(coef[min(self.contrast, len(coef) - 1)], "weights")

    @param.depends("conditions", "mask", "standardize", "classifier", "C", "contrast")
    def pattern_map(self) -> xr.DataArray:
        """The Haufe activation pattern ``cov(X) w / var(X w)`` as a volume (x, y, z)."""
        pattern = self._fitted()["pattern"]
        return self._volume(pattern[min(self.contrast, len(pattern) - 1)], "pattern")

    def background(self) -> xr.DataArray | None:
        """The anatomical image (or the mean functional image) as a volume."""
        if self.data.anat is not None:
            return to_xarray(self.data.anat, name="anatomy")
        from nilearn.image import mean_img

        return to_xarray(mean_img(str(self.data.func), copy_header=True), name="mean bold")

    # -- permutation test
    def permutation_test(self, progress=None, cancel=None) -> xr.Dataset:
        """Run the permutation test now (blocking): null (permutation), score, p_value."""
        cvr = self._cross_validated()
        X, y, _ = self.samples()
        key = repr(self._cv_key())
        t0 = time.perf_counter()
        null = permutation_null(X, y, cvr["split_groups"], cvr["splits"], self.classifier,
                                self.C, self.n_permutations, self.random_state, self.n_jobs,
                                progress=progress, cancel=cancel)
        score = float(np.mean(cvr["fold_scores"]))
        result = xr.Dataset(
            {"null": ("permutation", null), "score": ((), score),
             "p_value": ((), p_value(score, null))},
            coords={"permutation": np.arange(len(null))},
            attrs={"key": key, "random_state": self.random_state, "n_jobs": self.n_jobs,
                   "seconds": time.perf_counter() - t0})
        if key == repr(self._cv_key()):  # parameters unchanged meanwhile
            self.permutation_result = result
        return result

    def start_permutations(self) -> threading.Thread:
        """Run the permutation test in a background thread; progress in
        ``permutation_progress``/``permutation_status``, result in ``permutation_result``.
        (The app runs :meth:`run_permutations` through its job queue instead.)"""
        self.cancel_permutations()
        cancel = threading.Event()
        self._begin_permutations(cancel)
        self._worker = threading.Thread(target=self.run_permutations, args=(cancel,),
                                        daemon=True, name="permutations")
        self._worker.start()
        return self._worker

    def _begin_permutations(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self.param.update(permutation_result=None, permutation_progress=0.0,
                          permutation_running=True,
                          permutation_status=f"running {self.n_permutations} permutations")

    def run_permutations(self, cancel: threading.Event | None = None):
        """The permutation test, blocking, with its state in the ``permutation_*``
        parameters (what :meth:`start_permutations` runs in its thread). ``cancel``
        (an Event) stops it within one permutation's fits; returns the result, or
        None when cancelled or failed (``permutation_status`` says why)."""
        if cancel is None:
            cancel = threading.Event()
        if self._cancel is not cancel or not self.permutation_running:
            self._begin_permutations(cancel)

        def progress(fraction, message):
            if not cancel.is_set():
                self.param.update(permutation_progress=fraction, permutation_status=message)

        try:
            result = self.permutation_test(progress=progress, cancel=cancel)
        except Cancelled as exc:
            self.param.update(permutation_status=str(exc), permutation_running=False)
            return None
        except Exception as exc:  # shown to the user, the app keeps working
            self.param.update(permutation_status=f"error: {exc}", permutation_running=False)
            return None
        if cancel.is_set():
            return None
        self.param.update(
            permutation_result=result, permutation_progress=1.0,
            permutation_running=False,
            permutation_status=(f"p = {float(result.p_value):.3g} "
                                f"({len(result.null)} permutations, "
                                f"{result.attrs['seconds']:.1f} s)"))
        return result

    def cancel_permutations(self, wait: bool = True) -> None:
        """Stop a running permutation test (returns when it has stopped)."""
        self._cancel.set()
        if wait and self._worker is not None and self._worker.is_alive():
            self._worker.join()
        self.permutation_running = False

    @param.depends("conditions", "mask", "standardize", "classifier", "C", "cv", "n_folds",
                   "n_permutations", "random_state", watch=True)
    def _invalidate_permutations(self):
        if self.permutation_running:
            self.cancel_permutations(wait=False)
            self.permutation_status = "cancelled: parameters changed"
        self.permutation_result = None
        self.permutation_progress = 0.0
