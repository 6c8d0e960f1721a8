"""The synthetic Miyawaki-like dataset: layout, planted truth, determinism, loaders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from analysis.datasets import miyawaki
from analysis.errors import DataError



pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py


def test_mask_files_are_nilearns_list():
    """The copied list (no nilearn.datasets import at start-up) is the fetcher's, in order."""
    from nilearn.datasets.func import miyawaki2008_file_mask

    assert list(miyawaki.MASK_FILES) == miyawaki2008_file_mask()
    assert miyawaki.mask_files() == [f"mask/{m}" for m in miyawaki2008_file_mask()]


def test_fetcher_returns_every_file_without_network(encoding_dir, no_network):
    from nilearn.datasets import fetch_miyawaki2008

    bunch = fetch_miyawaki2008(data_dir=str(encoding_dir), verbose=0)
    assert len(bunch.func) == 32 and len(bunch.label) == 32
    assert bunch.func[12].endswith("data_random_run01.nii.gz")
    assert bunch.label[12].endswith("data_random_run01_label.csv")
    assert bunch.mask.endswith("mask/mask.nii.gz")
    assert len(bunch.mask_roi) == 38
    assert bunch.background.endswith("bg.nii.gz")
    for f in bunch.func + bunch.label + bunch.mask_roi + [bunch.mask, bunch.background]:
        assert (encoding_dir / "miyawaki2008").as_posix() in str(f)


def test_synthetic_listing_is_the_fetchers(encoding_dir, tmp_path, no_network):
    """The synthetic folder's files, listed without nilearn.datasets, are the fetcher's
    answer string for string (the loader uses the listing for its own folders)."""
    from nilearn.datasets import fetch_miyawaki2008

    bunch = fetch_miyawaki2008(data_dir=str(encoding_dir), verbose=0)
    mine = miyawaki.listed(encoding_dir)
    for key in ("func", "label", "mask", "mask_roi", "background"):
        assert mine[key] == bunch[key], key
    # an incomplete folder still gets the fetcher's error, naming what is missing
    shutil.copytree(encoding_dir / "miyawaki2008", tmp_path / "miyawaki2008")
    (tmp_path / "miyawaki2008" / "bg.nii.gz").unlink()
    with pytest.raises(DataError, match="bg.nii.gz"):
        miyawaki.listed(tmp_path)


