"""``fmri-explorer decoding``: JSON contract, data sources, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from sklearn.model_selection import KFold, LeaveOneGroupOut, cross_val_score
from sklearn.svm import SVC

from analysis.cli import main


def run_json(capsys, *argv):
    code = main(["decoding", *map(str, argv), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_data_dir_json(decoding_dir, capsys):
    from analysis.decoding import DecodingAnalysis

    result = run_json(capsys, "--data", decoding_dir, "--conditions", "face", "cat",
                      "--cv", "kfold", "--n-folds", "4", "--C", "0.5")
    for key in ("conditions", "cv", "fold_scores", "mean_score", "train_score"):
        assert key in result
    assert result["conditions"] == ["face", "cat"] and result["cv"] == "kfold"
    assert result["mask"] == "ventral-temporal"
    a = DecodingAnalysis.from_dataset(decoding_dir)
    X, y, _ = a.samples()
    expected = cross_val_score(SVC(kernel="linear", C=0.5), X, y, cv=KFold(4))
    assert result["fold_scores"] == expected.tolist()
    assert result["mean_score"] == pytest.approx(expected.mean(), abs=0)
    assert "p_value" not in result


def test_permutations_and_weights(decoding_dir, capfd, tmp_path):
    # capfd: nothing else (e.g. libsvm's C-level messages) may reach stdout
    out = tmp_path / "weights.nii.gz"
    result = run_json(capfd, "--data", decoding_dir, "--conditions", "face", "cat",
                      "--n-permutations", "20", "--out", out)
    assert result["cv"] == "run" and len(result["fold_scores"]) == 12
    assert 0 < result["p_value"] < 0.05
    img = nib.load(str(out))
    assert img.shape == nib.load(result["func"]).shape[:3]
    # on the data's own grid, 0 outside the mask (as nilearn's inverse_transform)
    assert (np.asarray(img.dataobj) != 0).sum() == result["n_voxels"]


def test_real_slice_user_files_with_codes(haxby_slice, capsys, tmp_path):
    result = run_json(capsys, "--func", haxby_slice / "bold.nii.gz",
                      "--mask", haxby_slice / "mask.nii.gz",
                      "--labels", haxby_slice / "attributes.txt",
                      "--conditions", "1", "4", "--cv", "run")
    assert result["conditions"] == ["1", "4"]   # no table: the codes stay numbers
    assert result["n_voxels"] == 530 and result["n_samples"] == 216
    assert result["mean_score"] > result["chance"] and result["at_chance"] is False
    # same numbers with names and a code-to-name table
    names = tmp_path / "names.txt"
    names.write_text("0 rest\n1 face\n2 house\n3 shoe\n4 cat\n5 scissors\n6 scrambledpix\n"
                     "7 bottle\n8 chair\n")
    by_name = run_json(capsys, "--func", haxby_slice / "bold.nii.gz",
                       "--mask", haxby_slice / "mask.nii.gz",
                       "--labels", haxby_slice / "attributes.txt", "--label-names", names,
                       "--conditions", "face", "cat")
    assert by_name["fold_scores"] == result["fold_scores"]
    assert by_name["conditions"] == ["face", "cat"]


def test_numeric_labels_default_pair_and_names_without_a_table(haxby_slice, capsys):
    files = ["--func", haxby_slice / "bold.nii.gz", "--mask", haxby_slice / "mask.nii.gz",
             "--labels", haxby_slice / "attributes.txt"]
    # no --conditions: two codes of equal size, not 0 (588 volumes against 108: rest)
    result = run_json(capsys, *files)
    assert result["conditions"] == ["1", "2"] and result["n_samples"] == 216
    # names with no table to give them: one line saying so
    code = main(["decoding", *map(str, files), "--conditions", "face", "cat"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "condition 'face' has no samples" in err and "code-to-name table" in err
    # rest vs bottle, predicting the majority: at chance, in the JSON and in words
    at_chance = run_json(capsys, *files, "--conditions", "0", "7", "--C", "0.0001")
    assert at_chance["mean_score"] == pytest.approx(at_chance["chance"])
    assert at_chance["at_chance"] is True
    assert main(["decoding", *map(str, files), "--conditions", "0", "7", "--C", "0.0001"]) == 0
    assert ", at chance (chance 0.845" in capsys.readouterr().out


def test_text_output(decoding_dir, capsys):
    assert main(["decoding", "--data", str(decoding_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("face vs cat, SVC C=1, leave-one-run-out: ")
    assert out[1].startswith("fold scores: ")
    assert main(["decoding", "--data", str(decoding_dir), "--n-permutations", "5"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert len(re.findall(r", p(=|<=)", first)) == 1 and first.endswith("(5 permutations)")


@pytest.mark.parametrize("argv, message", [
    (["--conditions", "face"], "at least two conditions"),
    (["--conditions", "face", "dog"], "condition 'dog' has no samples"),
    (["--cv", "kfold", "--n-folds", "500"], "500 folds for only 216 samples"),
    (["--C", "0"], "--C must be positive"),
])
def test_bad_input_exit_2(decoding_dir, capsys, argv, message):
    code = main(["decoding", "--data", str(decoding_dir), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_user_files(haxby_slice, tmp_path, capsys):
    bad = tmp_path / "labels.txt"
    bad.write_text("labels chunks\nface 0\ncat 1\n")
    code = main(["decoding", "--func", str(haxby_slice / "bold.nii.gz"),
                 "--mask", str(haxby_slice / "mask.nii.gz"), "--labels", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "labels.txt: 2 labels for 1452 volumes" in err
    code = main(["decoding", "--func", str(haxby_slice / "bold.nii.gz")])
    assert code == 2 and "need --mask, --labels" in capsys.readouterr().err


def test_console_script_no_traceback(decoding_dir):
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "decoding", "--data",
                           str(decoding_dir), "--conditions", "face"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("fmri-explorer decoding: error:")
