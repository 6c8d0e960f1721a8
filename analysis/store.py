"""One in-memory cache store for every process-level cache (issue 14).

Every result the process keeps between calls (cleaned data, decompositions, R^2 per
alpha, masked Haxby data, Lasso fits, MNI backgrounds...) lives in a :class:`Store`:

* **bounded**: at most ``max_entries`` entries and, when ``max_bytes`` is given, about
  that many bytes (the least recently used go first; the newest entry always stays);
* **thread-safe**, and computed once: sessions asking for the same key while it is
  being computed wait for that one computation (:meth:`Store.get_or_compute`);
* **keyed on what the value depends on**: the caller builds the key (data content key,
  parameters), never a path or an object id that can be reused;
* **per-session eviction**: an entry put with an ``owner`` (a session's id) belongs to
  it; :func:`release` drops every entry of that owner in every store when the session
  ends, so one visitor's upload cannot stay in memory for the next;
* with an optional **disk layer** (:class:`DiskLayer`): misses are read from the cache
  folder before being computed, and what is computed is written there (see
  :mod:`analysis.cache` for the folder, keys and atomic writes).

* **back to warm when idle**: :func:`mark_warm` records what a server's warm-up
  filled; :func:`trim` drops every other shared entry, which the server does once its
  last session has ended (what sixteen visitors' moves filled does not stay for none).

Every store registers itself by name; :func:`stores` lists them, :func:`stats` reports
their sizes (the server's memory report uses it) and :func:`clear_all` empties them.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

_REGISTRY: "weakref.WeakValueDictionary[str, Store]" = weakref.WeakValueDictionary()
_REGISTRY_LOCK = threading.Lock()
_MISSING = object()


def nbytes(value) -> int:
    """Bytes held by ``value``: its arrays (also inside tuples, lists, dicts, dataclasses
    and objects with an ``nbytes`` attribute); 0 for what it cannot size."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    size = getattr(value, "nbytes", None)
    if isinstance(size, (int, np.integer)):
        return int(size)
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    return 0


@dataclass(frozen=True)
class DiskLayer:
    """Where a store's entries are also kept on disk: ``load(key)`` returns the value or
    None (missing, unreadable, another version), ``save(key, value)`` writes it and
    never raises (a cache folder that cannot be written only makes the next process
    slower)."""

    load: Callable[[Hashable], Any]
    save: Callable[[Hashable, Any], None]


class _Entry:
    __slots__ = ("value", "size", "owners")

    def __init__(self, value, size, owners):
        self.value, self.size, self.owners = value, size, owners


