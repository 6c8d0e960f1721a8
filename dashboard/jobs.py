"""Heavy background work of the app: capped per process, owned by a session, cancellable.

Every heavy computation a visitor can start (a permutation test, a cleaning, an
upload's masking or cleaning, a group run) goes through :func:`submit`:

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

import collections
import itertools
import logging
import os
import threading
import time
from typing import Any, Callable

from dashboard.batch import served
from dashboard.render.server import connection_count

log = logging.getLogger("fmri_explorer.jobs")

#: Environment variable: heavy jobs that may run at once in one server process.
MAX_JOBS_ENV = "FMRI_EXPLORER_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
#: A job must stop this many seconds after it is cancelled (the tests check it).
STOP_WITHIN = 5.0
#: Seconds a session's page may stay disconnected before its jobs are cancelled.
DISCONNECT_GRACE = 2.0
#: How often the registry looks at its sessions' connections (s).
POLL_S = 0.5


def max_jobs() -> int:
    """``$FMRI_EXPLORER_MAX_JOBS`` (default 2), at least 1."""
    try:
        return max(1, int(os.environ.get(MAX_JOBS_ENV, DEFAULT_MAX_JOBS)))
    except ValueError:
        return DEFAULT_MAX_JOBS


class Cancelled(RuntimeError):
    """Raised inside a job's work when it was cancelled (see :meth:`Job.check`)."""


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
        doc.add_next_tick_callback(fn)
    except Exception:  # noqa: BLE001 - the session is gone: nobody to tell
        log.debug("could not deliver to a closed session", exc_info=True)


class Job:
    """One unit of heavy work. ``fn(job)`` runs in its own thread once a slot is free."""

    _ids = itertools.count(1)

    def __init__(self, registry: "JobRegistry", fn, name: str, doc, session: str | None,
                 on_done=None, on_error=None, on_queued=None, on_start=None,
                 on_cancelled=None):
        self.id = next(self._ids)
        self.registry = registry
        self.fn = fn
        self.name = name
        self.doc = doc
        self.session = session
        self.on_done = on_done
        self.on_error = on_error
        self.on_queued = on_queued
        self.on_start = on_start
        self.on_cancelled = on_cancelled
        self.cancel_event = threading.Event()
        self.state = "queued"        # queued, running, done, failed, cancelled
        self.thread: threading.Thread | None = None
        self.result = None
        self.error: BaseException | None = None
        self.created = time.monotonic()
        self.started: float | None = None
        self.finished = threading.Event()
        self._cancel_hooks: list = []

    # ---- inside the work
    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled (call it often)."""
        if self.cancel_event.is_set():
            raise Cancelled(f"{self.name} cancelled")

    def on_cancel(self, hook: Callable[[], Any]) -> None:
        """Call ``hook()`` (from the cancelling thread) when the job is cancelled, e.g. to
        cancel Dask futures; at once if it already is."""
        self._cancel_hooks.append(hook)
        if self.cancel_event.is_set():
            self._run_hook(hook)

    def guarded(self, progress: Callable | None) -> Callable:
        """``progress`` that raises :class:`Cancelled` once the job is cancelled (so a
        computation that reports progress stops at its next report)."""
        def report(*args, **kwargs):
            self.check()
            if progress is not None:
                progress(*args, **kwargs)
        return report

    # ---- outside
    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def position(self) -> int:
        """1-based place in the queue (0 when not queued)."""
        return self.registry.position(self)

    def cancel(self) -> None:
        """Cancel: a queued job is dropped, a running one is told to stop."""
        self.registry.cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended (done, failed, cancelled); True if it has."""
        return self.finished.wait(timeout)

    def _run_hook(self, hook) -> None:
        try:
            hook()
        except Exception:  # noqa: BLE001 - best effort
            log.debug("a cancel hook failed", exc_info=True)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name!r} {self.state} session={self.session}>"


