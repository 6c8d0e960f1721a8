"""``fmri-explorer encoding``: the seed's numbers from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from analysis.cli import main


pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py


def run_seed(data_dir, alpha, n_folds):
    """nilearn's plot_miyawaki_encoding.py, literally, on ``data_dir``."""
    from nilearn.datasets import fetch_miyawaki2008
    from nilearn.maskers import MultiNiftiMasker
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    dataset = fetch_miyawaki2008(data_dir=str(data_dir))
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
    estimator = Ridge(alpha=alpha)
    cv = KFold(n_splits=n_folds)
    scores = []
    for train, test in cv.split(X=stimuli):
        predictions = estimator.fit(stimuli.reshape(-1, 100)[train], fmri_data[train]).predict(
            stimuli.reshape(-1, 100)[test])
        scores.append(r2_score(fmri_data[test], predictions, multioutput="raw_values"))
    cut_score = np.mean(scores, axis=0)
    return cut_score, masker


@pytest.mark.parametrize("alpha,n_folds", [(100.0, 10), (7.5, 4)])
def test_json_equals_the_seed_code(encoding_dir, capsys, no_network, alpha, n_folds, tmp_path):
    out = tmp_path / "r2_map.nii.gz"
    code = main(["encoding", "--data", str(encoding_dir), "--alpha", str(alpha),
                 "--n-folds", str(n_folds), "--json", "--out", str(out)])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("alpha", "n_folds", "n_voxels", "mean_r2", "r2_per_voxel"):
        assert key in payload
    ref, masker = run_seed(encoding_dir, alpha, n_folds)
    got = np.array(payload["r2_per_voxel"])
    assert payload["alpha"] == alpha and payload["n_folds"] == n_folds
    assert payload["n_voxels"] == ref.size == got.size
    assert np.abs(got - ref).max() < 1e-8
    assert payload["mean_r2"] == pytest.approx(ref.mean(), abs=1e-10)
    # the map: fold-mean R^2, negatives kept, as the seed's masker would unmask it
    img = nib.load(out)
    expected = masker.inverse_transform(ref).get_fdata()
    np.testing.assert_allclose(img.get_fdata(), expected, atol=1e-8)
    assert (img.get_fdata() < 0).any()


def test_leave_one_run_out_and_summary_line(encoding_dir, capsys):
    assert main(["encoding", "--data", str(encoding_dir), "--cv", "run", "--lag", "1",
                 "--alpha", "50", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_folds"] == 20 and payload["lag"] == 1
    assert main(["encoding", "--data", str(encoding_dir), "--alpha", "100", "--n-folds", "10"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("alpha=100 folds=10 mean R2=") and "voxels above 0.05: " in line


def test_default_data_is_the_synthetic_cache(encoding_dir, capsys):
    assert main(["encoding", "--size", "small", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_voxels"] > 0


@pytest.mark.parametrize("argv,message", [
    (["--alpha", "0"], "alpha must be a positive number"),
    (["--alpha", "-3"], "alpha must be a positive number"),
    (["--n-folds", "1"], "n_folds must be between 2"),
    (["--n-folds", "100000"], "n_folds must be between 2 and the number of samples"),
    (["--lag", "-1"], "lag must be"),
])
def test_bad_input_exits_2_with_one_line(encoding_dir, capsys, argv, message):
    assert main(["encoding", "--data", str(encoding_dir)] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_folder_and_bad_stimuli(tmp_path, encoding_dir, capsys):
    assert main(["encoding", "--data", str(tmp_path / "nope")]) == 2
    assert "nope: folder not found" in capsys.readouterr().err
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(encoding_dir / "miyawaki2008", broken / "miyawaki2008")
    label = broken / "miyawaki2008" / "label" / "data_random_run04_label.csv"
    label.write_text("\n".join(label.read_text().splitlines()[:-5]) + "\n")
    assert main(["encoding", "--data", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "data_random_run04_label.csv" in err and "stimulus rows for" in err


def test_subprocess_entry_point(encoding_dir):
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "encoding", "--data",
                           str(encoding_dir), "--alpha", "100", "--n-folds", "10", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_folds"] == 10
