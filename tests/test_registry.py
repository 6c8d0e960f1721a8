"""The registries of variants (issue 14): each entry is the scikit-learn object it names,
the tables derived from them keep their values, and one new entry is enough."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import (KFold, LeaveOneGroupOut, cross_val_predict,
                                     cross_val_score, permutation_test_score)
from sklearn.svm import SVC

from analysis import decoding
from analysis.decoding import DecodingAnalysis
from analysis.decoding.registry import CLASSIFIER_SPECS, ClassifierSpec
from analysis.encoding.engine import make_folds
from analysis.errors import DataError
from analysis.registry import CV_SPECS, Registry
from analysis.volumes import to_masked

#: what each registered classifier must be (a new entry needs a line here)
ESTIMATORS = {
    "svc": lambda C: SVC(kernel="linear", C=C),
    "logistic": lambda C: LogisticRegression(C=C, max_iter=2000),
}
#: what each registered CV scheme must be
SPLITTERS = {
    "kfold": lambda n_folds: KFold(n_splits=n_folds),
    "run": lambda n_folds: LeaveOneGroupOut(),
}


def _samples(n_classes, n_runs=4, per_run=12, n_voxels=30, seed=0):
    """``X (n_samples, n_voxels)``, labels interleaved within runs, runs as groups."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.array(list("abcd"[:n_classes]))[np.arange(per_run) % n_classes], n_runs)
    groups = np.repeat(np.arange(n_runs), per_run)
    codes = np.unique(y, return_inverse=True)[1]
    X = rng.standard_normal((len(y), n_voxels)) + 0.6 * np.eye(n_voxels)[codes] * 3
    return X, y, groups


def test_the_registries_cover_the_expected_entries():
    assert list(CLASSIFIER_SPECS) == list(ESTIMATORS)
    assert list(CV_SPECS) == list(SPLITTERS)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("key", list(ESTIMATORS))
def test_each_classifier_is_the_estimator_it_names(key, n_classes):
    X, y, groups = _samples(n_classes)
    C = 0.3
    spec = CLASSIFIER_SPECS[key]
    expected = ESTIMATORS[key](C)
    made = decoding.make_classifier(key, C)
    assert type(made) is type(expected) and made.get_params() == expected.get_params()
    assert spec.name == type(expected).__name__  # the summary's and the script's name
    splits = list(LeaveOneGroupOut().split(X, y, groups))
    out = decoding.cross_validate(X, y, splits, key, C)
    np.testing.assert_array_equal(out["fold_scores"],
                                  cross_val_score(expected, X, y, cv=splits))
    np.testing.assert_array_equal(out["predictions"],
                                  cross_val_predict(expected, X, y, cv=splits))
    est, train_score = decoding.fit_all(X, y, key, C)
    ref = ESTIMATORS[key](C).fit(X, y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-9)
    assert train_score == np.mean(ref.predict(X) == y)
    if n_classes > 2:
        assert len(decoding.contrast_names(est, spec.one_vs_one)) == len(est.coef_)
        assert decoding.contrast_names(est, spec.one_vs_one) == decoding.contrast_names(est)


@pytest.mark.parametrize("key", list(ESTIMATORS))
def test_each_classifiers_permutation_null_is_permutation_test_scores(key):
    """The fast path (``fast_null``, the SVC's) and the plain fits give the same null."""
    X, y, groups = _samples(2)
    splits = list(LeaveOneGroupOut().split(X, y, groups))
    _, null, _ = permutation_test_score(ESTIMATORS[key](0.5), X, y, groups=groups,
                                        cv=LeaveOneGroupOut(), n_permutations=4,
                                        random_state=3)
    for precomputed in (True, False):
        ours = decoding.permutation_null(X, y, groups, splits, key, 0.5, n_permutations=4,
                                         random_state=3, n_jobs=1, precomputed=precomputed)
        np.testing.assert_array_equal(ours, null)


@pytest.mark.parametrize("key", list(SPLITTERS))
def test_each_cv_scheme_is_the_splitter_it_names(key):
    X, y, groups = _samples(2)
    expected = list(SPLITTERS[key](4).split(X, y, groups if CV_SPECS[key].grouped else None))
    splitter, split_groups, splits = decoding.cv_splits(key, 4, y, groups)
    assert type(splitter) is type(SPLITTERS[key](4))
    assert split_groups is (groups if CV_SPECS[key].grouped else None)
    folds = make_folds(len(y), key, 4, groups)
    for ours in (splits, folds):
        assert len(ours) == len(expected)
        for (train, test), (ref_train, ref_test) in zip(ours, expected):
            np.testing.assert_array_equal(train, ref_train)
            np.testing.assert_array_equal(test, ref_test)


