"""EncodingAnalysis: results as xarray, planted truth recovered, display params reuse the cache."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis import encoding
from analysis.encoding import model as encoding_model  # where the model looks its helpers up
from analysis.encoding import persist as encoding_persist  # the disk cache and background work
from analysis.encoding import EncodingAnalysis
from analysis.encoding.engine import RidgeCV
from analysis.encoding.reference import reference_r2
from analysis.errors import DataError


pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py


@pytest.fixture
def enc(encoding_dir):
    return EncodingAnalysis(data_dir=str(encoding_dir), alpha=100.0, n_folds=10)


def test_results_are_xarray_and_equal_the_seed(enc):
    y, x, runs, _ = enc.samples()
    folds = enc.engine().folds
    ref = reference_r2(x, y.astype(np.float64), folds, 100.0)
    r2f = enc.r2_folds()
    assert isinstance(r2f, xr.DataArray) and r2f.dims == ("fold", "voxel")
    assert np.abs(r2f.values - ref).max() < 1e-8
    mean = enc.mean_r2()
    assert mean.dims == ("voxel",) and np.abs(mean.values - ref.mean(axis=0)).max() < 1e-8
    vol = enc.r2_map()
    assert vol.dims == ("x", "y", "z") and "affine" in vol.attrs
    from analysis.volumes import to_masked

    np.testing.assert_allclose(to_masked(vol, enc.data().mask_img), mean.values)
    coef = enc.coefficients()
    assert coef.dims == ("voxel", "row", "col") and coef.shape == (enc.n_voxels, 10, 10)


def test_summary_line(enc):
    r2 = enc.mean_r2().values
    expected = (f"alpha=100 folds=10 mean R2={r2.mean():.3f} voxels above 0.05: "
                f"{int((r2 > 0.05).sum())}")
    assert enc.summary() == expected
    enc.threshold = 0.2
    assert enc.summary().endswith(f"voxels above 0.2: {int((r2 > 0.2).sum())}")


def test_alpha_path(enc):
    enc.param.update(alpha_range=(0, 4), n_alphas=5)
    path = enc.alpha_path()
    assert path.mean_r2.dims == ("alpha",) and path.sizes["alpha"] == 5
    y, x, _, _ = enc.samples()
    folds = enc.engine().folds
    for a in path.alpha.values:
        ref = reference_r2(x, y.astype(np.float64), folds, a).mean(axis=0)
        assert np.abs(path.r2.sel(alpha=a).values - ref).max() < 1e-8
    best = path.r2.values.argmax(axis=0)
    np.testing.assert_array_equal(path.best_alpha.values, path.alpha.values[best])


def test_planted_receptive_fields_are_recovered(enc):
    truth = enc.data().truth
    r2 = enc.mean_r2().values
    above = r2 > enc.threshold
    assert above.sum() >= 30
    coef = enc.coefficients().values.reshape(enc.n_voxels, -1)
    peak = np.stack(np.unravel_index(coef.argmax(axis=1), (10, 10)), axis=1)
    near = np.abs(peak - truth["peak"]).max(axis=1) <= 1
    assert near[above].mean() >= 0.9
    # the planted non-responsive voxels explain (close to) nothing
    silent = ~truth["responsive"]
    assert silent.sum() > 20
    assert abs(np.median(r2[silent])) < 0.08 and np.percentile(r2[silent], 95) < 0.05
    assert np.median(r2[truth["responsive"]]) > np.percentile(r2[silent], 95)


def test_lasso_receptive_field_as_the_seed_and_cached(enc, monkeypatch):
    from sklearn.linear_model import LassoLarsCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    truth = enc.data().truth
    v = int(np.argmax(np.where(truth["responsive"], enc.mean_r2().values, -1)))
    enc.voxel = v
    rf = enc.lasso_receptive_field()
    y, x, _, _ = enc.samples()
    lasso = make_pipeline(StandardScaler(), LassoLarsCV(max_iter=10))
    lasso.fit(x, y[:, v])
    ref = lasso.named_steps["lassolarscv"].coef_.reshape((10, 10))
    assert rf.dims == ("row", "col")
    np.testing.assert_allclose(rf.values, ref, atol=1e-10)
    assert np.unravel_index(np.argmax(rf.values), (10, 10)) in {
        tuple(truth["peak"][v] + d) for d in np.ndindex(3, 3) for d in [np.array(d) - 1]}
    calls = []
    monkeypatch.setattr(encoding_model, "lasso_receptive_field", lambda *a: calls.append(a))
    enc.alpha = 10.0
    np.testing.assert_array_equal(enc.lasso_receptive_field().values, rf.values)
    assert calls == []
    ridge = enc.ridge_receptive_field()
    np.testing.assert_allclose(ridge.values, enc.coefficients().sel(voxel=v).values)


def test_display_changes_do_not_recompute_the_decomposition(enc, ridge_builds):
    enc.summary()
    before = ridge_builds["built"]
    for alpha in (1.0, 10.0, 1000.0):
        enc.alpha = alpha
        enc.r2_map(), enc.summary()
    enc.threshold = 0.1
    enc.summary(), enc.n_above()
    enc.voxel = 3
    enc.ridge_receptive_field(), enc.time_course()
    enc.voxel = 4
    enc.ridge_receptive_field(), enc.time_course()
    enc.alpha_path()
    assert ridge_builds["built"] == before
    # a second session with the same structural parameters shares the cache
    EncodingAnalysis(data_dir=enc.data_dir, n_folds=10, alpha=5.0).summary()
    assert ridge_builds["built"] == before
    # structural changes do decompose again, once (values no other test uses: the
    # decompositions are shared by every analysis in the process)
    enc.n_folds = 7
    enc.summary(), enc.summary()
    assert ridge_builds["built"] == before + 1
    enc.lag = 3
    enc.summary()
    assert ridge_builds["built"] == before + 2


def test_leave_one_run_out_and_lag(enc):
    enc.param.update(cv="run", lag=1)
    y, x, runs, _ = enc.samples()
    assert len(x) == 20 * (enc.data().run_lengths[0] - 1)
    assert enc.engine().n_folds == 20 and enc.summary().startswith("alpha=100 folds=20 ")
    from analysis.encoding.engine import make_folds

    ref = reference_r2(x, y.astype(np.float64), make_folds(len(x), "run", runs=runs), 100.0)
    assert np.abs(enc.mean_r2().values - ref.mean(axis=0)).max() < 1e-8


def test_float32(enc):
    enc.dtype = "float32"
    assert enc.mean_r2().dtype == np.float32
    y, x, _, _ = enc.samples()
    ref = reference_r2(x, y.astype(np.float64), enc.engine().folds, 100.0).mean(axis=0)
    assert np.abs(enc.mean_r2().values - ref).max() < 1e-5


def test_time_course_and_stimulus(enc):
    enc.voxel = 2
    tc = enc.time_course()
    assert set(tc.data_vars) == {"measured", "predicted"} and tc.sizes["sample"] == len(enc.samples()[1])
    assert np.isfinite(tc.predicted.values).all()
    stim = enc.stimulus(5)
    y, x, _, volumes = enc.samples()
    np.testing.assert_array_equal(stim.values.ravel(), x[5])
    np.testing.assert_array_equal(stim.values, enc.data().stimuli[5])  # first run: image 5 -> volume 7
    assert stim.attrs["volume"] == 7


def test_voxel_space_round_trip(enc):
    for v in (0, 17, enc.n_voxels - 1):
        assert enc.voxel_at(enc.voxel_ijk(v)) == v
    assert enc.voxel_at((0, 0, 0)) is None


def test_bad_input(enc, encoding_dir):
    with pytest.raises(DataError, match="alpha must be a positive number"):
        EncodingAnalysis(data_dir=str(encoding_dir), alpha=0)
    with pytest.raises(ValueError, match="alpha"):
        enc.alpha = -1.0
    with pytest.raises(ValueError, match="n_folds"):
        enc.n_folds = 1
    enc.n_folds = 100_000
    with pytest.raises(DataError, match="n_folds must be between 2 and the number of samples"):
        enc.summary()
    enc.n_folds = 10
    with pytest.raises(DataError, match="outside the mask"):
        enc.ridge_receptive_field(enc.n_voxels)
    with pytest.raises(DataError, match="outside the mask"):
        enc.lasso_receptive_field(-1)
    with pytest.raises(ValueError, match="voxel"):
        enc.voxel = enc.n_voxels + 5
    with pytest.raises(DataError, match="no voxel selected"):
        EncodingAnalysis(data_dir=str(encoding_dir)).time_course()
    with pytest.raises(DataError, match="sample"):
        enc.stimulus(10**6)
    with pytest.raises(ValueError, match="lag"):
        enc.lag = 21
    with pytest.raises(DataError, match="lag must be between"):
        enc.data().lagged(enc.data().run_lengths[0])


def test_default_uses_the_synthetic_cache(encoding_dir):
    enc = EncodingAnalysis()  # size from $FMRI_EXPLORER_SIZE (small in tests)
    assert enc.size == "small"
    assert enc.data().fmri.shape == EncodingAnalysis(data_dir=str(encoding_dir)).data().fmri.shape


def test_sessions_share_the_r2_of_an_alpha(encoding_dir, monkeypatch):
    # a structural value no other test uses: the caches are process-wide
    one = EncodingAnalysis(data_dir=str(encoding_dir), n_folds=7, alpha=31.0)
    two = EncodingAnalysis(data_dir=str(encoding_dir), n_folds=7, alpha=31.0)
    first = one.r2_folds().values
    calls = []
    eng = two.engine()
    monkeypatch.setattr(eng, "r2", lambda alpha: calls.append(alpha) or RidgeCV.r2(eng, alpha))
    np.testing.assert_array_equal(two.r2_folds().values, first)
    assert calls == []  # the other session's product, not a new one
    two.alpha = 32.0
    np.testing.assert_allclose(two.r2_folds().values, RidgeCV.r2(eng, 32.0))
    assert calls == [32.0]
    with pytest.raises(ValueError):
        first[0, 0] = 1.0  # shared: read-only


def test_decomposition_is_kept_on_disk_for_the_next_process(encoding_dir, tmp_path, monkeypatch,
                                                            ridge_builds):
    """A new process (here: emptied caches) reads the decomposition instead of computing
    it, with the same numbers; other structural parameters get their own file; at most
    ENGINE_FILES are kept; an unreadable file is computed again and replaced."""
    from analysis.config import DATA_ENV

    monkeypatch.setenv(DATA_ENV, str(tmp_path))  # a cache folder of its own
    encoding.clear_caches()

    def files():
        return sorted((tmp_path / "cache").glob(f"{encoding.ENGINE_PREFIX}*.npz"))

    def fresh(**params):
        encoding.clear_caches()  # as a new process would start
        return EncodingAnalysis(data_dir=str(encoding_dir), alpha=10.0, **params)

    built, loads = ridge_builds["built"], ridge_builds["loaded"]
    first = fresh(n_folds=5)
    r2, ts = first.mean_r2().values.copy(), first.time_course(3)
    assert ridge_builds["built"] == built + 1 and len(files()) == 1
    again = fresh(n_folds=5)
    np.testing.assert_array_equal(again.mean_r2().values, r2)
    np.testing.assert_array_equal(again.time_course(3).predicted.values, ts.predicted.values)
    np.testing.assert_array_equal(again.time_course(3).measured.values, ts.measured.values)
    y, x, runs, volumes = again.samples()
    for a, b in zip(again.sample_index(), (x, runs, volumes)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.engine().measured(3), y[:, 3])
    assert ridge_builds["built"] == built + 1 and ridge_builds["loaded"] == loads + 1
    # every structural parameter is in the file's key
    for params in (dict(n_folds=4), dict(n_folds=5, lag=1), dict(cv="run"),
                   dict(n_folds=5, dtype="float32")):
        fresh(**params).engine()
    assert ridge_builds["built"] == built + 5
    assert len(files()) == encoding.ENGINE_FILES
    # the most recently used ones are kept: n_folds=5 (float32) is there, read back
    newest = fresh(n_folds=5, dtype="float32")
    newest.engine()
    assert ridge_builds["built"] == built + 5
    # a damaged file is not trusted: computed again, same numbers, file replaced
    path = newest.engine_path()
    path.write_bytes(b"not a zip")
    damaged = fresh(n_folds=5, dtype="float32")
    np.testing.assert_allclose(damaged.mean_r2().values, r2, atol=1e-5)
    assert ridge_builds["built"] == built + 6
    assert RidgeCV.load(path, *damaged.samples()[1::-1], "float32").n_folds == 5
    encoding.clear_caches()


def test_decomposition_of_uncached_data_is_not_kept(encoding_dir, tmp_path, monkeypatch, ridge_builds):
    from analysis.config import DATA_ENV
    from analysis.datasets import miyawaki

    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    data = miyawaki.load(encoding_dir, cache=False)
    assert data.cache_key is None
    monkeypatch.setattr(encoding_model, "load_data", lambda *a, **k: data)
    encoding.clear_caches()
    enc = EncodingAnalysis(data_dir=str(encoding_dir), n_folds=3)
    assert enc.engine_path() is None
    built = ridge_builds["built"]
    enc.engine()
    assert ridge_builds["built"] == built + 1
    encoding.clear_caches()
    assert not list(tmp_path.rglob(f"{encoding.ENGINE_PREFIX}*"))


def test_has_engine_follows_the_structural_parameters(encoding_dir):
    from analysis.encoding import EncodingAnalysis, clear_caches

    clear_caches()
    a = EncodingAnalysis(data_dir=str(encoding_dir), lag=2, cv="kfold", n_folds=3)
    assert not a.has_engine()
    a.engine()
    assert a.has_engine()
    a.n_folds = 4
    assert not a.has_engine()
    a.n_folds = 3
    assert a.has_engine()


def test_a_deferred_write_waits_until_no_decomposition_runs(encoding_dir, tmp_path,
                                                             monkeypatch, ridge_builds):
    """``engine(save_later=True)`` (the tab's job): the decomposition is written to the
    disk cache only once none has been built for SAVE_DELAY seconds (writing 95 MB slows
    a decomposition running meanwhile), the newest ENGINE_FILES of them; a new process
    then reads them, with the same numbers."""
    import time

    from analysis.config import DATA_ENV

    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    monkeypatch.setattr(encoding_persist, "SAVE_DELAY", 1.5)
    encoding.clear_caches()

    def files():
        return sorted((tmp_path / "cache").glob(f"{encoding.ENGINE_PREFIX}*.npz"))

    made = []
    for k in (3, 4, 5, 6):   # quicker than SAVE_DELAY apart: nothing written meanwhile
        a = EncodingAnalysis(data_dir=str(encoding_dir), n_folds=k)
        a.engine(save_later=True)
        made.append((a.engine_path(), k, a.mean_r2().values.copy()))
        assert files() == []
    deadline = time.monotonic() + 30
    while len(files()) < encoding.ENGINE_FILES:
        assert time.monotonic() < deadline, files()
        time.sleep(0.1)
    time.sleep(0.5)
    assert files() == sorted(path for path, _, _ in made[1:])   # the newest three
    built, loads = ridge_builds["built"], ridge_builds["loaded"]
    for _, k, r2 in made[1:]:
        encoding.clear_caches()
        again = EncodingAnalysis(data_dir=str(encoding_dir), n_folds=k)
        np.testing.assert_array_equal(again.mean_r2().values, r2)
    assert ridge_builds["built"] == built and ridge_builds["loaded"] == loads + 3
    encoding.clear_caches()


def test_runs_products_prepared_in_the_background_serve_new_folds(encoding_dir, monkeypatch,
                                                                   ridge_builds):
    """prefetch_run_blocks (a server, once a result is shown): each run's products at the
    setting are computed in the background when idle; the next numbers of folds and CV
    schemes there are decomposed from them, with the seed's numbers; a decomposition
    beginning before the delay stops the computation."""
    import time

    monkeypatch.setattr(encoding_persist, "PREFETCH_DELAY", 0.3)
    encoding.clear_caches()
    a = EncodingAnalysis(data_dir=str(encoding_dir), lag=1)
    a.prefetch_run_blocks()
    EncodingAnalysis(data_dir=str(encoding_dir), lag=1, n_folds=4).engine()   # stops it
    time.sleep(0.8)
    assert len(encoding_model.RUN_BLOCKS) == 0
    a.prefetch_run_blocks()
    deadline = time.monotonic() + 30
    while len(encoding_model.RUN_BLOCKS) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert a.run_blocks() is a.run_blocks()      # kept: computed once
    from analysis.encoding.engine import RowBlocks

    used = []
    rows = RowBlocks.rows
    monkeypatch.setattr(RowBlocks, "rows", lambda self, *args: used.append(1) or rows(self, *args))
    for params, folds in ((dict(n_folds=7), 7), (dict(cv="run"), 20),
                          (dict(n_folds=10, dtype="float32"), 0)):   # made for float64
        b = EncodingAnalysis(data_dir=str(encoding_dir), lag=1, **params)
        y, x, _, _ = b.samples()
        ref = reference_r2(x, y.astype(np.float64), b.engine().folds, 100.0)
        tol = 1e-8 if b.dtype == "float64" else 1e-5
        assert np.abs(b.r2_folds().values - ref).max() < tol
        assert len(used) == folds, params
        used.clear()
    encoding.clear_caches()
