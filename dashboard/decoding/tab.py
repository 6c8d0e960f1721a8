"""Decoding tab (Haxby 2001): live SVM decoding with honest cross-validation.

A thin view over :class:`analysis.decoding.DecodingAnalysis`: its parameters
as widgets, its xarray results as HoloViews elements (fold-score bars with the
mean and chance lines, the permutation null, the confusion matrix, the
weight/pattern map in the shared slice viewer with a histogram of its values).
The masked data is cached per process (shared by every session); a change of
C, conditions or CV scheme only refits the classifiers. Permutations (at most
:data:`MAX_APP_PERMUTATIONS`) and the masking of an upload run as jobs
(:mod:`dashboard.jobs`: capped per process, queued with their position shown,
cancelled when the session ends) with a progress bar; a Cancel button stops
permutations. An upload's masked data stays with its session (never in the
process-wide cache nor on disk). The data sources and the upload (``sources.py``),
the permutation test (``permutations.py``) and the plots (``views.py``) have their own
modules. The map's clusters (two-sided, at the tab's |value| threshold) are a
:class:`dashboard.clusters.ClusterTable`; Haxby's data (real or synthetic) is in the
subject's own space, so regions say "no atlas: not in MNI space" unless the user's
files are said to be in MNI space.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np
import pandas as pd
import panel as pn
import param

from analysis.decoding import PRIVATE, DecodingAnalysis
from analysis.datasets.found import nilearn_sources
from analysis.errors import DataError
from dashboard.export import ExportBar
from dashboard.display import display_card, folded_card
from dashboard.param_widgets import widget_for, with_tooltip
from dashboard.notify import html_choices, notify_errors, report_error
from dashboard.batch import in_batch, serialized, served, soon
from dashboard.busy import Busy, progress_bar
from dashboard.clusters import ClusterTable
from dashboard.render.live import LivePlot
from dashboard.share import sync_url, url_mapping
from dashboard.slice_viewer import SliceViewer
from dashboard.upload import UploadPanel
from dashboard.render.server import session_doc

from .permutations import MAX_APP_PERMUTATIONS, PermutationControls
from .sources import (GIVEN, REAL_SLICE, SYNTHETIC, USER_FILES, UploadSource, _built_in_source,
                      _dataset, displayable, real_slice_dir)
from .views import (_hooked, _update_bars, _update_confusion, _update_hist, confusion_plot,
                    fold_bars, null_histogram, value_histogram)

C_VALUES = [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0]
#: The analysis' parameters in the URL: all but the thread count (see
#: :func:`dashboard.share.url_mapping`); the tab's own: the data source, map and threshold.
URL_KEYS = url_mapping(DecodingAnalysis, "dec_", exclude=("n_jobs",))
TAB_URL_KEYS = {"source": "dec_source", "map_kind": "dec_map", "threshold": "dec_threshold"}


class DecodingTab(UploadSource, PermutationControls, pn.viewable.Viewer):
    """The Decoding tab: widgets, summary, fold bars, null, confusion, weight map, clusters."""

    source = param.Selector(default=SYNTHETIC, objects=[SYNTHETIC], label="Data", doc="""
        The dataset to decode: the synthetic one, the real Haxby slice when present, or
        your own files (upload below).""")
    map_kind = param.Selector(default="weights", objects={"weights": "weights",
                                                          "activation pattern": "pattern"},
                              label="Map", doc=(
        "Show the decoder's weights or its Haufe activation pattern (weights are not "
        "activations)."))
    threshold = param.Number(default=0.0, bounds=(0, None), label="|value| threshold",
                             doc="Hide map voxels whose absolute value is below this.")
    files_in_mni = param.Boolean(default=False, label="Your files are in MNI space", doc="""
        Your files' coordinates are MNI mm: regions are then named from the atlas. Off:
        'no atlas: not in MNI space' (Haxby's data, real or synthetic, is in the
        subject's own space, where an atlas would name the wrong regions).""")

    analysis = param.ClassSelector(class_=DecodingAnalysis, default=None, precedence=-1,
                                   constant=True, doc="""
        The analysis shown (a notebook hands its own; by default one on the synthetic
        dataset). Its data is offered as the source "data of the analysis given".""")

    def __init__(self, analysis: DecodingAnalysis | None = None, **params):
        given = analysis is not None
        source = params.pop("source", GIVEN if given else None)
        super().__init__(**params)
        # the real Haxby data of the server's nilearn folder (serve --data) comes first:
        # the tab starts on it when it is there
        real = list(nilearn_sources("decoding"))
        sources = real + [SYNTHETIC] + ([REAL_SLICE] if real_slice_dir() is not None else [])
        self._given_data = analysis.data if given else None
        with param.parameterized.discard_events(self):
            self.param.source.objects = ([GIVEN] if given else []) + sources
            if source is not None:
                self.source = source
            elif real:
                self.source = real[0]
        self._doc = session_doc()   # this session's, never another's (render/server.py)
        self._new_grid = True
        self._syncing = False
        with param.edit_constant(self):
            self.analysis = analysis if given else DecodingAnalysis(_dataset(self.source))
        # no path (widget, link, notebook handle) may ask this server for more
        self.analysis.param["n_permutations"].bounds = (0, MAX_APP_PERMUTATIONS)
        self._perm_job = None
        self._upload_job = None
        # a new mask, standardization or dataset is masked and fitted in a job (busy.py)
        self.busy = Busy(self._doc, "decoding", width=260)
        self.refresh_progress, self.status, self.views = (self.busy.progress, self.busy.status,
                                                          self.busy.views)
        self.viewer = SliceViewer(title="", map_label=self.map_kind, cmap="RdBu_r", in_mni=False)
        self.display = display_card(self.viewer, 290, url_prefix="dec_")   # colour map, opacity
        # the clusters of the map shown, two-sided at the tab's |value| threshold
        self.clusters = ClusterTable(self.viewer, two_sided=True, stem="decoding")
        self.summary, self.p_line = self._summary_panes()   # the p beside it: auto_p.py
        # the latest elements, drawn once by HoloViews and then updated in place when
        # only their values move (dashboard/render/live.py); a new layout is drawn anew
        self.elements = {"bars": None, "confusion": None, "null": self.null_histogram(None),
                         "map_hist": self.value_histogram(np.zeros(1), 0.0)}
        self._plots = {}
        self.bars = self._dynamic("bars", ["bars", "mean", "chance", "train"], "fold-bars")
        self.confusion = self._dynamic("confusion", ["heat", "labels"], "confusion")
        self.null_plot = self._dynamic("null", [], "null-hist")
        self.map_hist = self._dynamic("map_hist", ["hist", "lo", "hi"], "map-hist")
        self._null_shown = None
        self._map_key = None
        self.progress = progress_bar("perm-progress", width=260, max=1000)
        self.perm_status = pn.pane.Str("", css_classes=["perm-status"])
        self._user_data = None
        self._user_background = None
        self.upload = UploadPanel(roles=["func", "mask", "labels", "label_names"])
        self.upload.param.watch(self._uploaded, "paths")
        # the masking of an upload runs as a job, with its own progress beside the files
        self.upload_progress = pn.indicators.Progress(value=0, max=100, bar_color="primary",
                                                      width=230, visible=False,
                                                      css_classes=["decoding-upload-progress"])
        self.upload_status = pn.pane.Str("", css_classes=["decoding-upload-status"])
        if served(self._doc):
            self._doc.on_session_destroyed(lambda ctx: self.cleanup())
        self._build_widgets()
        self._bind_analysis()
        self._set_background()
        self.w_folds.disabled = self.analysis.cv != "kfold"
        self._show_results()   # the first results with the tab (the masked data is warm)

    # ---- widgets --------------------------------------------------------------
    def _build_widgets(self):
        a = self.analysis
        # labels, tooltips, choices and ranges from the Parameters (param_widgets.py)
        slider = dict(width=255)   # a tooltip icon beside it, in the 300 px column
        self.w_source = widget_for(self.param.source, self.source, "source-select", width=280)
        self.w_conditions = widget_for(a.param.conditions, a.conditions, "conditions-select",
                                       options=html_choices(a.param.conditions.objects),
                                       width=280)
        self.w_mask = widget_for(a.param.mask, a.mask, "mask-select", width=280)
        self.w_standardize = widget_for(a.param.standardize, a.standardize)
        self.w_classifier = widget_for(a.param.classifier, a.classifier, "classifier-select",
                                       width=280)
        self.w_C = widget_for(a.param.C, 1.0, "c-slider", widget_type=pn.widgets.DiscreteSlider,
                              options={f"{c:g}": c for c in C_VALUES}, **slider)
        self.w_cv = widget_for(a.param.cv, a.cv, "cv-select", width=280)
        self.w_folds = widget_for(a.param.n_folds, a.n_folds, "folds-slider",
                                  widget_type=pn.widgets.IntSlider, disabled=a.cv != "kfold",
                                  **slider)
        self.w_perms = widget_for(a.param.n_permutations, a.n_permutations, "perm-count",
                                  widget_type=pn.widgets.IntInput, start=10, step=100,
                                  width=280)
        self.w_run = pn.widgets.Button(label="Run permutation test", color="primary",
                                       css_classes=["perm-run"])
        self.w_cancel = pn.widgets.Button(label="Cancel", color="warning",
                                          css_classes=["perm-cancel"], disabled=True)
        self.w_map = widget_for(self.param.map_kind, self.map_kind, "map-kind", width=280)
        # more than two conditions: the class whose map is shown (one vs rest)
        choices = self._map_class_choices()
        self.w_map_class = widget_for(a.param.contrast, choices.pop("value"), "map-class-select",
                                      widget_type=pn.widgets.Select, width=280, **choices)
        # the map's range is the data's (set in _update_map_hist)
        self.w_threshold = widget_for(self.param.threshold, 0.0, "threshold-slider",
                                      widget_type=pn.widgets.FloatSlider, start=0.0, end=1.0,
                                      step=0.001, **slider)
        self.w_run.on_click(notify_errors(lambda e: self.start_permutations()))
        self.w_cancel.on_click(notify_errors(lambda e: self.cancel_permutations()))
        self.w_threshold.link(self, value="threshold")
        self.w_files_mni = widget_for(self.param.files_in_mni, self.files_in_mni,
                                      "files-in-mni")
        self.w_files_mni.link(self, value="files_in_mni", bidirectional=True)
        for w, name in ((self.w_source, "source"), (self.w_map, "map_kind")):
            w.link(self, value=name, bidirectional=True)   # the tab's own parameters

        def setter(name, transform=lambda v: v):
            @notify_errors
            def set_value(event):
                if not self._syncing:
                    self._set_analysis(name, transform(event.new))
            return set_value

        self.w_conditions.param.watch(self._on_conditions, "value")
        self.w_mask.param.watch(setter("mask"), "value")
        self.w_standardize.param.watch(setter("standardize"), "value")
        self.w_classifier.param.watch(setter("classifier"), "value")
        self.w_C.param.watch(setter("C", float), "value")
        self.w_cv.param.watch(setter("cv"), "value")
        self.w_folds.param.watch(setter("n_folds", int), "value")
        self.w_perms.param.watch(setter("n_permutations", int), "value")
        self.w_map_class.param.watch(setter("contrast", int), "value")

    def _map_class_choices(self) -> dict:
        """The "Map of class" selector's choices (the conditions, by position), value and
        visibility: shown for more than two conditions only."""
        a = self.analysis
        conditions = list(a.conditions)
        return dict(options={c: i for i, c in enumerate(conditions)},
                    value=min(a.contrast, len(conditions) - 1),
                    visible=bool(a.map_classes()))

    @serialized
    def _set_analysis(self, name, value):
        setattr(self.analysis, name, value)

    @notify_errors
    @serialized
    def _on_conditions(self, event):
        if self._syncing:
            return
        if len(event.new) < 2:
            raise DataError("choose at least two conditions to discriminate")
        self.analysis.conditions = list(event.new)

    def _to_widgets(self, *events):
        """Analysis -> widgets (a shared link, a notebook or a source switch set them)."""
        a = self.analysis
        self._syncing = True
        try:
            self.w_conditions.param.update(options=html_choices(a.param.conditions.objects),
                                           value=list(a.conditions))
            self.w_mask.param.update(options=list(a.param.mask.objects), value=a.mask)
            nearest = min(C_VALUES, key=lambda c: abs(np.log10(c) - np.log10(a.C)))
            self.w_C.value = nearest
            label = a.param.C.label
            self.w_C.label = label if nearest == a.C else f"{label}, now {a.C:g}"
            self.w_cv.value = a.cv
            self.w_folds.value = min(max(a.n_folds, self.w_folds.start), self.w_folds.end)
            self.w_classifier.value = a.classifier
            self.w_standardize.value = a.standardize
            self.w_perms.value = a.n_permutations
            self.w_map_class.param.update(**self._map_class_choices())
        finally:
            self._syncing = False

    def _bind_analysis(self):
        a = self.analysis
        structural = ["conditions", "mask", "standardize", "classifier", "C", "cv", "n_folds",
                      "n_permutations", "data"]
        a.param.watch(self._to_widgets, structural + ["contrast"])
        a.param.watch(lambda *events: self.refresh(), structural[:-2] + ["contrast", "data"])
        a.param.watch(self._on_permutation_event, ["permutation_progress", "permutation_status",
                                                   "permutation_running", "permutation_result"])
        # the data source first (its conditions and masks are the choices of the rest);
        # a session's own upload cannot be named by a link
        sync_url(self, TAB_URL_KEYS, rules={"source": _built_in_source})
        sync_url(a, URL_KEYS)

    def map_in_mni(self) -> bool:
        """Whether the map is in MNI space: only the user's files, when ``files_in_mni``
        says so (Haxby's data is in the subject's own space)."""
        return self.source == USER_FILES and bool(self.files_in_mni)

    @param.depends("source", "files_in_mni", watch=True)
    def _space_changed(self):
        self.viewer.in_mni = self.map_in_mni()

    @param.depends("source", watch=True)
    def _switch_source(self):
        try:
            data = (self._user_data if self.source == USER_FILES else self._given_data
                    if self.source == GIVEN else _dataset(self.source))
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            return
        self._new_grid = True
        self._set_background()
        try:
            self.analysis.set_data(data)  # watchers redraw everything once
        except Exception as exc:  # noqa: BLE001
            report_error(exc)


    def cleanup(self) -> None:
        """The session ended: its jobs stop (dashboard/jobs.py) and its own data goes."""
        for job in (self._perm_job, self._upload_job):
            if job is not None:
                job.cancel()
        self._stop_auto()
        self.analysis.cancel_permutations(wait=False)
        if self._user_data is not None:
            self._user_data.info.pop("_masked", None)
        self._user_data = None
        self._user_background = None
        if self.analysis.data is not None and self.analysis.data.info.get(PRIVATE):
            self.analysis.data.info.pop("_masked", None)
            self.analysis._masked = None
            self.analysis._masked_key = None

    @property
    def plots(self) -> Mapping[str, LivePlot]:
        """The tab's live plots by key ("bars", "confusion", "null", "map_hist"): each
        one's pane, in-place layers, ``rev`` and current ``element()``."""
        return MappingProxyType(self._plots)

    def _dynamic(self, key, layers, css):
        plot = LivePlot(lambda layers: _hooked(self.elements[key], layers), layers,
                        css_classes=[css], linked_axes=False)
        self._plots[key] = plot
        return plot.pane

    def _show(self, key, element, update) -> None:
        """Show ``element`` as ``key``'s plot: ``update(layers, element)`` in place, else redrawn."""
        self.elements[key] = element
        self._plots[key].show(lambda layers: update(layers, element))

    # ---- results --------------------------------------------------------------
    @notify_errors
    @in_batch
    def refresh(self):
        """Show the current parameters' results: at once when the masked data is loaded
        (a fit per fold: a fraction of a second) or outside a server; else (a new mask,
        standardization or dataset) computed in a job (masking, CV fits, the fit on all
        samples), the views busy meanwhile, then every view shown in one go."""
        a = self.analysis
        self.w_folds.disabled = a.cv != "kfold"
        if served(self._doc) and not a.has_masked():
            self._start_refresh()
            return
        self.busy.cancel()   # cached again (a change undone): no job needed
        self._show_results()

    def _start_refresh(self):
        snapshot = self.analysis.copy()
        report = self.busy.report

        def work(job):
            snapshot.masked(progress=job.guarded(lambda f, m="": report(
                0.6 * f, m or "masking ...")))
            job.check()
            report(0.65, "cross-validating ...")
            snapshot.scores()
            job.check()
            report(0.9, "fitting on all samples ...")
            snapshot.weight_map()
            return snapshot

        # results of parameters moved on meanwhile are not shown: their own job follows
        self.busy.run(work, "decoding-refresh", "masking and cross-validating ...",
                      current=self.analysis.adopt, apply=lambda _: self._show_results())

    def _show_results(self):
        scores = self._timed_scores()
        self._show_summary(new_result=True)   # and the automatic p test (auto_p.py)
        self._show("bars", self.fold_bars(scores), _update_bars)
        self._show("confusion", self.confusion_plot(scores), _update_confusion)
        self._show_null()
        # served: the summary and bars go out first, the map (three views) follows
        soon(self._doc, self._update_map)

    def _show_null(self):
        result = self.analysis.permutation_result
        if result is not self._null_shown:
            self._null_shown = result
            self.elements["null"] = self.null_histogram(result)
            self._plots["null"].redraw()

    @param.depends("map_kind", watch=True)
    @notify_errors
    @in_batch
    def _update_map(self):
        if self.busy.active:
            return   # shown with the job's results
        a = self.analysis
        key = (id(a.data), tuple(a.conditions), a.mask, a.standardize, a.classifier, a.C,
               a.contrast, self.map_kind)
        if key == self._map_key:
            return  # the CV scheme does not change the map (trained on all samples)
        self._map_key = key
        volume = displayable(a.weight_map() if self.map_kind == "weights" else a.pattern_map())
        values = volume.values[np.isfinite(volume.values)]
        top = float(np.abs(values).max()) if values.size else 1.0
        self.w_threshold.param.update(end=top or 1.0, step=(top or 1.0) / 200,
                                      value=min(self.w_threshold.value, top))
        update = dict(stat_map=volume, map_label=self.map_kind,
                      title=f"{self.map_kind}: {volume.attrs.get('contrast', '')}")
        if (self._new_grid or self.viewer.stat_map is None
                or self._outside(volume, self.viewer.crosshair_mm)):
            self._new_grid = False
            # a new grid (another dataset): start at the map's peak
            peak = np.unravel_index(np.nanargmax(np.abs(volume.values)), volume.shape)
            update["crosshair_mm"] = tuple(float(volume[d].values[i])
                                           for d, i in zip(("x", "y", "z"), peak))
        self.viewer.param.update(**update)
        self._show("map_hist", self.value_histogram(values, self.threshold), _update_hist)

    @staticmethod
    def _outside(volume, xyz) -> bool:
        for d, v in zip(("x", "y", "z"), xyz):
            c = volume[d].values
            half = abs(float(c[1] - c[0])) / 2 if c.size > 1 else 0.5
            if not (c.min() - half <= v <= c.max() + half):
                return True
        return False

    @param.depends("threshold", watch=True)
    def _threshold_changed(self):
        self.viewer.threshold = self.threshold
        stat = self.viewer.stat_map
        if stat is not None:
            values = stat.values[np.isfinite(stat.values)]
            self._show("map_hist", self.value_histogram(values, self.threshold), _update_hist)

    # ---- HoloViews elements (testable by their data) -------------------------------
    fold_bars = staticmethod(fold_bars)
    confusion_plot = staticmethod(confusion_plot)
    null_histogram = staticmethod(null_histogram)
    value_histogram = staticmethod(value_histogram)

    # ---- exports (see dashboard/export.py) ----------------------------------------------
    def export_map(self) -> dict:
        a = self.analysis
        volume = a.weight_map() if self.map_kind == "weights" else a.pattern_map()
        return {"map": volume, "background": self.viewer.background,
                "image": a.to_nifti(self.map_kind),   # on the data's own grid
                "title": f"{self.map_kind}: {volume.attrs.get('contrast', '')}",
                "threshold": self.threshold or None, "name": f"{self.map_kind}_map",
                "symmetric": True, "cut_coords": tuple(self.viewer.crosshair_mm),
                "cmap": self.viewer.cmap}

    def export_scores(self) -> pd.DataFrame:
        s = self.analysis.scores()
        df = pd.DataFrame({"fold": s.fold.values, "test_runs": s.test_runs.values,
                           "n_test": s.n_test.values, "accuracy": s.fold_score.values,
                           "train_accuracy": s.fold_train_score.values})
        df.attrs["mean"] = float(s.mean_score)
        return df

    def export_summary(self) -> str:
        return self.analysis.summary()

    def export_params(self) -> dict:
        a = self.analysis
        return {"source": self.source, "conditions": list(a.conditions), "mask": a.mask,
                "standardize": a.standardize, "classifier": a.classifier, "C": a.C,
                "cv": a.cv, "n_folds": a.n_folds, "n_permutations": a.n_permutations,
                "contrast": a.contrast, "map": self.map_kind, "threshold": self.threshold}

    def export_code(self) -> str:
        """A plain nilearn / scikit-learn script reproducing the tab (see analysis.scripts);
        an upload's files by the names the user gave them, in the folder it runs in."""
        from analysis.scripts import decoding_script

        files = None
        if self.source == USER_FILES:
            names = self.upload.uploads.names
            files = {r: names[r] for r in ("func", "mask", "labels") if r in names} or None
        return decoding_script(self.analysis, map_kind=self.map_kind,
                               threshold=self.threshold, files=files)

    # ---- layout -----------------------------------------------------------------
    def __panel__(self):
        a, tab = self.analysis.param, self.param
        tip = with_tooltip   # each control with its Parameter's doc as a tooltip
        controls = pn.Column(
            tip(self.w_source, tab.source), tip(self.w_conditions, a.conditions),
            tip(self.w_mask, a.mask), tip(self.w_standardize, a.standardize),
            tip(self.w_classifier, a.classifier), tip(self.w_C, a.C), tip(self.w_cv, a.cv),
            tip(self.w_folds, a.n_folds), self.refresh_progress, self.status,
            pn.layout.Divider(), tip(self.w_perms, a.n_permutations),
            pn.Row(self.w_run, self.w_cancel), self.progress, self.perm_status,
            pn.layout.Divider(), tip(self.w_map, tab.map_kind),
            tip(self.w_map_class, a.contrast),
            tip(self.w_threshold, tab.threshold), self.display,
            self.upload.check_size_in(folded_card(
                self.upload, tip(self.w_files_mni, tab.files_in_mni),
                self.upload_progress, self.upload_status,
                title="Your files: 4D NIfTI, mask, labels", collapsed=True,
                css_classes=["decoding-upload"])),
            width=300)
        self.views[:] = [
            self.summary_line(),
            pn.Row(self.bars, self.null_plot, self.confusion, sizing_mode="stretch_width"),
            self.viewer,
            self.map_hist,
            pn.pane.Markdown("**Clusters** of the map above the |value| threshold",
                             margin=(0, 10)),
            self.clusters,
            ExportBar(source=self, stem="decoding")]
        return pn.Row(controls, self.views, sizing_mode="stretch_width")

