"""One background-job API for the CLI and the app: progress, cancel, result or error to
the caller (issue 14).

Heavy work (a permutation test, a cleaning, an upload's masking, a decomposition, a
group run) is a function ``fn(job)`` run by a :class:`JobRegistry`:

* **A cap per process.** At most ``$FMRI_EXPLORER_MAX_JOBS`` (default 2) jobs run at
  once; the others wait in a first-in first-out queue and their ``on_queued(position)``
  callback says where they are.
* **Room for quick work.** A job submitted ``long=True`` (a permutation test, a group
  run, an upload's masking: minutes) may use all slots but one (with one slot: that
  one): one slot always stays for the quick jobs (a tab's structural change, seconds),
  which also pass queued long jobs. Without it a visitor's new C waited behind other
  visitors' permutation tests and group runs (the hostile-load run: moves unanswered
  after 30 s).
* **Owned.** A job may have an ``owner`` (the app: a session's id):
  :meth:`JobRegistry.cancel_session` cancels its running jobs (their cancel event set,
  their ``on_cancel`` hooks called, e.g. to release Dask futures) and drops its queued
  ones. Work functions report progress through :meth:`Job.progress` (or check
  ``job.cancelled``, or call :meth:`Job.check`) often enough to stop within
  :data:`STOP_WITHIN` seconds.
* **Results to the caller.** ``on_done(result)``, ``on_error(exc)``,
  ``on_cancelled()``... go through the job's ``deliver`` (the app: the session's event
  loop, see :mod:`dashboard.jobs`; by default: in the job's thread), never
  ``on_done`` after a cancel.
* **Progress** goes to ``on_progress(fraction, message)``: the CLI's console bar
  (:func:`run`), the app's progress bar (:mod:`dashboard.busy`).

:func:`run` is the foreground form the CLI uses: the work runs as a job while the
terminal shows its progress bar; Ctrl-C cancels it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from typing import Any, Callable, Hashable

log = logging.getLogger("fmri_explorer.jobs")

#: Environment variable: heavy jobs that may run at once in one process.
MAX_JOBS_ENV = "FMRI_EXPLORER_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
#: A job must stop this many seconds after it is cancelled (the tests check it).
STOP_WITHIN = 5.0


def max_jobs() -> int:
    """``$FMRI_EXPLORER_MAX_JOBS`` (default 2), at least 1."""
    try:
        return max(1, int(os.environ.get(MAX_JOBS_ENV, DEFAULT_MAX_JOBS)))
    except ValueError:
        return DEFAULT_MAX_JOBS


class Cancelled(RuntimeError):
    """Raised inside a job's work when it was cancelled (see :meth:`Job.check`)."""


def _now(fn: Callable[[], Any]) -> None:
    fn()


