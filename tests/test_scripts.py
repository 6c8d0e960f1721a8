"""The exported script (analysis.scripts): plain nilearn / scikit-learn, run on its own in
a subprocess, prints the numbers the analysis model computes.

Each case sets several non-default parameters on a model of the small synthetic data
(or the real Haxby slice), writes the script to a temporary folder, runs it there with
this Python and compares its ``name: value`` lines with the model's own numbers.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from analysis.scripts import connectivity_script, decoding_script, encoding_script

#: What an exported script may import: nothing of this package.
ALLOWED = {"numpy", "pandas", "nibabel", "nilearn", "sklearn"}
RTOL = 1e-6


def assert_plain(code: str) -> None:
    """Only numpy, pandas, nibabel, nilearn and scikit-learn; never the app's packages."""
    assert "import analysis" not in code and "from analysis" not in code
    assert "dashboard" not in code
    roots = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add(node.module.split(".")[0])
    assert roots <= ALLOWED, roots - ALLOWED


def run_script(code: str, folder) -> dict:
    """Run ``code`` as a file in ``folder``; its ``name: value`` lines, values parsed."""
    assert_plain(code)
    path = folder / "reproduce.py"
    path.write_text(code)
    out = subprocess.run([sys.executable, str(path)], cwd=folder, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-3000:]
    printed = {}
    for line in out.stdout.splitlines():
        name, _, value = line.partition(": ")
        try:
            printed[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            printed[name] = value
    assert "summary" in printed, out.stdout[-2000:]
    return printed


# --------------------------------------------------------------------------- encoding

@pytest.mark.parametrize("params", [
    dict(alpha=10.0, n_folds=5, lag=1, threshold=-0.2),
    dict(alpha=1000.0, cv="run", dtype="float32", threshold=0.02),
], ids=["kfold-lag1", "run-float32"])
def test_encoding_script_prints_the_models_numbers(params, encoding_dir, tmp_path):
    from analysis.encoding import EncodingAnalysis

    m = EncodingAnalysis(data_dir=str(encoding_dir), **params)
    code = encoding_script(m)
    assert f"ALPHA = {params['alpha']!r}" in code and "Ridge(alpha=ALPHA)" in code
    out = run_script(code, tmp_path)
    r2 = m.mean_r2().values
    assert out["n_samples"] == len(m.sample_index()[0])
    assert out["n_voxels"] == r2.size and out["n_folds"] == m.engine().n_folds
    # float32 responses: the app's float32 products differ from float64 by ~1e-7
    np.testing.assert_allclose(out["mean_r2"], float(r2.mean()), rtol=RTOL)
    np.testing.assert_allclose(out["max_r2"], float(r2.max()), rtol=RTOL)
    assert out["threshold"] == m.threshold
    assert out["n_above_threshold"] == m.n_above() > 0
    assert out["summary"] == m.summary()
    assert (tmp_path / out["map_file"]).is_file()


# --------------------------------------------------------------------------- decoding

def _map_numbers(m, map_kind, threshold):
    da = m.weight_map() if map_kind == "weights" else m.pattern_map()
    values = da.values[np.isfinite(da.values)]
    return float(np.abs(values).max()), int((np.abs(values) >= threshold).sum()), \
        da.attrs["contrast"]


def _check_decoding(out, m, map_kind, threshold):
    s = m.scores()
    assert out["n_samples"] == s.attrs["n_samples"] and out["n_voxels"] == s.attrs["n_voxels"]
    np.testing.assert_allclose(out["fold_scores"], s.fold_score.values, rtol=RTOL)
    np.testing.assert_allclose(out["mean_score"], float(s.mean_score), rtol=RTOL)
    assert out["chance"] == pytest.approx(float(s.chance), rel=RTOL)
    assert out["train_score"] == pytest.approx(float(s.train_score), rel=RTOL)
    peak, n_above, contrast = _map_numbers(m, map_kind, threshold)
    assert out["contrast"] == contrast
    np.testing.assert_allclose(out["map_peak"], peak, rtol=RTOL)
    assert out["n_above_threshold"] == n_above
    assert out["summary"] == m.summary()


@pytest.mark.parametrize("params,map_kind,threshold", [
    (dict(cv="kfold", n_folds=4, C=0.01, conditions=["house", "shoe", "bottle"], contrast=2),
     "pattern", 0.02),
    (dict(classifier="logistic", C=0.5, conditions=["face", "cat", "house"], contrast=1,
          mask="whole brain"), "weights", 0.001),
], ids=["svc-3-classes-kfold-pattern", "logistic-3-classes-whole-brain"])
def test_decoding_script_prints_the_models_numbers(params, map_kind, threshold, decoding_dir,
                                                   tmp_path):
    from analysis.decoding import DecodingAnalysis

    m = DecodingAnalysis.from_dataset(decoding_dir)
    m.param.update(**params)
    code = decoding_script(m, map_kind=map_kind, threshold=threshold)
    assert str(decoding_dir) in code  # the dataset's files, by absolute path
    out = run_script(code, tmp_path)
    _check_decoding(out, m, map_kind, threshold)
    assert "p_value" not in out  # no permutation test run for these parameters


def test_decoding_script_on_uploaded_names_with_permutations(haxby_slice, tmp_path):
    """The real slice (numeric labels) as a session's uploads: the script reads the files
    by the names the user gave them, from its folder; with a permutation test run."""
    from analysis.decoding import DecodingAnalysis

    from analysis.io import HAXBY_CODES

    m = DecodingAnalysis.from_files(haxby_slice / "bold.nii.gz", haxby_slice / "mask.nii.gz",
                                    haxby_slice / "attributes.txt", label_names=HAXBY_CODES,
                                    conditions=["face", "house"],
                                    n_permutations=20, n_jobs=1)
    m.param.update(cv="run", C=0.1)
    m.permutation_test()
    names = {"func": "my bold.nii.gz", "mask": "vt_mask.nii.gz", "labels": "my_attributes.txt"}
    for role, source in (("func", "bold.nii.gz"), ("mask", "mask.nii.gz"),
                         ("labels", "attributes.txt")):
        shutil.copy(haxby_slice / source, tmp_path / names[role])
    code = decoding_script(m, map_kind="weights", threshold=0.0, files=names)
    assert str(haxby_slice) not in code and 'FUNC = "my bold.nii.gz"' in code
    assert "LABEL_NAMES = {" in code and "N_PERMUTATIONS = 20" in code
    out = run_script(code, tmp_path)
    _check_decoding(out, m, "weights", 0.0)
    assert out["p_value"] == pytest.approx(float(m.permutation_result.p_value), rel=RTOL)
    assert re.search(r", p(=|<=)[0-9.e-]+ \(20 permutations\)", out["summary"])


# --------------------------------------------------------------------------- connectivity

def _check_connectivity(out, m):
    res = m.ensure()
    r = res.r
    assert out["n_volumes"] == m.cleaned_data().n_volumes and out["n_voxels"] == r.size
    assert out["n_seed_voxels"] == res.n_seed_voxels
    np.testing.assert_allclose([out["r_min"], out["r_max"]], [r.min(), r.max()], rtol=RTOL)
    peak = m.peaks().iloc[0]
    np.testing.assert_allclose(out["peak_mm"], [peak.x, peak.y, peak.z])
    if m.fisher_z:
        np.testing.assert_allclose([out["z_min"], out["z_max"]],
                                   [np.nanmin(res.z), np.nanmax(res.z)], rtol=RTOL)
    np.testing.assert_allclose(out["threshold"], m.display_threshold(), rtol=RTOL)
    assert out["n_above_threshold"] == m.n_above() > 0
    np.testing.assert_allclose(out["colour_range"], m.colour_range(), rtol=RTOL)
    assert out["summary"] == m.summary()


def test_connectivity_script_with_a_confound_column_unticked(connectivity_dir, tmp_path):
    """The reported case: one confound column unticked (the old script regressed them all)."""
    from analysis.connectivity import SeedConnectivity

    m = SeedConnectivity(data_dir=str(connectivity_dir))
    dropped = m.confound_columns[-1]
    m.param.update(confound_columns=m.confound_columns[:-1], seed_mm=(-40.0, -66.0, 40.0),
                   radius_mm=6.0, smoothing_fwhm=4.0, high_pass=None, threshold=0.3)
    assert set(m.confound_columns) < set(m.param.confound_columns.objects)
    code = connectivity_script(m)
    assert f'"{dropped}"' not in code and "HIGH_PASS = None" in code
    out = run_script(code, tmp_path)
    _check_connectivity(out, m)
    # the map differs from the one with every column regressed
    everything = SeedConnectivity(data_dir=str(connectivity_dir), seed_mm=m.seed_mm,
                                  radius_mm=6.0, smoothing_fwhm=4.0, high_pass=None,
                                  threshold=0.3)
    assert everything.n_above() != out["n_above_threshold"]


def test_connectivity_script_fisher_z(connectivity_dir, tmp_path):
    from analysis.connectivity import SeedConnectivity

    m = SeedConnectivity(data_dir=str(connectivity_dir), subject=1)
    m.param.update(fisher_z=True, threshold=0.4, detrend=False, low_pass=0.08,
                   standardize_confounds=False, clim=(-1.5, 1.5),
                   confound_columns=["trans_x", "rot_z", "csf"])
    code = connectivity_script(m)
    assert "FISHER_Z = True" in code and "CLIM = (-1.5, 1.5)" in code
    out = run_script(code, tmp_path)
    _check_connectivity(out, m)
    assert out["map_file"].endswith("_z.nii.gz") and (tmp_path / out["map_file"]).is_file()


def test_connectivity_script_population_zscore_no_confounds(connectivity_dir, tmp_path):
    from analysis.connectivity import SeedConnectivity

    m = SeedConnectivity(data_dir=str(connectivity_dir))
    m.param.update(standardize="zscore", regress_confounds=False, smoothing_fwhm=0.0,
                   seed_mm=(-2.0, -50.0, 20.0), radius_mm=10.0)
    code = connectivity_script(m)
    assert "CONFOUND_COLUMNS = None" in code and "SMOOTHING_FWHM = None" in code
    out = run_script(code, tmp_path)
    _check_connectivity(out, m)


def test_connectivity_script_high_variance_confounds(connectivity_dir, tmp_path):
    """The preprocessing group's high_variance_confounds reaches the script's maskers (a
    constant made from its Parameter, passed to both): the same numbers as the app's."""
    from analysis.connectivity import SeedConnectivity

    m = SeedConnectivity(data_dir=str(connectivity_dir), subject=1)
    m.param.update(high_variance_confounds=True, seed_mm=(-40.0, -66.0, 40.0), threshold=0.3,
                   confound_columns=m.confound_columns[:4])
    code = connectivity_script(m)
    assert "HIGH_VARIANCE_CONFOUNDS = True" in code
    assert "high_variance_confounds=HIGH_VARIANCE_CONFOUNDS" in code
    out = run_script(code, tmp_path)
    _check_connectivity(out, m)
    off = SeedConnectivity(data_dir=str(connectivity_dir), subject=1, seed_mm=m.seed_mm,
                           threshold=0.3, confound_columns=m.confound_columns)
    assert off.summary() != out["summary"]


def test_connectivity_script_on_uploaded_names(connectivity_dir, tmp_path):
    """A session's uploads: the files by the names the user gave them, in the script's
    folder (the server's copies are elsewhere, under other names)."""
    from analysis.connectivity import SeedConnectivity, load_subject
    from analysis.datasets import development as dev

    files = dev.subject_files(connectivity_dir, subject=2)
    server = tmp_path / "server"
    server.mkdir()
    shutil.copy(files["func"], server / "func.nii.gz")
    shutil.copy(files["confounds"], server / "confounds.tsv")
    names = {"func": "sub-02_bold.nii.gz", "confounds": "sub-02_confounds.tsv"}
    subject = load_subject(server / "func.nii.gz", confounds=server / "confounds.tsv",
                           t_r=2.0, info={"uploads": names})
    m = SeedConnectivity(subject_data=subject, seed_mm=(2.0, -54.0, 26.0), threshold=0.45)
    m.confound_columns = m.confound_columns[2:]
    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(files["func"], user / names["func"])
    shutil.copy(files["confounds"], user / names["confounds"])
    code = connectivity_script(m)
    assert str(server) not in code and 'FUNC = "sub-02_bold.nii.gz"' in code
    out = run_script(code, user)
    _check_connectivity(out, m)


def test_scripts_module_is_panel_free():
    code = ("import sys, analysis.scripts; "
            "print(sorted(m for m in ('panel', 'holoviews', 'bokeh') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
