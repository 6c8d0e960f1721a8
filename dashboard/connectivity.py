"""Connectivity tab: click anywhere in the brain, get that seed's correlation map.

A thin view over :class:`analysis.connectivity.SeedConnectivity`: the cleaned
data is cached per process (shared by every session, one cleaning per
preprocessing setting, with a progress bar); a click on a slice or a new seed
coordinate is a sphere mean and one matrix-vector product. Shown: the r (or
Fisher z) map over the MNI template, thresholded at +/- the threshold, the
seed as a marker, its time series, a histogram with the threshold lines, the
peaks table (click a row to move the crosshair there), exports of r and z.
"""

from __future__ import annotations

import functools
import io
import threading

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from analysis.config import default_size
from analysis.connectivity import (CACHE, PREPROCESSING, SeedConnectivity, cleaned,
                                   load_subject)
from analysis.errors import DataError
from analysis.volumes import to_xarray
from dashboard import jobs
from dashboard.batch import served, soon
from dashboard.render.live import LivePlot, padded
from dashboard.notify import notify_errors, report_error, report_info, safe_markdown
from dashboard.param_widgets import ParamWidgets
from dashboard.share import sync_url, url_mapping
from analysis.volumes import mni_background
from dashboard.histograms import bins_of, layer_hooks as _hooks, value_histogram
from dashboard.slice_viewer import SliceViewer
from dashboard.upload import UploadPanel, user_named

PLOT_H = 230
#: Parameters kept in the URL (a shared link reopens the same seed and settings).
#: Every parameter of the model in the URL (see :func:`dashboard.share.url_mapping`):
#: preprocessing, confound columns, seed, threshold, Fisher z, colour range, peaks; the
#: keys of links shared before they were all there are kept.
URL_KEYS = url_mapping(SeedConnectivity, "conn_", aliases={
    "seed_mm": "conn_seed", "radius_mm": "conn_radius", "smoothing_fwhm": "conn_smoothing",
    "regress_confounds": "conn_confounds"})
#: CSS classes of preprocessing widgets that are not their parameter's name, dashed (the
#: tests and benchmarks find widgets by them).
PREPROCESSING_CSS = {"smoothing_fwhm": "smoothing-slider"}
PEAKS_CSS = """
.bk-btn-group { align-items: stretch; }
.bk-btn { font-family: monospace; text-align: left; white-space: pre; }
"""


def peak_labels(peaks: pd.DataFrame) -> dict:
    """One label per peak (MNI mm, r, z, nearest planted network): ``{label: row}``."""
    labels = {}
    for n, row in enumerate(peaks.itertuples(index=False)):
        text = (f"{n + 1:2d}. ({row.x:5.0f}, {row.y:5.0f}, {row.z:5.0f})  "
                f"r={row.r:5.2f}  z={row.fisher_z:5.2f}")
        if "network" in peaks:
            text += f"  {row.network} ({row.node_distance_mm:.0f} mm)"
        labels[text] = n
    return labels


def data_background(subject):
    """The background for a subject's maps: the MNI template when the data is on its
    grid (the built-in data; files in that space), else the mean functional image."""
    img = subject.img
    voxel = float(abs(img.affine[0, 0]))
    if voxel > 0 and float(voxel).is_integer():
        mni = mni_background(int(voxel))
        if mni.shape == img.shape[:3] and np.allclose(mni.attrs["affine"], img.affine):
            return mni
    mean = np.asarray(img.dataobj, dtype=np.float32).mean(axis=3)
    import nibabel as nib

    return to_xarray(nib.Nifti1Image(mean, img.affine), name="mean functional image")


def seed_series_title(series) -> str:
    seed = ", ".join(f"{v:g}" for v in series.attrs["seed_mm"])
    return f"seed ({seed}) r={series.attrs['radius_mm']:g} mm time series"


def seed_series_curve(series) -> hv.Curve:
    return hv.Curve((series["time"].values, series.values), kdims=["time (s)"],
                    vdims=["seed signal (z)"])


