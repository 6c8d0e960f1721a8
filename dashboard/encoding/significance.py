"""The Encoding tab's significance row: a permutation test of each voxel's R^2, run from
the tab, with FDR across voxels (:mod:`analysis.encoding.permutation`).

:class:`EncodingSignificance` (the tab's ``significance``, under the R^2 histogram):
the number of permutations, the scheme (circular shifts within runs, or whole runs
exchanged: both keep the responses' autocorrelation) and the FDR q, and *Run
permutation test*. The test runs on the cached decompositions as a job
(:mod:`dashboard.jobs` through :class:`dashboard.busy.Busy`: capped per process,
queued with its position shown, a progress bar, *Cancel*, cancelled with the session).
When it is done the histogram gets a dashed line "FDR q<0.05" at the smallest R^2 of
the voxels that pass (none pass: a line of text says so) and a line of text gives the
voxels passing, the permutations, the scheme and the smallest p they can show,
1/(n+1); *Use as map threshold* sets the map's R^2 threshold to it.

The result is this session's (kept here, not in the link); it is for one setting of
the analysis: a change of its data, CV scheme, folds, lag, precision or alpha cancels
a running test and clears a finished one (the text says so). The permutations' seed is
:data:`SEED`, as the CLI's default: the same settings give the same test.
"""

from __future__ import annotations

import threading

import numpy as np
import panel as pn
import param

from analysis.connectivity.stats import check_q
from analysis.encoding import EncodingAnalysis
from analysis.encoding.permutation import (FDR_Q, PermutationTest, analysis_permutation_test,
                                           permutation_test, permuted_rows)
from dashboard.batch import in_batch, serialized
from dashboard.busy import Busy
from dashboard.notify import notify_errors
from dashboard.param_widgets import widget_for, with_tooltip

from .views import fdr_label, fdr_marks

#: Most permutations the app runs in one test (the CLI may run more).
MAX_APP_PERMUTATIONS = 2000
#: The permutations' random seed (the CLI's default).
SEED = 0
#: What the analysis watched for a change that makes a test stale.
WATCHED = EncodingAnalysis.STRUCTURAL + ("alpha",)
SCHEMES = {"circular shifts within runs": "shift", "whole runs exchanged": "runs"}


