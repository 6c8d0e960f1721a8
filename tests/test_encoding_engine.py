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


# ---- the alpha-linear form of the held-out error on awkward stimuli --------------------
ALPHAS = (1e-3, 0.1, 10.0, 1e3, 1e5)


def _rotations(n_groups, n_pairs, rng, gap=0.0):
    """Stimuli whose centred Gram matrix over whole groups of 4 rows has its eigenvalues
    in equal pairs (each pair of features turned by 90 degrees from row to row), pulled
    apart by ``gap`` (relative): exactly or nearly equal eigenvalues."""
    rows = []
    for _ in range(n_groups):
        group = np.zeros((4, 2 * n_pairs))
        for j in range(n_pairs):
            c, s = rng.normal(size=2) * (1.0 + j)
            turns = np.array([[c, s], [-s, c], [-c, -s], [s, -c]])
            group[:, 2 * j:2 * j + 2] = turns * [1.0, 1.0 + gap]
        rows.append(group)
    return np.vstack(rows)


@pytest.mark.parametrize("gap", [0.0, 1e-9, 1e-5, 3e-3, 0.1])
def test_equal_or_close_eigenvalues_equal_sklearn(gap):
    """Training folds of whole groups: eigenvalues in (nearly) equal pairs, where the
    partial fractions of the held-out error would divide by (nearly) zero."""
    rng = np.random.default_rng(2)
    x = _rotations(30, 4, rng, gap) + 5.0   # an offset: the intercept is fitted
    y = x @ rng.normal(size=(8, 6)) + rng.normal(size=(120, 6))
    folds = make_folds(len(x), "kfold", 5)   # 24 rows a fold: whole groups
    eng = RidgeCV(x, y, folds)
    path = eng.r2_path(ALPHAS)
    for a, got in zip(ALPHAS, path):
        ref = reference_r2(x, y, folds, a)
        assert np.isfinite(got).all()
        assert np.abs(got - ref).max() < 1e-8, (gap, a)
        np.testing.assert_allclose(eng.r2(a), got, rtol=0, atol=1e-12)   # one alpha or many
    eng32 = RidgeCV(x, y.astype(np.float32), folds, dtype=np.float32)
    assert np.abs(eng32.r2(10.0) - reference_r2(x, y, folds, 10.0)).max() < 1e-5


@pytest.mark.parametrize("kind", ["ill-conditioned", "duplicated feature", "constant feature"])
def test_ill_conditioned_and_rank_deficient_stimuli_equal_sklearn(kind):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 7))
    if kind == "ill-conditioned":
        x *= np.logspace(-3, 3, 7)
    elif kind == "duplicated feature":
        x[:, 6] = x[:, 2]
    else:
        x[:, 4] = 1.5
    y = x @ rng.normal(size=(7, 5)) + rng.normal(size=(90, 5))
    folds = make_folds(len(x), "kfold", 3)
    eng = RidgeCV(x, y, folds)
    for a in ALPHAS:
        assert np.abs(eng.r2(a) - reference_r2(x, y, folds, a)).max() < 1e-8, (kind, a)


