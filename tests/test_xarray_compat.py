"""xarray's lazy Dask checks (analysis/xarray_compat.py) when another thread is still
importing Dask: no second import from the asking thread (it deadlocked or saw a half-made
``dask.base`` under load: "cannot import name 'annotate' from partially initialized
module"), and Dask's own answers once Dask is imported."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import importlib.machinery, sys, types
import numpy as np
from analysis.volumes import to_xarray  # installs the lazy checks
from xarray.namedarray import utils

# another thread is importing Dask: its modules are in sys.modules, half made
half = types.ModuleType("dask")
half.__spec__ = importlib.machinery.ModuleSpec("dask", None)
half.__spec__._initializing = True
sys.modules["dask"] = half
assert utils.is_dask_collection(np.zeros(3)) is False
assert "dask.base" not in sys.modules, "asked a half-imported Dask"
del sys.modules["dask"]

import dask.array as da  # imported for real: Dask's own answers
assert utils.is_dask_collection(da.zeros(3)) is True
assert utils.is_dask_collection(np.zeros(3)) is False
print("ok")
"""


def test_dask_checks_while_dask_is_half_imported():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
