"""Heavy background work of the app: the job API of :mod:`analysis.jobs`, served.

Every heavy computation a visitor can start (a permutation test, a cleaning, an
upload's masking or cleaning, a group run) goes through :func:`submit`, the process'
:class:`JobRegistry` (:class:`analysis.jobs.JobRegistry` plus sessions):

* **A cap per process.** At most ``$FMRI_EXPLORER_MAX_JOBS`` (default 2) jobs
  run at once; the others wait in a first-in first-out queue and their
  ``on_queued(position)`` callback tells the visitor "queued, position N".
* **Owned by a session.** A job started in a served session belongs to it:
  when the session is destroyed (Bokeh's ``on_session_destroyed``), or when its
  page has been disconnected for :data:`DISCONNECT_GRACE` seconds (a closed
  tab: Bokeh only destroys an unused session 15-30 s later), its running jobs
  get their cancel event set (and their ``on_cancel`` hooks called, e.g. to
  release Dask futures) and its queued jobs are dropped. Work functions check
  ``job.cancelled`` (or call :meth:`Job.check`, or raise from a progress
  callback) often enough to stop within :data:`STOP_WITHIN` seconds.
* **Server shutdown.** :func:`cancel_all` cancels every job of the process and
  waits (bounded) for the running ones to stop: wire it to SIGTERM / the
  server's shutdown.
* **Results on the session's event loop.** ``on_done(result)`` and
  ``on_error(exc)`` run on the owning document's event loop (as
  :func:`dashboard.batch.soon` does), never after the job was cancelled; outside
  a server (tests, notebooks without a document) they run in the job's thread.

The module is Panel-light: a ``doc`` is any Bokeh document (``None`` outside a
server).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from analysis.jobs import (DEFAULT_MAX_JOBS, MAX_JOBS_ENV, STOP_WITHIN,  # noqa: F401
                           Cancelled, Job, max_jobs)
from analysis.jobs import JobRegistry as _JobRegistry
from dashboard.batch import served
from dashboard.render.server import connection_count, run_in

log = logging.getLogger("fmri_explorer.jobs")

#: Seconds a session's page may stay disconnected before its jobs are cancelled.
DISCONNECT_GRACE = 2.0
#: How often the registry looks at its sessions' connections (s).
POLL_S = 0.5


def session_key(doc) -> str | None:
    """The id of ``doc``'s server session (None outside a server)."""
    if not served(doc):
        return None
    return str(doc.session_context.id)


def _connection_count(doc) -> int | None:
    """Open websocket connections of ``doc``'s session (None if unknown)."""
    return connection_count(doc)


def deliver(doc, fn: Callable[[], Any]) -> None:
    """Run ``fn`` on ``doc``'s event loop (from any thread); outside a server, now."""
    if not served(doc):
        fn()
        return
    try:
        # with the session's document as Panel's current one (Panel's context-local one
        # too, as in the session's own callbacks): what ``fn`` updates is this session's
        doc.add_next_tick_callback(lambda: run_in(doc, fn))
    except Exception:  # noqa: BLE001 - the session is gone: nobody to tell
        log.debug("could not deliver to a closed session", exc_info=True)


