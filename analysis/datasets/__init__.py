"""Datasets behind one loader API: synthetic (embedded default), real
(nilearn's fetchers) and the user's own files.

Each analysis has one module here, registered in :data:`MODULES`:

``generate(data_dir, size="full", seed=0, progress=None) -> dict``
    Write the synthetic dataset under ``data_dir`` in the file layout that the
    matching nilearn fetcher produces (so ``fetch_*(data_dir=data_dir)``
    returns it with no network), planted ground truth beside it, atomically.
    Returns the JSON-able description printed by ``fmri-explorer data``
    (paths, shapes, TR).
``is_present(data_dir) -> bool``
    Every file the fetcher expects is in place.
``load(data_dir, ...)``
    Read a dataset (synthetic or real) through the nilearn fetcher.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

from ..config import default_size, synthetic_dir
from ..errors import DataError

#: analysis name -> module (in this package) of its dataset.
MODULES = {
    "encoding": "miyawaki",
    "decoding": "haxby",
    "connectivity": "development",
}

_LOCK = threading.Lock()


def dataset_module(kind: str):
    """The dataset module of an analysis (``encoding``, ``decoding``, ``connectivity``)."""
    if kind not in MODULES:
        raise DataError(f"unknown dataset {kind!r}; choose one of {', '.join(MODULES)}")
    return importlib.import_module(f"{__name__}.{MODULES[kind]}")


def ensure_synthetic(kind: str, size: str | None = None, root=None, progress=None) -> Path:
    """The ``data_dir`` holding the synthetic ``kind`` dataset, generated once if missing."""
    size = size or default_size()
    data_dir = synthetic_dir(size, root)
    module = dataset_module(kind)
    with _LOCK:
        if not module.is_present(data_dir):
            module.generate(data_dir, size=size, progress=progress)
    return data_dir