def test_folds_that_do_not_cover_the_samples_once_equal_sklearn(samples):
    """Test folds that overlap and leave samples out (not KFold's nor the runs'): the
    all-sample products are computed from every row, not summed over the folds."""
    y, x, _ = samples
    y = y.astype(np.float64)[:, :40]
    n = len(x)
    rng = np.random.default_rng(4)
    folds = []
    for _ in range(3):
        test = np.sort(rng.choice(n, n // 4, replace=False))
        folds.append((np.setdiff1d(np.arange(n), test), test))
    eng = RidgeCV(x, y, folds)
    for a in (1.0, 100.0):
        assert np.abs(eng.r2(a) - reference_r2(x, y, folds, a)).max() < 1e-8


def test_responses_read_a_fold_at_a_time_from_a_larger_array(samples):
    """The responses given as rows of a larger array (no copy): the same numbers as the
    copied rows."""
    y, x, runs = samples

    class Rows:
        def __init__(self, a, rows):
            self.a, self.rows, self.shape, self.dtype = a, rows, (len(rows), a.shape[1]), a.dtype

        def __getitem__(self, key):
            if isinstance(key, tuple):
                return self.a[self.rows[key[0]], key[1]]
            return self.a[self.rows[key]]

    big = np.vstack([y, y[:7]])[::-1].copy()       # the samples' rows, reversed, and others
    rows = np.arange(len(y))[::-1] + 7
    np.testing.assert_array_equal(big[rows], y)
    for cv in ("kfold", "run"):
        folds = make_folds(len(x), cv, 4, runs)
        for dtype in (np.float64, np.float32):
            view, copy = RidgeCV(x, Rows(big, rows), folds, dtype), RidgeCV(x, y, folds, dtype)
            np.testing.assert_array_equal(view.r2_path([1.0, 100.0]), copy.r2_path([1.0, 100.0]))
            np.testing.assert_array_equal(view.measured(3), copy.measured(3))
            np.testing.assert_array_equal(view.coef(10.0, [1]), copy.coef(10.0, [1]))


def test_folds_assembled_from_the_runs_products_equal_sklearn(samples):
    """RowBlocks (each run's products, made once): any folds on those samples assembled
    from them, whole runs or cut into, give the seed's R^2."""
    from analysis.encoding.engine import RowBlocks

    y, x, runs = samples
    starts = np.flatnonzero(np.diff(runs, prepend=-1))
    ranges = list(zip(starts, list(starts[1:]) + [len(runs)]))
    y64 = y.astype(np.float64)
    for dtype in (np.float64, np.float32):
        blocks = RowBlocks(x, y, ranges, dtype)
        assert blocks.complete and blocks.nbytes > 0
        for folds in (make_folds(len(x), "kfold", 10), make_folds(len(x), "kfold", 7),
                      make_folds(len(x), "run", runs=runs)):
            got = RidgeCV(x, y, folds, dtype, blocks=blocks)
            plain = RidgeCV(x, y, folds, dtype)
            for a in (1.0, 100.0):
                np.testing.assert_allclose(got.r2(a), plain.r2(a), rtol=0,
                                           atol=1e-12 if dtype == np.float64 else 1e-6)
                assert np.abs(got.r2(a) - reference_r2(x, y64, folds, a)).max() < (
                    1e-8 if dtype == np.float64 else 1e-5)
            np.testing.assert_allclose(got.coef(10.0, [2]), plain.coef(10.0, [2]), rtol=1e-12)
    # blocks of other stimuli or precision are not used; a cancelled one is incomplete
    other = RowBlocks(x[::-1], y, ranges)
    assert not other.fits(x, np.float64) and not blocks.fits(x, np.float64)
    folds = make_folds(len(x), "kfold", 5)
    assert np.abs(RidgeCV(x, y, folds, blocks=other).r2(10.0)
                  - reference_r2(x, y64, folds, 10.0)).max() < 1e-8
    calls = []
    stopped = RowBlocks(x, y, ranges, cancel=lambda: len(calls) > 2 or calls.append(1))
    assert not stopped.complete and not stopped.fits(x, np.float64)
    with pytest.raises(DataError, match="blocks must be ranges"):
        RowBlocks(x, y, [(0, 10), (20, len(x))])


@pytest.mark.parametrize("cv", ["kfold", "run"])
def test_folds_decomposed_in_threads_equal_one_by_one(samples, monkeypatch, cv):
    """Folds decomposed two at a time (each thread its own scratch array) give the same
    numbers as one at a time, bit for bit, and report every fold's progress once."""
    from analysis.encoding import engine

    y, x, runs = samples
    folds = make_folds(len(x), cv, 6, runs)
    assert engine.fold_workers(len(folds)) >= 1 and engine.fold_workers(3) == 1
    results = {}
    for threads in (1, 2):
        monkeypatch.setattr(engine, "FOLD_THREADS", threads)
        steps = []
        eng = RidgeCV(x, y, folds, progress=lambda f, m="": steps.append((f, m)))
        results[threads] = (eng.r2_path(np.logspace(-1, 4, 6)), eng.coef(100.0),
                            eng.predict_cv(100.0, 3))
        decomposing = [m for _, m in steps if m.startswith("decomposing fold")]
        assert len(decomposing) == len(folds) and steps[-1][0] == 1.0
        assert [f for f, _ in steps] == sorted(f for f, _ in steps)
    for a, b in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b)
    # and the seed's loop (alpha 100, the fourth of the path)
    groups = runs if cv == "run" else None
    splitter = LeaveOneGroupOut() if cv == "run" else KFold(6)
    np.testing.assert_allclose(results[2][0][3], seed_loop(x, y, 100.0, splitter, groups),
                               rtol=1e-7, atol=1e-9)


def test_a_cancel_raised_by_progress_stops_the_threaded_decomposition(samples):
    """A job's cancel arrives as an exception from ``progress``: it leaves RidgeCV, and
    the folds not yet begun are dropped."""
    y, x, runs = samples
    folds = make_folds(len(x), "kfold", 10, runs)
    calls = []

    class Cancelled(Exception):
        pass

    def progress(f, m=""):
        calls.append(m)
        if m.startswith("decomposing fold 2/"):
            raise Cancelled

    with pytest.raises(Cancelled):
        RidgeCV(x, y, folds, progress=progress)
    assert sum(m.startswith("decomposing fold") for m in calls) < len(folds)
