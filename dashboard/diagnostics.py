"""Memory diagnostics for operators and the hostile-load benchmark (off by default).

``FMRI_EXPLORER_MEMORY_REPORT=FILE`` makes the server append one JSON line to FILE
every ``FMRI_EXPLORER_MEMORY_REPORT_S`` seconds (default 15): its RSS, the number of
open sessions, the live objects of the types that make up a session (Bokeh documents
and models, Panel and HoloViews objects, the project's tabs and analyses), and the
sizes of the project's process caches. Comparing a line written before any session with
one written after the last has closed tells a leak (sessions' objects still alive) from
memory that caches hold on purpose, or from heap the allocator keeps.
"""

from __future__ import annotations

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
    counts: Counter = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        mod = getattr(cls, "__module__", "")
        if isinstance(mod, str) and mod.startswith(WATCHED):
            counts[f"{mod}.{cls.__qualname__}"] += 1
    sessions = None
    try:
        import panel as pn

        sessions = len(pn.state.session_info.get("sessions", {})) if pn.state.session_info else None
        live = sum(1 for s in pn.state.session_info.get("sessions", {}).values()
                   if s.get("ended") is None)
        sessions = {"recorded": sessions, "open": live}
    except Exception:  # noqa: BLE001 - a diagnostic never breaks the server
        pass
    modules = set(sys.modules)
    with _MODULES_LOCK:
        new = sorted(modules - _SEEN_MODULES) if _SEEN_MODULES else []
        _SEEN_MODULES.update(modules)
    return {"t": round(time.time(), 1), "rss_mb": round(_rss_mb(), 1), "sessions": sessions,
            "objects": dict(counts.most_common(top)), "stores": store.stats(),
            "modules": len(modules), "new_modules": new}


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
