"""The Decoding tab's automatic permutation p, shown beside the accuracy.

After each new result (a new C, CV scheme, pair of classes, mask, data source...)
the tab runs a cheap permutation test by itself (:data:`AUTO_PERMUTATIONS`, the
analysis' seed, as the Run button's path computes it) and its summary line says
``p = 0.0297 (100 permutations)``, or ``p <= 0.0099 (= 1/(n+1), 100 permutations)``
when no permuted score reached the observed one (:func:`p_summary`); Run with more
permutations refines it (:mod:`.permutations`).

The automatic test is background work, never in the way:

* **After the first result is shown.** Served, it starts once the page has loaded
  (and :data:`AUTO_FIRST_DELAY_MS` later), then :data:`AUTO_DELAY_MS` after each
  change (a slider dragged starts one test, for where it stops).
* **Cheap or not at all.** It is skipped ("p: press Run") when it would take more
  than :data:`AUTO_SECONDS`: estimated from the CV's fit time (a permutation is one
  CV fit on permuted labels; :data:`CV_TO_AUTO`) or from the earlier tests at the
  same size, then checked on the pace of its first tenth (it stops there if it would
  overrun, and in any case at twice the budget).
* **Low priority.** Its threads are ``nice``; it never waits in the server's job
  queue (:mod:`dashboard.jobs`): with no free slot it is skipped; no busy overlay.
* **Never piled up.** One per session at a time: a newer change (or Run) cancels it,
  and the next one starts only after it has stopped; the session's end cancels it
  (a job of the session). Its p is shown only for the parameters it was computed for.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import panel as pn

from analysis.decoding.engine import Cancelled as AnalysisCancelled
from analysis.decoding.engine import p_text
from dashboard import jobs
from dashboard.batch import in_batch, served
from dashboard.notify import safe_markdown
from dashboard.render.server import execute_in

log = logging.getLogger("fmri_explorer.dashboard")

#: Permutations of the automatic test (0: no automatic test).
AUTO_PERMUTATIONS = 100
#: Longest the automatic test may take (s); a longer one is left to the Run button.
AUTO_SECONDS = 5.0
#: Delay (ms) between a change's result and its automatic test (served): a slider
#: dragged through several values starts one test.
AUTO_DELAY_MS = 300
#: Delay (ms) after the page has loaded before the first automatic test (served).
AUTO_FIRST_DELAY_MS = 1000
#: ``nice`` increment of the automatic test's threads (the page's work goes first).
AUTO_NICE = 5
#: Permutations done before the run's own estimate (from their pace) may stop it.
PILOT = 4
#: Seconds of :data:`AUTO_PERMUTATIONS` (100) permutations per second of the tab's CV fit
#: (the scores and the fit on all samples): about 10 for the linear SVC on its Gram
#: matrix (measured, both sizes), far more for logistic regression; the estimate only
#: skips the clear cases, the first permutations catch the rest.
CV_TO_AUTO = 10.0


def p_summary(p: float, n_permutations: int) -> str:
    """The summary line's p: ``p = 0.0297 (100 permutations)``, or
    ``p <= 0.0099 (= 1/(n+1), 100 permutations)`` when no permuted score reached the
    observed one (the smallest p ``n`` permutations can report)."""
    n = int(n_permutations)
    floor = 1.0 / (n + 1.0)
    if p <= floor * (1 + 1e-9):
        return f"p <= {floor:.3g} (= 1/(n+1), {n} permutations)"
    return f"p = {p:.3g} ({n} permutations)"


def computing_text(n_permutations: int) -> str:
    """What the line says while a permutation test runs."""
    return f"p: computing ({int(n_permutations)} permutations) ..."


#: What the line says when no p is shown (too slow, server busy, cancelled).
PRESS_RUN = "p: press Run"


@dataclass
class TooSlow:
    """An automatic test stopped (or never started): ``seconds`` its permutations
    would have taken."""

    seconds: float


def _lower_priority() -> None:
    """Make the calling thread (and the threads it starts) yield the CPU to the page's."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), AUTO_NICE)
    except (AttributeError, OSError):  # not Linux: the test still runs, at normal priority
        pass


