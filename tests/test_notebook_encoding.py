"""notebooks/encoding.ipynb runs headless (small synthetic data) and reproduces the seed."""

from __future__ import annotations

import os
import re
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "encoding.ipynb"


def test_notebook_runs_headless(encoding_dir, data_home):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = dict(os.environ, FMRI_EXPLORER_SIZE="small", FMRI_EXPLORER_DATA=str(data_home),
               MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process' environment
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    diff = re.search(r"max \|fast - sklearn\| = ([0-9.e+-]+)", text)
    assert diff and float(diff.group(1)) < 1e-8
    assert re.search(r"alpha=100 folds=10 mean R2=-?[0-9.]+ voxels above 0.05: \d+", text)
    # the last cell shows the live Panel view (a Bokeh document in the output)
    last = nb.cells[-1]
    assert any(o.get("output_type") == "execute_result"
               and "application/vnd.holoviews_exec.v0+json" in o.get("data", {})
               for o in last.get("outputs", []))
