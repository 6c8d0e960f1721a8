"""xarray without importing Dask until something uses Dask.

xarray asks, for every array it wraps, whether it is a Dask array, and to answer
it imports ``dask.array`` and ``dask`` (0.5-0.8 s here, as the served app's first
page is made; Dask is installed for the group analysis). Yet no object can be a
Dask array or collection before Dask has been imported. :func:`install` gives
xarray answers that know this: no Dask type while ``dask.array`` is not imported,
Dask's own once it is (by anyone); not a Dask collection while ``dask`` is not
imported, Dask's answer once it is. Every other question about Dask (is it
installed, which version) imports it, as xarray does.

It replaces one entry of a private xarray cache and one function of
``xarray.namedarray.utils``. If either is not there (another xarray version), it is
left alone and xarray imports Dask for it as before.
"""

from __future__ import annotations

import sys

import xarray  # noqa: F401 - the module this adapts

_INSTALLED = False


def _imported(name: str):
    """The module ``name`` if it is fully imported, else None.

    A module that another thread is still importing is not used: asking it would
    import it a second time from this thread, which deadlocks with the first or
    sees it half made (``cannot import name ... from partially initialized module``).
    Nothing made from it can exist before its import has finished.
    """
    module = sys.modules.get(name)
    if module is None:
        return None
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "_initializing", False):
        return None
    return module


def _pycompat():
    try:
        from xarray.namedarray import pycompat
    except ImportError:
        return None
    if not (hasattr(pycompat, "_cached_duck_array_modules")
            and hasattr(pycompat, "DuckArrayModule")):
        return None
    return pycompat


class LazyDask:
    """xarray's ``DuckArrayModule("dask")``, importing Dask only when it must."""

    _full = None

    @property
    def type(self) -> tuple:
        if self._full is not None:
            return self._full.type
        if _imported("dask.array") is None:  # nothing can be a Dask array yet
            return ()
        return self._resolve().type

    def _resolve(self):
        if self._full is None:
            self._full = _pycompat().DuckArrayModule("dask")
        return self._full

    def __getattr__(self, name):  # module, version, available: as xarray would find them
        return getattr(self._resolve(), name)


def _lazy_is_dask_collection(original):
    def is_dask_collection(x) -> bool:
        # nothing is a Dask collection before Dask is imported (0.1 s to import it)
        base = _imported("dask.base")
        if base is None or _imported("dask") is None:
            return False
        return base.is_dask_collection(x)

    is_dask_collection.__doc__ = original.__doc__
    is_dask_collection.__wrapped__ = original
    return is_dask_collection


def install() -> bool:
    """Make xarray's Dask checks lazy (once per process); True if they are (or already were)."""
    global _INSTALLED
    if _INSTALLED:
        return True
    pycompat = _pycompat()
    if pycompat is None:
        return False
    cache = pycompat._cached_duck_array_modules
    if "dask" not in cache and "dask.array" not in sys.modules:
        cache["dask"] = LazyDask()
    try:
        from xarray.namedarray import utils
    except ImportError:
        utils = None
    if utils is not None and callable(getattr(utils, "is_dask_collection", None)) \
            and not hasattr(utils.is_dask_collection, "__wrapped__"):
        utils.is_dask_collection = _lazy_is_dask_collection(utils.is_dask_collection)
    _INSTALLED = True
    return True


__all__ = ["install", "LazyDask"]
