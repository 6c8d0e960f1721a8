"""Decoding engine and DecodingAnalysis against the seed's scikit-learn code."""

from __future__ import annotations

import re
import threading

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (KFold, LeaveOneGroupOut, cross_val_score,
                                     permutation_test_score)
from sklearn.svm import SVC

from analysis import decoding
from analysis.datasets import haxby
from analysis.decoding import DecodingAnalysis
from analysis.errors import DataError


def seed_reference(func, mask, labels, conditions, standardize=True):
    """The seed's steps: NiftiMasker on all volumes, then the conditions selected."""
    from nilearn.maskers import NiftiMasker

    masker = NiftiMasker(mask_img=str(mask), standardize="zscore_sample" if standardize else None)
    fmri_masked = masker.fit_transform(str(func))
    condition_mask = labels["labels"].isin(conditions).to_numpy()
    return (fmri_masked[condition_mask], labels["labels"].to_numpy()[condition_mask],
            labels["chunks"].to_numpy()[condition_mask])


def count_maskings(monkeypatch) -> list:
    """A spy on the fetch of the heavy masked data: the list grows by one per fetch."""
    from analysis.decoding import model

    calls = []
    real = model.masked_of
    monkeypatch.setattr(model, "masked_of", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.fixture(scope="module")
def analysis(decoding_dir):
    return DecodingAnalysis.from_dataset(decoding_dir)


@pytest.fixture(scope="module")
def reference(analysis):
    data = analysis.data
    return seed_reference(data.func, data.masks["ventral-temporal"], data.labels, ["face", "cat"])


@pytest.mark.parametrize("C", [1.0, 0.01])
@pytest.mark.parametrize("cv", ["kfold", "run"])
def test_fold_scores_equal_cross_val_score(analysis, reference, cv, C):
    X, y, groups = reference
    analysis.param.update(conditions=["face", "cat"], cv=cv, C=C, n_folds=5, classifier="svc")
    if cv == "kfold":
        expected = cross_val_score(SVC(kernel="linear", C=C), X, y, cv=KFold(5))
    else:
        expected = cross_val_score(SVC(kernel="linear", C=C), X, y, cv=LeaveOneGroupOut(),
                                   groups=groups)
    scores = analysis.scores()
    np.testing.assert_array_equal(scores.fold_score.values, expected)
    assert float(scores.mean_score) == np.mean(expected)
    # the seed's lesson: training accuracy means nothing
    assert float(scores.train_score) == SVC(kernel="linear", C=C).fit(X, y).score(X, y)


def test_logistic_equals_sklearn(analysis, reference):
    X, y, groups = reference
    analysis.param.update(conditions=["face", "cat"], cv="run", C=0.1, classifier="logistic")
    expected = cross_val_score(LogisticRegression(C=0.1, max_iter=2000), X, y,
                               cv=LeaveOneGroupOut(), groups=groups)
    np.testing.assert_array_equal(analysis.scores().fold_score.values, expected)
    analysis.classifier = "svc"


def test_synthetic_planted_contrast(analysis):
    analysis.param.update(conditions=["face", "cat"], C=1.0, classifier="svc", cv="run")
    loro = float(analysis.scores().mean_score)
    assert 0.6 <= loro <= 0.95
    analysis.param.update(cv="kfold", n_folds=5)
    kfold = float(analysis.scores().mean_score)
    assert kfold > loro  # plain KFold without groups is optimistic (planted run effects)
    assert float(analysis.scores().chance) == 0.5


def test_results_are_xarray(analysis):
    analysis.param.update(conditions=["face", "cat"], cv="run", C=1.0, classifier="svc")
    s = analysis.scores()
    assert isinstance(s, xr.Dataset)
    assert s.sizes["fold"] == 12
    assert list(s.test_runs.values) == [str(r) for r in range(12)]
    conf = s.confusion
    assert conf.dims == ("true", "predicted") and list(conf.true.values) == ["cat", "face"]
    assert int(conf.sum()) == 216
    # out-of-fold accuracy from the confusion matrix equals the fold-size-weighted mean
    weighted = float((s.fold_score * s.n_test).sum() / s.n_test.sum())
    assert np.trace(conf.values) / 216 == pytest.approx(weighted)
    w = analysis.weight_map()
    assert w.dims == ("x", "y", "z") and "affine" in w.attrs
    assert int(np.isfinite(w.values).sum()) == haxby.SIZES["small"]["n_vt"]
    summary = analysis.summary()
    assert summary.startswith("face vs cat, SVC C=1, leave-one-run-out: ")
    assert summary.endswith(f"(chance 0.5, train {round(float(s.train_score), 3)})")


def test_weights_and_haufe_pattern(analysis, reference, decoding_dir):
    from analysis.volumes import to_masked

    X, y, _ = reference
    analysis.param.update(conditions=["face", "cat"], C=1.0, classifier="svc")
    svc = SVC(kernel="linear", C=1.0).fit(X, y)
    mask = analysis.mask_img()
    weights = to_masked(analysis.weight_map(), mask)
    np.testing.assert_allclose(weights, svc.coef_[0], rtol=1e-10, atol=1e-12)
    # Haufe: cov(X) w / var(X w), direct formula
    cov = np.cov(X.astype(np.float64), rowvar=False)
    s = X.astype(np.float64) @ svc.coef_[0]
    expected = cov @ svc.coef_[0] / s.var(ddof=1)
    np.testing.assert_allclose(to_masked(analysis.pattern_map(), mask), expected, rtol=1e-8)
    # the pattern recovers the planted face-minus-cat difference better than raw weights
    truth = np.load(haxby.subject_dir(decoding_dir) / "ground_truth.npz")
    planted = truth["pattern_face"] - truth["pattern_cat"]
    r_pattern = np.corrcoef(to_masked(analysis.pattern_map(), mask), planted)[0, 1]
    assert r_pattern > 0.6
    assert analysis.contrasts() == ["face (+) vs cat (-)"]


def test_multiclass(analysis):
    analysis.param.update(conditions=["face", "cat", "house"], cv="run", classifier="svc", C=1.0)
    s = analysis.scores()
    assert s.confusion.shape == (3, 3)
    assert float(s.chance) == pytest.approx(1 / 3)
    assert float(s.mean_score) > 0.5
    assert len(analysis.contrasts()) == 3
    analysis.contrast = 2   # the map of the third condition: house vs the others
    assert analysis.weight_map().attrs["contrast"] == "house (+) vs others (-)"
    analysis.param.update(contrast=0, conditions=["face", "cat"])


def test_display_change_reuses_masked_data(decoding_dir, monkeypatch):
    maskings = count_maskings(monkeypatch)
    a = DecodingAnalysis.from_dataset(decoding_dir)
    a.scores()
    assert len(maskings) == 1
    a.C = 10.0
    a.cv = "kfold"
    a.n_folds = 4
    a.conditions = ["house", "shoe"]
    a.scores()
    a.weight_map()
    assert len(maskings) == 1  # only the classifier was refitted
    a.standardize = False
    a.scores()
    assert len(maskings) == 2  # structural: new masked data


def test_permutation_null_equals_permutation_test_score(analysis, reference):
    X, y, groups = reference
    analysis.param.update(conditions=["face", "cat"], cv="run", C=1.0, classifier="svc",
                          n_permutations=10, random_state=7, n_jobs=2)
    result = analysis.permutation_test()
    score, null, p = permutation_test_score(
        SVC(kernel="linear", C=1.0), X, y, groups=groups, cv=LeaveOneGroupOut(),
        n_permutations=10, random_state=7)
    np.testing.assert_array_equal(result.null.values, null)
    assert float(result.score) == score
    assert float(result.p_value) == p


def test_precomputed_kernel_path_equals_plain_fits(reference):
    X, y, groups = reference
    splits = list(LeaveOneGroupOut().split(X, y, groups))
    fast = decoding.permutation_null(X, y, groups, splits, "svc", 0.5, n_permutations=6,
                                     random_state=2, n_jobs=1, precomputed=True)
    plain = decoding.permutation_null(X, y, groups, splits, "svc", 0.5, n_permutations=6,
                                      random_state=2, n_jobs=1, precomputed=False)
    np.testing.assert_array_equal(fast, plain)


def test_permutation_kfold_equals_reference(analysis, reference):
    X, y, _ = reference
    analysis.param.update(conditions=["face", "cat"], cv="kfold", n_folds=5, C=1.0,
                          n_permutations=10, random_state=1, n_jobs=1)
    result = analysis.permutation_test()
    score, null, p = permutation_test_score(SVC(kernel="linear"), X, y, cv=KFold(5),
                                            n_permutations=10, random_state=1)
    np.testing.assert_array_equal(result.null.values, null)
    assert float(result.p_value) == p
    analysis.cv = "run"


def test_permutation_p_planted_and_null_pair(analysis):
    analysis.param.update(cv="run", C=1.0, classifier="svc", n_permutations=25,
                          random_state=0, n_jobs=2)
    analysis.conditions = ["face", "cat"]
    planted = analysis.permutation_test()
    again = analysis.permutation_test()
    np.testing.assert_array_equal(planted.null.values, again.null.values)  # reproducible
    assert float(planted.p_value) < 0.05
    analysis.conditions = list(haxby.NULL_PAIR)  # bottle vs chair: no planted difference
    null_pair = analysis.permutation_test()
    assert float(null_pair.p_value) > 0.05
    analysis.conditions = ["face", "cat"]


def test_threads_give_the_same_null(analysis):
    analysis.param.update(conditions=["face", "cat"], cv="run", n_permutations=8,
                          random_state=3)
    analysis.n_jobs = 1
    one = analysis.permutation_test().null.values
    analysis.n_jobs = 2
    two = analysis.permutation_test().null.values
    np.testing.assert_array_equal(one, two)


def test_background_permutations_progress_and_result(decoding_dir):
    a = DecodingAnalysis.from_dataset(decoding_dir, n_permutations=12, n_jobs=2)
    seen = []
    a.param.watch(lambda e: seen.append(e.new), "permutation_progress")
    worker = a.start_permutations()
    worker.join(60)
    assert a.permutation_result is not None
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    assert re.match(r"p(=|<=)[0-9.e-]+ ", a.permutation_status)
    assert re.search(r", p(=|<=)[0-9.e-]+ \(", a.summary())
    a.C = 2.0  # a parameter change invalidates the result
    assert a.permutation_result is None


def test_background_permutations_cancel(decoding_dir):
    a = DecodingAnalysis.from_dataset(decoding_dir, n_permutations=5000, n_jobs=2)
    started = threading.Event()
    a.param.watch(lambda e: started.set(), "permutation_progress")
    a.start_permutations()
    assert started.wait(60)
    a.cancel_permutations()
    assert not a.permutation_running
    assert a.permutation_result is None
    assert "cancelled" in a.permutation_status


def test_permutation_null_cancel_raises():
    X = np.random.default_rng(0).standard_normal((20, 5))
    y = np.array(["a", "b"] * 10)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(decoding.Cancelled):
        decoding.permutation_null(X, y, None, list(KFold(2).split(X)), n_permutations=5,
                                  cancel=cancel)


# ---------------------------------------------------------------- real data (user files)

HAXBY_TABLE = "".join(f"{c} {n}\n" for c, n in enumerate(
    ["rest", "face", "house", "shoe", "cat", "scissors", "scrambledpix", "bottle", "chair"]))


def _slice_analysis(haxby_slice, label_names=None, **params):
    return DecodingAnalysis.from_files(haxby_slice / "bold.nii.gz", haxby_slice / "mask.nii.gz",
                                       haxby_slice / "attributes.txt", label_names=label_names,
                                       **params)


def test_real_slice_face_vs_cat(haxby_slice, tmp_path):
    from analysis.io import load_labels

    table = tmp_path / "names.txt"
    table.write_text(HAXBY_TABLE)
    a = _slice_analysis(haxby_slice, table, conditions=["1", "4"], cv="run", standardize=True)
    assert a.conditions == ["face", "cat"]
    labels = load_labels(haxby_slice / "attributes.txt", names=table)
    X, y, groups = seed_reference(haxby_slice / "bold.nii.gz", haxby_slice / "mask.nii.gz",
                                  labels, ["face", "cat"])
    assert X.shape == (216, 530)
    expected = cross_val_score(SVC(kernel="linear"), X, y, cv=LeaveOneGroupOut(), groups=groups)
    s = a.scores()
    np.testing.assert_array_equal(s.fold_score.values, expected)
    assert float(s.mean_score) > float(s.chance) + 0.1
    assert "at chance" not in a.summary()
    # no table: the same decoder on the codes themselves
    codes = _slice_analysis(haxby_slice, conditions=["1", "4"], cv="run")
    assert codes.conditions == ["1", "4"]
    np.testing.assert_array_equal(codes.scores().fold_score.values, expected)


# ---------------------------------------------------------------- default pair, at chance
# (issue 15 item 13: numeric labels without a table were given Haxby's names; with the
# user's own table the default pair could be rest vs bottle: accuracy = chance = 0.845)

def test_numeric_labels_without_a_table_are_numbers(haxby_slice):
    a = _slice_analysis(haxby_slice)
    assert a.param.conditions.objects == [str(c) for c in range(9)]
    assert a.conditions == ["1", "2"]          # not "0": it dominates (588 vs 108 volumes)
    with pytest.raises(DataError, match="condition 'face' has no samples in the labels "
                       r"\(known: 0, 1, 2, .*numeric codes with no names"):
        _slice_analysis(haxby_slice, conditions=["face", "cat"])


@pytest.mark.parametrize("rest", ["Rest", "baseline", "blank"])
def test_default_pair_is_never_the_majority_class(haxby_slice, tmp_path, rest):
    """The user's table, without face and cat: the default pair excludes a rest named
    as such (any case) and a label with more than twice the next one's volumes."""
    table = tmp_path / "names.txt"
    table.write_text("".join(f"{c} {n}\n" for c, n in enumerate(
        [rest, "visage", "maison", "chaussure", "chat", "ciseaux", "brouillage", "bottle",
         "chaise"])))
    a = _slice_analysis(haxby_slice, table, cv="run")
    assert rest not in a.conditions and len(a.conditions) == 2
    assert a.conditions == ["bottle", "brouillage"]   # the first two of equal size
    s = a.scores()
    assert float(s.chance) == 0.5 and float(s.mean_score) > float(s.chance_limit)


def test_default_pair_of_similar_size():
    from analysis.decoding import condition_choices, default_conditions

    def labels(counts):
        names = [n for n, k in counts.items() for _ in range(k)]
        return pd.DataFrame({"labels": names, "chunks": np.arange(len(names)) % 4})

    assert default_conditions(labels({"a": 50, "b": 20, "c": 22, "d": 40})) == ["b", "c"]
    numbers = labels({"0": 300, "1": 50, "2": 48, "10": 20})
    assert condition_choices(numbers) == ["0", "1", "2", "10"]
    assert default_conditions(numbers) == ["1", "2"]
    assert default_conditions(labels({"rest": 10, "cat": 3, "face": 3, "house": 3})) == [
        "face", "cat"]
    assert condition_choices(labels({"rest": 10, "cat": 3, "face": 3})) == [
        "cat", "face", "rest"]
    assert default_conditions(labels({"rest": 10, "x": 3})) == ["x", "rest"]


def test_a_result_at_chance_says_so(haxby_slice, tmp_path):
    from analysis.scripts.decoding import decoding_script
    from tests.test_scripts import run_script

    # rest vs bottle, regularised so much that it predicts the majority: the case
    a = _slice_analysis(haxby_slice, conditions=["0", "7"], cv="run", C=1e-4)
    s = a.scores()
    assert float(s.chance) == pytest.approx(588 / 696)
    limit = float(s.chance) + 2 * np.sqrt(float(s.chance) * (1 - float(s.chance)) / 696)
    assert float(s.chance_limit) == pytest.approx(limit)
    assert float(s.mean_score) <= float(s.chance_limit)
    assert a.summary() == ("0 vs 7, SVC C=0.0001, leave-one-run-out: 0.845, at chance "
                           "(chance 0.845, train 0.845)")
    out = run_script(decoding_script(a), tmp_path)   # the script says so too
    assert out["summary"] == a.summary()
    a.C = 1.0   # decodable: no such words
    assert float(a.scores().mean_score) > float(a.scores().chance_limit)
    assert "at chance" not in a.summary()


# ---------------------------------------------------------------- bad input

def test_one_condition(analysis):
    with pytest.raises(DataError, match="at least two conditions"):
        decoding.select_samples(analysis.data.labels, ["face"])


def test_condition_without_samples(analysis):
    with pytest.raises(DataError, match="condition 'dog' has no samples"):
        decoding.select_samples(analysis.data.labels, ["face", "dog"])
    labels = pd.DataFrame({"labels": ["a", "b", "a"], "chunks": [0, 0, 1], "code": [1, 2, 1]})
    with pytest.raises(DataError, match="condition '3' has no samples"):
        decoding.select_samples(labels, ["1", "3"])


def test_more_folds_than_samples_or_runs():
    y = np.array(["a", "b"] * 5)
    with pytest.raises(DataError, match="20 folds for only 10 samples"):
        decoding.cv_splits("kfold", 20, y, np.zeros(10, int))
    with pytest.raises(DataError, match="at least 2 runs"):
        decoding.cv_splits("run", 5, y, np.zeros(10, int))


def test_kfold_fold_with_one_condition():
    y = np.array(["a"] * 5 + ["b"] * 5)
    with pytest.raises(DataError, match="only one condition"):
        decoding.cv_splits("kfold", 2, y, np.zeros(10, int))


def test_param_class_reports_bad_folds(decoding_dir):
    a = DecodingAnalysis.from_dataset(decoding_dir)
    a.param.update(cv="kfold", n_folds=300, conditions=["face", "cat"])
    with pytest.raises(DataError, match="300 folds for only 216 samples"):
        a.scores()
    a.n_folds = 5  # the analysis keeps working
    assert a.scores().sizes["fold"] == 5


def test_labels_wrong_length(tmp_path, haxby_slice):
    bad = tmp_path / "attributes.txt"
    bad.write_text("\n".join((haxby_slice / "attributes.txt").read_text().splitlines()[:-10]))
    with pytest.raises(DataError, match="attributes.txt: 1442 labels for 1452 volumes"):
        DecodingAnalysis.from_files(haxby_slice / "bold.nii.gz", haxby_slice / "mask.nii.gz", bad)


def test_mask_selecting_no_voxel(tmp_path, haxby_slice):
    mask = nib.load(str(haxby_slice / "mask.nii.gz"))
    empty = tmp_path / "empty.nii.gz"
    nib.Nifti1Image(np.zeros(mask.shape, np.uint8), mask.affine).to_filename(str(empty))
    with pytest.raises(DataError, match="empty.nii.gz: the mask selects no voxel"):
        DecodingAnalysis.from_files(haxby_slice / "bold.nii.gz", empty,
                                    haxby_slice / "attributes.txt")


def test_permutations_print_nothing(reference, capfd):
    from sklearn.svm import _libsvm

    X, y, groups = reference
    _libsvm.set_verbosity_wrap(1)  # as if the last SVC was verbose
    decoding.permutation_null(X, y, groups, list(LeaveOneGroupOut().split(X, y, groups)),
                              n_permutations=2, n_jobs=1)
    assert capfd.readouterr().out == ""


def test_accuracy_equals_sklearn_accuracy_score():
    from sklearn.metrics import accuracy_score

    from analysis.decoding import accuracy

    rng = np.random.default_rng(0)
    for labels in (np.array(["face", "cat", "house"]), np.arange(4)):
        for n in (1, 7, 216):
            t, p = rng.choice(labels, n), rng.choice(labels, n)
            assert accuracy(t, p) == accuracy_score(t, p)


def test_a_copy_computes_what_the_analysis_then_adopts(analysis, monkeypatch):
    """The app's background refresh: a copy computes (masking, CV, fit), the analysis
    takes its results and shows them without computing again; results of parameters
    moved on meanwhile are not taken as current."""
    analysis.param.update(conditions=["face", "cat"], cv="kfold", n_folds=3, C=0.5)
    copy = analysis.copy()
    assert copy is not analysis and copy.data is analysis.data
    assert {k: getattr(copy, k) for k in analysis.SETTINGS} == \
        {k: getattr(analysis, k) for k in analysis.SETTINGS}
    analysis.C = 0.25                        # moved on: the copy's results are stale
    copy.scores(), copy.weight_map()
    assert analysis.adopt(copy) is False and not analysis.is_computed()
    again = analysis.copy()
    expected = again.scores()
    again.weight_map()
    assert analysis.adopt(again) is True and analysis.is_computed()
    maskings = count_maskings(monkeypatch)
    np.testing.assert_array_equal(analysis.scores().fold_score.values,
                                  expected.fold_score.values)
    assert maskings == []                    # nothing recomputed


def test_has_masked_follows_the_mask_and_standardization(analysis):
    analysis.masked()
    assert analysis.has_masked()
    analysis.standardize = not analysis.standardize
    assert not analysis.has_masked()
    analysis.masked()
    assert analysis.has_masked()
    analysis.standardize = not analysis.standardize


def test_smallest_p_is_written_as_a_bound():
    # no permutation reached the score: p = 1/(n+1), reported as "p<=", never "p=0"
    from analysis.decoding.engine import p_text, p_value

    null = np.array([0.4, 0.5, 0.55, 0.6])
    assert p_value(0.9, null) == 0.2 and p_text(0.2, 4) == "p<=0.2"
    assert p_value(0.5, null) == 0.8 and p_text(0.8, 4) == "p=0.8"
    assert p_text(1 / 101, 100) == "p<=0.0099"