def test_loading_the_synthetic_folder_imports_no_scikit_learn(encoding_dir):
    """The served app's first page loads this data: nilearn.datasets (and with it
    scikit-learn and scipy.stats, 1.5 s) stay unimported (with the cleaned matrix cached)."""
    miyawaki.load(encoding_dir)  # the cleaned matrix in the cache
    code = ("import sys\nfrom analysis.datasets import miyawaki\n"
            f"d = miyawaki.load({str(encoding_dir)!r})\n"
            "assert d.truth is not None\n"
            "print(sorted(m for m in ('sklearn', 'nilearn.datasets', 'scipy.stats') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_shapes_and_label_layout(encoding_dir):
    spec = miyawaki.SIZES["small"]
    root = encoding_dir / "miyawaki2008"
    img = nib.load(root / "func" / "data_random_run03.nii.gz")
    assert img.shape == tuple(spec["shape"]) + (spec["n_random"],)
    assert img.header.get_zooms()[3] == miyawaki.T_R
    rows = np.loadtxt(root / "label" / "data_random_run03_label.csv", dtype=int, delimiter=",")
    assert rows.shape == (spec["n_random"], 100)
    assert set(np.unique(rows)) == {0, 1}
    # a figure run: blocks of one image separated by blank volumes
    fig = np.loadtxt(root / "label" / "data_figure_run01_label.csv", dtype=int, delimiter=",")
    assert fig.shape[0] == spec["n_figure"] and fig[:2].sum() == 0 and fig[2:8].sum() > 0
    mask = np.asarray(nib.load(root / "mask" / "mask.nii.gz").dataobj)
    truth = miyawaki.load_truth(encoding_dir)
    assert truth["centre"].shape == (int(mask.sum()), 2)
    assert truth["rf"].shape == (int(mask.sum()), 10, 10)
    assert 0.6 < truth["responsive"].mean() < 0.9


def test_full_geometry_matches_the_real_study():
    """The full mask has about 5,400 voxels (the seed's 5,438), without writing files."""
    mask, left, centre = miyawaki._geometry("full")
    assert 5200 <= mask.sum() <= 5600
    assert left[mask].mean() == pytest.approx(0.5, abs=0.02)
    n_samples = miyawaki.N_RANDOM_RUNS * (miyawaki.SIZES["full"]["n_random"] - miyawaki.LAG)
    assert n_samples == 2860


def test_retinotopy_is_smooth_and_hemifield_crossed(encoding_dir):
    truth = miyawaki.load_truth(encoding_dir)
    mask_img = nib.load(encoding_dir / "miyawaki2008" / "mask" / "mask.nii.gz")
    ijk = np.array(np.nonzero(np.asarray(mask_img.dataobj)))
    xyz = nib.affines.apply_affine(mask_img.affine, ijk.T)
    centre = truth["centre"]
    # left hemisphere (x < 0 mm) sees the right half of the image, and vice versa
    assert (centre[xyz[:, 0] < 0, 1] > 4.5).all() and (centre[xyz[:, 0] > 0, 1] < 4.5).all()
    # neighbouring voxels (same hemisphere, 1 voxel apart) have close centres
    lookup = {tuple(v): n for n, v in enumerate(ijk.T)}
    steps = []
    for n, v in enumerate(ijk.T):
        for d in np.eye(3, dtype=int):
            m = lookup.get(tuple(v + d))
            if m is not None and np.sign(xyz[n, 0]) == np.sign(xyz[m, 0]):
                steps.append(np.abs(centre[n] - centre[m]).max())
    assert np.max(steps) < 2.0
    # dorsal voxels see the lower field: row grows with z
    assert np.corrcoef(xyz[:, 2], centre[:, 0])[0, 1] > 0.8


def test_signal_lags_the_image_by_two_volumes(encoding_dir):
    """A responsive voxel's raw series correlates with its receptive-field drive 2 volumes later."""
    data = miyawaki.load(encoding_dir)
    truth = data.truth
    v = int(np.argmax(truth["amplitude"]))
    x = data.stimuli[: data.run_lengths[0]].reshape(data.run_lengths[0], -1)
    drive = x @ truth["rf"][v].ravel()
    y = data.fmri[: data.run_lengths[0], v]
    corr = {lag: np.corrcoef(drive[: len(drive) - lag], y[lag:])[0, 1] for lag in range(5)}
    assert max(corr, key=corr.get) == miyawaki.LAG
    assert corr[miyawaki.LAG] > 0.4


def test_random_images_are_held_for_blocks_of_volumes(encoding_dir):
    """As in the study (6 s per image at TR 2 s): an image stays on consecutive rows of
    the label file, for a block of 3 volumes; the next block shows another image."""
    root = encoding_dir / "miyawaki2008"
    for name in miyawaki.label_files("random")[:3]:
        rows = np.loadtxt(root / name, dtype=int, delimiter=",")
        block = miyawaki.RANDOM_BLOCK
        assert block == 3
        starts = np.arange(0, len(rows), block)
        for s in starts:
            assert (rows[s:s + block] == rows[s]).all()
        assert all((rows[a] != rows[b]).any() for a, b in zip(starts[:-1], starts[1:]))


def test_the_response_follows_an_hrf_peaking_at_the_lag(encoding_dir):
    """The drive is spread over neighbouring volumes: largest at the lag, about half of it
    one volume before or after, little after 4 volumes; the planted truth records it."""
    hrf = miyawaki.hrf_kernel()
    assert int(np.argmax(hrf)) == miyawaki.LAG
    peak = hrf[miyawaki.LAG]
    assert 0.3 * peak < hrf[miyawaki.LAG - 1] < 0.8 * peak
    assert 0.3 * peak < hrf[miyawaki.LAG + 1] < 0.8 * peak
    assert hrf[0] == 0 and hrf[miyawaki.LAG + 3:].max() < 0.1 * peak
    np.testing.assert_allclose(miyawaki.load_truth(encoding_dir)["hrf"], hrf)


@pytest.fixture(scope="module")
def r2_by_lag(encoding_dir):
    """The seed's Ridge(alpha=100) and KFold(5) R^2 per voxel at lags 0 to 4."""
    from sklearn.model_selection import KFold

    from analysis.encoding.reference import reference_r2

    data = miyawaki.load(encoding_dir)
    out = {}
    for lag in range(5):
        y, x, _, _ = data.lagged(lag)
        out[lag] = reference_r2(x, y, list(KFold(5).split(x)), 100.0).mean(axis=0)
    return out, data.truth["responsive"].astype(bool)


def test_neighbouring_lags_explain_less_but_some(r2_by_lag):
    """Lag 2 explains the planted responsive voxels best; lags 1 and 3 less, but more than
    nothing (the HRF spreads a response over neighbouring volumes); lags 0 and 4 little."""
    r2, responsive = r2_by_lag
    mean = {lag: r2[lag][responsive].mean() for lag in r2}
    assert mean[2] > mean[1] > 0 and mean[2] > mean[3] > 0
    assert mean[1] > 0.2 * mean[2] and mean[3] > 0.2 * mean[2]
    assert max(mean, key=mean.get) == miyawaki.LAG
    assert mean[0] < mean[1] and mean[4] < mean[3]
    # most responsive voxels are best explained at lag 2
    best = np.argmax(np.stack([r2[lag][responsive] for lag in range(5)]), axis=0)
    assert (best == miyawaki.LAG).mean() > 0.9


def test_non_responsive_voxels_explain_nothing_at_any_lag(r2_by_lag):
    r2, responsive = r2_by_lag
    for lag in r2:
        silent = r2[lag][~responsive]
        assert silent.mean() < 0 and np.percentile(silent, 95) < 0.02, lag


def test_data_from_an_older_generator_is_made_again(encoding_dir, tmp_path):
    """A folder written by generator version 1 (no version in its description) is not
    present for this version, and generating again replaces it."""
    from analysis.datasets import MARKER, read_manifest, write_manifest

    root = miyawaki.dataset_dir(tmp_path)
    shutil.copytree(miyawaki.dataset_dir(encoding_dir), root)
    assert miyawaki.is_present(tmp_path)
    info = json.loads((root / miyawaki.INFO_FILE).read_text())
    assert info["generator_version"] == miyawaki.GENERATOR_VERSION
    del info["generator_version"]
    (root / miyawaki.INFO_FILE).write_text(json.dumps(info))
    old_params = {k: v for k, v in read_manifest(root)["params"].items()
                  if k != "generator_version"}
    (root / MARKER).unlink()
    write_manifest(root, old_params)   # as version 1 wrote it
    assert not miyawaki.is_present(tmp_path)  # ensure_synthetic makes it again
    info = miyawaki.generate(tmp_path, size="small")
    assert info["generator_version"] == miyawaki.GENERATOR_VERSION
    assert miyawaki.is_present(tmp_path)
    assert read_manifest(root)["params"]["generator_version"] == miyawaki.GENERATOR_VERSION


def test_generation_is_deterministic(tmp_path):
    a = miyawaki.generate(tmp_path / "a", size="small", seed=3)
    b = miyawaki.generate(tmp_path / "b", size="small", seed=3)
    c = miyawaki.generate(tmp_path / "c", size="small", seed=4)
    for f in ("func/data_random_run05.nii.gz", "label/data_random_run05_label.csv",
              "mask/mask.nii.gz", "mask/LHV1d.nii.gz", "bg.nii.gz"):
        fa, fb = (tmp_path / s / "miyawaki2008" / f for s in "ab")
        if f.endswith(".csv"):
            assert fa.read_text() == fb.read_text()
        else:
            np.testing.assert_array_equal(np.asarray(nib.load(fa).dataobj),
                                          np.asarray(nib.load(fb).dataobj))
    ta, tc = miyawaki.load_truth(tmp_path / "a"), miyawaki.load_truth(tmp_path / "c")
    np.testing.assert_array_equal(ta["responsive"], miyawaki.load_truth(tmp_path / "b")["responsive"])
    assert not np.array_equal(ta["responsive"], tc["responsive"])
    assert a["n_voxels"] == b["n_voxels"]


def test_progress_is_reported(tmp_path):
    seen = []
    miyawaki.generate(tmp_path, size="small", progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_nothing_half_written_on_failure(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("analysis.datasets.miyawaki_synthetic._write_csv", boom)
    with pytest.raises(RuntimeError):
        miyawaki.generate(tmp_path, size="small")
    assert list(tmp_path.iterdir()) == []
    assert not miyawaki.is_present(tmp_path)


def test_unwritable_cache_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="not writable"):
        miyawaki.generate(blocker / "sub", size="small")


def test_load_applies_the_seed_pipeline_and_caches(encoding_dir, data_home):
    data = miyawaki.load(encoding_dir)
    spec = miyawaki.SIZES["small"]
    assert data.fmri.shape == (20 * spec["n_random"], data.truth["centre"].shape[0])
    # the seed's cleaning: per run detrended and z-scored with ddof=1
    run0 = data.fmri[: spec["n_random"]]
    np.testing.assert_allclose(run0.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(run0.std(axis=0, ddof=1), 1, atol=1e-4)
    caches = list((data_home / "cache").glob("miyawaki-*.npy"))
    assert caches
    again = miyawaki.load(encoding_dir)
    np.testing.assert_array_equal(again.fmri, data.fmri)
    y, x, runs, volumes = data.lagged(2)
    assert y.shape[0] == x.shape[0] == 20 * (spec["n_random"] - 2)
    assert x.shape[1] == 100 and np.bincount(runs).tolist() == [spec["n_random"] - 2] * 20


def test_load_equals_the_seed_code(encoding_dir, no_network):
    """The loader's matrices are the seed's ``fmri_data`` and ``stimuli``, bit for bit."""
    from nilearn.datasets import fetch_miyawaki2008
    from nilearn.maskers import MultiNiftiMasker

    dataset = fetch_miyawaki2008(data_dir=str(encoding_dir), verbose=0)
    fmri_random_runs_filenames = dataset.func[12:]
    stimuli_random_runs_filenames = dataset.label[12:]
    masker = MultiNiftiMasker(mask_img=dataset.mask, detrend=True, standardize="zscore_sample")
    masker.fit()
    fmri_data = masker.transform(fmri_random_runs_filenames)
    stimulus_shape = (10, 10)
    stimuli = []
    for stimulus_run in stimuli_random_runs_filenames:
        stimuli.append(np.reshape(np.loadtxt(stimulus_run, dtype=int, delimiter=","),
                                  (-1,) + stimulus_shape, order="F"))
    fmri_data = np.vstack([fmri_run[2:] for fmri_run in fmri_data])
    stimuli = np.vstack([stimuli_run[:-2] for stimuli_run in stimuli]).astype(float)
    stimuli = np.reshape(stimuli, (-1, stimulus_shape[0] * stimulus_shape[1]))

    y, x, _, _ = miyawaki.load(encoding_dir).lagged(2)
    np.testing.assert_array_equal(y, fmri_data)
    np.testing.assert_array_equal(x, stimuli)


def test_real_layout_folder_without_truth(encoding_dir, tmp_path, no_network):
    """A folder laid out like the real download (no planted truth) loads the same way."""
    real = tmp_path / "real"
    shutil.copytree(encoding_dir / "miyawaki2008", real / "miyawaki2008",
                    ignore=shutil.ignore_patterns("synthetic*"))
    assert miyawaki.has_fetcher_files(real) and not miyawaki.is_present(real)
    data = miyawaki.load(real, cache=False)
    assert data.truth is None and data.source.startswith("miyawaki2008")
    np.testing.assert_array_equal(data.fmri, miyawaki.load(encoding_dir).fmri)
    # the dataset folder itself is accepted too
    assert miyawaki.load(real / "miyawaki2008", cache=False).fmri.shape == data.fmri.shape


def test_missing_files_are_reported_not_downloaded(tmp_path, no_network):
    (tmp_path / "miyawaki2008" / "func").mkdir(parents=True)
    with pytest.raises(DataError, match="missing"):
        miyawaki.load(tmp_path)


def test_user_files_bad_stimuli_rows(encoding_dir, tmp_path):
    root = encoding_dir / "miyawaki2008"
    bad = tmp_path / "bad_label.csv"
    lines = (root / "label" / "data_random_run01_label.csv").read_text().splitlines()
    bad.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(DataError, match=r"bad_label.csv: \d+ stimulus rows for \d+ volumes"):
        miyawaki.load_files([root / "func" / "data_random_run01.nii.gz"], [bad],
                            root / "mask" / "mask.nii.gz", cache=False)
    with pytest.raises(DataError, match="3D"):
        miyawaki.load_files([root / "mask" / "mask.nii.gz"], [bad], root / "mask" / "mask.nii.gz",
                            cache=False)


def test_user_files_load(encoding_dir):
    root = encoding_dir / "miyawaki2008"
    func = [root / f for f in miyawaki.func_files("random")[:3]]
    labels = [root / f for f in miyawaki.label_files("random")[:3]]
    data = miyawaki.load_files(func, labels, root / "mask" / "mask.nii.gz", cache=False)
    assert len(data.run_lengths) == 3 and data.stimuli.shape == (sum(data.run_lengths), 10, 10)


def test_cli_writes_a_fetcher_folder(tmp_path, no_network):
    from nilearn.datasets import fetch_miyawaki2008

    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "data", "encoding", "--size",
                           "small", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, check=True)
    info = json.loads(proc.stdout)
    assert info["t_r"] == miyawaki.T_R and info["shape"] == list(miyawaki.SIZES["small"]["shape"])
    bunch = fetch_miyawaki2008(data_dir=str(out), verbose=0)
    assert len(bunch.func) == 32 and bunch.mask == info["mask"]
