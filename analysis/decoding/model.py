"""The decoding's ``param.Parameterized`` class, shared by the notebook, CLI and app.

:class:`DecodingAnalysis` holds the parameters (conditions, mask,
standardisation, classifier, ``C``, CV scheme, permutations), caches the masked
data and the fits, and returns the results as xarray (scores, weight and
pattern maps, the permutation test, run blocking or in a background thread).
With more than two conditions, the map shown is one class's: the weights of
its one-vs-rest decoder (``contrast``, the class's position in ``conditions``).
The names of the CV schemes and classifiers the widgets offer live here too,
derived from the registries (:data:`analysis.registry.CV_SPECS`,
:data:`.registry.CLASSIFIER_SPECS`) and kept in step with them.
"""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import param
import xarray as xr

from ..datasets import haxby
from ..registry import CV_SPECS
from ..volumes import to_xarray
from .engine import Cancelled, haufe_pattern, p_text, p_value
from .permutation import permutation_null
from .reference import (contrast_names, cross_validate, cv_splits, fit_all, fit_one_vs_rest,
                        one_vs_rest_name)
from .registry import CLASSIFIER_SPECS
from .samples import (condition_choices, default_conditions, masked_of, resolve_conditions,
                      select_samples)

#: widget label -> key, e.g. ``{"KFold": "kfold", "leave-one-run-out": "run"}``
CV_SCHEMES: dict = {}
#: key -> widget label
CV_NAMES: dict = {}
#: widget label -> key, e.g. ``{"linear SVC": "svc", "logistic regression": "logistic"}``
CLASSIFIERS: dict = {}
#: key -> the estimator's class name, e.g. ``{"svc": "SVC"}``
CLASSIFIER_NAMES: dict = {}


def _tables(by_label: dict, by_key: dict, attr: str):
    """A watcher refilling ``by_label`` (label -> key) and ``by_key`` (key -> the
    spec's ``attr``) in place, so that importers of the tables see new entries."""
    def sync(specs):
        by_label.clear()
        by_label.update({spec.label: key for key, spec in specs.items()})
        by_key.clear()
        by_key.update({key: getattr(spec, attr) for key, spec in specs.items()})
    return sync


