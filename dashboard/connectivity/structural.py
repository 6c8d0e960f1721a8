"""The Connectivity tab's structural changes (subject, preprocessing, confound columns)
served: cleaned in a background job first, the views busy meanwhile, then applied to
the model at once (a mixin of :class:`~dashboard.connectivity.tab.ConnectivityTab`).

The job does everything the change needs that does not touch the page: reading a
subject not read before (its image), the cleaning, and the voxels' spectra of the map's
p values; the event loop then only redraws."""

from __future__ import annotations

from analysis.connectivity import cleaned, is_cached
from analysis.connectivity.stats import cached_spectra
from analysis.errors import DataError
from dashboard.notify import report_error


class StructuralJobs:
    """Uses the tab's ``model``, ``busy`` (:class:`dashboard.busy.Busy`), ``_pending``,
    ``_structural_rev``, ``_run`` and ``_sync_widgets``."""

    def _structural(self, name, value):
        self._pending[name] = value
        changes = dict(self._pending)
        # a subject not read yet is read in the job (its image: most of a second)
        quick = "subject" not in changes or self.model.subject_loaded(changes["subject"])
        if quick:
            try:
                subject, settings = self.model.planned(**changes)
                settings = settings.check()
            except (DataError, ValueError) as exc:
                self._drop_pending()
                report_error(exc)
                return
            if is_cached(subject.key, settings):
                changes, self._pending = self._pending, {}
                self.busy.cancel()
                self._run(lambda: self.model.param.update(**changes), busy=True)
                return
        self._structural_rev += 1
        rev = self._structural_rev
        report = self.busy.report
        model = self.model

        def work(job):
            subject, settings = model.planned(**changes)
            settings = settings.check()
            data = cleaned(subject, settings, progress=job.guarded(report))
            if model.p_method == "effective-dof":
                cached_spectra(subject, data)   # the map's p values: not on the event loop
            return rev

        def apply(_):
            changes, self._pending = self._pending, {}
            self._run(lambda: self.model.param.update(**changes))

        self.busy.run(work, "connectivity-structural", "cleaning the data ...",
                      current=lambda computed: computed == self._structural_rev, apply=apply,
                      on_error=lambda exc: self._drop_pending())

    def _drop_pending(self):
        """Forget the changes not applied: the widgets show the model's values again."""
        self._pending = {}
        self._structural_rev += 1
        self._sync_widgets()
