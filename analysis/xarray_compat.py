"""xarray without importing Dask until something uses Dask.

xarray asks, for every array it wraps, whether it is a Dask array, and to answer
it imports ``dask.array`` (0.4-0.7 s here, most of it as the served app's first
page is made; Dask is installed for the group analysis). Yet no object can be a
Dask array before ``dask.array`` has been imported. :func:`install` gives xarray
an answer that knows this: no type while ``dask.array`` is not imported, Dask's
own once it is (by anyone). Every other question about Dask (is it installed,
which version) imports it, as xarray does.

It replaces one entry of a private xarray cache. If that cache is not there (another
xarray version), nothing is changed and xarray imports Dask as before.
"""

from __future__ import annotations

import sys

import xarray  # noqa: F401 - the module this adapts

_INSTALLED = False


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
        mod = sys.modules.get("dask.array")
        if mod is None:  # nothing can be a Dask array yet
            return ()
        return self._resolve().type

    def _resolve(self):
        if self._full is None:
            self._full = _pycompat().DuckArrayModule("dask")
        return self._full

    def __getattr__(self, name):  # module, version, available: as xarray would find them
        return getattr(self._resolve(), name)


def install() -> bool:
    """Make xarray's Dask check lazy (once per process); True if it is (or already was)."""
    global _INSTALLED
    if _INSTALLED:
        return True
    pycompat = _pycompat()
    if pycompat is None:
        return False
    cache = pycompat._cached_duck_array_modules
    if "dask" not in cache and "dask.array" not in sys.modules:
        cache["dask"] = LazyDask()
    _INSTALLED = True
    return True


__all__ = ["install", "LazyDask"]
