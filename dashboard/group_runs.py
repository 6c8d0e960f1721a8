"""The Group section's runs (a mixin of :class:`~dashboard.group.GroupPanel`): the Run
button's job, its progress and its end.

A run is a job (:mod:`dashboard.jobs`: capped per process, cancelled with its session,
its Dask futures then cancelled and released; the app keeps serving). While it runs the
progress bar shows (hidden by its inline style, its room kept: see
:mod:`dashboard.busy`) with the cluster's messages, at most one every
:data:`~dashboard.busy.REPORT_EVERY` seconds; a full run (subjects cleaned) disables the
Run button, a light one (a seed move, other permutations: the subjects already cleaned
on the workers) leaves it alone, since in the browser each switch of ``disabled`` lays
the whole page out again. A change made meanwhile runs again when the run ends.
"""

from __future__ import annotations

from analysis.errors import DataError
from dashboard import jobs
from dashboard.batch import batched
from dashboard.busy import percent, show_bar
from dashboard.notify import report_error
from dashboard.render.server import execute_in


class GroupRuns:
    """Start, cancel, progress and end of the Group section's runs. The panel provides
    ``model``, ``w_run``, ``progress``, ``status``, ``dask_link``, ``_doc``, ``_job``,
    ``_rerun``, ``_rerun_light``, ``_throttle`` (a :class:`~dashboard.busy.Throttle`)
    and ``_redraw``."""

    # ---- threads and the event loop --------------------------------------------------------
    def _served(self) -> bool:
        return self._doc is not None and self._doc.session_context is not None

    def _schedule(self, fn) -> None:
        """Run ``fn`` on the session's event loop (from any thread), or now outside a server."""
        if self._served():
            execute_in(self._doc, fn)
        else:
            fn()

    @property
    def job(self) -> jobs.Job | None:
        """The current (or last) run's job (dashboard/jobs.py); None before the first Run."""
        return self._job

    @property
    def busy(self) -> bool:
        return self._job is not None and self._job.state in ("queued", "running")

    def start(self, light: bool = False) -> jobs.Job | None:
        """Start a run as a job (dashboard/jobs.py: capped per process, cancelled with
        the session, its Dask futures released); a second press while running is ignored.

        ``light``: a re-run on subjects already cleaned (a seed move, other permutations):
        the progress bar says so but the Run button stays as it is (in the browser, its
        ``disabled`` switched on and off redraws the whole page twice, ~0.3 s a move)."""
        if self.busy:
            # e.g. the seed moved meanwhile: run again when done (light if all were)
            self._rerun_light = light and (self._rerun_light or not self._rerun)
            self._rerun = True
            return self._job
        self._rerun = False
        self._rerun_light = True
        self._throttle.reset()
        with batched():
            if not light:
                self.w_run.disabled = True
            show_bar(self.progress, True, value=0)
            self.status.object = "starting ..." if not light else "updating ..."
        self._job = jobs.submit(self._work, name="group-run", doc=self._doc, long=True,
                                on_queued=self._queued, on_done=lambda _: self._done(),
                                on_error=self._failed)
        return self._job

    def cancel(self) -> None:
        """Stop the running group run (its unfinished Dask futures are cancelled)."""
        if self._job is not None:
            self._job.cancel()

    def _queued(self, position: int) -> None:
        self.status.object = jobs.queued_message(position)

    def _work(self, job):
        from analysis.group import Cancelled

        try:
            self.model.run(progress=self._progress, cancel=job.cancel_event)
        except Cancelled:
            if not job.cancelled:   # not by us: say so
                raise DataError("the group run was cancelled") from None
            raise

    def _progress(self, fraction: float, message: str = "") -> None:
        """From the job's thread: at most one message to the page every
        :data:`~dashboard.busy.REPORT_EVERY` seconds until the last."""
        if not self._throttle.due(fraction):
            return
        value = percent(fraction)
        self._schedule(lambda: self._show_progress(value, message))

    def _show_progress(self, value: int, message: str) -> None:
        with batched():
            self.progress.value = value
            self.status.object = message
            link = self.model.dashboard_link
            if link and link not in self.dask_link.object:
                self.dask_link.object = f"[Dask dashboard]({link}) (workers, task stream)"

    def _idle(self) -> None:
        self.w_run.disabled = False
        show_bar(self.progress, False, value=0)

    def _failed(self, exc):
        with batched():
            self._idle()
            self.status.object = f"error: {report_error(exc)}"
        self._rerun = False

    def _done(self):
        with batched():   # the idle state and the new views: one message
            self._idle()
            self.status.object = ""
            self._redraw(move_crosshair=True)
        if self._rerun:
            self.start(light=self._rerun_light and self.model.result is not None)
