""""Show code": each tab's script, run on its own in a subprocess on the same data
files, prints the numbers of the tab's summary line."""

import os
import subprocess
import sys

import pytest

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
]


@pytest.mark.parametrize("module,cls,attr,params", CASES)
def test_script_reproduces_the_summary(module, cls, attr, params, encoding_dir, decoding_dir,
                                       connectivity_dir):
    import importlib

    tab = getattr(importlib.import_module(module), cls)()
    getattr(tab, attr).param.update(**params)
    summary = tab.export_summary()
    code = tab.export_code()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "Agg"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = out.stdout.strip().splitlines()
    assert summary in printed, (summary, out.stdout[-1500:])
