"""``fmri-explorer connectivity``: JSON, NIfTI output, the user's files, errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis import connectivity as C
from analysis.cli import main
from analysis.datasets import development as dev


@pytest.fixture(scope="module")
def files(connectivity_dir):
    return dev.subject_files(connectivity_dir, subject=1)


@pytest.fixture(scope="module")
def engine_r(files):
    subject = C.load_subject(files["func"], confounds=files["confounds"], t_r=2.0)
    data = C.clean_data(subject, C.CleaningSettings(confound_columns=tuple(subject.confound_names)))
    return C.seed_correlation(data, (0, -52, 18), 8.0), data


def run_json(capsys, *argv):
    code = main(["connectivity", *argv, "--json", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_json_and_r_map_equal_the_seed(connectivity_dir, files, engine_r, capsys, tmp_path):
    from nilearn.masking import apply_mask

    from analysis.connectivity.reference import reference_seed_map

    out = tmp_path / "map.nii.gz"
    info = run_json(capsys, "--data", str(connectivity_dir), "--subject", "1",
                    "--seed", "0", "-52", "18", "--out", str(out))
    for key in ("seed", "n_seed_voxels", "n_voxels", "r_min", "r_max", "peaks"):
        assert key in info
    assert info["seed"] == [0, -52, 18] and info["subject"] == "sub-pixar001"
    r, masker = reference_seed_map(files["func"], (0, -52, 18), 8.0, confounds=files["confounds"])
    assert info["n_voxels"] == r.size
    assert info["r_max"] == pytest.approx(r.max(), abs=1e-6)
    assert info["r_min"] == pytest.approx(r.min(), abs=1e-6)
    written = apply_mask(out, masker.mask_img_)
    assert np.abs(written - r).max() < 1e-5   # float32 file, float64 reference
    peaks = pd.DataFrame(info["peaks"])
    assert list(peaks.columns[:3]) == ["x", "y", "z"] and (peaks["r"] > 0.5).all()
    assert peaks["network"].head(3).eq(dev.DMN).all()
    # Fisher z output
    out_z = tmp_path / "z.nii.gz"
    run_json(capsys, "--data", str(connectivity_dir), "--subject", "1",
             "--seed", "0", "-52", "18", "--fisher-z", "--out", str(out_z))
    z = apply_mask(out_z, masker.mask_img_)
    assert np.abs(z - np.arctanh(r)).max() < 1e-5


def test_own_files_full_confounds_and_options(files, capsys, tmp_path):
    info = run_json(capsys, "--func", files["func"], "--confounds", files["confounds_full"],
                    "--seed", "10", "40", "0", "--radius", "12", "--smoothing", "4",
                    "--high-pass", "none", "--low-pass", "0.08")
    assert info["func"] == files["func"] and info["t_r"] == 2.0
    assert info["high_pass"] is None and info["low_pass"] == 0.08
    assert "global_signal" in info["confounds"]
    subject = C.load_subject(files["func"], confounds=files["confounds_full"])
    settings = C.CleaningSettings(smoothing_fwhm=4, high_pass=None, low_pass=0.08,
                                  confound_columns=tuple(subject.confound_names))
    expected = C.seed_correlation(C.clean_data(subject, settings), (10, 40, 0), 12)
    assert info["n_seed_voxels"] == expected.n_seed_voxels
    assert info["r_max"] == pytest.approx(expected.r.max(), abs=1e-9)
    no_conf = run_json(capsys, "--func", files["func"], "--seed", "0", "-52", "18",
                       "--no-confounds")
    assert no_conf["confounds"] == []
    # the same map as the library's with no confound regressed (defaults: 6 mm, 8 mm)
    plain = C.load_subject(files["func"])
    off = C.seed_correlation(C.clean_data(plain, C.CleaningSettings(confound_columns=None)),
                             (0, -52, 18), 8)
    assert no_conf["r_max"] == pytest.approx(off.r.max(), abs=1e-6)
    assert no_conf["r_min"] == pytest.approx(off.r.min(), abs=1e-6)


def test_text_output(connectivity_dir, capsys):
    assert main(["connectivity", "--data", str(connectivity_dir), "--seed", "0", "-52", "18",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("seed (0, -52, 18) r=8 mm: ")
    assert "voxels above 0.5" in text and "DefaultMode" in text


@pytest.mark.parametrize("argv, message", [
    (["--seed", "0", "0", "200"], "outside the brain"),
    (["--seed", "0", "-52", "18", "--low-pass", "0.005"], "must be below low_pass"),
    (["--seed", "0", "-52", "18", "--low-pass", "0.4"], "Nyquist"),
    (["--seed", "0", "-52", "18", "--subject", "7"], "subject 7 does not exist"),
    (["--seed", "0", "-52", "18", "--radius", "0"], "radius"),
])
def test_errors_are_one_line(connectivity_dir, capsys, argv, message):
    assert main(["connectivity", "--data", str(connectivity_dir), *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_bad_files(files, capsys, tmp_path):
    short = tmp_path / "short.tsv"
    pd.read_csv(files["confounds_full"], sep="\t").iloc[:100].to_csv(
        short, sep="\t", index=False, na_rep="n/a")
    assert main(["connectivity", "--func", files["func"], "--confounds", str(short),
                 "--seed", "0", "-52", "18"]) == 2
    assert "short.tsv: 100 confound rows for 168 volumes" in capsys.readouterr().err
    img = nib.load(files["func"])
    three_d = tmp_path / "mean.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine), three_d)
    assert main(["connectivity", "--func", str(three_d), "--seed", "0", "-52", "18"]) == 2
    assert "mean.nii.gz: a 4D image" in capsys.readouterr().err


def test_high_variance_confounds_flag(connectivity_dir, files, capsys):
    """The group's new option is a flag (made from its Parameter): the map is the engine's
    with the option on (equal to nilearn's maskers: tests/test_connectivity.py)."""
    info = run_json(capsys, "--data", str(connectivity_dir), "--subject", "1",
                    "--seed", "0", "-52", "18", "--high-variance-confounds")
    assert info["high_variance_confounds"] is True and info["detrend"] is True
    subject = C.load_subject(files["func"], confounds=files["confounds"], t_r=2.0)
    settings = C.CleaningSettings(confound_columns=tuple(subject.confound_names),
                                  high_variance_confounds=True)
    expected = C.seed_correlation(C.clean_data(subject, settings), (0, -52, 18), 8.0)
    assert info["r_max"] == pytest.approx(expected.r.max(), abs=1e-9)
    assert info["r_min"] == pytest.approx(expected.r.min(), abs=1e-9)


def _help(capsys, command) -> str:
    assert main([command, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["connectivity", "group"])
def test_preprocessing_options_come_from_the_parameter_group(command, capsys):
    """One option per Parameter of the preprocessing group in both commands: the flags in
    use kept (--smoothing, --no-confounds, --high-pass, --low-pass), the default and the
    doc (the help) the Parameter's, its bounds checked at parse time, values round trip."""
    from analysis.cli import build_parser
    from analysis.commands.options import flag_of, param_values
    from analysis.preprocessing import CLI_FLAGS, PARAMETERS, Preprocessing

    flags = {name: flag_of(name, Preprocessing.param[name], CLI_FLAGS) for name in PARAMETERS}
    assert {k: flags[k] for k in ("smoothing_fwhm", "regress_confounds", "high_pass",
                                  "low_pass", "high_variance_confounds", "detrend")} == {
        "smoothing_fwhm": "--smoothing", "regress_confounds": "--no-confounds",
        "high_pass": "--high-pass", "low_pass": "--low-pass",
        "high_variance_confounds": "--high-variance-confounds", "detrend": "--no-detrend"}
    text = _help(capsys, command)
    for name, flag in flags.items():
        assert flag in text and " ".join(Preprocessing.param[name].doc.split()) in text, name
    parser = build_parser()
    seed = ["--seed", "0", "-52", "18"]
    defaults = parser.parse_args([command, *seed])
    assert param_values(defaults, PARAMETERS) == {
        name: Preprocessing.param[name].default for name in PARAMETERS}
    args = parser.parse_args([command, *seed, "--smoothing", "4", "--no-detrend",
                              "--high-pass", "none", "--low-pass", "0.08", "--standardize",
                              "zscore", "--no-standardize-confounds",
                              "--high-variance-confounds", "--no-confounds"])
    chosen = {"smoothing_fwhm": 4.0, "detrend": False, "high_pass": None, "low_pass": 0.08,
              "standardize": "zscore", "standardize_confounds": False,
              "high_variance_confounds": True, "regress_confounds": False}
    assert param_values(args, PARAMETERS) == chosen
    if command == "group":
        from analysis.commands.group import build_analysis

        analysis = build_analysis(args)
        assert {name: getattr(analysis, name) for name in PARAMETERS} == chosen
        analysis.close()
    settings = Preprocessing(**chosen).cleaning_settings(2.0, ("csf",))
    assert settings.high_variance_confounds and settings.confound_columns is None
    # the Parameter's bounds, at parse time, one line naming the option
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([command, *seed, "--smoothing", "21"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--smoothing" in err and "from 0 to 20" in err and "\n" not in err
