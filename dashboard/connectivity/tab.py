"""The Connectivity tab's layout and callbacks: seed widgets, preprocessing, map, peaks.

A thin view over :class:`analysis.connectivity.SeedConnectivity`: widgets to
model and back, the cleaning's progress (the first session cleans, once per
process, in the background), clicks and typed seeds, the redraw of the map,
histogram, time series and peaks, the downloads and the layout. The widgets
(made from the model's Parameters) are in :mod:`dashboard.connectivity.widgets`,
the plots in :mod:`dashboard.connectivity.views`, the data sources (the built-in
dataset, the server's nilearn data, the uploads) in
:mod:`dashboard.connectivity.sources`, the exports in
:mod:`dashboard.connectivity.exports`. The map's clusters (two-sided, at the tab's
threshold) are a :class:`dashboard.clusters.ClusterTable`; the readout, the hover, the
peaks and the clusters name regions from the session's atlas: the built-in and the
nilearn development data are in MNI space, the user's files when the user says so.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
import panel as pn
import param

from analysis.config import default_size
from analysis.connectivity import PREPROCESSING, SeedConnectivity, cleaned, is_cached
from analysis.errors import DataError
from dashboard import jobs
from dashboard.batch import batched, served, soon
from dashboard.busy import Busy, progress_bar, show_bar
from dashboard.clusters import ClusterTable
from dashboard.render.live import LivePlot, padded
from dashboard.notify import notify_errors, report_error, safe_markdown
from dashboard.display import display_card, folded_card
from dashboard.param_widgets import widget_for, with_tooltip
from dashboard.share import sync_url, url_mapping
from dashboard.histograms import bins_of, value_histogram
from dashboard.slice_viewer import SliceViewer
from dashboard.render.server import session_doc

from .exports import ConnectivityExports
from .structural import StructuralJobs
from .sources import BUILT_IN, UploadSource
from .widgets import ConnectivityWidgets
from .views import (PEAKS_CSS, data_background, map_label, peak_labels, peak_regions,
                    seed_series_plot, seed_series_title)

#: Parameters kept in the URL (a shared link reopens the same seed and settings).
#: Every parameter of the model in the URL (see :func:`dashboard.share.url_mapping`):
#: preprocessing, confound columns, seed, threshold, Fisher z, colour range, peaks; the
#: keys of links shared before they were all there are kept.
URL_KEYS = url_mapping(SeedConnectivity, "conn_", aliases={
    "seed_mm": "conn_seed", "radius_mm": "conn_radius", "smoothing_fwhm": "conn_smoothing",
    "regress_confounds": "conn_confounds"})


#: the order in which progress was reported (an update older than the one shown is dropped)
_PROGRESS_NUMBERS = itertools.count(1)


class ConnectivityTab(ConnectivityWidgets, UploadSource, ConnectivityExports, StructuralJobs,
                      pn.viewable.Viewer):
    """The Connectivity tab: seed widgets, preprocessing, map, time series, peaks,
    clusters."""

    source = param.Selector(default=BUILT_IN, objects=[BUILT_IN], label="Data", doc="""
        The dataset: the built-in synthetic one, or the development fMRI data of the
        server's nilearn data folder when it has one (your own files: below).""")
    revision = param.Integer(default=0, precedence=-1, doc="""
        Bump to redraw the histogram and time series through HoloViews (they are
        otherwise updated in place).""")
    files_in_mni = param.Boolean(default=False, label="Your files are in MNI space", doc="""
        Your files' coordinates are MNI mm (e.g. fMRIPrep's MNI152 outputs): regions are
        then named from the atlas. Off: 'no atlas: not in MNI space' (the atlas would
        name the wrong regions in a subject's own space). The built-in and the nilearn
        development data are in MNI space.""")
    model = param.ClassSelector(class_=SeedConnectivity, default=None, precedence=-1,
                                constant=True, doc="""
        The seed connectivity shown (a notebook hands its own; by default one on the app's
        dataset): given at construction, never replaced.""")

    def __init__(self, model: SeedConnectivity | None = None, **params):
        source = params.pop("source", None)
        super().__init__(**params)
        start = self._init_sources(model, source)   # the nilearn data's when present
        self._doc = session_doc()   # this session's, never another's (render/server.py)
        self.progress = progress_bar("clean-progress", width=250)
        self.status = pn.pane.Str("", css_classes=["clean-status"])
        # a structural change (subject, preprocessing, confounds) cleans in a job, the
        # views busy meanwhile (dashboard/busy.py); the changes wait in _pending
        self.busy = Busy(self._doc, "connectivity", progress=self.progress, status=self.status)
        self._pending: dict = {}
        self._structural_rev = 0
        with param.edit_constant(self):
            self.model = model if model is not None else SeedConnectivity(
                size=default_size(), data_dir=start, progress=self._progress)
        if self.model.progress is None:
            self.model.progress = self._progress
        m = self.model
        self._syncing = False
        self._lock = threading.RLock()
        self.viewer = SliceViewer(title="", map_label="r", cmap="RdBu_r", plot_height=250,
                                  crosshair_mm=tuple(float(v) for v in m.seed_mm),
                                  marker_mm=tuple(float(v) for v in m.seed_mm),
                                  in_mni=self.map_in_mni())
        self.display = display_card(self.viewer, 280, url_prefix="conn_")   # colour map, opacity
        # the clusters of the map shown, two-sided at the tab's threshold (its units)
        self.clusters = ClusterTable(self.viewer, two_sided=True, stem="connectivity")
        self.summary = pn.pane.Markdown("", css_classes=["summary", "connectivity-summary"],
                                        sizing_mode="stretch_width")
        # the map's significance: FDR across voxels on p from the effective dof
        self.stats_line = pn.pane.Markdown("", css_classes=["connectivity-stats"],
                                           sizing_mode="stretch_width", margin=(0, 10))
        # drawn once by HoloViews, then updated in place (dashboard/render/live.py)
        self._series = LivePlot(lambda layers, revision: self._series_element(layers),
                                ["curve"], redraw_on={"revision": self.param.revision},
                                css_classes=["seed-ts"], linked_axes=False,
                                sizing_mode="stretch_width")
        self.series = self._series.pane
        self._hist = LivePlot(lambda layers, revision: self._hist_element(layers),
                              ["hist", "lo", "hi"], redraw_on={"revision": self.param.revision},
                              css_classes=["map-hist"], linked_axes=False,
                              sizing_mode="stretch_width")
        self.hist = self._hist.pane
        self._hist_label = None
        # the peaks as a column of buttons, one row each: click a row to go there
        self.peaks = pd.DataFrame()
        self.peaks_table = pn.widgets.RadioButtonGroup(
            options=[], value=None, orientation="vertical", color="light",
            css_classes=["peaks-table"], stylesheets=[PEAKS_CSS])
        self._build_widgets()
        self._build_uploads()
        self.param.watch(self._source_chosen, ["source"])
        m.param.watch(self._on_result, ["result"])
        m.param.watch(self._on_display, ["threshold", "fisher_z", "clim", "n_peaks",
                                         "p_method", "fdr_q"])
        m.param.watch(self._sync_widgets, ["seed_mm", "radius_mm", "subject", *PREPROCESSING,
                                           "confound_columns", "threshold", "fisher_z",
                                           "clim", "p_method", "fdr_q"])
        # a click moves the seed; the crosshair, map and marker then move in one update
        self.viewer.follow_clicks = False
        self.viewer.param.watch(self._clicked, ["click_mm"])
        self.peaks_table.param.watch(self._peak_selected, ["value"])
        self.w_files_mni = widget_for(self.param.files_in_mni, self.files_in_mni,
                                      "files-in-mni")
        self.w_files_mni.link(self, value="files_in_mni", bidirectional=True)
        self.param.watch(self._space_changed, ["files_in_mni"])
        self.viewer.param.watch(lambda *events: self._show_peaks(), ["atlas", "in_mni"])
        self._set_background()
        try:
            sync_url(m, URL_KEYS)   # a bad value in a link: ignored, with a notification
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
        if self._served() and not self._is_cached():
            # the first session cleans (once per process) in the background, with progress
            self.status.object = "cleaning the data once (shared by every session) ..."
            show_bar(self.progress, True)
            self._clean_job = jobs.submit(
                self._background_clean, name="connectivity-clean", doc=self._doc,
                on_done=lambda _: self._first_compute(), on_error=self._show_error,
                on_queued=lambda n: setattr(self.status, "object", jobs.queued_message(n)))
        else:
            self._first_compute()

    # ---- widget -> model -------------------------------------------------------------
    def _setter(self, name, transform=lambda v: v):
        def set_value(event):
            if not self._syncing:
                self._set_param(name, transform(event.new))
        return set_value

    def _set_param(self, name, value):
        """A widget changed: set the model's parameter (not while showing the model's).

        Served, a structural change whose cleaning is not cached yet is cleaned in a job
        first (the views busy, the changes made meanwhile gathered), then applied at
        once; elsewhere (a notebook, a test) and when cached, at once."""
        if self._syncing:
            return
        if name in SeedConnectivity.STRUCTURAL and self._served():
            self._structural(name, value)
            return
        self._run(lambda: setattr(self.model, name, value),
                  busy=name not in ("radius_mm", "threshold", "fisher_z"))

    def _run(self, action, busy=False):
        """Run a model change; a DataError becomes a notification (the model reverts).

        Changes are serialised (the app runs callbacks in threads): the view ends
        consistent with the last change."""
        with self._lock:
            self._run_locked(action, busy)

    def _run_locked(self, action, busy=False):
        try:
            if busy:
                show_bar(self.progress, True, value=0)
            action()
        except (DataError, ValueError) as exc:
            report_error(exc)
            self._sync_widgets()
        finally:
            if busy:
                show_bar(self.progress, False)

    # ---- progress of a cleaning ------------------------------------------------------
    def _served(self) -> bool:
        return served(self._doc)

    def _schedule(self, fn) -> None:
        """Run ``fn`` on the session's event loop (thread-safe), or now outside a server."""
        soon(self._doc, fn)

    def _progress(self, fraction: float, message: str = "") -> None:
        # numbered as reported: the event loop may run the scheduled updates out of order
        number = next(_PROGRESS_NUMBERS)
        self._schedule(functools.partial(self._show_progress, fraction, message, number))

    def _show_progress(self, fraction: float, message: str, number: int = 0) -> None:
        if number and number < getattr(self, "_progress_shown", 0):
            return   # an older report than the one shown (e.g. shown after "cleaned")
        self._progress_shown = number
        show_bar(self.progress, fraction < 1.0, value=int(round(100 * fraction)))
        self.status.object = message if fraction < 1.0 else ""

    def _background_clean(self, job):
        """A job (dashboard/jobs.py): clean into the process cache; stops at the next
        step of the cleaning once the session is gone."""
        m = self.model
        cleaned(m.subject_data(), m.settings().check(), progress=job.guarded(self._progress))

    def _show_error(self, exc):
        show_bar(self.progress, False)
        self.status.object = f"error: {report_error(exc)}"

    def _is_cached(self) -> bool:
        try:
            return is_cached(self.model.subject_data().key, self.model.settings())
        except Exception:  # noqa: BLE001
            return False

    def _first_compute(self):
        try:
            if self.model.result is None:
                self.model.compute()          # -> _on_result redraws
            else:
                self._redraw(move_crosshair=True)
            self.status.object = ""
            show_bar(self.progress, False)
        except Exception as exc:  # noqa: BLE001 - the tab says so, the app keeps serving
            self._show_error(exc)

    def _set_background(self):
        try:
            self.viewer.background = data_background(self.model.subject_data())
        except Exception as exc:  # noqa: BLE001
            report_error(exc)

    # ---- user actions ----------------------------------------------------------------
    def _seed_typed(self, event):
        if self._syncing:
            return
        xyz = self.seed_input.xyz
        self._run(lambda: setattr(self.model, "seed_mm", xyz))

    def _clicked(self, event):
        """A click on a slice (the crosshair moved): the seed goes there."""
        if self._syncing:
            return
        xyz = tuple(float(v) for v in event.new)
        with self._lock:
            try:
                self.model.seed_mm = xyz
            except (DataError, ValueError) as exc:
                report_error(exc)
            # the crosshair shows the seed of the map (after an error: the previous one)
            self._move_crosshair(self.model.seed_mm)

    def _peak_selected(self, event):
        if event.new is None or self._syncing:
            return
        row = self.peaks.iloc[int(event.new)]
        self._move_crosshair((row["x"], row["y"], row["z"]), snap=False)

    @notify_errors
    def _cmax_changed(self, event):
        if self._syncing:
            return
        value = float(event.new or 0.0)
        self.model.clim = (-value, value) if value > 0 else None

    # ---- model -> view ------------------------------------------------------------------
    def map_in_mni(self) -> bool:
        """Whether the data shown is in MNI space: the built-in and the nilearn
        development data are; the user's files when ``files_in_mni`` says so."""
        return bool(self.files_in_mni) if self.model.uses_own_data else True

    def _space_changed(self, *events):
        self.viewer.in_mni = self.map_in_mni()

    def _sync_widgets(self, *events):
        m = self.model
        self._syncing = True
        try:
            self.seed_input.show(m.seed_mm)
            self.w_subject.value = m.subject
            self.w_radius.value = float(m.radius_mm)
            self.w_threshold.value = float(m.threshold)
            self.w_fisher.value = bool(m.fisher_z)
            self.w_p_method.value, self.w_fdr_q.value = m.p_method, float(m.fdr_q)
            self.prep.show()
            self.w_columns.param.update(options=list(m.param.confound_columns.objects),
                                        value=list(m.confound_columns))
            self.w_columns.disabled = not m.regress_confounds
            self.w_cmax.value = self._cmax()
        finally:
            self._syncing = False

    def _move_crosshair(self, xyz, snap=False):
        self._syncing = True
        try:
            if snap:
                self.viewer.set_crosshair(xyz)
            else:
                self.viewer.crosshair_mm = tuple(float(v) for v in xyz)
        finally:
            self._syncing = False

    def _on_result(self, event):
        self._redraw(move_crosshair=True)

    def _on_display(self, *events):
        self._redraw(move_crosshair=False)

    def _redraw(self, move_crosshair=False):
        m = self.model
        if m.result is None:
            return
        # every view's update in one message and at most one model-graph walk (one
        # message per property change cost ~5 ms each to build on a full tab)
        with self._lock, batched():
            try:
                stat = m.stat_map()
                label = map_label(m.fisher_z)
                seed = tuple(float(v) for v in m.result.seed_mm)
                update = dict(stat_map=stat, threshold=m.display_threshold(),
                              clim=m.colour_range(), marker_mm=seed, map_label=label,
                              in_mni=self.map_in_mni(),
                              title=f"seed-to-voxel {label} map, thresholded at "
                                    f"\u00b1{m.display_threshold():.2f}")
                self._syncing = True
                try:
                    if move_crosshair:
                        update["crosshair_mm"] = seed
                    self.viewer.param.update(**update)
                finally:
                    self._syncing = False
                self._update_plots()
                self.peaks = m.peaks()
                self._show_peaks()
                self.summary.object = m.summary()
                self.stats_line.object = safe_markdown(m.stats_summary())
            except Exception as exc:  # noqa: BLE001
                report_error(exc)

    def _show_peaks(self):
        """The peaks' rows, each with its region (the viewer's atlas and space)."""
        v = self.viewer
        try:
            regions = peak_regions(self.peaks, v.atlas, v.in_mni)
        except DataError as exc:   # the atlas files are missing: no names
            report_error(exc)
            regions = None
        self._syncing = True
        try:
            self.peaks_table.param.update(options=peak_labels(self.peaks, regions), value=None)
        finally:
            self._syncing = False

    def _update_plots(self):
        """The histogram and the seed's time series, in place (redrawn if they cannot be)."""
        m = self.model
        label = map_label(m.fisher_z)
        values = m.result.z if m.fisher_z else m.result.r
        threshold = m.display_threshold()

        def hist(layers):
            counts, edges = bins_of(values)
            return (self._hist_label == label
                    and layers["hist"].histogram(counts=counts, edges=edges)
                    and layers["lo"].location(-threshold) and layers["hi"].location(threshold))

        def series(layers):
            s = m.seed_time_series()
            curve = layers["curve"]
            return (curve.xy(s["time"].values, s.values)
                    and curve.ranges(x=padded(s["time"].values.min(), s["time"].values.max(), 0),
                                     y=padded(np.nanmin(s.values), np.nanmax(s.values)))
                    and curve.title(seed_series_title(s)))

        self._hist.show(hist)
        self._series.show(series)

    @property
    def plots(self) -> Mapping[str, LivePlot]:
        """The tab's live plots by key ("hist", "series"): each one's pane, in-place
        layers, ``rev`` and current ``element()``."""
        return MappingProxyType({"hist": self._hist, "series": self._series})

    def _hist_element(self, layers=None):
        m = self.model
        self._hist_label = label = map_label(m.fisher_z)
        if m.result is None:
            return value_histogram(np.zeros(1), m.display_threshold(), label, layers=layers)
        values = m.result.z if m.fisher_z else m.result.r
        return value_histogram(values, m.display_threshold(), label, layers=layers)

    def _series_element(self, layers=None):
        m = self.model
        if m.result is None:   # same structure as the real curve (updated in place)
            import xarray as xr

            n = m.subject_data().n_volumes
            empty = xr.DataArray(np.zeros(n), dims=("time",),
                                 coords={"time": np.arange(n) * m.t_r},
                                 attrs={"seed_mm": tuple(m.seed_mm), "radius_mm": m.radius_mm})
            return seed_series_plot(empty, layers)
        return seed_series_plot(m.seed_time_series(), layers)

    # ---- layout -------------------------------------------------------------------------
    def __panel__(self):
        from dashboard.export import ExportBar

        controls = pn.Column(
            "**Seed connectivity** (nilearn's seed-to-voxel example). "
            "Click a slice to move the seed.",
            *self._labelled(),
            pn.layout.Divider(),
            "**Preprocessing** (cleaned once per setting, cached; a filter at 0 is off)",
            *self.prep.views(), self.w_columns,
            self.progress, self.status, self.display,
            self.upload.check_size_in(folded_card(
                self.upload, self.w_upload_tr,
                with_tooltip(self.w_files_mni, self.param.files_in_mni),
                self.w_analyse, self.upload_progress,
                self.upload_status,
                self.w_dataset, self.data_source,
                title="Your files: NIfTI, confounds, mask", collapsed=True,
                css_classes=["connectivity-upload"])),
            width=290)
        # what a structural change recomputes: busy (one overlay) while it is cleaned
        self.busy.views[:] = [
            self.summary, self.stats_line, self.viewer,
            pn.Row(self.series, self.hist, sizing_mode="stretch_width"),
            "**Peaks** (local maxima of r above the threshold; click a row to go there)",
            self.peaks_table,
            "**Clusters** of the map above the threshold",
            self.clusters]
        main = pn.Column(
            self.busy.views,
            pn.Row(self.r_download, self.z_download),
            ExportBar(source=self, stem="connectivity"),
            self._group_card(),
            sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")

    def _group_card(self):
        """The Group section, filled when first opened: until then its models are not in
        the page (every model in the page makes each update's graph walk longer)."""
        card = pn.Card(title="Group analysis on Dask: seed maps for many subjects (same seed)",
                       collapsed=True, css_classes=["group-section"], sizing_mode="stretch_width")

        def opened(event):
            if not event.new and len(card) == 0:
                card.append(self.group_panel())

        card.param.watch(opened, "collapsed")
        return card

    def group_panel(self):
        """The Group section (built once; it computes nothing until Run)."""
        if getattr(self, "_group_panel", None) is None:
            from analysis.group import GroupConnectivity
            from dashboard.group import GroupPanel

            # the subjects of the dataset in use (the nilearn data's, when chosen)
            self._group_panel = GroupPanel(seed_source=self.model, model=GroupConnectivity(
                size=default_size(), data_dir=self.model.data_dir))
        return self._group_panel

