"""The permutation test of each voxel's R^2 (issue 17): the fast null on the cached
decompositions equals scikit-learn's Ridge loop on the same permuted responses, the
permutations respect the runs, p and FDR, the planted voxels, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from analysis.cli import main
from analysis.encoding import EncodingAnalysis
from analysis.encoding import permutation as P
from analysis.encoding.engine import RidgeCV, make_folds
from analysis.errors import DataError

pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py


@pytest.fixture(scope="module")
def analysis(encoding_dir):
    return EncodingAnalysis(data_dir=str(encoding_dir))


@pytest.fixture(scope="module")
def samples(analysis):
    y, x, runs, _ = analysis.samples()
    return np.asarray(y, dtype=np.float64), x, runs


@pytest.mark.parametrize("cv, scheme, dtype", [("kfold", "shift", np.float64),
                                               ("run", "runs", np.float64),
                                               ("kfold", "runs", np.float32)])
def test_fast_null_equals_sklearn_loop(samples, cv, scheme, dtype):
    y, x, runs = samples
    folds = make_folds(len(x), cv, 10, runs)
    eng = RidgeCV(x, y, folds, dtype=dtype)
    rows = P.permuted_rows(runs, 3, scheme, random_state=4)
    for alpha in (100.0, 3.0):
        fast = P.permutation_null(eng, x, y, alpha, rows)
        ref = P.reference_null(x, y, folds, alpha, rows)
        assert fast.shape == (3, y.shape[1])
        assert np.abs(fast - ref).max() < (1e-8 if dtype == np.float64 else 2e-4)
    # the identity is no permutation: the engine's own R^2
    same = P.permutation_null(eng, x, y, 100.0, np.arange(len(x))[None])
    assert np.allclose(same[0], eng.mean_r2(100.0), atol=1e-10 if dtype == np.float64 else 1e-5)


def test_permutations_keep_the_runs(samples):
    _, _, runs = samples
    shifted = P.permuted_rows(runs, 20, "shift", min_shift=5, random_state=0)
    exchanged = P.permuted_rows(runs, 20, "runs", random_state=0)
    for rows in np.concatenate([shifted, exchanged]):
        assert np.array_equal(np.sort(rows), np.arange(runs.size))
    for rows in shifted:
        assert np.array_equal(runs[rows], runs)       # every sample stays in its run
        for r in np.unique(runs):
            m = np.flatnonzero(runs == r)
            shift = int(np.flatnonzero(m == rows[m][0])[0])
            assert 5 <= shift <= m.size - 5          # a circular shift of at least 5
            assert np.array_equal(rows[m], m[(np.arange(m.size) + shift) % m.size])
    for rows in exchanged:                            # whole runs, in order, moved
        for r in np.unique(runs):
            m = np.flatnonzero(runs == r)
            source = runs[rows[m]]
            assert (source == source[0]).all()
            assert np.array_equal(rows[m], np.flatnonzero(runs == source[0]))
    assert not np.array_equal(shifted[0], shifted[1])
    assert np.array_equal(P.permuted_rows(runs, 3, random_state=7),
                          P.permuted_rows(runs, 3, random_state=7))


def test_p_and_fdr():
    observed = np.array([0.5, 0.1, -0.2, 0.0])
    null = np.array([[0.1, 0.2, -0.5, 0.0], [0.0, 0.05, -0.1, 0.0], [0.2, 0.3, -0.3, 0.0]])
    # (#{null >= observed} + 1) / (n + 1)
    assert P.permutation_p(observed, null).tolist() == [0.25, 0.75, 0.5, 1.0]
    rng = np.random.default_rng(0)
    null = rng.standard_normal((199, 400))
    observed = np.concatenate([rng.standard_normal(300), rng.uniform(4, 5, 100)])
    res = P.fdr_result(observed, null, 1.0, "shift", 0.05)
    expected = sps.false_discovery_control(res.p) <= 0.05
    assert np.array_equal(res.significant, expected) and res.n_significant >= 100
    assert res.r2_threshold == pytest.approx(observed[expected].min())
    assert res.smallest_p == pytest.approx(1 / 200)
    assert res.summary()["n_voxels_fdr"] == res.n_significant


@pytest.mark.parametrize("kwargs, match", [
    (dict(scheme="bootstrap"), "scheme"), (dict(n_permutations=-1), "n_permutations"),
    (dict(min_shift=40), "at least 80 samples"),
])
def test_bad_permutations_refused(samples, kwargs, match):
    _, _, runs = samples
    args = dict(runs=runs, n_permutations=2) | kwargs
    with pytest.raises(DataError, match=match):
        P.permuted_rows(**args)


def test_planted_voxels(analysis):
    """On the synthetic data the responsive voxels get the smallest p and most of them
    survive FDR; the others' p are spread over (0, 1]."""
    res = P.analysis_permutation_test(analysis, 99, random_state=0)
    responsive = analysis.data().truth["responsive"].astype(bool)
    assert res.n_permutations == 99 and res.smallest_p == pytest.approx(0.01)
    assert np.median(res.p[responsive]) == pytest.approx(0.01)
    assert res.significant[responsive].mean() > 0.9
    null_p = res.p[~responsive]
    assert 0.35 < null_p.mean() < 0.65 and (null_p < 0.05).mean() < 0.15
    assert res.significant[~responsive].mean() < 0.1
    # kept for the process: asking again computes nothing
    assert P.analysis_permutation_test(analysis, 99, random_state=0) is res
    # as a volume: -log10 p on the mask's voxels
    vol = P.p_volume(analysis, res)
    values = vol.values[np.isfinite(vol.values)]
    assert values.size == res.p.size and values.max() == pytest.approx(2.0)
    assert vol.attrs["n_permutations"] == 99


