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

The package: :mod:`.samples` (masked data, the conditions' samples),
:mod:`.engine` (pure numpy: accuracy, Haufe patterns, permuted labels,
p-values), :mod:`.registry` (the classifiers, one :class:`ClassifierSpec` each;
the CV schemes are :data:`analysis.registry.CV_SPECS`), :mod:`.reference` (the
seed's scikit-learn folds, classifiers and cross-validation),
:mod:`.permutation` (the null distribution over threads), :mod:`.svm_fast` (the
linear SVC on a Gram matrix through scikit-learn's private libsvm, with a
fallback) and :mod:`.model` (:class:`DecodingAnalysis`).
"""

from .engine import Cancelled, accuracy, haufe_pattern, p_value, shuffled_labels
from .model import (CLASSIFIER_NAMES, CLASSIFIERS, CV_NAMES, CV_SCHEMES,
                    DecodingAnalysis)
from .permutation import permutation_null
from .reference import (contrast_names, cross_validate, cv_splits, fit_all, fit_one_vs_rest,
                        make_classifier, one_vs_rest_name)
from .registry import CLASSIFIER_SPECS, ClassifierSpec
from .samples import (PRIVATE, condition_choices, default_conditions, masked_of,
                      resolve_conditions, select_samples)

__all__ = [
    "CLASSIFIERS", "CLASSIFIER_NAMES", "CLASSIFIER_SPECS", "CV_NAMES", "CV_SCHEMES",
    "Cancelled", "ClassifierSpec",
    "DecodingAnalysis", "PRIVATE", "accuracy", "condition_choices", "contrast_names",
    "cross_validate", "cv_splits", "default_conditions", "fit_all", "fit_one_vs_rest",
    "haufe_pattern", "make_classifier", "masked_of", "one_vs_rest_name", "p_value",
    "permutation_null", "resolve_conditions", "select_samples", "shuffled_labels",
]