class AutoPermutations:
    """The automatic permutation test and the p beside the accuracy (a mixin of
    :class:`DecodingTab`, through :class:`.permutations.PermutationControls`)."""

    def _summary_panes(self):
        """The summary line's panes: the analysis' summary (``.summary``) and its p
        (``.summary-p``), side by side; the automatic test's state starts here."""
        self._auto_lock = threading.RLock()
        self._auto_gen = 0
        self._auto_job = None
        self._auto_key = None
        self._auto_result = None
        self._auto_state = "idle"   # pending, running, done, skipped, cancelled, failed
        self._auto_page_ready = False
        self._auto_waiting_load = False
        self._auto_costs: dict = {}   # size key -> seconds of AUTO_PERMUTATIONS
        summary = pn.pane.Markdown("", css_classes=["summary"], margin=(5, 10, 0, 10))
        p_line = pn.pane.Markdown("", css_classes=["summary-p"], margin=(5, 10, 0, 10))
        return summary, p_line

    def summary_line(self):
        """The summary and its p on one line (wrapping below when the page is narrow)."""
        return pn.FlexBox(self.summary, self.p_line, flex_wrap="wrap", align_items="baseline",
                          sizing_mode="stretch_width", margin=(0, 0, 5, 0))

    @property
    def auto_permutation_job(self) -> jobs.Job | None:
        """The job of the latest automatic permutation test (None before the first)."""
        return self._auto_job

    @property
    def shown_permutation_result(self):
        """The permutation test whose p the line shows (the Run button's, else the
        automatic one's, for the current parameters), or None."""
        a = self.analysis
        if a.permutation_result is not None:
            return a.permutation_result
        with self._auto_lock:
            if self._auto_result is not None and self._auto_key == self._p_key():
                return self._auto_result
        return None

    # ---- the line
    def _p_key(self):
        a = self.analysis
        return (id(a.data), tuple(a.conditions), a.mask, a.standardize, a.classifier,
                float(a.C), a.cv, int(a.n_folds), int(a.random_state))

    @staticmethod
    def _size_key(key):
        return key[:5] + key[6:8]   # all but C (and the seed): the cost of a fit

    def _summary_text(self) -> str:
        """The analysis' summary without its own p (the p has its own pane)."""
        a = self.analysis
        line = a.summary()
        perm = a.permutation_result
        if perm is not None:
            n = perm.sizes["permutation"]
            line = line.removesuffix(f", {p_text(float(perm.p_value), n)} ({n} permutations)")
        return line

    def _p_text(self) -> str:
        a = self.analysis
        if a.permutation_running:
            return computing_text(a.n_permutations)
        result = self.shown_permutation_result
        if result is not None:
            return p_summary(float(result.p_value), result.sizes["permutation"])
        with self._auto_lock:
            if self._auto_state in ("pending", "running") and self._auto_key == self._p_key():
                return computing_text(AUTO_PERMUTATIONS)
        return PRESS_RUN

    def _show_summary(self, new_result: bool = False) -> None:
        """Show the summary and its p; ``new_result``: the results just changed, so the
        automatic test of the new parameters is scheduled first (one message)."""
        if new_result:
            self._schedule_auto()
        self.summary.object = safe_markdown(self._summary_text())  # labels are the user's
        self._render_p()

    def _render_p(self) -> None:
        try:
            self.p_line.object = safe_markdown(self._p_text())
        except Exception:  # noqa: BLE001 - keep the last good text
            log.debug("p line not updated", exc_info=True)

    _show_p = in_batch(_render_p)   # from a job's callback: one message

    def _timed_scores(self):
        """The analysis' scores; when the CV is fitted here, its time estimates the cost
        of the automatic test (a permutation is one CV fit on permuted labels)."""
        a = self.analysis
        cold = a.has_masked() and not a.is_computed()
        t0 = time.perf_counter()
        scores = a.scores()
        if cold:
            seconds = (time.perf_counter() - t0) * CV_TO_AUTO * AUTO_PERMUTATIONS / 100
            self._auto_costs.setdefault(self._size_key(self._p_key()), seconds)
        return scores

    # ---- scheduling
    def _schedule_auto(self) -> None:
        """After a new result: start the automatic test of the current parameters (unless
        one ran or runs for them, or Run's test covers them); an older one stops."""
        a = self.analysis
        key = self._p_key()
        with self._auto_lock:
            if a.permutation_running or a.permutation_result is not None:
                if self._auto_key != key:
                    self._stop_auto()
                return
            if self._auto_key == key and self._auto_state in ("pending", "running", "done",
                                                               "skipped"):
                return   # the same parameters (e.g. another class's map)
            self._stop_auto()
            self._auto_key, self._auto_result = key, None
            cost = self._auto_costs.get(self._size_key(key))
            if AUTO_PERMUTATIONS <= 0 or (cost is not None and cost > 1.5 * AUTO_SECONDS):
                log.debug("automatic permutation test skipped: about %s s", cost)
                self._auto_state = "skipped"
                return
            self._auto_state = "pending"
            gen = self._auto_gen
        if not served(self._doc):
            self._submit_auto(gen)
        elif not self._auto_page_ready:
            self._wait_for_page()
        else:
            doc = self._doc
            doc.add_timeout_callback(
                lambda: execute_in(doc, lambda: self._submit_auto(gen)), AUTO_DELAY_MS)

    def _stop_auto(self) -> None:
        """Cancel the automatic test running or about to start (its p stays, for its
        own parameters)."""
        with self._auto_lock:
            self._auto_gen += 1
            if self._auto_state in ("pending", "running"):
                self._auto_state = "cancelled"
            job = self._auto_job
        if job is not None and job.state in ("queued", "running"):
            job.cancel()

    def _wait_for_page(self) -> None:
        """Served, the first test starts after the page has loaded (and a moment)."""
        if self._auto_waiting_load:
            return
        self._auto_waiting_load = True
        doc = self._doc

        def ready():
            self._auto_page_ready = True
            with self._auto_lock:
                gen = self._auto_gen if self._auto_state == "pending" else None
            if gen is not None:
                execute_in(doc, lambda: self._submit_auto(gen))

        def loaded():
            doc.add_next_tick_callback(lambda: doc.add_timeout_callback(
                ready, AUTO_FIRST_DELAY_MS))

        # Panel's onload needs the session's document as its current one: on its loop
        execute_in(doc, lambda: pn.state.onload(loaded))

    def _submit_auto(self, gen: int) -> None:
        """Start the automatic test as a job, if still wanted and a slot is free."""
        a = self.analysis
        key = self._p_key()
        with self._auto_lock:
            if (gen != self._auto_gen or self._auto_state != "pending" or self._auto_key != key
                    or a.permutation_running):
                return
            if self.busy.active:   # new results are coming: their own test follows
                self._auto_state = "idle"
                return
            old = self._auto_job
            registry = jobs.REGISTRY
            others = [j for j in registry.running() if j is not old]
            if registry.queued() or len(others) >= registry.max_jobs:
                self._auto_state = "skipped"   # low priority: never waits in the queue
                self._show_p()
                return
            try:
                snapshot = a.copy()
                snapshot.adopt(a)   # the masked data and the CV fits: no refit
                snapshot.n_permutations = AUTO_PERMUTATIONS
            except Exception:  # noqa: BLE001 - no p, the app goes on
                log.debug("automatic permutation test not started", exc_info=True)
                self._auto_state = "failed"
                self._show_p()
                return
            self._auto_state = "running"
            log.debug("automatic permutation test started (%d permutations)",
                      AUTO_PERMUTATIONS)
            size = self._size_key(key)

            def finished(result):
                with self._auto_lock:
                    if gen != self._auto_gen:
                        return
                    if isinstance(result, TooSlow):
                        log.debug("automatic permutation test stopped: about %.1f s",
                                  result.seconds)
                        self._auto_costs[size] = result.seconds
                        self._auto_state = "skipped"
                    else:
                        self._auto_costs[size] = float(result.attrs["seconds"])
                        self._auto_result, self._auto_state = result, "done"
                self._show_p()

            def ended(state):
                with self._auto_lock:
                    if gen != self._auto_gen:
                        return
                    self._auto_state = state
                self._show_p()

            self._auto_job = jobs.submit(
                self._auto_work(snapshot, key, old), name="auto-permutations", doc=self._doc,
                long=True,
                on_done=finished, on_error=lambda exc: ended("failed"),
                on_cancelled=lambda: ended("cancelled"))

    def _auto_work(self, snapshot, key, old):
        """The job's work: the test on ``snapshot``, stopped when it would take more than
        :data:`AUTO_SECONDS`, or when the tab's parameters move on."""
        n = AUTO_PERMUTATIONS

        def work(job):
            _lower_priority()
            if old is not None:
                old.wait(jobs.STOP_WITHIN)   # one at a time: the older one has stopped
            cancel = threading.Event()
            job.on_cancel(cancel.set)
            job.check()
            t0 = time.perf_counter()
            first = []   # when the first permutation ended (after the setup: Gram matrix...)
            slow = []

            def too_slow(seconds):
                slow.append(seconds)
                cancel.set()

            def progress(fraction, message=""):
                if self._p_key() != key:
                    cancel.set()   # a newer change: its own test follows
                    return
                done, now = round(fraction * n), time.perf_counter() - t0
                if not first:
                    first.append(now)
                if min(PILOT, n) <= done <= max(PILOT, n // 10) and done > 1:
                    # the first tenth: their pace after the first one (which waited for
                    # the setup: the Gram matrix, a first use's imports)
                    projected = (now - first[0]) * n / (done - 1)
                    if projected > AUTO_SECONDS:
                        too_slow(projected)

            # begun at a good pace, it may end a little late, not far later
            timer = threading.Timer(2 * AUTO_SECONDS, lambda: too_slow(
                (time.perf_counter() - t0) * n))
            timer.daemon = True
            timer.start()
            try:
                return snapshot.permutation_test(progress=progress, cancel=cancel)
            except AnalysisCancelled:
                if slow and not job.cancelled:
                    return TooSlow(max(slow))
                raise jobs.Cancelled("automatic permutation test cancelled") from None
            finally:
                timer.cancel()

        return work
