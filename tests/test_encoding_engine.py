"""The fast ridge engine equals the seed's sklearn loop (Ridge + KFold + r2_score)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, LeaveOneGroupOut

from analysis.datasets import miyawaki
from analysis.encoding.engine import RidgeCV, make_folds
from analysis.encoding.reference import reference_r2
from analysis.errors import DataError



pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py

@pytest.fixture(scope="module")
def samples(encoding_dir):
    y, x, runs, _ = miyawaki.load(encoding_dir).lagged(2)
    return y, x, runs


def seed_loop(stimuli, fmri_data, alpha, cv, groups=None):
    """The seed's code, literally (plus groups for leave-one-run-out)."""
    estimator = Ridge(alpha=alpha)
    scores = []
    for train, test in cv.split(X=stimuli, groups=groups):
        predictions = estimator.fit(stimuli.reshape(-1, 100)[train], fmri_data[train]).predict(
            stimuli.reshape(-1, 100)[test])
        scores.append(r2_score(fmri_data[test], predictions, multioutput="raw_values"))
    return np.array(scores)


@pytest.mark.parametrize("n_folds", [2, 5, 10])
@pytest.mark.parametrize("alpha", [0.1, 10.0, 100.0, 1e4])
def test_kfold_float64_equals_seed_loop(samples, n_folds, alpha):
    y, x, _ = samples
    y = y.astype(np.float64)
    eng = RidgeCV(x, y, make_folds(len(x), "kfold", n_folds))
    ref = seed_loop(x, y, alpha, KFold(n_splits=n_folds))
    got = eng.r2(alpha)
    assert got.shape == ref.shape == (n_folds, y.shape[1])
    assert np.abs(got - ref).max() < 1e-8
    assert np.abs(eng.mean_r2(alpha) - ref.mean(axis=0)).max() < 1e-8


@pytest.mark.parametrize("alpha", [1.0, 100.0, 3000.0])
def test_leave_one_run_out_equals_sklearn(samples, alpha):
    y, x, runs = samples
    y = y.astype(np.float64)
    folds = make_folds(len(x), "run", runs=runs)
    assert len(folds) == 20
    ref = seed_loop(x, y, alpha, LeaveOneGroupOut(), groups=runs)
    assert np.abs(RidgeCV(x, y, folds).r2(alpha) - ref).max() < 1e-8


@pytest.mark.parametrize("cv", ["kfold", "run"])
def test_float32_within_1e5(samples, cv):
    y, x, runs = samples
    folds = make_folds(len(x), cv, 7, runs)
    eng = RidgeCV(x, y.astype(np.float32), folds, dtype=np.float32)
    for alpha in (1.0, 100.0, 1e4):
        got = eng.r2(alpha)
        assert got.dtype == np.float32
        ref64 = reference_r2(x, y.astype(np.float64), folds, alpha)
        ref32 = reference_r2(x.astype(np.float32), y.astype(np.float32), folds, alpha)
        assert np.abs(got - ref64).max() < 1e-5
        assert np.abs(got - ref32).max() < 1e-5


def test_alpha_path_equals_sklearn_at_every_alpha(samples):
    y, x, _ = samples
    y = y.astype(np.float64)
    folds = make_folds(len(x), "kfold", 5)
    alphas = np.logspace(-1, 5, 7)
    path = RidgeCV(x, y, folds).r2_path(alphas)
    assert path.shape == (7, 5, y.shape[1])
    for a, got in zip(alphas, path):
        assert np.abs(got - reference_r2(x, y, folds, a)).max() < 1e-8


def test_coefficients_and_predictions_equal_ridge(samples):
    y, x, _ = samples
    y = y.astype(np.float64)
    folds = make_folds(len(x), "kfold", 4)
    eng = RidgeCV(x, y, folds)
    full = Ridge(alpha=30.0).fit(x, y)
    assert np.abs(eng.coef(30.0) - full.coef_).max() < 1e-10
    assert np.abs(eng.intercept(30.0) - full.intercept_).max() < 1e-10
    v = 7
    pred = eng.predict_cv(30.0, v)
    for train, test in folds:
        ref = Ridge(alpha=30.0).fit(x[train], y[train, v]).predict(x[test])
        assert np.abs(pred[test] - ref).max() < 1e-10
    np.testing.assert_array_equal(eng.measured(v), y[:, v])


