"""The Decoding tab's permutation test: started, followed and cancelled from the tab.

A mixin of :class:`DecodingTab` (:class:`PermutationControls`): Run starts the
analysis' permutations (at most :data:`MAX_APP_PERMUTATIONS`) as a job
(:mod:`dashboard.jobs`: capped per process, queued with its position shown,
cancelled with the session), Cancel stops them; the worker thread's progress,
status and result are handed to the session's event loop and shown in one go.
The cheap test the tab runs by itself after each change, and the p beside the
accuracy, are :mod:`.auto_p`'s (:class:`AutoPermutations`, a base of this mixin).
"""

from __future__ import annotations

import threading

from analysis.errors import DataError
from dashboard import jobs
from dashboard.batch import in_batch, serialized, soon
from dashboard.busy import show_bar
from dashboard.notify import notify_errors, safe_markdown

from .auto_p import AutoPermutations

#: Most permutations the app runs in one test (the CLI may run more).
MAX_APP_PERMUTATIONS = 10_000


class PermutationControls(AutoPermutations):
    """Run / Cancel of the permutation test and its progress (a mixin of :class:`DecodingTab`)."""

    @property
    def permutation_job(self) -> jobs.Job | None:
        """The job of the latest permutation test started here (its ``state``,
        queue ``position``, ``wait()``), None before the first."""
        return self._perm_job

    @notify_errors
    @serialized
    def start_permutations(self):
        """Run the permutation test of the current parameters (the Run button) as a job:
        ``w_perms.value`` permutations, at most :data:`MAX_APP_PERMUTATIONS`; a test
        running already (the automatic one too) is cancelled. Errors are notified, not
        raised."""
        n = int(self.w_perms.value)
        if n > MAX_APP_PERMUTATIONS:
            raise DataError(f"at most {MAX_APP_PERMUTATIONS:,} permutations in the app "
                            f"(asked for {n:,}); run more with the command line")
        self.analysis.n_permutations = n
        self.analysis.scores()  # errors (bad folds...) surface here, not in the job
        if self._perm_job is not None:
            self._perm_job.cancel()
        self._stop_auto()   # Run's test replaces it (its p stays until Run's is there)
        a = self.analysis
        a.cancel_permutations(wait=False)
        show_bar(self.progress, True, value=0)
        self.w_run.disabled = True
        self.w_cancel.disabled = False
        cancel = threading.Event()
        a._begin_permutations(cancel)

        def work(job):
            job.on_cancel(cancel.set)   # the session left, or Cancel: the test stops
            if job.cancelled or cancel.is_set():
                return None
            a.permutation_status = f"running {a.n_permutations} permutations"
            return a.run_permutations(cancel)

        def queued(position):
            if a.permutation_running and not cancel.is_set():
                a.permutation_status = jobs.queued_message(position)

        def cancelled():
            if a._cancel is cancel and a.permutation_running:
                a.param.update(permutation_running=False,
                               permutation_status="permutation test cancelled")

        self._perm_job = jobs.submit(work, name="permutations", doc=self._doc, long=True,
                                     on_queued=queued, on_cancelled=cancelled)

    @serialized
    def cancel_permutations(self):
        """Stop the permutation test, queued or running (the Cancel button)."""
        if self._perm_job is not None:
            self._perm_job.cancel()
        self.analysis.cancel_permutations(wait=False)

    def _on_permutation_event(self, *events):
        """Called from the worker thread: hand the update to the session's event loop."""
        soon(self._doc, self._apply_permutation_state)

    @in_batch  # one message: the status never says "p = " before the line shows p
    def _apply_permutation_state(self):
        a = self.analysis
        self.progress.value = int(round(1000 * a.permutation_progress))
        self.perm_status.object = a.permutation_status
        self.w_run.disabled = a.permutation_running
        self.w_cancel.disabled = not a.permutation_running
        show_bar(self.progress, a.permutation_running)
        if a.permutation_result is not self._null_shown:
            self._show_null()
            self.summary.object = self._safe_summary()
        self._render_p()

    def _safe_summary(self) -> str:
        try:
            return safe_markdown(self._summary_text())
        except Exception:  # noqa: BLE001 - keep the last good text
            return self.summary.object

