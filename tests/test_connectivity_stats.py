"""Single-subject statistics of a seed map (issue 17): the cleaning operator, Dutilleul's
effective sample size, p values against the textbook test, FDR against scipy, the false
positive rate on null data cleaned as the app cleans, the planted network, the model and
the CLI."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy import stats as sps

from analysis import connectivity as C
from analysis.cli import main
from analysis.connectivity import stats as S
from analysis.datasets import development as dev
from analysis.errors import DataError

pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py

N, T_R = 168, 2.0
BAND = dict(detrend=True, low_pass=0.1, high_pass=0.01, t_r=T_R)


def _clean(signals, confounds=None, standardize="zscore_sample"):
    from nilearn import signal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return signal.clean(signals, confounds=confounds, standardize=standardize, **BAND)


def _ar1(rng, n_series, phi):
    e = rng.standard_normal((N, n_series))
    for t in range(1, N):
        e[t] += phi * e[t - 1]
    return e


@pytest.fixture(scope="module")
def subject(connectivity_dir):
    files = dev.subject_files(connectivity_dir, subject=0)
    return C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])


@pytest.fixture(scope="module")
def cleaned(subject):
    return C.clean_data(subject, C.CleaningSettings(
        confound_columns=tuple(subject.confound_names)))


# --------------------------------------------------------------------------- the engine

def test_operator_is_the_cleaning(subject, cleaned):
    """``L @ raw`` is the cleaning's own seed-domain matrix (detrend, band, confounds)."""
    op = S.cleaning_operator(subject, cleaned.settings)
    assert op.shape == (N, N)
    raw = subject.img.get_fdata(dtype=np.float64)[tuple(cleaned.domain_ijk.T)].T
    scale = np.abs(cleaned.domain).max()
    assert np.abs(op @ raw - cleaned.domain).max() < 1e-9 * max(scale, 1.0)


def test_effective_n_equals_dutilleul_loop():
    """The band algebra equals Dutilleul's formula with explicit covariance matrices:
    ``S = C L V L.T C``, ``V = F diag(theta[band]) F.T``, ``n = 1 + tr Sx tr Sy / tr SxSy``;
    and the band gains equal the expected cleaned power of each band."""
    rng = np.random.default_rng(3)
    confounds = rng.standard_normal((N, 4)).cumsum(axis=0)
    op = _clean(np.eye(N), confounds, standardize=None)
    model = S.NoiseModel.from_operator(op, n_bands=9)
    f, _ = S.fourier_basis(N)
    assert np.allclose(f.T @ f, np.eye(N), atol=1e-10)
    theta = rng.uniform(0.1, 3.0, (model.n_bands, 6))
    theta_seed = rng.uniform(0.1, 3.0, model.n_bands)
    centre = np.eye(N) - 1.0 / N
    lc = centre @ op

    def cov(th):
        return lc @ (f * th[model.band]) @ f.T @ lc.T

    sy = cov(theta_seed)
    loop = [1 + np.trace(cov(th)) * np.trace(sy) / np.trace(cov(th) @ sy) for th in theta.T]
    assert np.allclose(model.effective_n(theta, theta_seed), loop, rtol=1e-10)
    # gain[b, c]: E ||F_b.T x||^2 for raw power 1 in band c alone
    for c in (2, 5):
        one = np.zeros(model.n_bands)
        one[c] = 1.0
        s = cov(one)
        expected = [np.trace(f[:, model.band == b].T @ s @ f[:, model.band == b])
                    for b in range(model.n_bands)]
        assert np.allclose(model.gain[:, c], expected, rtol=1e-9, atol=1e-12)
    # and the periodogram is ||F_b.T x||^2 of the centred series
    x = rng.standard_normal((N, 3))
    xc = x - x.mean(axis=0)
    direct = np.array([[np.sum((f[:, model.band == b].T @ xc[:, j]) ** 2) for j in range(3)]
                       for b in range(model.n_bands)])
    assert np.allclose(model.periodogram(x), direct, rtol=1e-10)


def test_white_raw_noise_gives_worsley_friston_dof():
    """With the same flat spectrum for both series, n_eff is 1 + tr(A)^2 / tr(A^2) of the
    centred operator (Worsley & Friston 1995's effective dof of a filter)."""
    op = _clean(np.eye(N), standardize=None)
    model = S.NoiseModel.from_operator(op)
    flat = np.ones(model.n_bands)
    lc = op - op.mean(axis=0)
    a = lc.T @ lc
    assert model.effective_n(flat[:, None], flat)[0] == pytest.approx(
        1 + np.trace(a) ** 2 / np.trace(a @ a), rel=1e-10)