class Job:
    """One unit of heavy work. ``fn(job)`` runs in its own thread once a slot is free."""

    _ids = itertools.count(1)

    def __init__(self, registry: "JobRegistry", fn, name: str, owner: Hashable | None = None,
                 deliver: Callable[[Callable[[], Any]], None] | None = None,
                 on_done=None, on_error=None, on_queued=None, on_start=None,
                 on_cancelled=None, on_progress=None, long: bool = False):
        self.id = next(self._ids)
        self.long = bool(long)
        self.registry = registry
        self.fn = fn
        self.name = name
        self.owner = owner
        self.deliver = deliver or _now
        self.on_progress = on_progress
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

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (from the work's thread): raises :class:`Cancelled` once the
        job is cancelled, else hands ``(fraction, message)`` to ``on_progress`` (a
        console bar in the CLI; the app's progress bar, which delivers it to its page)."""
        self.check()
        if self.on_progress is not None:
            self.on_progress(fraction, message)

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
        return f"<Job {self.id} {self.name!r} {self.state} owner={self.owner}>"


class JobRegistry:
    """Heavy jobs: a cap on running ones, a FIFO queue, cancel per owner (a session)."""

    def __init__(self, max_jobs: int | None = None):
        self._max = max_jobs
        self._lock = threading.RLock()
        self._running: list[Job] = []
        self._queue: collections.deque[Job] = collections.deque()

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
            return [j for j in self._running if session is None or j.owner == session]

    def queued(self, session: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._queue if session is None or j.owner == session]

    def jobs(self, session: str | None = None) -> list[Job]:
        return self.running(session) + self.queued(session)

    @property
    def max_long(self) -> int:
        """Slots long jobs may take: all but one (one slot: that one)."""
        return max(1, self.max_jobs - 1)

    def position(self, job: Job) -> int:
        """A queued job's place (1: next to start), 0 if not queued: a quick job comes
        after the quick ones queued before it (it passes the long ones), a long job after
        the long ones queued before it and every queued quick one."""
        with self._lock:
            waiting = list(self._queue)
        if job not in waiting:
            return 0
        at = waiting.index(job)
        if job.long:
            return 1 + sum(1 for k, j in enumerate(waiting) if not j.long or k < at)
        return 1 + sum(1 for j in waiting[:at] if not j.long)

    # ---- submitting
    def submit(self, fn: Callable[[Job], Any], *, name: str = "job", owner=None,
               deliver=None, on_done=None, on_error=None, on_queued=None, on_start=None,
               on_cancelled=None, on_progress=None, long: bool = False) -> Job:
        """Queue ``fn(job)``; it starts in its own thread as soon as fewer than
        :attr:`max_jobs` run (``long``: fewer than :attr:`max_long` long ones too;
        quick jobs pass queued long ones).

        Callbacks (each optional) go through ``deliver`` (e.g. onto a session's event
        loop; by default they run in the job's thread): ``on_queued(position)`` while it
        waits (and whenever its place changes), ``on_start()``, ``on_done(result)``,
        ``on_error(exc)`` (an exception of ``fn`` other than :class:`Cancelled`),
        ``on_cancelled()``. After a cancel only ``on_cancelled`` runs: the caller has
        moved on (or is gone). ``on_progress(fraction, message)`` is called from the
        job's thread by :meth:`Job.progress`.
        """
        job = Job(self, fn, name, owner, deliver, on_done, on_error, on_queued, on_start,
                  on_cancelled, on_progress, long=long)
        with self._lock:
            self._queue.append(job)
        self._start_queued()
        if job.state == "queued":
            self._tell_positions()
        return job

    # ---- running
    def _start_queued(self) -> None:
        started = []
        with self._lock:
            while len(self._running) < self.max_jobs:
                # the first queued job that may start: a long one only while fewer than
                # max_long long ones run
                room = sum(j.long for j in self._running) < self.max_long
                job = next((j for j in self._queue if room or not j.long), None)
                if job is None:
                    break
                self._queue.remove(job)
                job.state = "running"
                job.started = time.monotonic()
                self._running.append(job)
                job.thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                              name=f"job-{job.id}-{job.name}")
                started.append(job)
        for job in started:
            if job.on_start is not None:
                job.deliver(job.on_start)
            job.thread.start()
        if started:
            self._tell_positions()

    def _tell_positions(self) -> None:
        with self._lock:
            waiting = list(self._queue)
        for job in waiting:
            if job.on_queued is not None:
                i = self.position(job)
                job.deliver(lambda job=job, i=i: job.on_queued(i)
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
                job.deliver(lambda: None if (
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
                job.deliver(job.on_cancelled)
            self._tell_positions()

    def cancel_session(self, session: Hashable | None) -> list[Job]:
        """Cancel every job of the owner ``session`` (queued ones are dropped); return
        them."""
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


def run(fn: Callable[[Job], Any], *, name: str = "job", progress=None,
        registry: JobRegistry | None = None):
    """Run ``fn(job)`` as a job and wait for it (the CLI): its :meth:`Job.progress`
    reports go to ``progress`` (e.g. :func:`analysis.progress.console_progress`); its
    result is returned, its error raised. Ctrl-C cancels the job, waits up to
    :data:`STOP_WITHIN` s for it to stop and raises ``KeyboardInterrupt``."""
    registry = registry or JobRegistry(max_jobs=1)
    # the error is raised to the caller below (not logged as an unhandled job's)
    job = registry.submit(fn, name=name, on_progress=progress, on_error=lambda exc: None)
    try:
        while not job.wait(0.1):
            pass
    except KeyboardInterrupt:
        job.cancel()
        job.wait(STOP_WITHIN)
        raise
    if job.state == "failed":
        raise job.error
    if job.state == "cancelled":
        raise Cancelled(f"{name} cancelled")
    return job.result