def test_pure_noise_p_is_uniform(samples):
    """Autocorrelated noise with no relation to the stimuli: p about uniform, nothing
    survives FDR, for both schemes."""
    _, x, runs = samples
    rng = np.random.default_rng(5)
    y = rng.standard_normal((len(x), 400))
    for t in range(1, len(x)):
        y[t] += 0.6 * y[t - 1] * (runs[t] == runs[t - 1])
    eng = RidgeCV(x, y, make_folds(len(x), "kfold", 10, runs), full_fit=False)
    for scheme in P.SCHEMES:
        res = P.permutation_test(eng, x, y, runs, 100.0, 49, scheme, random_state=1)
        assert 0.42 < res.p.mean() < 0.58
        assert (res.p <= 0.06).mean() < 0.1 and res.n_significant == 0


def test_cancel_keeps_what_is_done(samples):
    import threading

    y, x, runs = samples
    eng = RidgeCV(x, y, make_folds(len(x), "kfold", 5, runs), full_fit=False)
    cancel = threading.Event()
    done = []

    def progress(fraction, message=""):
        done.append(fraction)
        if len(done) == 2:
            cancel.set()

    res = P.permutation_test(eng, x, y, runs, 10.0, 10, progress=progress, cancel=cancel)
    assert res.n_permutations == 2 and np.isnan(res.null[2:]).all()
    assert res.smallest_p == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- the CLI

def test_cli_permutations(encoding_dir, analysis, samples, capsys):
    code = main(["encoding", "--data", str(encoding_dir), "--n-permutations", "19",
                 "--random-state", "3", "--json"])
    info = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("n_permutations", "fdr_r2_threshold", "n_voxels_fdr", "p_per_voxel",
                "permutation_scheme", "fdr_q"):
        assert key in info
    y, x, runs = samples
    res = P.permutation_test(analysis.engine(), x, y, runs, 100.0, 19, random_state=3)
    assert info["n_permutations"] == 19 and info["permutation_scheme"] == "shift"
    assert np.allclose(info["p_per_voxel"], res.p)
    assert info["n_voxels_fdr"] == res.n_significant
    assert info["fdr_r2_threshold"] == (None if res.r2_threshold is None
                                        else pytest.approx(res.r2_threshold))
    # without the option: no test, no p
    assert main(["encoding", "--data", str(encoding_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_permutations"] == 0 and "p_per_voxel" not in info


@pytest.mark.parametrize("argv, option", [
    (["--n-permutations", "-3"], "--n-permutations"),
    (["--n-permutations", "2.5"], "--n-permutations"),
    (["--fdr-q", "1"], "--fdr-q"),
    (["--permutation-scheme", "phase"], "--permutation-scheme"),
])
def test_cli_refuses_bad_permutation_options(argv, option, capsys):
    assert main(["encoding", *argv]) == 2
    err = capsys.readouterr().err
    assert option in err and len(err.strip().splitlines()) == 1