class JobRegistry:
    """The process's heavy jobs: a cap on running ones, a FIFO queue, per-session cancel."""

    def __init__(self, max_jobs: int | None = None):
        self._max = max_jobs
        self._lock = threading.RLock()
        self._running: list[Job] = []
        self._queue: collections.deque[Job] = collections.deque()
        self._hooked: set = set()            # session ids with a destroy hook
        self._seen_connected: dict = {}      # session id -> ever connected
        self._disconnected_since: dict = {}  # session id -> monotonic time
        self._monitor: threading.Thread | None = None

    @property
    def max_jobs(self) -> int:
        return self._max if self._max is not None else max_jobs()

    @max_jobs.setter
    def max_jobs(self, value: int | None) -> None:
        self._max = None if value is None else max(1, int(value))
        self._start_queued()

    # ---- queries
    def running(self, session: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._running if session is None or j.session == session]

    def queued(self, session: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._queue if session is None or j.session == session]

    def jobs(self, session: str | None = None) -> list[Job]:
        return self.running(session) + self.queued(session)

    def position(self, job: Job) -> int:
        with self._lock:
            try:
                return list(self._queue).index(job) + 1
            except ValueError:
                return 0

    # ---- submitting
    def submit(self, fn: Callable[[Job], Any], *, name: str = "job", doc=None,
               on_done=None, on_error=None, on_queued=None, on_start=None,
               on_cancelled=None) -> Job:
        """Queue ``fn(job)``; it starts as soon as fewer than :attr:`max_jobs` run.

        Callbacks (each optional) run on ``doc``'s event loop: ``on_queued(position)``
        while it waits (and whenever its place changes), ``on_start()``,
        ``on_done(result)``, ``on_error(exc)`` (an exception of ``fn`` other than
        :class:`Cancelled`), ``on_cancelled()``. After a cancel only ``on_cancelled``
        runs: the session has moved on (or is gone).
        """
        session = session_key(doc)
        job = Job(self, fn, name, doc, session, on_done, on_error, on_queued, on_start,
                  on_cancelled)
        if session is not None:
            self._hook_session(doc, session)
            if (_connection_count(doc) or 0) > 0:   # a visitor's action: the page is there
                with self._lock:
                    self._seen_connected[session] = True
        with self._lock:
            self._queue.append(job)
        self._start_queued()
        if job.state == "queued":
            self._tell_positions()
        return job

    def _hook_session(self, doc, session: str) -> None:
        with self._lock:
            if session in self._hooked:
                return
            self._hooked.add(session)
        try:
            doc.on_session_destroyed(lambda ctx, s=session: self._session_gone(s))
        except Exception:  # noqa: BLE001 - the disconnect monitor still applies
            log.debug("could not hook the session's destruction", exc_info=True)
        self._ensure_monitor()

    def _session_gone(self, session: str) -> None:
        self.cancel_session(session)
        with self._lock:
            self._hooked.discard(session)
            self._seen_connected.pop(session, None)
            self._disconnected_since.pop(session, None)

    # ---- running
    def _start_queued(self) -> None:
        started = []
        with self._lock:
            while self._queue and len(self._running) < self.max_jobs:
                job = self._queue.popleft()
                job.state = "running"
                job.started = time.monotonic()
                self._running.append(job)
                job.thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                              name=f"job-{job.id}-{job.name}")
                started.append(job)
        for job in started:
            if job.on_start is not None:
                deliver(job.doc, job.on_start)
            job.thread.start()
        if started:
            self._tell_positions()

    def _tell_positions(self) -> None:
        with self._lock:
            waiting = list(self._queue)
        for i, job in enumerate(waiting, start=1):
            if job.on_queued is not None:
                deliver(job.doc, lambda job=job, i=i: job.on_queued(i)
                        if job.state == "queued" else None)

    def _run(self, job: Job) -> None:
        outcome: Callable | None = None
        try:
            result = job.fn(job)
        except Cancelled:
            job.state = "cancelled"
        except BaseException as exc:  # noqa: BLE001 - handed to the session
            if job.cancelled:
                job.state = "cancelled"
            else:
                job.state, job.error = "failed", exc
                if job.on_error is not None:
                    outcome = lambda exc=exc: job.on_error(exc)  # noqa: E731
                else:
                    log.warning("job %s failed: %s", job.name, exc)
        else:
            if job.cancelled:
                job.state = "cancelled"
            else:
                job.state, job.result = "done", result
                if job.on_done is not None:
                    outcome = lambda: job.on_done(result)  # noqa: E731
        finally:
            with self._lock:
                if job in self._running:
                    self._running.remove(job)
        try:
            if job.state == "cancelled" and job.on_cancelled is not None:
                outcome = job.on_cancelled
            if outcome is not None:
                deliver(job.doc, lambda: None if (
                    job.cancelled and outcome is not job.on_cancelled) else outcome())
        except Exception:  # noqa: BLE001 - outside a server the callback ran here
            log.warning("a job's callback failed", exc_info=True)
        finally:
            job.finished.set()   # (outside a server: after its callback ran)
            self._start_queued()

    # ---- cancelling
    def cancel(self, job: Job) -> None:
        with self._lock:
            queued = job in self._queue
            if queued:
                self._queue.remove(job)
                job.state = "cancelled"
            job.cancel_event.set()
        for hook in list(job._cancel_hooks):
            job._run_hook(hook)
        if queued:
            job.finished.set()
            if job.on_cancelled is not None:
                deliver(job.doc, job.on_cancelled)
            self._tell_positions()

    def cancel_session(self, session: str | None) -> list[Job]:
        """Cancel every job of ``session`` (queued ones are dropped); return them."""
        if session is None:
            return []
        jobs = self.jobs(session)
        for job in jobs:
            self.cancel(job)
        return jobs

    def cancel_all(self, timeout: float = STOP_WITHIN) -> bool:
        """Cancel every job of the process (server shutdown) and wait up to ``timeout``
        seconds for the running ones to stop. True if all stopped."""
        with self._lock:
            jobs = list(self._queue) + list(self._running)
        for job in jobs:
            self.cancel(job)
        deadline = time.monotonic() + timeout
        for job in jobs:
            if not job.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

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
        docs = {}
        for job in self.jobs():
            if job.session is not None:
                docs.setdefault(job.session, job.doc)
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


def release_memory_soon(delay: float = RELEASE_AFTER) -> None:
    """:func:`release_memory` in ``delay`` s, once for every session ended meanwhile."""
    def run():
        with _RELEASE_LOCK:
            _RELEASE["timer"] = None
        release_memory()

    with _RELEASE_LOCK:
        if _RELEASE["timer"] is not None:
            return
        timer = threading.Timer(delay, run)
        timer.daemon = True
        _RELEASE["timer"] = timer
        timer.start()


__all__ = ["Cancelled", "Job", "JobRegistry", "REGISTRY", "submit", "cancel_session",
           "cancel_all", "max_jobs", "queued_message", "deliver", "session_key",
           "release_memory", "release_memory_soon"]