def test_naive_is_the_textbook_test():
    """``"naive"``: scipy's ``pearsonr`` p (Student's t, n - 2 dof) for the same r."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 50)), rng.standard_normal(N)
    r = np.array([sps.pearsonr(x[:, j], y)[0] for j in range(50)])
    p = np.array([sps.pearsonr(x[:, j], y)[1] for j in range(50)])
    st = S.seed_statistics(r, y, p_method="naive")
    assert np.allclose(st.p, p, rtol=1e-9)
    assert (st.n_eff == N).all() and st.p_method == "naive"
    assert S.correlation_p(np.array([1.0, -1.0, 0.0]), 30).tolist() == [0.0, 0.0, 1.0]


def test_fdr_equals_scipy():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(size=900), rng.uniform(0, 1e-3, 100)])
    for q in (0.01, 0.05, 0.2):
        expected = sps.false_discovery_control(p, method="bh") <= q
        assert expected.any()
        assert np.array_equal(S.fdr_select(p, q), expected)
        assert S.fdr_threshold(p, q) == pytest.approx(p[expected].max())
    null = rng.uniform(0.2, 1.0, 500)
    assert not S.fdr_select(null).any() and S.fdr_threshold(null) is None
    with pytest.raises(DataError, match="FDR q"):
        S.fdr_select(p, 1.5)


@pytest.mark.parametrize("phi, n_confounds", [(0.0, 0), (0.0, 12), (0.6, 12)])
def test_null_false_positive_rate(phi, n_confounds):
    """Independent series (white or AR(1) raw noise), cleaned as the app cleans them
    (detrend, 0.01-0.1 Hz Butterworth, confounds): the naive test rejects far more than
    5% at p < 0.05; the effective-dof p values are close to nominal."""
    rng = np.random.default_rng(7 + n_confounds + int(10 * phi))
    naive, effective = [], []
    for _ in range(25):
        confounds = rng.standard_normal((N, n_confounds)).cumsum(axis=0) if n_confounds else None
        raw = _ar1(rng, 201, phi)
        clean = _clean(raw, confounds)
        seed, voxels = clean[:, 0], clean[:, 1:]
        r = np.array([np.corrcoef(v, seed)[0, 1] for v in voxels.T])
        spectra = S.voxel_spectra(_clean(np.eye(N), confounds, standardize=None), voxels)
        effective.append(S.seed_statistics(r, seed, spectra).p)
        naive.append(S.seed_statistics(r, seed, spectra, p_method="naive").p)
    naive, effective = np.concatenate(naive), np.concatenate(effective)
    assert (naive < 0.05).mean() > 0.2
    assert 0.03 <= (effective < 0.05).mean() <= 0.07
    assert (effective < 0.01).mean() <= 0.02


# --------------------------------------------------------------------------- the model

def _distance_to_network(model, seed_mm):
    truth = model.truth
    nodes = np.array([[n["x"], n["y"], n["z"]] for n in truth["nodes"]])
    nets = np.array([n["network"] for n in truth["nodes"]])
    net = nets[np.argmin(np.linalg.norm(nodes - np.asarray(seed_mm), axis=1))]
    data = model.cleaned_data()
    mm = nib.affines.apply_affine(data.affine, np.argwhere(data.mask))
    return net, np.linalg.norm(mm[:, None] - nodes[nets == net][None], axis=2).min(axis=1)


def test_planted_network_survives_fdr():
    model = C.SeedConnectivity(size="small")
    st = model.seed_stats()
    net, d = _distance_to_network(model, model.seed_mm)
    assert net == dev.DMN
    near, far = d < 4.0, d > 20.0
    assert st.significant[near].mean() > 0.6
    assert st.significant[far].mean() < 0.02
    # the naive test keeps far more of the voxels away from the network
    model.p_method = "naive"
    assert model.seed_stats().significant[far].mean() > 5 * st.significant[far].mean()
    assert (model.seed_stats().n_eff == model.cleaned_data().n_volumes).all()


def test_model_statistics_reuse_the_cleaning(monkeypatch):
    """p_method, fdr_q and a new seed change the p map without cleaning again; the
    voxels' spectra are computed once per cleaning."""
    model = C.SeedConnectivity(size="small", seed_mm=(0.0, -52.0, 18.0))
    calls = []
    real = S.voxel_spectra

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(S, "voxel_spectra", spy)
    S.SPECTRA.clear()
    data = model.cleaned_data()
    first = model.seed_stats()
    result = model.result
    model.fdr_q = 0.01
    strict = model.seed_stats()
    assert model.result is result and model.cleaned_data() is data
    assert strict.n_significant <= first.n_significant and strict.fdr_q == 0.01
    model.seed_mm = (0.0, 50.0, -6.0)
    moved = model.seed_stats()
    assert model.cleaned_data() is data and not np.array_equal(moved.p, first.p)
    assert len(calls) == 1
    # the volumes: -log10 p and the surviving voxels
    logp = model.p_map()
    values = logp.values[np.isfinite(logp.values)]
    assert np.allclose(np.sort(values), np.sort(moved.log10_p))
    shown = model.fdr_map().values
    assert np.isfinite(shown).sum() == moved.n_significant
    assert np.nanmin(np.abs(shown)) == pytest.approx(model.fdr_r_threshold())
    assert "FDR q < 0.01" in model.stats_summary() and "Dutilleul" in model.stats_summary()
    with pytest.raises(ValueError):
        model.p_method = "bonferroni"


