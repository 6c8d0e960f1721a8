"""Memory diagnostics for operators and the hostile-load benchmark (off by default).

``FMRI_EXPLORER_MEMORY_REPORT=FILE`` makes the server append one JSON line to FILE
every ``FMRI_EXPLORER_MEMORY_REPORT_S`` seconds (default 15): its RSS, the number of
open sessions, the live objects of the types that make up a session (Bokeh documents
and models, Panel and HoloViews objects, the project's tabs and analyses), and the
sizes of the project's process caches and, with no session open, the large numpy
arrays alive and what holds each (a dict's key, an object's type). Comparing a line
written before any session with one written after the last has closed tells a leak
(sessions' objects still alive) from memory that caches hold on purpose, or from heap
the allocator keeps.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
import threading
import time
from collections import Counter

from analysis import store

#: modules whose object counts are reported (by the type's module prefix)
WATCHED = ("bokeh.", "panel.", "holoviews.", "dashboard.", "analysis.", "param.")


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


#: the modules loaded by the previous snapshot (a module's code stays in memory for good)
_SEEN_MODULES: set = set()
_MODULES_LOCK = threading.Lock()


def snapshot(top: int = 40) -> dict:
    """RSS, open sessions, live objects by type (the ``top`` most numerous), the
    entries and bytes of every process store (:func:`analysis.store.stats`), and the
    modules loaded: their number, and those new since the previous snapshot (modules
    first imported by a session stay loaded after it: memory that never goes back)."""
    gc.collect()
    open_now = _open_sessions()
    # the arrays' holders cost a second or two of the GIL: listed with no session open
    types, arrays = _census(arrays=open_now == 0)
    counts: Counter = Counter()
    for cls in types:
        mod = getattr(cls, "__module__", "")
        if isinstance(mod, str) and mod.startswith(WATCHED):
            counts[f"{mod}.{cls.__qualname__}"] += 1
    sessions = {"open": open_now}
    modules = set(sys.modules)
    with _MODULES_LOCK:
        new = sorted(modules - _SEEN_MODULES) if _SEEN_MODULES else []
        _SEEN_MODULES.update(modules)
    return {"t": round(time.time(), 1), "rss_mb": round(_rss_mb(), 1), "sessions": sessions,
            "objects": dict(counts.most_common(top)), "stores": store.stats(),
            "modules": len(modules), "new_modules": new, "large_arrays": arrays,
            "malloc": malloc_stats(), "python_blocks": sys.getallocatedblocks()}


@functools.lru_cache(maxsize=None)
def _mallinfo2():
    """glibc's ``mallinfo2``, returning its ``struct mallinfo2`` (looked up once; ctypes
    loaded only then); None where there is none (not glibc, or glibc < 2.33)."""
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = Info
    return fn


def malloc_stats() -> dict:
    """glibc's view of the C heap (``mallinfo2``), MB: ``arenas`` (the heaps' size, brk and
    thread arenas), ``in_use`` and ``free`` in them, ``mmapped`` (large blocks mapped one
    by one, e.g. numpy arrays above the mmap threshold). What the RSS holds beyond them is
    Python's own object arenas (``python_blocks`` counts its blocks), BLAS buffers and
    code. Empty where there is no ``mallinfo2`` (not glibc, or glibc < 2.33)."""
    fn = _mallinfo2()
    if fn is None:
        return {}
    info = fn()
    mb = 2.0**20
    return {"arenas": round(info.arena / mb, 1), "in_use": round(info.uordblks / mb, 1),
            "free": round(info.fordblks / mb, 1), "mmapped": round(info.hblkhd / mb, 1)}


def _open_sessions():
    """The sessions open in this process (:func:`dashboard.jobs.live_sessions`)."""
    try:
        from dashboard import jobs

        return jobs.live_sessions()
    except Exception:  # noqa: BLE001 - a diagnostic never breaks the server
        return None


#: arrays of at least this many bytes are listed by :func:`snapshot` with their holders
LARGE_ARRAY = 2**20


#: the last census' seconds
_CENSUS_S = {"last": 0.0}
#: the switch interval (s) while the census holds references to every object
CENSUS_HOLD_S = 30.0


def _census(arrays: bool = True) -> tuple:
    """The types of all objects the collector tracks, and the large numpy arrays they
    hold (owning their data, at least :data:`LARGE_ARRAY` bytes): (MB, shape, dtype, the
    holder: type, and the key for a dict), largest first.

    ``gc.get_objects()`` hands out references to every tracked object, among them a tuple
    another thread is still building from a generator; should that thread run while
    they are held, CPython fails its build ("SystemError: bad argument to internal
    function": seen in a served session's HoloViews call). So the GIL is kept (no thread
    switch) until those references are dropped, before this returns."""
    interval = sys.getswitchinterval()
    # no thread switch for the census' duration, however long (a big process' scan took
    # longer than twice the last one's time: a switch then came mid-scan) ...
    sys.setswitchinterval(CENSUS_HOLD_S)
    enabled = gc.isenabled()
    gc.disable()   # no collection (and no finalizer letting the GIL go) meanwhile
    try:
        time.sleep(0)   # a thread's pending request for the GIL is served now, not later
        t0 = time.perf_counter()
        # the references live in _scan's frame only: gone when it returns
        types, found = _scan(arrays)
        _CENSUS_S["last"] = time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()
        sys.setswitchinterval(interval)
        # ... and right after it the threads that waited get the GIL (a real sleep lets
        # it go), not only once their long wait times out
        time.sleep(0.001)
    return types, sorted(found.values(), reverse=True)[:30]


def _scan(arrays: bool) -> tuple:
    """:func:`_census`'s work: plain data out, no reference to a listed object."""
    import numpy as np

    types, found = [], {}

    def look(value, holder, container):
        if type(value) is np.ndarray:
            if value.base is None and value.nbytes >= LARGE_ARRAY and id(value) not in found:
                if type(container) is dict:
                    holder += "[" + next((str(k)[:40] for k, v in container.items()
                                          if v is value), "?") + "]"
                found[id(value)] = (round(value.nbytes / 2**20, 1), list(value.shape),
                                    str(value.dtype), holder)
            return True
        return False

    for obj in gc.get_objects():
        kind = type(obj)
        types.append(kind)
        if not arrays:
            continue
        name = f"{kind.__module__}.{kind.__qualname__}"
        for value in gc.get_referents(obj):
            if look(value, name, obj):
                continue
            # a dict, list or tuple of arrays only is not tracked by the collector: its
            # arrays are found through the tracked object holding it (an __dict__...)
            if type(value) in (dict, list, tuple) and not gc.is_tracked(value):
                for inner in gc.get_referents(value):
                    look(inner, name, value)
    return types, found


class Reporter(threading.Thread):
    """The daemon thread appending a :func:`snapshot` to ``path`` every ``every`` s."""

    def __init__(self, path: str, every: float):
        super().__init__(name="fmri-explorer-memory-report", daemon=True)
        self.path, self.every = path, every
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                line = json.dumps(snapshot())
                with open(self.path, "a") as fh:
                    fh.write(line + "\n")
            except Exception as exc:  # noqa: BLE001 - a diagnostic never breaks the server
                print(f"fmri-explorer: memory report failed: {type(exc).__name__}: {exc}",
                      flush=True)
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()


def start(path: str | None = None, every: float | None = None) -> Reporter | None:
    """Start a :class:`Reporter` (None unless ``path`` or ``$FMRI_EXPLORER_MEMORY_REPORT``)."""
    path = path or os.environ.get("FMRI_EXPLORER_MEMORY_REPORT")
    if not path:
        return None
    every = float(every or os.environ.get("FMRI_EXPLORER_MEMORY_REPORT_S", 15))
    reporter = Reporter(path, every)
    reporter.start()
    return reporter
