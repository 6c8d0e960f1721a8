"""The decoding's classifiers, one :class:`ClassifierSpec` each (issue 14).

``CLASSIFIER_SPECS.register("ridge", ClassifierSpec(...))`` makes a classifier
usable by :class:`~.model.DecodingAnalysis` (its parameter's choices follow),
:func:`.reference.cross_validate`, :func:`.permutation.permutation_null` and
the exported script, with no other change. The CV schemes are in
:data:`analysis.registry.CV_SPECS`, shared with the encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry
from .svm_fast import gram_fit, gram_folds, precomputed_scorer


@dataclass(frozen=True)
class ClassifierSpec:
    """A linear classifier.

    ``make(C)`` is the scikit-learn estimator (it has ``coef_`` once fitted);
    ``label`` names it in a widget, ``name`` in a summary (its class name, as
    the script prints it). ``code`` builds it in an exported script (``C`` the
    constant), ``imports`` the line it needs. ``one_vs_one``: with more than two
    classes, ``coef_`` has a row per pair of classes (else one per class).

    Optional speed-ups, tested equal to the plain estimator:
    ``fast_cv(X, y, C, check)`` returns ``fold((train, test)) -> (test
    predictions, train predictions)``; ``fast_null(X, splits, C)`` returns
    ``score(labels) -> mean fold accuracy`` for the permutation test;
    ``fast_fit(X, y, C)`` returns ``(fitted, train predictions)`` (``fitted`` has
    ``classes_``, ``coef_``, ``intercept_``) or None where it does not apply.
    """

    label: str
    name: str
    make: Callable
    code: str
    imports: str
    one_vs_one: bool = False
    fast_cv: Callable | None = None
    fast_null: Callable | None = None
    fast_fit: Callable | None = None


def _svc(C):
    from sklearn.svm import SVC

    return SVC(kernel="linear", C=C)


def _logistic(C):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


#: the decoding's classifiers (keys are contracts: CLI choices, URL keys)
CLASSIFIER_SPECS = Registry("classifier")
CLASSIFIER_SPECS.register("svc", ClassifierSpec(
    label="linear SVC", name="SVC", make=_svc, code='SVC(kernel="linear", C=C)',
    imports="from sklearn.svm import SVC", one_vs_one=True,
    fast_cv=gram_folds, fast_null=precomputed_scorer, fast_fit=gram_fit))
CLASSIFIER_SPECS.register("logistic", ClassifierSpec(
    label="logistic regression", name="LogisticRegression", make=_logistic,
    code="LogisticRegression(C=C, max_iter=2000)",
    imports="from sklearn.linear_model import LogisticRegression"))