def test_the_derived_tables_keep_their_values():
    """Widget options, CLI choices and URL keys are contracts."""
    from analysis.encoding.engine import CV_SCHEMES as ENCODING_CV

    assert decoding.CV_SCHEMES == {"KFold": "kfold", "leave-one-run-out": "run"}
    assert decoding.CV_NAMES == {"kfold": "KFold", "run": "leave-one-run-out"}
    assert decoding.CLASSIFIERS == {"linear SVC": "svc", "logistic regression": "logistic"}
    assert decoding.CLASSIFIER_NAMES == {"svc": "SVC", "logistic": "LogisticRegression"}
    assert ENCODING_CV == ("kfold", "run")
    assert DecodingAnalysis.param.classifier.objects == ["svc", "logistic"]
    assert DecodingAnalysis.param.cv.objects == ["kfold", "run"]
    assert CV_SPECS["kfold"].name(5) == "KFold(5)"
    assert CV_SPECS["run"].name(5) == "leave-one-run-out"


def test_unknown_keys_name_the_choices():
    with pytest.raises(DataError, match="unknown classifier 'svm'; choose svc or logistic"):
        decoding.make_classifier("svm")
    with pytest.raises(DataError, match="unknown CV scheme 'loo'; choose kfold or run"):
        decoding.cv_splits("loo", 2, np.array(["a", "b"]), np.zeros(2))
    r = Registry("thing")
    seen = []
    r.watch(lambda reg: seen.append(list(reg)))
    for key in "abc":
        r.register(key, object())
    with pytest.raises(DataError, match="choose a, b or c"):
        r.spec("d")
    r.unregister("b")
    assert seen == [[], ["a"], ["a", "b"], ["a", "b", "c"], ["a", "c"]]
    assert [] not in r and "a" in r and len(r) == 2


def test_a_registered_classifier_is_usable_without_other_changes(decoding_dir):
    """One entry: DecodingAnalysis' choices, cross-validation, maps, summary and script."""
    from analysis.scripts.decoding import decoding_script

    m = DecodingAnalysis.from_dataset(decoding_dir)
    m.param.update(conditions=["face", "cat"], cv="run", C=0.5)
    with pytest.raises(ValueError):
        m.classifier = "ridge"
    CLASSIFIER_SPECS.register("ridge", ClassifierSpec(
        label="ridge classifier", name="RidgeClassifier",
        make=lambda C: RidgeClassifier(alpha=1.0 / C), code="RidgeClassifier(alpha=1.0 / C)",
        imports="from sklearn.linear_model import RidgeClassifier"))
    try:
        assert decoding.CLASSIFIERS["ridge classifier"] == "ridge"
        assert "ridge" in DecodingAnalysis.param.classifier.objects
        m.classifier = "ridge"
        s = m.scores()
        X, y, groups = m.samples()
        np.testing.assert_array_equal(
            s.fold_score.values,
            cross_val_score(RidgeClassifier(alpha=2.0), X, y, groups=groups,
                            cv=LeaveOneGroupOut()))
        assert np.isfinite(m.weight_map().values).sum() == X.shape[1]
        coef = np.atleast_2d(RidgeClassifier(alpha=2.0).fit(X, y).coef_)
        np.testing.assert_allclose(to_masked(m.weight_map(), m.mask_img()), coef[0], rtol=1e-6)
        assert ", RidgeClassifier C=0.5, leave-one-run-out: " in m.summary()
        code = decoding_script(m)
        assert 'CLASSIFIER = "ridge"' in code and "decoder = RidgeClassifier(alpha=1.0 / C)" in code
        assert "from sklearn.linear_model import LogisticRegression, RidgeClassifier" in code
    finally:
        CLASSIFIER_SPECS.unregister("ridge")
    assert "ridge classifier" not in decoding.CLASSIFIERS
    assert "ridge" not in decoding.CLASSIFIER_NAMES
    assert DecodingAnalysis.param.classifier.objects == ["svc", "logistic"]
    with pytest.raises(DataError, match="unknown classifier 'ridge'"):
        decoding.make_classifier("ridge")
    fresh = DecodingAnalysis.from_dataset(decoding_dir)
    with pytest.raises(ValueError):
        fresh.classifier = "ridge"


def test_cli_choices_are_the_registries():
    """The CLI keeps its choices literal (no scikit-learn import to parse options); they
    are checked here against the registries, so neither can drift."""
    from analysis.cli import build_parser
    from analysis.decoding.registry import CLASSIFIER_SPECS
    from analysis.registry import CV_SPECS

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "decoding" in a.choices)
    for command, flag, registry in (("decoding", "--classifier", CLASSIFIER_SPECS),
                                    ("decoding", "--cv", CV_SPECS),
                                    ("encoding", "--cv", CV_SPECS)):
        action = next(a for a in subparsers.choices[command]._actions if flag in a.option_strings)
        assert list(action.choices) == list(registry), (command, flag)
