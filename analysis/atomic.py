"""Write files and folders safely: nothing half-written, nothing of the user's harmed.

The rule every writer follows (CLI outputs, exports, caches, datasets):

* A file is written under a temporary name in the destination's folder and
  renamed onto the exact path asked for at the end; on an error the temporary
  is removed (it is ours: nothing else is ever removed).
* What a rename replaces is only ever a **regular file** at that exact path. A
  target that is a directory, a symbolic link, a device, a FIFO or a socket is
  refused with :class:`~analysis.errors.DataError` (the CLI exits 2), never
  moved aside, replaced or removed.
* A folder (a generated dataset) is built under a temporary name and renamed
  into place only where nothing exists yet.
* Missing parent folders of a file are not created (a typo in ``--out`` must
  not make folders); only :func:`ensure_writable_dir` creates folders, for the
  cache folder and for ``fmri-explorer data --out DIR``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import uuid
from pathlib import Path

from .errors import DataError

#: The endings a NIfTI output may have.
NIFTI_SUFFIXES = (".nii.gz", ".nii")


def ensure_writable_dir(path: str | Path) -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it.

    Refuses an existing ``path`` that is not a folder (never replaced).
    """
    path = Path(path)
    if path.is_symlink() and not path.is_dir():
        raise DataError("is a symbolic link that does not lead to a folder", path)
    if path.exists() and not path.is_dir():
        raise DataError("is not a folder", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise DataError(f"folder is not writable ({exc.strerror or exc})", path) from None
    return path


def check_target(path: str | Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """``path`` as a :class:`Path` if a regular file may be written there, else a DataError.

    Refused: a name without one of ``suffixes`` (when given), an existing
    directory, symbolic link or anything that is not a regular file (device,
    FIFO, socket), and a path whose folder does not exist.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise DataError("is not a file name", path)
    if suffixes and not path.name.lower().endswith(tuple(s.lower() for s in suffixes)):
        raise DataError(f"the output must end in {' or '.join(suffixes)}", path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise DataError(f"cannot check the output ({exc.strerror or exc})", path) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise DataError("is a directory", path)
        if stat.S_ISLNK(st.st_mode):
            raise DataError("is a symbolic link (refused: only a regular file is replaced)", path)
        if not stat.S_ISREG(st.st_mode):
            raise DataError("is not a regular file (refused: only a regular file is replaced)",
                            path)
    parent = path.parent
    if not parent.is_dir():
        raise DataError(f"folder {str(parent)!r} does not exist", path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffixes: tuple[str, ...] | None = None):
    """Yield a temporary file path beside ``path``; rename it onto ``path`` on success.

    The caller writes a regular file at the yielded path (same ending as
    ``path``, so writers that pick a format by extension pick the same one).
    The target is checked by :func:`check_target` before and again just before
    the rename; the temporary is removed on any error.
    """
    path = check_target(path, suffixes)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex[:8]}-{path.name}"
    try:
        yield tmp
        try:
            st = os.lstat(tmp)
        except FileNotFoundError:
            raise DataError("nothing was written", path) from None
        if not stat.S_ISREG(st.st_mode):
            raise DataError("refused: a writer made something else than a regular file", path)
        check_target(path, suffixes)  # nothing else appeared at the target meanwhile
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise DataError(f"cannot write ({exc.strerror or exc})", path) from None
    finally:
        _remove_temporary(tmp)


def _remove_temporary(tmp: Path) -> None:
    """Remove what a writer left at our own temporary name (a random name we chose)."""
    with contextlib.suppress(OSError):
        st = os.lstat(tmp)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder path beside ``path``; rename it to ``path`` on success.

    The caller creates the folder at the yielded path (or it is created empty).
    ``path`` must not exist (a folder is never replaced or merged); the parent
    folder is created if needed. On an error the temporary folder, which is
    ours, is removed.
    """
    path = Path(path)
    if os.path.lexists(path):
        raise DataError("already exists (refused: a folder is never replaced)", path)
    ensure_writable_dir(path.parent)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"  # made by the caller
    try:
        yield tmp
        tmp.mkdir(exist_ok=True)
        if os.path.lexists(path):
            raise DataError("appeared while it was written (refused: not replaced)", path)
        os.rename(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder only


def save_nifti(img, path: str | Path) -> Path:
    """Write a NIfTI image atomically at ``path`` (which ends in ``.nii`` or ``.nii.gz``)."""
    with atomic_path(path, NIFTI_SUFFIXES) as tmp:
        try:
            img.to_filename(str(tmp))
        except OSError as exc:
            raise DataError(f"cannot write ({exc.strerror or exc})", path) from None
    return Path(path)


def write_bytes(path: str | Path, data: bytes, suffixes: tuple[str, ...] | None = None) -> Path:
    """Write ``data`` atomically at ``path``."""
    with atomic_path(path, suffixes) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """Write ``text`` atomically at ``path``."""
    with atomic_path(path, suffixes) as tmp:
        tmp.write_text(text)
    return Path(path)