class JobRegistry(_JobRegistry):
    """The server's registry: a job submitted with a ``doc`` belongs to its session (the
    job's ``owner``), its callbacks run on that session's event loop, and its session's
    end or closed page cancels it."""

    def __init__(self, max_jobs: int | None = None):
        super().__init__(max_jobs)
        self._hooked: set = set()            # session ids with a destroy hook
        self._docs: dict = {}                # session id -> its document
        self._seen_connected: dict = {}      # session id -> ever connected
        self._disconnected_since: dict = {}  # session id -> monotonic time
        self._monitor: threading.Thread | None = None

    def submit(self, fn: Callable[[Job], Any], *, name: str = "job", doc=None,
               **callbacks) -> Job:
        """Queue ``fn(job)`` for ``doc``'s session (see
        :meth:`analysis.jobs.JobRegistry.submit` for the callbacks, which run on
        ``doc``'s event loop)."""
        session = session_key(doc)
        if session is not None:
            self._hook_session(doc, session)
            if (_connection_count(doc) or 0) > 0:   # a visitor's action: the page is there
                with self._lock:
                    self._seen_connected[session] = True
        return super().submit(fn, name=name, owner=session,
                              deliver=lambda f: deliver(doc, f), **callbacks)

    def _hook_session(self, doc, session: str) -> None:
        with self._lock:
            if session in self._hooked:
                return
            self._hooked.add(session)
            self._docs[session] = doc
        try:
            doc.on_session_destroyed(lambda ctx, s=session: self._session_gone(s))
        except Exception:  # noqa: BLE001 - the disconnect monitor still applies
            log.debug("could not hook the session's destruction", exc_info=True)
        self._ensure_monitor()

    def _session_gone(self, session: str) -> None:
        self.cancel_session(session)
        with self._lock:
            self._hooked.discard(session)
            self._docs.pop(session, None)
            self._seen_connected.pop(session, None)
            self._disconnected_since.pop(session, None)

    # ---- closed pages
    def _ensure_monitor(self) -> None:
        with self._lock:
            if self._monitor is not None and self._monitor.is_alive():
                return
            self._monitor = threading.Thread(target=self._watch, daemon=True,
                                             name="jobs-monitor")
            self._monitor.start()

    def _watch(self) -> None:
        """Cancel the jobs of a session whose page has been gone for DISCONNECT_GRACE s."""
        while True:
            time.sleep(POLL_S)
            try:
                self.check_connections()
            except Exception:  # noqa: BLE001 - keep watching
                log.debug("connection check failed", exc_info=True)
            with self._lock:
                if not self._hooked:
                    self._monitor = None
                    return

    def check_connections(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            owners = {job.owner for job in self.jobs() if job.owner is not None}
            docs = {s: self._docs[s] for s in owners if s in self._docs}
        for session, doc in docs.items():
            count = _connection_count(doc)
            if count is None:
                continue
            with self._lock:
                if count > 0:
                    self._seen_connected[session] = True
                    self._disconnected_since.pop(session, None)
                    continue
                if not self._seen_connected.get(session):
                    continue  # not connected yet (the page is loading)
                since = self._disconnected_since.setdefault(session, now)
            if now - since >= DISCONNECT_GRACE:
                log.info("session %s disconnected: cancelling its jobs", session)
                self.cancel_session(session)




#: The process's registry (one per server process).
REGISTRY = JobRegistry()


def submit(fn: Callable[[Job], Any], **kwargs) -> Job:
    """Submit ``fn(job)`` to the process's registry (see :meth:`JobRegistry.submit`)."""
    return REGISTRY.submit(fn, **kwargs)


def cancel_session(session: str | None) -> list[Job]:
    return REGISTRY.cancel_session(session)


def cancel_all(timeout: float = STOP_WITHIN) -> bool:
    """Server shutdown: cancel every queued and running job of this process and wait up
    to ``timeout`` s for them to stop (wire it to SIGTERM). True if all stopped."""
    return REGISTRY.cancel_all(timeout)


def queued_message(position: int) -> str:
    """What a visitor reads while their job waits for a free slot."""
    return f"queued, position {position} (the server runs {REGISTRY.max_jobs} heavy " \
           "jobs at a time)"


#: Seconds after the last session ended before the memory is handed back (one pass for
#: the several sessions that often end together).
RELEASE_AFTER = 5.0
_RELEASE = {"timer": None}
_RELEASE_LOCK = threading.Lock()


def release_memory() -> int:
    """Collect cycles (a closed session's models, views and figures form many) and hand
    the freed heap back to the system (glibc's ``malloc_trim``; elsewhere a no-op).

    Without it the server's memory stayed a third above its start a minute after the
    hostile-load run's sessions had closed. Returns the objects the collector freed."""
    import gc

    freed = gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return freed


#: Sessions of this process not yet ended (:func:`session_started`, :func:`session_ended`).
_LIVE = {"sessions": 0}


def session_started() -> None:
    """A served session has begun (counted for :func:`release_memory_soon`)."""
    with _RELEASE_LOCK:
        _LIVE["sessions"] += 1


def session_ended() -> None:
    """A served session has ended: its memory goes back soon (:func:`release_memory_soon`)."""
    with _RELEASE_LOCK:
        _LIVE["sessions"] = max(0, _LIVE["sessions"] - 1)
    release_memory_soon()


def live_sessions() -> int:
    """Sessions begun and not ended in this process."""
    with _RELEASE_LOCK:
        return _LIVE["sessions"]


def release_memory_soon(delay: float | None = None) -> None:
    """:func:`release_memory` in ``delay`` s, once for every session ended meanwhile;
    if no session is left then, the process' stores first go back to their warm
    entries (:func:`analysis.store.trim`)."""
    def run():
        with _RELEASE_LOCK:
            _RELEASE["timer"] = None
        if live_sessions() == 0:
            from analysis import store

            store.trim()
        release_memory()

    with _RELEASE_LOCK:
        if _RELEASE["timer"] is not None:
            return
        timer = threading.Timer(RELEASE_AFTER if delay is None else delay, run)
        timer.daemon = True
        _RELEASE["timer"] = timer
        timer.start()


__all__ = ["Cancelled", "Job", "JobRegistry", "REGISTRY", "submit", "cancel_session",
           "cancel_all", "max_jobs", "queued_message", "deliver", "session_key",
           "release_memory", "release_memory_soon", "session_started", "session_ended",
           "live_sessions"]
