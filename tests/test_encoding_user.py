"""Encoding on the user's own files (issue 16 item 3): ``fmri-explorer encoding --func RUN...
--mask MASK --stimuli FEATURES...`` equals a few lines of nilearn and scikit-learn (1e-8 in
float64), and its best alpha per voxel equals himalaya's ``RidgeCV``; the planted
responses are found; bad feature files are refused in one line."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from analysis.cli import main

N_RUNS, N_VOLUMES, SHAPE = 3, 48, (6, 5, 4)
GRID = 3                       # 3 x 3 = 9 features: a square image
DELAY = 2


def _reference_delayed(x, delays):
    """The issue's rule, written here independently: rows shifted down, zeros first."""
    out = []
    for d in delays:
        shifted = np.zeros_like(x)
        shifted[d:] = x[:len(x) - d]
        out.append(shifted)
    return np.hstack(out)


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    """Three runs in which half the voxels respond to one feature each, 2 volumes late."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("own_encoding")
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    mask = np.zeros(SHAPE, bool)
    mask[1:5, 1:4, :] = True
    n_vox = int(mask.sum())
    tuned = rng.integers(0, GRID * GRID, n_vox)
    responsive = np.arange(n_vox) % 2 == 0
    funcs, features = [], []
    for run in range(N_RUNS):
        x = rng.integers(0, 2, (N_VOLUMES, GRID * GRID)).astype(float)
        drive = _reference_delayed(x, [DELAY])[:, tuned] * responsive
        signal = 3.0 * drive + rng.normal(0, 1.0, (N_VOLUMES, n_vox)) + 0.02 * np.arange(
            N_VOLUMES)[:, None]
        data = rng.normal(0, 1.0, SHAPE + (N_VOLUMES,))
        data[mask] = signal.T
        path = root / f"run{run + 1}.nii.gz"
        img = nib.Nifti1Image((100 + 10 * data).astype(np.float32), affine)
        img.header.set_xyzt_units("mm", "sec")
        nib.save(img, path)
        funcs.append(path)
        if run == 0:       # the three formats: .npy, .csv with a header, .tsv without
            table = root / "run1_features.npy"
            np.save(table, x)
        elif run == 1:
            table = root / "run2_features.csv"
            header = ",".join(f"px{i}" for i in range(x.shape[1]))
            np.savetxt(table, x, delimiter=",", header=header, comments="", fmt="%g")
        else:
            table = root / "run3_features.tsv"
            np.savetxt(table, x, delimiter="\t", fmt="%g")
        features.append(table)
    mask_path = root / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), mask_path)
    return {"funcs": funcs, "features": features, "mask": mask_path, "responsive": responsive}


def _run_cli(own_files, capsys, *extra):
    argv = ["encoding", "--func", *map(str, own_files["funcs"]), "--mask",
            str(own_files["mask"]), "--stimuli", *map(str, own_files["features"]), "--json",
            *map(str, extra)]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _reference(own_files, alpha, delays, cv="kfold", n_folds=5):
    from nilearn.maskers import MultiNiftiMasker
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, LeaveOneGroupOut

    masker = MultiNiftiMasker(mask_img=str(own_files["mask"]), detrend=True,
                              standardize="zscore_sample")
    y = np.vstack(masker.fit_transform([str(f) for f in own_files["funcs"]]))
    tables = [np.load(own_files["features"][0]),
              np.loadtxt(own_files["features"][1], delimiter=",", skiprows=1),
              np.loadtxt(own_files["features"][2], delimiter="\t")]
    x = np.vstack([_reference_delayed(t, delays) for t in tables])
    runs = np.repeat(np.arange(N_RUNS), N_VOLUMES)
    splitter = KFold(n_folds) if cv == "kfold" else LeaveOneGroupOut()
    scores = [r2_score(y[te], Ridge(alpha=alpha).fit(x[tr], y[tr]).predict(x[te]),
                       multioutput="raw_values") for tr, te in splitter.split(x, y, runs)]
    return np.mean(scores, axis=0), x, y, runs


@pytest.mark.parametrize("alpha, delays, cv", [(10.0, [2], "kfold"), (3.0, [1, 2, 3], "run")])
def test_own_files_equal_nilearn_and_sklearn(own_files, capsys, alpha, delays, cv):
    out = _run_cli(own_files, capsys, "--alpha", alpha, "--n-folds", 5, "--cv", cv,
                   "--delays", *delays)
    expected, x, y, _ = _reference(own_files, alpha, delays, cv)
    assert out["n_features"] == GRID * GRID and out["delays"] == delays
    assert out["n_voxels"] == y.shape[1] and out["alpha"] == alpha
    assert out["n_folds"] == (5 if cv == "kfold" else N_RUNS)
    np.testing.assert_allclose(out["r2_per_voxel"], expected, rtol=0, atol=1e-8)
    assert out["mean_r2"] == pytest.approx(expected.mean(), abs=1e-10)


def test_the_planted_responses_are_found(own_files, capsys):
    out = _run_cli(own_files, capsys, "--alpha", 10, "--n-folds", 5)
    r2 = np.asarray(out["r2_per_voxel"])
    responsive = own_files["responsive"]
    assert r2[responsive].min() > 0.3 and r2[~responsive].max() < 0.1


def test_best_alpha_per_voxel_equals_himalaya(own_files, capsys):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import r2_score
    from sklearn.model_selection import KFold

    alphas = np.logspace(-1, 4, 11)
    out = _run_cli(own_files, capsys, "--n-folds", 5, "--alphas", *alphas)
    _, x, y, _ = _reference(own_files, 1.0, [DELAY])
    set_backend("numpy", on_error="raise")
    model = HimalayaRidgeCV(alphas=alphas, fit_intercept=True, cv=KFold(5),
                            solver_params={"score_func": r2_score}).fit(x, y)
    np.testing.assert_allclose(out["best_alpha_per_voxel"], np.asarray(model.best_alphas_),
                               rtol=1e-6)
    np.testing.assert_allclose(out["best_r2_per_voxel"], np.asarray(model.cv_scores_).ravel(),
                               atol=1e-8)


def test_the_r2_map_is_written_on_the_masks_grid(own_files, capsys, tmp_path):
    target = tmp_path / "r2.nii.gz"
    out = _run_cli(own_files, capsys, "--out", target)
    img, mask = nib.load(target), nib.load(own_files["mask"])
    assert img.shape == mask.shape and np.allclose(img.affine, mask.affine)
    inside = np.asarray(mask.dataobj).astype(bool)
    np.testing.assert_allclose(img.get_fdata()[inside], out["r2_per_voxel"], atol=1e-12)


def test_bad_feature_files_are_one_line(own_files, tmp_path, capsys):
    funcs = [str(f) for f in own_files["funcs"]]
    short = tmp_path / "short.csv"
    np.savetxt(short, np.ones((N_VOLUMES - 1, GRID * GRID)), delimiter=",")
    text = tmp_path / "words.csv"
    text.write_text("a,b\nc,d\n")
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:        # a header declaring 10^12 float64: never read
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    cases = [
        (funcs, [str(own_files["features"][0])], "3 runs but 1 feature files"),
        (funcs[:1], [str(short)], "47 feature rows"),
        (funcs[:1], [str(text)], "non-numeric"),
        (funcs[:1], [str(huge)], "over the"),
        (funcs[:1], [str(tmp_path / "features.xlsx")], "file not found"),
    ]
    for run_files, features, message in cases:
        assert main(["encoding", "--func", *run_files, "--mask", str(own_files["mask"]),
                     "--stimuli", *features]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert main(["encoding", "--func", *funcs, "--stimuli",
                 *map(str, own_files["features"])]) == 2
    assert "--mask" in capsys.readouterr().err