def seed_series_plot(series, layers=None) -> hv.Curve:
    """The seed's standardised time series (time in s)."""
    return seed_series_curve(series).opts(
        color="#2ca02c", line_width=1.5, height=PLOT_H, responsive=True, toolbar=None,
        tools=["hover"], framewise=True, title=seed_series_title(series),
        hooks=_hooks(layers, "curve"))


class ConnectivityTab(pn.viewable.Viewer):
    """The Connectivity tab: seed widgets, preprocessing, map, time series, peaks."""

    revision = param.Integer(default=0, precedence=-1, doc="""
        Bump to redraw the histogram and time series through HoloViews (they are
        otherwise updated in place).""")


    def __init__(self, model: SeedConnectivity | None = None, **params):
        super().__init__(**params)
        self._doc = pn.state.curdoc
        self.progress = pn.indicators.Progress(value=0, max=100, bar_color="primary",
                                               width=250, css_classes=["clean-progress"],
                                               visible=False)
        self.status = pn.pane.Str("", css_classes=["clean-status"])
        self.model = model or SeedConnectivity(size=default_size(), progress=self._progress)
        if self.model.progress is None:
            self.model.progress = self._progress
        m = self.model
        self._syncing = False
        self._lock = threading.RLock()
        self.viewer = SliceViewer(title="", map_label="r", cmap="RdBu_r", plot_height=250,
                                  crosshair_mm=tuple(float(v) for v in m.seed_mm),
                                  marker_mm=tuple(float(v) for v in m.seed_mm))
        self.summary = pn.pane.Markdown("", css_classes=["summary", "connectivity-summary"],
                                        sizing_mode="stretch_width")
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
        m.param.watch(self._on_result, ["result"])
        m.param.watch(self._on_display, ["threshold", "fisher_z", "clim", "n_peaks"])
        m.param.watch(self._sync_widgets, ["seed_mm", "radius_mm", "subject", *PREPROCESSING,
                                           "confound_columns", "threshold", "fisher_z",
                                           "clim"])
        # a click moves the seed; the crosshair, map and marker then move in one update
        self.viewer.follow_clicks = False
        self.viewer.param.watch(self._clicked, ["click_mm"])
        self.peaks_table.param.watch(self._peak_selected, ["value"])
        self._set_background()
        try:
            sync_url(m, URL_KEYS)   # a bad value in a link: ignored, with a notification
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
        if self._served() and not self._is_cached():
            # the first session cleans (once per process) in the background, with progress
            self.status.object = "cleaning the data once (shared by every session) ..."
            self.progress.visible = True
            self._clean_job = jobs.submit(
                self._background_clean, name="connectivity-clean", doc=self._doc,
                on_done=lambda _: self._first_compute(), on_error=self._show_error,
                on_queued=lambda n: setattr(self.status, "object", jobs.queued_message(n)))
        else:
            self._first_compute()

    # ---- widgets -------------------------------------------------------------------
    def _build_widgets(self):
        m = self.model
        step = self._voxel_size()
        self.w_subject = pn.widgets.Select(label="Subject", options=self._subject_options(),
                                           value=m.subject, css_classes=["subject-select"], width=270)
        self.w_x = pn.widgets.FloatInput(label="x (mm)", value=float(m.seed_mm[0]),
                                         step=step, width=80, css_classes=["seed-x"])
        self.w_y = pn.widgets.FloatInput(label="y (mm)", value=float(m.seed_mm[1]),
                                         step=step, width=80, css_classes=["seed-y"])
        self.w_z = pn.widgets.FloatInput(label="z (mm)", value=float(m.seed_mm[2]),
                                         step=step, width=80, css_classes=["seed-z"])
        self.w_radius = pn.widgets.FloatSlider(label="sphere radius (mm)", start=1.0,
                                               end=float(m.param.radius_mm.bounds[1]), step=1.0,
                                               value=float(m.radius_mm),
                                               css_classes=["radius-slider"])
        self.w_threshold = pn.widgets.FloatSlider.from_param(
            m.param.threshold, label="threshold on |r|", css_classes=["threshold-slider"])
        self.w_fisher = pn.widgets.Checkbox.from_param(m.param.fisher_z,
                                                       label="Fisher z = arctanh(r)",
                                                       css_classes=["fisher-z"])
        self.w_cmax = pn.widgets.FloatInput(label="colour max (0 = auto)", value=0.0, start=0.0,
                                            step=0.1, width=160, css_classes=["clim-max"])
        # the preprocessing group's widgets, made from its Parameters (label, doc as the
        # tooltip, bounds, step) in one loop, synced both ways by ParamWidgets
        self.prep = ParamWidgets(m, PREPROCESSING, css_classes=PREPROCESSING_CSS)
        self.w_prep = self.prep.widgets
        self.w_columns = pn.widgets.MultiChoice(label="confound columns",
                                                options=list(m.param.confound_columns.objects),
                                                value=list(m.confound_columns),
                                                css_classes=["confound-columns"], width=270)
        self.r_download = pn.widgets.FileDownload(
            callback=notify_errors(lambda: self._nifti_bytes(False)), filename="seed_r_map.nii.gz",
            label="r map (NIfTI)", color="light", embed=False, css_classes=["export-r"],
            width=140)
        self.z_download = pn.widgets.FileDownload(
            callback=notify_errors(lambda: self._nifti_bytes(True)), filename="seed_z_map.nii.gz",
            label="z map (NIfTI)", color="light", embed=False, css_classes=["export-z"],
            width=140)

        for w in (self.w_x, self.w_y, self.w_z):
            w.param.watch(self._seed_typed, "value")
        self.w_subject.param.watch(self._setter("subject", int), "value")
        self.w_radius.param.watch(self._setter("radius_mm", float), "value")
        self.w_cmax.param.watch(self._cmax_changed, "value")
        self.prep.link(self._set_param)
        self.w_columns.param.watch(self._setter("confound_columns", list), "value")

    def _voxel_size(self) -> float:
        try:
            data = self.model.subject_data()
            return float(abs(data.img.affine[0, 0]))
        except Exception:  # noqa: BLE001
            return 4.0

    def _subject_options(self) -> dict:
        m = self.model
        truth = m.truth
        if truth:
            return {f"{s['index']}: {s['participant_id']} ({s['child_adult']})": s["index"]
                    for s in truth["subjects"]}
        return {str(i): i for i in range(m.n_subjects)}

    def _setter(self, name, transform=lambda v: v):
        def set_value(event):
            if not self._syncing:
                self._set_param(name, transform(event.new))
        return set_value

    def _set_param(self, name, value):
        """A widget changed: set the model's parameter (not while showing the model's)."""
        if self._syncing:
            return
        self._run(lambda: setattr(self.model, name, value), busy=name not in ("radius_mm",))

    def _run(self, action, busy=False):
        """Run a model change; a DataError becomes a notification (the model reverts).

        Changes are serialised (the app runs callbacks in threads): the view ends
        consistent with the last change."""
        with self._lock:
            self._run_locked(action, busy)

    def _run_locked(self, action, busy=False):
        try:
            if busy:
                self.progress.param.update(value=0, visible=True)
            action()
        except (DataError, ValueError) as exc:
            report_error(exc)
            self._sync_widgets()
        finally:
            if busy:
                self.progress.visible = False

    # ---- progress of a cleaning ------------------------------------------------------
    def _served(self) -> bool:
        return served(self._doc)

    def _schedule(self, fn) -> None:
        """Run ``fn`` on the session's event loop (thread-safe), or now outside a server."""
        soon(self._doc, fn)

    def _progress(self, fraction: float, message: str = "") -> None:
        self._schedule(functools.partial(self._show_progress, fraction, message))

    def _show_progress(self, fraction: float, message: str) -> None:
        self.progress.param.update(value=int(round(100 * fraction)), visible=fraction < 1.0)
        self.status.object = message if fraction < 1.0 else ""

    def _background_clean(self, job):
        """A job (dashboard/jobs.py): clean into the process cache; stops at the next
        step of the cleaning once the session is gone."""
        m = self.model
        cleaned(m.subject_data(), m.settings().check(), progress=job.guarded(self._progress))

    def _show_error(self, exc):
        self.progress.visible = False
        self.status.object = f"error: {report_error(exc)}"

    def _is_cached(self) -> bool:
        from analysis.connectivity import CACHE

        try:
            key = (self.model.subject_data().key, self.model.settings())
        except Exception:  # noqa: BLE001
            return False
        return key in CACHE._items

    def _first_compute(self):
        try:
            if self.model.result is None:
                self.model.compute()          # -> _on_result redraws
            else:
                self._redraw(move_crosshair=True)
            self.status.object = ""
            self.progress.visible = False
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
        xyz = (float(self.w_x.value), float(self.w_y.value), float(self.w_z.value))
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

    # ---- uploads: the user's own files, this session only ---------------------------------
    def _build_uploads(self):
        """An upload panel (func, confounds, mask), "Analyse" and "back to the dataset".

        The files live in this session's temporary folder (removed when the session
        ends); their cleaned data is cached under a key made of their paths in that
        folder (no other session can ask for it) and dropped when this session leaves
        them or ends."""
        self.upload = UploadPanel(roles=["func", "confounds", "mask"])
        self.w_analyse = pn.widgets.Button(label="Analyse uploaded data", color="primary",
                                           disabled=True, css_classes=["analyse-upload"],
                                           width=230)
        self.w_dataset = pn.widgets.Button(label="Back to the built-in dataset",
                                           color="default", disabled=True,
                                           css_classes=["use-dataset"], width=230)
        self.w_upload_tr = pn.widgets.FloatInput(
            label="repetition time (s; 0 = from the header)", value=0.0, start=0.0, step=0.1,
            width=230, css_classes=["upload-t-r"])
        self.data_source = pn.pane.Markdown(self._dataset_label(),
                                            css_classes=["data-source"], margin=(0, 5))
        # the switch's own progress, beside its buttons (where the user is looking)
        self.upload_progress = pn.indicators.Progress(value=0, max=100, bar_color="primary",
                                                      width=230, visible=False,
                                                      css_classes=["upload-progress"])
        self.upload_status = pn.pane.Markdown("", css_classes=["upload-switch-status"],
                                              margin=(0, 5))
        self._switching = False
        self._upload_keys: set = set()      # cache keys of this session's uploaded data
        self.upload.param.watch(self._uploads_changed, "paths")
        self.w_analyse.on_click(notify_errors(lambda event: self.analyse_uploads()))
        self.w_dataset.on_click(notify_errors(lambda event: self.use_dataset()))
        if self._served():
            pn.state.on_session_destroyed(lambda ctx: self._forget_uploads())

    def _dataset_label(self) -> str:
        m = self.model
        if m.uses_own_data:
            names = m.subject_data().info.get("uploads", {})
            files = ", ".join(names[r] for r in ("func", "confounds", "mask") if r in names)
            return f"**Data:** your files ({safe_markdown(files)})"
        return "**Data:** the built-in dataset"

    def _uploads_changed(self, event):
        self.w_analyse.disabled = "func" not in event.new or self._switching

    def analyse_uploads(self):
        """Switch this session's analysis to the uploaded files (cleaned in the background)."""
        paths = dict(self.upload.paths)
        if "func" not in paths:
            raise DataError("upload a 4D functional image (NIfTI) first")
        names = dict(self.upload.uploads.names)
        t_r = float(self.w_upload_tr.value or 0.0) or None

        def load():
            try:
                subject = load_subject(paths["func"], confounds=paths.get("confounds"),
                                       mask=paths.get("mask"), t_r=t_r, name="your files",
                                       info={"uploads": {r: names[r] for r in paths}})
            except DataError as exc:
                if exc.problem.startswith("no repetition time"):
                    raise DataError("no repetition time in the header: enter it (s) under "
                                    "'repetition time'", exc.path) from None
                raise
            self._upload_keys.add(subject.key)
            return subject

        self._switch(load, "reading your files ...", names=names, paths=paths)

    def use_dataset(self):
        """Back to the built-in dataset (this session's uploads stay for another try)."""
        self._switch(None, "back to the built-in dataset ...")

    def _switch(self, load, message, names=None, paths=None):
        if self._switching:
            return
        self._switching = True
        self.w_analyse.disabled = self.w_dataset.disabled = True
        self.upload_progress.param.update(value=0, visible=True)
        self.upload_status.object = message
        work = functools.partial(self._prepare, load, names or {}, paths or {})
        if self._served():   # a job (dashboard/jobs.py): capped, cancelled with the session
            self._switch_job = jobs.submit(
                work, name="connectivity-upload", doc=self._doc,
                on_queued=lambda n: setattr(self.upload_status, "object",
                                            jobs.queued_message(n)))
        else:
            work()

    def _prepare(self, load, names, paths, job=None):
        """A job, off the event loop: read the files and clean them (cached), with progress."""
        m = self.model
        progress = job.guarded(self._upload_progress) if job is not None else \
            self._upload_progress
        try:
            subject = load() if load is not None else m.dataset_subject()
            if job is not None:
                job.check()
            cleaned(subject, m.settings_for(subject).check(), progress=progress)
            if job is not None and job.cancelled and load is not None:
                CACHE.discard(subject.key)   # the session went meanwhile: nothing kept
                return
        except Exception as exc:  # noqa: BLE001 - shown in this session, the map stays
            if job is not None and job.cancelled:
                return   # the session is gone (or going): nobody to tell
            self._schedule(functools.partial(self._switch_failed, user_named(exc, names, paths)))
            return
        self._schedule(functools.partial(self._apply_switch, subject if load else None))

    def _apply_switch(self, subject):
        """On the event loop: the model takes the new data (cleaned already: no wait)."""
        m = self.model
        with self._lock:
            previous = m.subject_data().key if m.uses_own_data else None
            try:
                moved = tuple(m.seed_mm)
                m.use_data(subject)
            except Exception as exc:  # noqa: BLE001
                self._switch_failed(exc)
                return
            self._sync_widgets()
            self._set_background()
            self._switching = False
            own = m.uses_own_data
            self.w_subject.disabled = own
            self.w_dataset.disabled = not own
            self.w_analyse.disabled = "func" not in self.upload.paths
            self.data_source.object = self._dataset_label()
            self.upload_progress.visible = False
            self.upload_status.object = ""
            if previous is not None and previous != (subject.key if subject else None):
                CACHE.discard(previous)            # the session left those files
                self._upload_keys.discard(previous)
            if tuple(m.seed_mm) != moved:
                report_info(f"the seed moved to {tuple(round(v, 1) for v in m.seed_mm)} mm: "
                            "the previous one is outside this brain")

    def _switch_failed(self, exc):
        m = self.model
        in_use = m.subject_data().key if m.uses_own_data else None
        for key in list(self._upload_keys - {in_use}):   # refused files: nothing kept
            CACHE.discard(key)
            self._upload_keys.discard(key)
        self._switching = False
        self.w_analyse.disabled = "func" not in self.upload.paths
        self.w_dataset.disabled = not m.uses_own_data
        self.upload_progress.visible = False
        self.upload_status.object = f"**refused:** {safe_markdown(report_error(exc))}"
        self._sync_widgets()

    def _upload_progress(self, fraction: float, message: str = "") -> None:
        def show():
            self.upload_progress.value = int(round(100 * fraction))
            if fraction < 1.0:
                self.upload_status.object = message
        self._schedule(show)

    def _forget_uploads(self):
        """The session ended: its uploaded data leaves the shared cache (the upload
        panel removes the files)."""
        for key in list(self._upload_keys):
            CACHE.discard(key)
        self._upload_keys.clear()

    # ---- model -> view ------------------------------------------------------------------
    def _sync_widgets(self, *events):
        m = self.model
        self._syncing = True
        try:
            self.w_x.value, self.w_y.value, self.w_z.value = (float(v) for v in m.seed_mm)
            self.w_subject.value = m.subject
            self.w_radius.value = float(m.radius_mm)
            self.prep.show()
            self.w_columns.param.update(options=list(m.param.confound_columns.objects),
                                        value=list(m.confound_columns))
            self.w_columns.disabled = not m.regress_confounds
            self.w_cmax.value = float(max(abs(v) for v in m.clim)) if m.clim else 0.0
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
        with self._lock:
            try:
                stat = m.stat_map()
                label = "fisher_z" if m.fisher_z else "r"
                seed = tuple(float(v) for v in m.result.seed_mm)
                update = dict(stat_map=stat, threshold=m.display_threshold(),
                              clim=m.colour_range(), marker_mm=seed, map_label=label,
                              title=f"seed-to-voxel {label} map, thresholded at "
                                    f"+/-{m.display_threshold():.2f}")
                self._syncing = True
                try:
                    if move_crosshair:
                        update["crosshair_mm"] = seed
                    self.viewer.param.update(**update)
                finally:
                    self._syncing = False
                self._update_plots()
                self.peaks = m.peaks()
                self._syncing = True
                try:
                    self.peaks_table.param.update(options=peak_labels(self.peaks), value=None)
                finally:
                    self._syncing = False
                self.summary.object = m.summary()
            except Exception as exc:  # noqa: BLE001
                report_error(exc)

    def _update_plots(self):
        """The histogram and the seed's time series, in place (redrawn if they cannot be)."""
        m = self.model
        label = "fisher_z" if m.fisher_z else "r"
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

    def _hist_element(self, layers=None):
        m = self.model
        self._hist_label = label = "fisher_z" if m.fisher_z else "r"
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

    # ---- exports ------------------------------------------------------------------------
    def _nifti_bytes(self, fisher_z: bool):
        import gzip

        img = self.model.to_nifti(fisher_z=fisher_z)
        return io.BytesIO(gzip.compress(img.to_bytes(), compresslevel=6))

    def export_map(self) -> dict:
        m = self.model
        return {"map": m.stat_map(), "background": self.viewer.background,
                "title": m.summary(), "threshold": m.display_threshold(),
                "name": "z_map" if m.fisher_z else "r_map", "symmetric": True,
                "cut_coords": tuple(m.result.seed_mm) if m.result else None}

    def export_scores(self) -> pd.DataFrame:
        return self.model.peaks()

    def export_summary(self) -> str:
        return self.model.summary()

    def export_params(self) -> dict:
        m = self.model
        names = ("subject", "seed_mm", "radius_mm", *PREPROCESSING, "t_r", "threshold",
                 "fisher_z")
        params = {k: getattr(m, k) for k in names}
        if m.uses_own_data:
            params.pop("subject")
            params["data"] = "your files: " + ", ".join(
                f"{r} {n}" for r, n in m.subject_data().info.get("uploads", {}).items())
        return params

    def export_code(self) -> str:
        """A plain nilearn / scikit-learn script reproducing the tab (see analysis.scripts);
        uploads by the names the user gave them, in the folder it runs in."""
        from analysis.scripts import connectivity_script

        return connectivity_script(self.model)

    # ---- layout -------------------------------------------------------------------------
    def __panel__(self):
        from dashboard.export import ExportBar

        controls = pn.Column(
            "**Seed connectivity** (nilearn's seed-to-voxel example). "
            "Click a slice to move the seed.",
            self.w_subject, "Seed (MNI)", pn.Row(self.w_x, self.w_y, self.w_z), self.w_radius,
            self.w_threshold, self.w_fisher, self.w_cmax,
            pn.layout.Divider(),
            "**Preprocessing** (cleaned once per setting, cached; a filter at 0 is off)",
            *self.prep.views(), self.w_columns,
            self.progress, self.status,
            self.upload.check_size_in(pn.Card(
                self.upload, self.w_upload_tr, self.w_analyse, self.upload_progress,
                self.upload_status,
                self.w_dataset, self.data_source,
                title="Your files: NIfTI, confounds, mask", collapsed=True,
                css_classes=["connectivity-upload"])),
            width=290)
        main = pn.Column(
            self.summary, self.viewer,
            pn.Row(self.series, self.hist, sizing_mode="stretch_width"),
            "**Peaks** (local maxima of r above the threshold; click a row to go there)",
            self.peaks_table,
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
            from dashboard.group import GroupPanel

            self._group_panel = GroupPanel(seed_source=self.model)
        return self._group_panel


__all__ = ["ConnectivityTab", "value_histogram", "seed_series_plot", "mni_background", "cleaned"]