# --------------------------------------------------------------------------- the CLI

def _run_json(capsys, *argv):
    code = main(["connectivity", *argv, "--json", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_cli_statistics(connectivity_dir, subject, cleaned, capsys, tmp_path):
    from nilearn.masking import apply_mask

    out_p = tmp_path / "logp.nii.gz"
    info = _run_json(capsys, "--data", str(connectivity_dir), "--seed", "0", "-52", "18",
                     "--out-p", str(out_p))
    for key in ("p_method", "fdr_q", "n_eff", "fdr_r_threshold", "n_voxels_fdr",
                "fdr_p_threshold", "out_p"):
        assert key in info
    assert info["p_method"] == "effective-dof" and info["fdr_q"] == 0.05
    # the same numbers as the library on the same cleaning
    res = C.seed_correlation(cleaned, (0, -52, 18), 8.0)
    spectra = S.voxel_spectra(S.cleaning_operator(subject, cleaned.settings), cleaned.brain)
    st = S.seed_statistics(res.r, res.seed_signal, spectra)
    assert info["n_voxels_fdr"] == st.n_significant > 0
    assert info["n_eff"] == pytest.approx(np.median(st.n_eff))
    assert 3 <= info["n_eff"] < N / 2
    assert info["fdr_r_threshold"] == pytest.approx(st.r_threshold)
    written = apply_mask(str(out_p), nib.Nifti1Image(cleaned.mask.astype(np.uint8),
                                                     cleaned.affine))
    assert np.allclose(written, st.log10_p, rtol=1e-5)
    naive = _run_json(capsys, "--data", str(connectivity_dir), "--seed", "0", "-52", "18",
                      "--p-method", "naive", "--fdr-q", "0.01")
    assert naive["p_method"] == "naive" and naive["fdr_q"] == 0.01
    assert naive["n_eff"] == N and naive["n_voxels_fdr"] > info["n_voxels_fdr"]


@pytest.mark.parametrize("argv, message", [
    (["--fdr-q", "0"], "--fdr-q"), (["--fdr-q", "nan"], "--fdr-q"),
    (["--p-method", "xdf"], "--p-method"),
])
def test_cli_refuses_bad_statistics_options(argv, message, capsys):
    assert main(["connectivity", "--seed", "0", "-52", "18", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_out_p_checked_before_computing(tmp_path, capsys):
    same = tmp_path / "map.nii.gz"
    assert main(["connectivity", "--seed", "0", "-52", "18", "--out", str(same),
                 "--out-p", str(same), "--quiet"]) == 2
    assert "same file" in capsys.readouterr().err
    assert main(["connectivity", "--seed", "0", "-52", "18", "--out-p",
                 str(tmp_path / "p.txt"), "--quiet"]) == 2


def test_connectivity_tab_shows_the_fdr_line_and_its_controls(connectivity_dir):
    """The tab says how many voxels survive FDR and with which p method (Dutilleul's
    effective dof by default, never the naive n - 2); its controls drive the model."""
    import html

    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity import ConnectivityTab

    tab = ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))
    m = tab.model
    assert m.p_method == "effective-dof" and tab.w_p_method.value == "effective-dof"
    assert html.unescape(tab.stats_line.object) == m.stats_summary()
    assert "Dutilleul" in tab.stats_line.object and "Dutilleul" in tab.w_p_method.description
    dutilleul = m.seed_stats().n_significant
    tab.w_p_method.value = "naive"
    assert m.p_method == "naive" and "naive" in tab.stats_line.object
    assert m.seed_stats().n_significant >= dutilleul   # the naive test keeps more voxels
    tab.w_fdr_q.value = 0.01
    assert m.fdr_q == 0.01 and html.unescape(tab.stats_line.object) == m.stats_summary()
    m.param.update(p_method="effective-dof", fdr_q=0.05)   # e.g. from a link
    assert tab.w_p_method.value == "effective-dof" and tab.w_fdr_q.value == 0.05
