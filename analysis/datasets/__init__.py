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

A generator writes only into a dataset folder that does not exist yet, is
empty, or is its own: each synthetic dataset folder holds a manifest,
:data:`MARKER` (``haxby2001/.fmri-explorer-synthetic.json``...), listing the
files it wrote with their sizes and SHA-1. A folder holding anything else (a
user's real download) is refused with a :class:`DataError` naming it, never
replaced, merged, moved aside or deleted (:func:`claim_folder`). An own,
complete folder of the same parameters is left as it is; an own folder of
other parameters (or an older generator) is made again after removing
exactly the files its manifest lists, once each is checked unchanged.
``load(data_dir, ...)``
    Read a dataset (synthetic or real) through the nilearn fetcher.
"""

from __future__ import annotations

import importlib
import json
import os
import stat
import threading
from pathlib import Path

from ..config import data_home, default_size, synthetic_dir
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
    """The ``data_dir`` holding the synthetic ``kind`` dataset, generated once if missing.

    Only the generator's own folders are made again (see :func:`claim_folder`);
    another process that made the same folder meanwhile is fine.
    """
    size = size or default_size()
    data_dir = synthetic_dir(size, root)
    module = dataset_module(kind)
    with _LOCK:
        if not module.is_present(data_dir):
            try:
                module.generate(data_dir, size=size, progress=progress)
            except DataError:
                if not module.is_present(data_dir):  # not made by another process
                    raise
    return data_dir


# --------------------------------------------------------------------------- own folders

#: The manifest written inside every synthetic dataset folder (the files we wrote).
MARKER = ".fmri-explorer-synthetic.json"
_GENERATOR = "fmri-explorer"


def _sha1(path) -> str:
    from ..cache import file_digest

    return file_digest(path, "sha1")


def write_manifest(root, params: dict) -> Path:
    """Write :data:`MARKER` in the new dataset folder ``root`` (still under its temporary
    name): every regular file in it, relative path -> size and SHA-1, and ``params``."""
    root = Path(root)
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel == MARKER or not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            files[rel] = {"size": path.stat().st_size, "sha1": _sha1(path)}
    manifest = {"generator": _GENERATOR, "params": params, "files": files,
                "note": "written by fmri-explorer's synthetic data generator: "
                        "'fmri-explorer data' replaces only the files listed here"}
    (root / MARKER).write_text(json.dumps(manifest, indent=1))
    return root / MARKER


def read_manifest(root) -> dict | None:
    """The manifest of the dataset folder ``root``, or None (none, unreadable, not ours)."""
    path = Path(root) / MARKER
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(manifest, dict) and manifest.get("generator") == _GENERATOR
            and isinstance(manifest.get("files"), dict)):
        return None
    return manifest


def _in_cache_folder(path: Path) -> bool:
    try:
        home = data_home().resolve()
        return Path(path).resolve().is_relative_to(home)
    except OSError:
        return False


def _legacy_manifest(root: Path) -> dict:
    """What a folder of our cache folder written before manifests existed holds:
    every regular file in it, taken as ours (nothing else writes in the cache folder)."""
    files = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                files[path.relative_to(root).as_posix()] = {"size": path.stat().st_size}
    return {"generator": _GENERATOR, "params": None, "files": files}


def _refuse(root: Path, why: str):
    raise DataError(f"{root} {why} (refused: fmri-explorer writes a dataset only into a "
                    f"new, empty or own folder, and never replaces, moves or deletes "
                    f"anything else; choose another --out or move it away)", root)


def claim_folder(root, params: dict, complete, legacy=None) -> bool:
    """Make the dataset folder ``root`` ready for a generator with ``params``.

    Returns True when ``root`` is our own folder, made with the same ``params``
    and ``complete()`` (nothing to write). Returns False when ``root`` does not
    exist (any more): the generator builds it under a temporary name and renames
    it into place (:func:`analysis.atomic.atomic_dir`). On the way:

    * an empty folder is removed (``os.rmdir``, which removes only an empty one);
    * our own folder (its :data:`MARKER` manifest; or, in the cache folder only,
      a folder from before manifests for which ``legacy(root)`` is true) of other
      parameters or incomplete: the files its manifest lists are removed, after
      checking that nothing else is in it and that each listed file is the one
      we wrote (size and SHA-1), then its emptied folders;
    * anything else (a file, a link, a folder holding files we did not write)
      raises :class:`DataError` naming it; nothing is touched.
    """
    root = Path(root)
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise DataError(f"cannot check the dataset folder ({exc.strerror or exc})", root) from None
    if stat.S_ISLNK(st.st_mode):
        _refuse(root, "is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        _refuse(root, "is in the way and is not a folder")
    try:
        entries = os.listdir(root)
    except OSError as exc:
        raise DataError(f"cannot read the dataset folder ({exc.strerror or exc})", root) from None
    if not entries:
        try:
            os.rmdir(root)
        except OSError as exc:
            raise DataError(f"cannot use the empty folder ({exc.strerror or exc})", root) from None
        return False
    manifest = read_manifest(root)
    if manifest is None and legacy is not None and _in_cache_folder(root) and legacy(root):
        manifest = _legacy_manifest(root)
    if manifest is None:
        first = sorted(entries)[0]
        _refuse(root, f"holds {first!r} and other files not written by fmri-explorer"
                      if len(entries) > 1 else
                      f"holds {first!r}, not written by fmri-explorer")
    listed = manifest["files"]
    if manifest.get("params") == params and complete() and all(
            _same_size(root / rel, info) for rel, info in listed.items()):
        return True
    # ours, but of other parameters or incomplete: remove exactly what we wrote
    dirs, verified = [], []   # only what the walk found inside root and checked goes:
    # a name in the manifest is never trusted as a path ("../elsewhere" would be outside)
    for folder, subdirs, names in os.walk(root):
        for name in subdirs:
            path = Path(folder) / name
            if os.path.islink(path):
                _refuse(root, f"holds {path.relative_to(root).as_posix()!r}, a link "
                              f"not made by fmri-explorer")
            dirs.append(path)
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel == MARKER:
                continue
            info = listed.get(rel)
            if info is None or not stat.S_ISREG(os.lstat(path).st_mode):
                _refuse(root, f"holds {rel!r}, not written by fmri-explorer")
            if not _same_size(path, info) or ("sha1" in info and _sha1(path) != info["sha1"]):
                _refuse(root, f"holds {rel!r}, changed since fmri-explorer wrote it")
            verified.append(path)
    try:
        for path in verified:
            os.unlink(path)
        for path in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            os.rmdir(path)  # empty by now; a folder with something new in it stays
        if os.path.lexists(root / MARKER):
            os.unlink(root / MARKER)
        os.rmdir(root)
    except OSError as exc:
        raise DataError(f"cannot make the dataset again ({exc.strerror or exc})", root) from None
    return False


def _same_size(path: Path, info: dict) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == info.get("size")
