"""Where data lives: the cache folder and the default synthetic size."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

#: Environment variable naming the cache folder (synthetic datasets, npy caches).
DATA_ENV = "FMRI_EXPLORER_DATA"
#: Environment variable choosing the synthetic size the app uses (``full`` or ``small``).
SIZE_ENV = "FMRI_EXPLORER_SIZE"
SIZES = ("small", "full")
#: Environment variable naming a nilearn data folder (``fmri-explorer serve --data DIR``):
#: the app offers the real datasets found there beside the synthetic ones.
NILEARN_DATA_ENV = "FMRI_EXPLORER_NILEARN_DATA"
#: Environment variable: per-file upload limit in the app, in MB (default 500).
MAX_UPLOAD_ENV = "FMRI_EXPLORER_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 500


def _megabytes(env: str, default: float) -> int:
    """``$env`` in MB as bytes; ``default`` when unset or not a positive finite number."""
    try:
        mb = float(os.environ.get(env, default))
    except ValueError:
        mb = default
    if not 0 < mb < float("inf"):  # nan, 0, negative or inf: the default
        mb = default
    return int(mb * 1024 * 1024)


def max_upload_bytes() -> int:
    """The per-file upload limit in bytes (``$FMRI_EXPLORER_MAX_UPLOAD_MB``)."""
    return _megabytes(MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB)


#: Environment variable: the largest image (decompressed data, in MB) any reader accepts
#: (default 2048, i.e. 2 GB), checked on the header before any data is read.
MAX_IMAGE_ENV = "FMRI_EXPLORER_MAX_IMAGE_MB"
DEFAULT_MAX_IMAGE_MB = 2048


def max_image_bytes() -> int:
    """The largest image data accepted, in bytes (``$FMRI_EXPLORER_MAX_IMAGE_MB``)."""
    return _megabytes(MAX_IMAGE_ENV, DEFAULT_MAX_IMAGE_MB)


def data_home() -> Path:
    """The cache folder: ``$FMRI_EXPLORER_DATA`` or ``~/.cache/fmri-explorer``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fmri-explorer"


def nilearn_data_dir() -> Path | None:
    """The nilearn data folder the app offers (``$FMRI_EXPLORER_NILEARN_DATA``) when it
    names an existing folder; None otherwise (unset, empty, missing or a file)."""
    env = os.environ.get(NILEARN_DATA_ENV, "").strip()
    if not env:
        return None
    path = Path(env).expanduser()
    return path if path.is_dir() else None


def default_size() -> str:
    """The synthetic size the app serves: ``$FMRI_EXPLORER_SIZE`` or ``full``."""
    size = os.environ.get(SIZE_ENV, "full")
    return check_size(size)


def check_size(size: str) -> str:
    if size not in SIZES:
        raise DataError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    return size


def synthetic_dir(size: str, root: str | Path | None = None) -> Path:
    """The nilearn ``data_dir`` that holds the synthetic datasets of one size."""
    root = data_home() if root is None else Path(root)
    return root / f"synthetic-{check_size(size)}"
