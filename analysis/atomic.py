"""Write files and folders so that nothing half-written is ever left behind.

Everything is written under a temporary name in the destination's folder and
renamed into place at the end; on an error the temporary is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from .errors import DataError


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise DataError(f"cache folder is not writable ({exc.strerror or exc})", path) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    Works for files and folders alike (the caller creates what it needs at the
    temporary path). An existing ``path`` is replaced.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def save_nifti(img, path: str | Path) -> Path:
    """Write a NIfTI image atomically (``.nii`` or ``.nii.gz`` kept)."""
    path = Path(path)
    suffix = "".join(s for s in path.suffixes[-2:] if s in (".nii", ".gz"))
    with atomic_path(path) as tmp:
        tmp_named = tmp.with_name(tmp.name + (suffix or ".nii.gz"))
        img.to_filename(tmp_named)
        os.replace(tmp_named, tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