class Store:
    """A named, bounded, thread-safe LRU cache shared by every session of the process.

    Parameters
    ----------
    name : str
        Unique name (reported by :func:`stats`); a second store of the same name
        replaces the first in the registry.
    max_entries : int
        At most this many entries.
    max_bytes : int, optional
        About at most this many bytes (sized by :func:`nbytes`); the most recent entry
        is kept even when it alone is larger.
    disk : DiskLayer, optional
        Read misses from, and write computed values to, the cache folder.
    """

    def __init__(self, name: str, max_entries: int = 8, max_bytes: int | None = None,
                 disk: DiskLayer | None = None):
        if max_entries < 1:
            raise ValueError(f"{name}: max_entries must be at least 1")
        self.name, self.max_entries, self.max_bytes, self.disk = name, max_entries, max_bytes, disk
        self._items: "OrderedDict[Hashable, _Entry]" = OrderedDict()
        self._lock = threading.RLock()
        self._computing: dict = {}
        self._warm: set = set()
        self.hits = self.misses = 0
        with _REGISTRY_LOCK:
            _REGISTRY[name] = self

    # ------------------------------------------------------------------ reading
    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._items)

    def get(self, key, default=None):
        """The value at ``key`` (marked recently used), or ``default``."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return default
            self._items.move_to_end(key)
            self.hits += 1
            return entry.value

    # ------------------------------------------------------------------ writing
    def put(self, key, value, owner: Hashable | None = None):
        """Keep ``value`` at ``key`` (for ``owner`` when given); return the value kept
        (the one already there, if another thread put it first)."""
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                if owner is not None and entry.owners is not None:
                    entry.owners.add(owner)
                elif owner is None:
                    entry.owners = None  # shared from now on
                self._items.move_to_end(key)
                return entry.value
            self._items[key] = _Entry(value, nbytes(value), None if owner is None else {owner})
            self._evict()
            return value

    def get_or_compute(self, key, compute: Callable[[], Any], owner: Hashable | None = None):
        """The value at ``key``; on a miss read from the disk layer or ``compute()``d,
        once: whoever asks meanwhile waits for that computation. An error is raised to
        every waiter and nothing is kept."""
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            if owner is not None:
                self.put(key, value, owner)
            return value
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            try:
                value = self.get(key, _MISSING)
                if value is not _MISSING:
                    return value if owner is None else self.put(key, value, owner)
                value = self.disk.load(key) if self.disk is not None else None
                if value is None:
                    value = compute()
                    if self.disk is not None:
                        self.disk.save(key, value)
                with self._lock:
                    self.misses += 1
                return self.put(key, value, owner)
            finally:
                with self._lock:
                    if self._computing.get(key) is key_lock:
                        del self._computing[key]

    def _evict(self) -> None:
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)
        if self.max_bytes is not None:
            total = sum(e.size for e in self._items.values())
            while total > self.max_bytes and len(self._items) > 1:
                _, entry = self._items.popitem(last=False)
                total -= entry.size

    # ------------------------------------------------------------------ dropping
    def discard(self, match: Callable[[Hashable], bool]) -> int:
        """Drop every entry whose key ``match(key)`` accepts; return how many."""
        with self._lock:
            keys = [k for k in self._items if match(k)]
            for k in keys:
                del self._items[k]
            return len(keys)

    def release(self, owner: Hashable) -> int:
        """``owner`` (a session) is gone: drop the entries only it held; entries other
        owners hold stay theirs. Return how many were dropped."""
        with self._lock:
            dropped = []
            for k, entry in self._items.items():
                if entry.owners is not None and owner in entry.owners:
                    entry.owners.discard(owner)
                    if not entry.owners:
                        dropped.append(k)
            for k in dropped:
                del self._items[k]
            return len(dropped)

    def mark_warm(self) -> None:
        """The entries held now are the warm set (a server's warm-up): what
        :meth:`trim` keeps."""
        with self._lock:
            self._warm = set(self._items)

    def trim(self) -> int:
        """Drop every shared entry outside the warm set (:meth:`mark_warm`): a server
        that no session uses any more goes back to its warm state. An entry a session
        still owns stays (it goes with :meth:`release`). Return how many were dropped."""
        with self._lock:
            dropped = [k for k, e in self._items.items()
                       if k not in self._warm and e.owners is None]
            for k in dropped:
                del self._items[k]
            return len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def stats(self) -> dict:
        """``{"entries", "bytes", "hits", "misses", "owned"}`` of this store."""
        with self._lock:
            return {"entries": len(self._items),
                    "bytes": sum(e.size for e in self._items.values()),
                    "hits": self.hits, "misses": self.misses,
                    "owned": sum(e.owners is not None for e in self._items.values())}

    def __repr__(self) -> str:
        s = self.stats()
        return f"Store({self.name!r}, {s['entries']}/{self.max_entries} entries, {s['bytes']} bytes)"


def stores() -> dict[str, Store]:
    """Every live store by name."""
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)


def release(owner: Hashable) -> int:
    """Drop ``owner``'s entries from every store (a session ended); return how many."""
    return sum(s.release(owner) for s in stores().values())


def mark_warm() -> None:
    """:meth:`Store.mark_warm` every store (the server's warm-up is done)."""
    for s in stores().values():
        s.mark_warm()


def trim() -> int:
    """:meth:`Store.trim` every store (no session left); return how many entries went."""
    return sum(s.trim() for s in stores().values())


def clear_all() -> None:
    """Empty every store (as a new process would start)."""
    for s in stores().values():
        s.clear()


def stats() -> dict[str, dict]:
    """:meth:`Store.stats` of every store, by name."""
    return {name: s.stats() for name, s in sorted(stores().items())}