def test_intercept_matters_on_offset_data():
    """Responses with large offsets and non-centred stimuli: still equal to Ridge."""
    rng = np.random.default_rng(0)
    x = (rng.random((90, 12)) < 0.3).astype(float)
    y = 50 + x @ rng.normal(size=(12, 5)) + rng.normal(size=(90, 5))
    y[:, 0] = 3.0  # a constant voxel: r2_score's force_finite case
    folds = make_folds(90, "kfold", 3)
    ref = reference_r2(x, y, folds, 2.0)
    assert np.abs(RidgeCV(x, y, folds).r2(2.0) - ref).max() < 1e-8


def test_more_features_than_training_samples():
    rng = np.random.default_rng(1)
    x = rng.random((30, 100))
    y = rng.normal(size=(30, 4))
    folds = make_folds(30, "kfold", 3)
    assert np.abs(RidgeCV(x, y, folds).r2(5.0) - reference_r2(x, y, folds, 5.0)).max() < 1e-8


def test_bad_input(samples):
    y, x, runs = samples
    with pytest.raises(DataError, match="n_folds must be between 2"):
        make_folds(len(x), "kfold", 1)
    with pytest.raises(DataError, match="n_folds must be between 2"):
        make_folds(len(x), "kfold", len(x) + 1)
    with pytest.raises(DataError, match="cv must be one of"):
        make_folds(len(x), "shuffle", 3)
    with pytest.raises(DataError, match="run of each sample"):
        make_folds(len(x), "run")
    eng = RidgeCV(x, y, make_folds(len(x), "kfold", 3))
    for bad in (0, -1.0, np.nan):
        with pytest.raises(DataError, match="alpha must be a positive number"):
            eng.r2(bad)
    with pytest.raises(DataError, match="outside the mask"):
        eng.predict_cv(1.0, y.shape[1])
    with pytest.raises(DataError, match="same number of rows"):
        RidgeCV(x[:-1], y, make_folds(len(x), "kfold", 3))


@pytest.mark.parametrize("dtype,cv", [("float64", "kfold"), ("float32", "run")])
def test_saved_decomposition_gives_the_same_numbers(samples, tmp_path, dtype, cv, ridge_builds):
    """A decomposition read back from disk answers exactly as the one that was saved,
    and both equal the seed's loop."""
    y, x, runs = samples
    folds = make_folds(len(x), cv, 5, runs)
    eng = RidgeCV(x, y, folds, dtype=dtype)
    path = eng.save(tmp_path / "eng.npz")
    loads = ridge_builds["loaded"]
    back = RidgeCV.load(path, x, y, dtype)
    assert ridge_builds["loaded"] == loads + 1
    assert back.n_folds == eng.n_folds and back.dtype == eng.dtype
    for (tr, te), (tr2, te2) in zip(eng.folds, back.folds):
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)
    for alpha in (1.0, 100.0):
        np.testing.assert_array_equal(back.r2(alpha), eng.r2(alpha))
        np.testing.assert_array_equal(back.coef(alpha, [0, 3]), eng.coef(alpha, [0, 3]))
        np.testing.assert_array_equal(back.intercept(alpha), eng.intercept(alpha))
        np.testing.assert_array_equal(back.predict_cv(alpha, 2), eng.predict_cv(alpha, 2))
    np.testing.assert_array_equal(back.r2_path([1.0, 10.0]), eng.r2_path([1.0, 10.0]))
    np.testing.assert_array_equal(back.measured(4), eng.measured(4))
    if dtype == "float64":
        np.testing.assert_allclose(back.r2(100.0), reference_r2(x, y, folds, 100.0),
                                   atol=1e-10)


def test_saved_decomposition_refuses_other_data(samples, tmp_path):
    y, x, runs = samples
    eng = RidgeCV(x, y, make_folds(len(x), "kfold", 3))
    path = eng.save(tmp_path / "eng.npz")
    with pytest.raises(DataError, match="other data"):
        RidgeCV.load(path, x[:-1], y[:-1])  # other samples
    with pytest.raises(DataError, match="other data"):
        RidgeCV.load(path, x, y[:, :-1])  # other voxels
    with pytest.raises(DataError, match="other data"):
        RidgeCV.load(path, x, y, np.float32)  # saved as float64
    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a saved decomposition"):
        RidgeCV.load(broken, x, y)
    with pytest.raises(DataError, match="not a saved decomposition"):
        RidgeCV.load(tmp_path / "missing.npz", x, y)
