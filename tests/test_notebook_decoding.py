"""notebooks/decoding.ipynb runs headless (small synthetic data) without errors."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "decoding.ipynb"


def test_decoding_notebook_runs(data_home, decoding_dir):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_ok = os.environ.get("FMRI_EXPLORER_SIZE") == "small"
    assert env_ok  # the kernel inherits the session's small size and cache folder
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent.parent)}})
    client.execute()
    outputs = {i: "".join(o.get("text", "") for o in cell.get("outputs", []))
               for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "train-on-all accuracy: 1.0" in text
    assert "leave-one-run-out" in text and "KFold(5)" in text
    assert "p = " in text
    errors = [o for cell in nb.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