CV_SPECS.watch(_tables(CV_SCHEMES, CV_NAMES, "label"))
CLASSIFIER_SPECS.watch(_tables(CLASSIFIERS, CLASSIFIER_NAMES, "name"))


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

    conditions = param.ListSelector(default=["face", "cat"], objects=["face", "cat"],
                                    label="Conditions", doc=(
        "Conditions (labels) to discriminate: two for a binary decoder, more for multi-class."))
    mask = param.Selector(default="ventral-temporal", objects=["ventral-temporal", "whole brain"],
                          label="Mask", doc=(
        "Voxels to decode from: the ventral-temporal mask (as the seed) or the whole brain."))
    standardize = param.Boolean(default=True, label="Standardize (z-score each voxel)", doc=(
        "z-score each voxel's time series over all volumes, as NiftiMasker(standardize=True) "
        "(structural)."))
    classifier = param.Selector(default="svc", objects=CLASSIFIERS, label="Classifier",
                                doc="Linear SVC (the seed) or L2 logistic regression.")
    C = param.Number(default=1.0, bounds=(1e-5, 1e5), softbounds=(1e-4, 1e3),
                     label="C (log scale)", doc=(
        "Inverse regularisation strength of the classifier: larger C fits the training "
        "data more closely."))
    cv = param.Selector(default="run", objects=CV_SCHEMES, label="Cross-validation", doc=(
        "Cross-validation: unshuffled KFold(n_folds), or leave-one-run-out (runs as groups)."))
    n_folds = param.Integer(default=5, bounds=(2, 10000), softbounds=(2, 20),
                            label="Folds (K, for KFold)", doc="Number of folds for KFold.")
    n_permutations = param.Integer(default=100, bounds=(0, 100000), label="Permutations", doc=(
        "Permutations for the permutation test (labels shuffled within runs for "
        "leave-one-run-out)."))
    random_state = param.Integer(default=0, doc="Seed of the permutations (fixed: reproducible).")
    n_jobs = param.Integer(default=2, bounds=(1, 64), doc="Threads for the permutation test.")
    contrast = param.Integer(default=0, bounds=(0, None), label="Map of class", doc=(
        "With more than two conditions, the class whose map is shown: the weights (or "
        "pattern) of a decoder of it against the other conditions (one vs rest, same "
        "classifier and C); its position in the conditions, from 0. Two conditions: "
        "their one decoder."))

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
        masks = list(data.masks)
        super().__init__(data=data, **{k: v for k, v in params.items()
                                       if k not in ("conditions", "mask")})
        self.param.conditions.objects = condition_choices(data.labels)
        self.param.mask.objects = masks
        conditions = params.get("conditions")
        if conditions is None:
            conditions = default_conditions(data.labels)
        self.conditions = resolve_conditions(data.labels, conditions)
        self.mask = params.get("mask", masks[0])
        self._masked_key = None
        self._masked = None
        self._cv_cache: dict = {}
        self._fit_cache: dict = {}
        self._worker = None
        self._cancel = threading.Event()
        _LIVE.add(self)  # its choices follow the registries

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
        the new data has them, else its default pair (:func:`.samples.default_conditions`)."""
        self.cancel_permutations(wait=False)
        present = set(data.labels["labels"])
        if conditions is None:
            conditions = [c for c in self.conditions if c in present]
            if len(conditions) < 2:
                conditions = default_conditions(data.labels)
        conditions = resolve_conditions(data.labels, conditions)
        masks = list(data.masks)
        mask = mask if mask is not None else (self.mask if self.mask in masks else masks[0])
        self._masked_key = None
        self._masked = None
        self._cv_cache.clear()
        self._fit_cache.clear()
        self.param.conditions.objects = condition_choices(data.labels)
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
        from ..io import load_func, load_mask

        self.data.masks[name] = load_mask(mask, load_func(self.data.func))
        files = self.data.info.setdefault("mask_files", {})
        if isinstance(mask, (str, Path)):
            files[name] = str(mask)       # the file, for an exported script
        else:
            files.pop(name, None)
        self.param.mask.objects = list(self.data.masks)

    # -- heavy, cached step
    def mask_img(self):
        from ..io import load_func, load_mask

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
        return self._masked

    # -- samples and fits (cached per parameters)
    def samples(self):
        """``(X, y, groups)`` of the chosen conditions: ``X (n_samples, n_voxels)``."""
        masked, memo = self.masked(), self.__dict__.get("_samples_memo")
        key = (id(masked), tuple(self.conditions))
        if memo is not None and memo[0] == key and memo[1] is masked:
            return memo[2]     # the CV and the final fit share one copy (whole brain: 0.2 s)
        index, y, groups = select_samples(self.data.labels, self.conditions)
        out = (masked[index], y, groups)
        self.__dict__["_samples_memo"] = (key, masked, out)
        return out

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
            fit = dict(est=est, train_score=train_score, maps={})
            if len(est.classes_) == 2:   # one decoder: its weights are the map
                coef = np.atleast_2d(est.coef_)
                fit["maps"][0] = (coef[0], haufe_pattern(X, coef)[0])
                fit["contrasts"] = contrast_names(est)
            else:                        # a map per class: one vs rest (see _mapped)
                fit["contrasts"] = [one_vs_rest_name(c) for c in self.conditions]
            self._fit_cache[key] = fit
        return self._fit_cache[key]

    def _mapped(self):
        """``(name, weights, pattern)`` of the decoder mapped: the one decoder of two
        conditions; with more, the one-vs-rest decoder of class ``contrast`` (fitted
        on first use, then cached with the fit)."""
        fit = self._fitted()
        k = min(self.contrast, len(fit["contrasts"]) - 1)
        if k not in fit["maps"]:
            X, y, _ = self.samples()
            coef = np.atleast_2d(fit_one_vs_rest(X, y, self.conditions[k], self.classifier,
                                                 self.C).coef_)
            fit["maps"][k] = (coef[0], haufe_pattern(X, coef)[0])
        return (fit["contrasts"][k],) + fit["maps"][k]

    # -- results
    @param.depends("conditions", "mask", "standardize", "classifier", "C", "cv", "n_folds")
    def scores(self) -> xr.Dataset:
        """CV results: ``fold_score (fold)``, ``mean_score``, ``chance`` (the largest
        class's share), ``chance_limit`` (chance + 2 binomial standard errors over the
        ``n_samples`` test predictions: a ``mean_score`` not above it is at chance),
        ``train_score``, ``confusion (true, predicted)`` (out-of-fold counts)."""
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
        chance_limit = chance + 2 * float(np.sqrt(chance * (1 - chance) / len(y)))
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
                "chance_limit": ((), chance_limit),
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
        """One line, e.g. ``face vs cat, SVC C=1, leave-one-run-out: 0.741 (chance 0.5, train 1.0)``;
        ``0.845, at chance (chance 0.845, ...`` when the score is not above ``chance_limit``."""
        s = self.scores()
        cv = CV_SPECS.spec(self.cv).name(s.attrs["n_folds"])
        at_chance = ", at chance" if float(s.mean_score) <= float(s.chance_limit) else ""
        line = (f"{' vs '.join(self.conditions)}, {CLASSIFIER_NAMES[self.classifier]} "
                f"C={self.C:g}, {cv}: {float(s.mean_score):.3f}{at_chance} "
                f"(chance {round(float(s.chance), 3)}, train {round(float(s.train_score), 3)})")
        perm = self.permutation_result
        if perm is not None and perm.attrs.get("key") == repr(self._cv_key()):
            n = perm.sizes["permutation"]
            line += f", {p_text(float(perm.p_value), n)} ({n} permutations)"
        return line

    def contrasts(self) -> list[str]:
        """Names of the decoders whose weights can be mapped: one for two conditions,
        else one per condition, in order (``"house (+) vs others (-)"``)."""
        return self._fitted()["contrasts"]

    def map_classes(self) -> list[str]:
        """The classes whose map can be shown (``contrast`` is the position of one):
        the conditions when there are more than two, else none (one decoder)."""
        return list(self.conditions) if len(self.conditions) > 2 else []

    def to_nifti(self, which: str = "weights"):
        """The weight (or ``"pattern"``) map as a float32 NIfTI image on the data's own
        grid and affine (0 outside the mask), as nilearn's ``inverse_transform`` writes it:
        what ``--out`` and the app's NIfTI export save (the views may resample)."""
        from ..volumes import unmask

        _, weights, pattern = self._mapped()
        return unmask(weights if which == "weights" else pattern, self.mask_img())

    def _volume(self, which, name):
        contrast, weights, pattern = self._mapped()
        vector = weights if which == "weights" else pattern
        da = to_xarray(np.asarray(vector, dtype=np.float64), mask=self.mask_img(), name=name)
        da.attrs["contrast"] = contrast
        return da

    @param.depends("conditions", "mask", "standardize", "classifier", "C", "contrast")
    def weight_map(self) -> xr.DataArray:
        """The decoder's weights (train on all samples, as the seed) as a volume (x, y, z);
        with more than two conditions, those of class ``contrast`` against the others."""
        return self._volume("weights", "weights")

    @param.depends("conditions", "mask", "standardize", "classifier", "C", "contrast")
    def pattern_map(self) -> xr.DataArray:
        """The Haufe activation pattern ``cov(X) w / var(X w)`` of the decoder mapped
        (see :meth:`weight_map`) as a volume (x, y, z)."""
        return self._volume("pattern", "pattern")

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
            permutation_status=(f"{p_text(float(result.p_value), len(result.null))} "
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


#: the analyses alive (each holds its own copy of its parameters)
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _selector(name: str, table: dict):
    """A watcher giving ``DecodingAnalysis``'s parameter ``name`` the choices of ``table``
    (the class's, and those of the analyses alive)."""
    def sync(_specs):
        getattr(DecodingAnalysis.param, name).objects = dict(table)
        for analysis in list(_LIVE):
            getattr(analysis.param, name).objects = dict(table)
    return sync


CV_SPECS.watch(_selector("cv", CV_SCHEMES))
CLASSIFIER_SPECS.watch(_selector("classifier", CLASSIFIERS))
