""""Show code": each tab's script, plain nilearn / scikit-learn (no import of this
package), run on its own in a subprocess on the same data files, prints the tab's
summary line."""

import os
import subprocess
import sys

import pytest

from analysis.datasets.development import REDUCED_COLUMNS

CASES = [
    ("dashboard.encoding", "EncodingTab", "analysis", {}),
    ("dashboard.encoding", "EncodingTab", "analysis", {"alpha": 10.0, "n_folds": 5}),
    ("dashboard.encoding", "EncodingTab", "analysis", {"cv": "run", "alpha": 1000.0}),
    ("dashboard.decoding", "DecodingTab", "analysis", {}),
    ("dashboard.decoding", "DecodingTab", "analysis", {"cv": "kfold", "n_folds": 4, "C": 0.01}),
    ("dashboard.decoding", "DecodingTab", "analysis", {"classifier": "logistic"}),
    ("dashboard.connectivity", "ConnectivityTab", "model", {}),
    ("dashboard.connectivity", "ConnectivityTab", "model", {"seed_mm": (-40.0, -66.0, 40.0),
                                                             "radius_mm": 6.0}),
    # one confound column unticked, Fisher z (the old script regressed every column)
    ("dashboard.connectivity", "ConnectivityTab", "model",
     {"confound_columns": list(REDUCED_COLUMNS[:-1]), "fisher_z": True}),
    # the preprocessing group's CompCor-like option, passed to both maskers
    ("dashboard.connectivity", "ConnectivityTab", "model", {"high_variance_confounds": True}),
]


@pytest.mark.parametrize("module,cls,attr,params", CASES)
def test_script_reproduces_the_summary(module, cls, attr, params, encoding_dir, decoding_dir,
                                       connectivity_dir, tmp_path):
    import importlib

    tab = getattr(importlib.import_module(module), cls)()
    getattr(tab, attr).param.update(**params)
    summary = tab.export_summary()
    code = tab.export_code()
    assert "import analysis" not in code and "from analysis" not in code
    assert "dashboard" not in code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "MPLBACKEND": "Agg"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = out.stdout.strip().splitlines()
    assert f"summary: {summary}" in printed, (summary, out.stdout[-1500:])
