"""One helper for every disk cache: where entries live, how they are keyed, read, written.

Rules (see :mod:`analysis.atomic` for the writers' rule):

* Every cache entry lives in the cache folder, ``data_home()/"cache"``
  (:func:`cache_file`), never beside the data it was computed from (the
  user's folder may be read-only, shared, or simply not ours to write in).
* Entries are keyed by the content of their input files
  (:func:`content_key`), not by where the files are: a copied or moved
  dataset finds its cache, a changed file does not find a stale one.
* An entry that cannot be read (missing, truncated, damaged, of another
  shape) is treated as missing (:func:`load_npy` returns None): the caller
  computes it again and rewrites it (atomically, :func:`save_npy`).
* A cache folder that cannot be written only makes the next run slower:
  :func:`save_npy` never raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .config import data_home
from .errors import DataError
from .store import Store

log = logging.getLogger("fmri_explorer.cache")

#: Files up to this size are hashed whole; larger ones by samples (see :func:`content_key`).
FULL_HASH_BYTES = 32 << 20
#: Size of each sample read from a large file.
SAMPLE_BYTES = 64 << 10
#: Samples spread evenly through a large file (besides its first and last bytes).
N_SAMPLES = 16

#: content keys per (file, size, modification time), in this process
KEYS = Store("cache.content_keys", max_entries=256)


def file_digest(path, algorithm: str = "sha1") -> str:
    """The hex digest of a whole file (read 1 MiB at a time)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """The folder of every disk cache: ``data_home()/"cache"`` (not created here)."""
    return data_home() / "cache"


def cache_file(name: str) -> Path:
    """The path of the cache entry ``name`` (a plain file name) in :func:`cache_dir`."""
    name = str(name)
    if not name or "/" in name or os.sep in name or name in (".", ".."):
        raise ValueError(f"not a cache entry name: {name!r}")
    return cache_dir() / name


def content_key(path) -> str:
    """A key of the file's content: size and SHA-1 of its bytes, location-free.

    Files up to :data:`FULL_HASH_BYTES` are hashed whole. Larger ones: the size,
    the first MiB (the NIfTI header and first volumes), :data:`N_SAMPLES` evenly
    spaced samples and the last :data:`SAMPLE_BYTES` (for a ``.gz`` file its
    trailer holds the CRC-32 of all the data, so any change is seen). The key is
    remembered per (file, size, modification time) in this process.
    """
    path = Path(path)
    try:
        st = os.stat(path)
        memo = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        known = KEYS.get(memo)
        if known is not None:
            return known
        if not stat.S_ISREG(st.st_mode):
            raise DataError("is not a regular file", path)
        size = st.st_size
        h = hashlib.sha1(f"content-v1|{size}|".encode())
        with open(path, "rb") as f:
            if size <= FULL_HASH_BYTES:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            else:
                h.update(f.read(1 << 20))
                step = (size - SAMPLE_BYTES) // (N_SAMPLES + 1)
                for i in range(1, N_SAMPLES + 1):
                    f.seek(i * step)
                    h.update(f.read(SAMPLE_BYTES))
                f.seek(size - SAMPLE_BYTES)
                h.update(f.read(SAMPLE_BYTES))
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or exc})", path) from None
    return KEYS.put(memo, h.hexdigest()[:24])


def _is_regular(path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def open_entry(path):
    """Open the cache entry ``path`` for reading; only a regular file (not a link, a
    folder or a device) is opened: anything else raises :class:`OSError`."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def npy_header(fh) -> tuple:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` file open in ``fh``, read from
    its header alone (no data read; ``ValueError`` for a file that is not one)."""
    version = np.lib.format.read_magic(fh)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    return read_header(fh)


def load_npy(path, check=None) -> np.ndarray | None:
    """The array saved at ``path``, or None if it is missing or cannot be trusted.

    Unreadable, truncated or damaged files, object arrays and arrays for which
    ``check(array)`` is false are all treated as missing (the caller computes
    the array again and :func:`save_npy` replaces the entry).
    """
    path = Path(path)
    if not os.path.lexists(path):
        return None
    try:
        with open_entry(path) as fh:
            array = np.load(fh, allow_pickle=False)
        if not isinstance(array, np.ndarray):
            raise ValueError("not a single array")
        if check is not None and not check(array):
            raise ValueError(f"unexpected array {array.dtype}{list(array.shape)}")
    except Exception as exc:  # noqa: BLE001 - any damage means: compute again
        log.info("cache entry %s ignored: %s", path, exc)
        return None
    return array


def write_atomic(path, write, quiet: bool = False) -> bool:
    """Write a cache entry (or any file) at ``path`` with ``write(file_object)``, atomically.

    The parent folder is created if needed. With ``quiet`` an error only
    returns False (a cache that cannot be written makes the next run slower);
    else it raises :class:`DataError`.
    """
    path = Path(path)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cache folder is not writable ({exc.strerror or exc})",
                            path.parent) from None
        with atomic_path(path) as tmp:
            try:
                with open(tmp, "xb") as fh:
                    write(fh)
            except OSError as exc:
                raise DataError(f"cannot write ({exc.strerror or exc})", path) from None
        return True
    except DataError as exc:
        if not quiet:
            raise
        log.info("cache entry %s not written: %s", path, exc)
        return False


def save_npy(path, array) -> bool:
    """Save ``array`` at ``path`` (``.npy``) atomically; False (never an error) if not written."""
    array = np.asarray(array)
    return write_atomic(path, lambda fh: np.save(fh, array, allow_pickle=False), quiet=True)


def prune(prefix: str, suffix: str, keep: int, folder=None) -> list[Path]:
    """Remove all but the ``keep`` most recently used entries ``prefix*suffix`` of the cache
    folder (regular files only, nothing else is touched); returns the removed paths."""
    folder = cache_dir() if folder is None else Path(folder)
    entries = []
    for p in folder.glob(f"{prefix}*{suffix}"):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            entries.append((st.st_mtime, p))
    entries.sort(reverse=True)
    removed = []
    for _, p in entries[keep:]:
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def touch(path) -> None:
    """Mark the entry as recently used (kept by :func:`prune`); errors are ignored."""
    with contextlib.suppress(OSError):
        if _is_regular(path):
            os.utime(path)