class EncodingSignificance(pn.viewable.Viewer):
    """The permutation test of the tab's R^2 (see the module). ``tab``: the
    :class:`~dashboard.encoding.tab.EncodingTab` (its analysis, session and histogram)."""

    n_permutations = param.Integer(default=200, bounds=(1, MAX_APP_PERMUTATIONS),
                                   label="Permutations", doc=f"""
        How many times the responses are moved in time and the ridge refitted (same
        alpha, same folds). The smallest p they can show is 1/(n+1), and FDR keeps a
        voxel only if its p is at most q times its rank over the voxels: use hundreds.
        At most {MAX_APP_PERMUTATIONS:,} here (the command line runs more).""")
    scheme = param.Selector(default="shift", objects=SCHEMES, label="Permutation scheme",
                            doc="""
        How the responses are moved, the same way for every voxel: each run rotated in
        time by its own random offset of at least 10 volumes, or whole runs exchanged
        among runs of the same length. Both keep each voxel's autocorrelation and the
        stimuli's blocks, and break only their alignment.""")
    fdr_q = param.Number(default=FDR_Q, bounds=(0.001, 0.5), step=0.01, label="FDR q",
                         doc="""
        Benjamini-Hochberg false discovery rate across voxels: on average at most this
        fraction of the voxels that pass are false positives.""")
    result = param.ClassSelector(class_=PermutationTest, default=None, allow_None=True,
                                 precedence=-1, doc="""
        The finished test of the analysis' current setting (None: none, or cleared).""")

    def __init__(self, tab, **params):
        super().__init__(**params)
        self._tab = tab
        self._job = None
        self._drawn = None        # the result the histogram was last drawn with
        # the job, its progress bar (shown and hidden with ``visible``: a progress bar
        # shown again after an inline "visibility: hidden" stayed hidden in Chromium) and
        # status; the text is not among the kit's views (not greyed out: it is cleared)
        self.progress = pn.indicators.Progress(value=0, max=100, bar_color="primary",
                                               width=200, visible=False, align="center",
                                               css_classes=["enc-significance-progress"])
        self.status = pn.pane.Str("", css_classes=["enc-significance-status"])
        self.busy = Busy(tab._doc, "enc-significance", progress=self.progress,
                         status=self.status)
        self.text = pn.pane.Markdown("", css_classes=["enc-significance-text"],
                                     sizing_mode="stretch_width", margin=(0, 10))
        self.w_perms = widget_for(self.param.n_permutations, self.n_permutations,
                                  "enc-perm-count", widget_type=pn.widgets.IntInput,
                                  width=130)
        self.w_scheme = widget_for(self.param.scheme, self.scheme, "enc-perm-scheme",
                                   width=210)
        self.w_q = widget_for(self.param.fdr_q, self.fdr_q, "enc-fdr-q",
                              widget_type=pn.widgets.FloatInput, width=90)
        self.w_run = pn.widgets.Button(label="Run permutation test", color="primary",
                                       css_classes=["enc-perm-run"], align="end")
        self.w_cancel = pn.widgets.Button(label="Cancel", disabled=True, align="end",
                                          css_classes=["enc-perm-cancel"])
        self.w_use = pn.widgets.Button(label="Use as map threshold", disabled=True,
                                       align="end", css_classes=["enc-perm-use"],
                                       description="Set the map's R\u00b2 threshold to the "
                                       "FDR line (at least the slider's lowest value)")
        self.w_perms.link(self, value="n_permutations")
        self.w_scheme.link(self, value="scheme")
        self.w_q.link(self, value="fdr_q")
        self.w_run.on_click(lambda event: self.run())
        self.w_cancel.on_click(lambda event: self.cancel())
        self.w_use.on_click(lambda event: self.use_as_threshold())
        tab.analysis.param.watch(self._settings_changed, list(WATCHED))
        self.param.watch(self._result_changed, ["result"])

    @property
    def job(self):
        """The job of the latest test started here (``state``, ``wait()``), None before."""
        return self._job

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.state in ("queued", "running")

    def _key(self) -> tuple:
        a = self._tab.analysis
        return (a.structural_key(), float(a.alpha))

    # ---- running
    @notify_errors
    @serialized
    def run(self) -> None:
        """Start the test of the analysis' current setting (the Run button), replacing
        one running; errors (bad scheme for the data, bad q) are notified, not raised."""
        a = self._tab.analysis
        n, scheme, q = int(self.n_permutations), self.scheme, check_q(self.fdr_q)
        permuted_rows(a.sample_index()[1], 1, scheme)   # the scheme fits the runs? now
        self.busy.cancel(quiet=True)
        self.result = None
        key = self._key()
        # a copy: a later change of the tab's analysis cannot mix into the job
        snapshot = EncodingAnalysis(**{k: getattr(a, k) for k in a.STRUCTURAL}, alpha=a.alpha)
        cancel = threading.Event()
        report = self.busy.report

        def work(job):
            job.on_cancel(cancel.set)
            progress = job.guarded(report)
            if snapshot.own is not None:
                # the user's files: this session's only (not kept in the process' store)
                y, x, runs, _ = snapshot.samples()
                return key, permutation_test(snapshot.engine(), x, y, runs, snapshot.alpha,
                                             n, scheme, random_state=SEED, fdr_q=q,
                                             progress=progress, cancel=cancel)
            return key, analysis_permutation_test(snapshot, n, scheme, SEED, q,
                                                  progress=progress, cancel=cancel)

        self.text.object = ""
        self.w_run.disabled, self.w_cancel.disabled, self.w_use.disabled = True, False, True
        self.busy.run(work, "encoding-permutations", f"{n} permutations ...",
                      current=lambda out: True, apply=self._finished,
                      on_error=lambda exc: self._idle(), long=True)
        self._job = self.busy.job

    @in_batch
    def _finished(self, out) -> None:
        key, result = out
        self._idle()
        if key != self._key():   # the setting changed as it finished
            self.text.object = "The settings changed: the permutation test was cleared."
            return
        self.result = result

    def _idle(self) -> None:
        self.w_run.disabled, self.w_cancel.disabled = False, True

    @serialized
    def cancel(self, message: str = "Permutation test cancelled.") -> None:
        """Stop the running test (the Cancel button)."""
        if self.running:
            self.busy.cancel()
            self.text.object = message
        self._idle()

    def _settings_changed(self, *events) -> None:
        """A change of the analysis' setting: its test no longer applies."""
        if self.running:
            self.cancel("The settings changed: the permutation test was cancelled.")
        elif self.result is not None:
            self.result = None
            self.text.object = "The settings changed: the permutation test was cleared."

    def use_as_threshold(self) -> None:
        """Set the map's R^2 threshold to the FDR line, within the slider's range (the
        map shows R^2 from 0)."""
        r = self.result
        if r is None or r.r2_threshold is None:
            return
        w = self._tab.w_threshold
        w.value = float(min(max(round(r.r2_threshold, 6), w.start), w.end))

    # ---- showing
    @in_batch
    def _result_changed(self, event) -> None:
        r = self.result
        self.w_use.disabled = r is None or r.r2_threshold is None
        if r is not None:
            self.text.object = self.describe(r)
        if not self._tab.busy.active:   # else drawn with the new setting (tab._update_map)
            self._tab.plots["hist"].redraw()

    def describe(self, r: PermutationTest) -> str:
        """The text line of a finished test: voxels passing, permutations, scheme,
        smallest reportable p."""
        n, label = r.n_permutations, fdr_label(r.fdr_q)
        scheme = {v: k for k, v in SCHEMES.items()}.get(r.scheme, r.scheme)
        how = (f"{n:,} permutations ({scheme}, alpha={r.alpha:.4g}); smallest reportable "
               f"p = 1/(n+1) = {1.0 / (n + 1):.2g}")
        if r.r2_threshold is None:
            return f"**No voxel passes {label}**: {how}."
        others = int(np.sum(r.observed >= r.r2_threshold)) - r.n_significant
        extra = (f"; {others:,} voxel{'s' * (others != 1)} at or above it "
                 f"{'do' if others != 1 else 'does'} not pass" if others > 0 else "")
        return (f"**{r.n_significant:,} of {r.observed.size:,} voxels pass {label}** "
                f"(the dashed line: R\u00b2 = "
                f"{r.r2_threshold:.4g}, the smallest among them{extra}): {how}.")

    def decorate(self, overlay):
        """The R^2 histogram ``overlay`` with the test's FDR line (if there is one)."""
        r = self.result
        self._drawn = r
        if r is None or r.r2_threshold is None:
            return overlay
        counts = overlay.get(0).dimension_values(1)
        top = float(counts.max()) if counts.size else 1.0
        return (overlay * fdr_marks(r.r2_threshold, r.fdr_q, top)).opts(
            show_legend=False, ylim=(0.0, 1.2 * (top or 1.0)))   # the label above the bars

    def drawn_current(self) -> bool:
        """True when the histogram drawn shows the current result (or none): an in-place
        update of its bars is then enough; else it is redrawn."""
        return self._drawn is self.result

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown("**Significance**: a permutation test of each voxel's "
                             "R\u00b2, FDR across voxels", margin=(5, 10, 0, 10)),
            # wrapped on a narrow page (the buttons under the inputs)
            pn.FlexBox(*(with_tooltip(w, p) for w, p in (
                (self.w_perms, self.param.n_permutations), (self.w_scheme, self.param.scheme),
                (self.w_q, self.param.fdr_q))), self.w_run, self.w_cancel, self.w_use,
                align_items="flex-end", sizing_mode="stretch_width"),
            pn.Row(self.progress, self.status), self.text,
            sizing_mode="stretch_width", css_classes=["enc-significance"])
