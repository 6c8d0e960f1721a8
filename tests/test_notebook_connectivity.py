"""notebooks/connectivity.ipynb runs headless (small synthetic data) and matches the seed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "connectivity.ipynb"


def test_connectivity_notebook_runs(data_home, connectivity_dir):
    assert os.environ.get("FMRI_EXPLORER_SIZE") == "small"  # the kernel inherits it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent.parent)}})
    client.execute()
    errors = [o for cell in nb.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    text = "\n".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for o in cell.get("outputs", []))
    assert "seed (0, -52, 18) r=8 mm:" in text
    diff = float(re.search(r"max \|r_fast - r_seed\| = ([0-9.e+-]+)", text).group(1))
    assert diff < 1e-5
    assert "outside the brain" in text and "pcc_seed_correlation_z.nii.gz" in text
