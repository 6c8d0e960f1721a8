"""The Encoding tab's layout and callbacks: widgets, updates, voxel readout.

A thin view over :class:`analysis.encoding.EncodingAnalysis`: its parameters
become widgets (alpha on a log10 slider) synced both ways and with the URL; a
structural change (data source, CV scheme, folds, lag, precision) is computed in a
job, the views greyed out meanwhile (:class:`dashboard.busy.Busy`; a setting decomposed already
is shown at once), a move of
alpha, the threshold or the voxel updates the views in place (the map and histogram
first, the voxel's views one message later). A structural change on the same data
shows its results in the drawn views too (same frames, new values: no HoloViews
redraw); new data (another source) redraws them. Under the
R^2 map, beside its histogram and the alpha path, the best alpha of each voxel (of the
alpha path's alphas, by fold-mean R^2) on a log10 colour scale: the axial slice through
the R^2 map's crosshair. The
plots are in :mod:`dashboard.encoding.views`, the views' callbacks in
:mod:`dashboard.encoding.elements`, the exports in :mod:`dashboard.encoding.exports`,
the data sources (synthetic, the server's nilearn data, the user's own files: runs,
mask and feature tables uploaded in the "Your files" card) in
:mod:`dashboard.encoding.sources`, the permutation test of the R^2 (under the histogram:
its FDR line) in :mod:`dashboard.encoding.significance`.
"""

from __future__ import annotations

import math

import numpy as np
import panel as pn
import param
import xarray as xr

from analysis.config import default_size
from analysis.encoding import EncodingAnalysis
from analysis.errors import DataError
from dashboard.param_widgets import with_tooltip
from dashboard.notify import loading, notify_errors, report_error, report_info
from dashboard.batch import batched, in_batch, serialized, served, soon
from dashboard.busy import Busy
from dashboard.clusters import ClusterTable
from dashboard.render.live import LivePlot
from dashboard.share import sync_url, url_mapping
from dashboard.slice_viewer import SliceViewer
from dashboard.render.server import session_doc

from .elements import EncodingElements
from .exports import EncodingExports
from .significance import EncodingSignificance
from .sources import SYNTHETIC, EncodingSources
from .views import rf_element, update_time_course
from .widgets import EncodingWidgets

#: Analysis parameters kept in the URL (shareable view) and their query keys: every one
#: but the dataset size (the server's setting); see :func:`dashboard.share.url_mapping`.
URL_KEYS = url_mapping(EncodingAnalysis, "enc_", exclude=("size",))
#: The tab's own state in the URL: the stimulus sample and run shown (the slider's alpha
#: is the analysis' alpha, above).
TAB_URL_KEYS = {"sample": "enc_sample", "run": "enc_run"}
#: The display's state in the URL: the fixed colour range (see widgets.py).
DISPLAY_URL_KEYS = {"fixed_clim": "enc_fixed_clim", "clim_range": "enc_clim"}
class EncodingTab(EncodingWidgets, EncodingSources, EncodingElements, EncodingExports,
                  pn.viewable.Viewer):
    """The Encoding tab: widgets, summary line, R^2 map, histogram, alpha path, receptive fields."""

    source = param.Selector(default=SYNTHETIC, objects=[SYNTHETIC], label="Data", doc="""
        The dataset: the synthetic one, the real Miyawaki 2008 data of the server's
        nilearn data folder when it has one, or your own files once analysed (the
        "Your files" card below).""")
    delays = param.String(default="2", label="Delays (volumes)", doc="""
        Your files: how many volumes after each row of features the response is
        modelled, e.g. 2 (Miyawaki's lag) or 1 2 3: each run's features shifted down by
        each delay (zeros at the run's start), the copies side by side.""")
    feature_grid = param.Selector(
        default="F", label="Features as an image", objects={
            "image (column-major)": "F", "image (row-major)": "C",
            "no image: weights": "none"}, doc="""
        Your files: a square number of features (100 = 10 x 10) is shown as an image,
        its pixels in this order along a table's row (column-major as Miyawaki's label
        files); other numbers of features, or "no image", as weights per feature and
        delay.""")
    log10_alpha = param.Number(
        default=2.0, step=0.05, label="Ridge alpha (log10)",
        bounds=tuple(math.log10(v) for v in EncodingAnalysis.param.alpha.softbounds), doc="""
        Ridge regularisation, log10 of scikit-learn's Ridge alpha: stronger to the
        right (the alpha path below marks it).""")
    sample = param.Integer(default=0, bounds=(0, None), label="Stimulus sample", doc="""
        The stimulus image (one per volume, after the lag) shown by the stimulus browser.""")
    run = param.Integer(default=1, bounds=(1, None), label="Time course: run", doc="""
        The run whose measured and predicted time course is shown (1-based).""")
    fixed_clim = param.Boolean(default=False, label="Fixed colour range", doc="""
        Keep the colour range when alpha, lag or folds change, so maps compare by eye.""")
    clim_range = param.Range(default=None, allow_None=True, label="Colour range", doc="""
        The R\u00b2 values the colours span while the colour range is fixed (min, max):
        the map's range when the option is turned on.""")
    detail_alpha = param.Number(default=None, allow_None=True, precedence=-1, doc="""
        The alpha of the voxel-level views (receptive field, time course, path marker):
        they follow the map one message later, so the map and histogram arrive first.""")
    best_alpha_map = param.ClassSelector(class_=xr.DataArray, default=None, allow_None=True,
                                         precedence=-1, doc="""
        Each voxel's best alpha (of the alpha path's), log10, as a volume (x, y, z in mm;
        NaN outside the mask); its alphas in ``attrs["alphas"]``. Shown beside the map.""")
    revision = param.Integer(default=0, precedence=-1, doc="""
        Bumped after a structural change has been recomputed (redraws every view).""")

    analysis = param.ClassSelector(class_=EncodingAnalysis, default=None, precedence=-1,
                                   constant=True, doc="""
        The analysis shown (a notebook hands its own; by default one on the server's
        nilearn data when it has some, else on the synthetic dataset of its size).""")

    def __init__(self, analysis: EncodingAnalysis | None = None, **params):
        source = params.pop("source", None)
        super().__init__(**params)
        start = self._init_sources(analysis, source)   # the real data when present
        with param.edit_constant(self):
            self.analysis = analysis or EncodingAnalysis(size=default_size(), data_dir=start)
        a = self.analysis
        self._doc = session_doc()   # this session's, never another's (render/server.py)
        # served, the voxel's views come after the tab's first message (see __panel__)
        self._details_shown = not served(self._doc)
        self.detail_alpha = a.alpha
        # the map is cut at 0 (as the seed shows it); the readout gives the true R^2
        self.viewer = SliceViewer(title="", map_label="R2", cmap="fire", symmetric=False,
                                  plot_height=230)
        self.clusters = ClusterTable(self.viewer, two_sided=False, stem="encoding")
        self.summary = pn.pane.Markdown("", css_classes=["summary"], sizing_mode="stretch_width")
        # a structural change (data, CV scheme, folds, lag, precision) is computed as a job: its
        # progress here, the views greyed out until all of them show the result
        self.busy = Busy(self._doc, "encoding")
        self.progress, self.status = self.busy.progress, self.busy.status
        self.views = self.busy.views
        # the permutation test of the R^2, under the histogram (significance.py)
        self.significance = EncodingSignificance(self)
        self.voxel_info = pn.pane.Markdown("", css_classes=["voxel-info"],
                                           sizing_mode="stretch_width")
        rev = self.param.revision
        # drawn by HoloViews, then updated in place when only values move (dashboard/render/live.py)
        self._hist = LivePlot(self._hist_element, ["hist", "line"],
                              redraw_on={"revision": rev}, css_classes=["r2-hist"],
                              linked_axes=False, sizing_mode="stretch_width")
        self.hist = self._hist.pane
        self._path = LivePlot(self._path_element, ["curve", "points", "marker"],
                              redraw_on={"alpha_range": a.param.alpha_range,
                                         "n_alphas": a.param.n_alphas, "revision": rev},
                              css_classes=["alpha-path"], linked_axes=False,
                              sizing_mode="stretch_width")
        self.path = self._path.pane
        self._ridge = LivePlot(self._ridge_element, ["image"],
                               redraw_on={"voxel": a.param.voxel, "revision": rev},
                               css_classes=["rf-ridge"], linked_axes=False)
        self.rf_ridge = self._ridge.pane
        # served, a Lasso not fitted yet is fitted in a job, then shown in place (elements.py)
        self._lasso = LivePlot(self._lasso_element, ["image"],
                               redraw_on={"voxel": a.param.voxel, "revision": rev},
                               css_classes=["rf-lasso"], linked_axes=False)
        self.rf_lasso = self._lasso.pane
        # the run and the stimulus browser's sample move in place (_time_course_moved)
        self._timecourse = LivePlot(self._time_course_element,
                                    ["measured", "predicted", "sample"],
                                    redraw_on={"voxel": a.param.voxel, "revision": rev},
                                    css_classes=["time-course"], linked_axes=False,
                                    sizing_mode="stretch_width")
        self.timecourse = self._timecourse.pane
        # each voxel's best alpha (the alpha path's), axial through the R^2 map's crosshair
        # a new best-alpha map (same grid) is shown in place (_update_alpha_map)
        self._alpha_map = LivePlot(self._alpha_map_element, ["map", "vline", "hline"],
                                   redraw_on={"crosshair": self.viewer.param.crosshair_mm,
                                              "revision": rev},
                                   css_classes=["best-alpha-map"], linked_axes=False)
        self.best_alpha_pane = self._alpha_map.pane
        self._stimulus_plot = LivePlot(self._stimulus_element, ["image"],
                                       redraw_on={"sample": self.param.sample,
                                                  "revision": rev},
                                       css_classes=["stimulus"], linked_axes=False)
        self.stimulus_pane = self._stimulus_plot.pane
        self.stimulus_info = pn.pane.Markdown("", css_classes=["stimulus-info"])
        self._build_widgets()
        self._build_uploads()
        sync_url(a, URL_KEYS, rules=self._link_rules())  # a shared link sets the analysis
        self._widgets_from_analysis()
        a.param.watch(self._structural_changed,
                      ["data_dir", "own", "cv", "n_folds", "lag", "dtype"])
        a.param.watch(self._alpha_grid_changed, ["alpha_range", "n_alphas"])
        a.param.watch(self._alpha_changed, ["alpha"])
        a.param.watch(self._threshold_changed, ["threshold"])
        a.param.watch(self._voxel_changed, ["voxel"])
        self.viewer.param.watch(self._clicked, ["crosshair_mm"])
        self._start()

    @property
    def plots(self) -> dict[str, LivePlot]:
        """The tab's live plots by name ("hist", "path", "ridge", "lasso", "timecourse",
        "best_alpha", "stimulus"): each one's pane, in-place layers, ``rev`` and current
        ``element()``."""
        return {"hist": self._hist, "path": self._path, "ridge": self._ridge,
                "lasso": self._lasso, "timecourse": self._timecourse,
                "best_alpha": self._alpha_map, "stimulus": self._stimulus_plot}

    @serialized
    def _set_analysis(self, name, value):
        setattr(self.analysis, name, value)

    @serialized
    def _update_analysis(self, **values):
        """Set several of the analysis' parameters at once (one structural change)."""
        self.analysis.param.update(**values)

    @param.depends("log10_alpha", watch=True)
    @notify_errors
    @serialized
    def _log_alpha_to_analysis(self):
        alpha = float(10.0 ** self.log10_alpha)
        if not math.isclose(alpha, self.analysis.alpha, rel_tol=1e-9):
            with batched():  # every view's update in one message, one model-graph walk
                self.analysis.alpha = alpha

    # ---- updates ------------------------------------------------------------------
    @notify_errors
    def _start(self):
        self._show_data()   # its background; the best voxel unless a link chose one
        self._update_samples()
        sync_url(self, TAB_URL_KEYS)  # the sample's and run's bounds are the data's now
        self.w_sample.value, self.w_run.value = self.sample, self.run
        self._update_map()
        sync_url(self, DISPLAY_URL_KEYS)   # a fixed range: the map's when the link has none
        self._voxel_changed()

    def _update_map(self):
        a = self.analysis
        r2 = a.mean_r2().values
        vol = a.r2_map()
        shown = vol.copy(data=np.where(vol.values < 0, 0.0, vol.values))  # the seed's cut at 0
        top = float(np.nanmax(r2)) if np.isfinite(r2).any() else 1.0
        self.viewer.param.update(stat_map=shown, readout_map=vol,
                                 threshold=max(a.threshold, 1e-6),
                                 clim=self.shown_clim(top),
                                 title=f"cross-validated R\u00b2 (alpha={a.alpha:.4g})")
        counts, edges = np.histogram(r2[np.isfinite(r2)], bins=60)  # as r2_bins
        self._hist.show(lambda layers: self.significance.drawn_current() and layers[
            "hist"].histogram(counts=counts, edges=edges, names=("R2", "voxels")))
        self.summary.object = a.summary()

    def _structural_changed(self, *events):
        self.w_folds.disabled = self.analysis.cv != "kfold"
        self._show_source()
        for w, name in ((self.w_cv, "cv"), (self.w_folds, "n_folds"), (self.w_lag, "lag"),
                        (self.w_dtype, "dtype")):
            w.value = getattr(self.analysis, name)
        if served(self._doc) and not self.analysis.has_engine():
            self._start_structural()
        else:   # decomposed already (a quick update), or a notebook or a test: at once
            self.busy.cancel()   # a change undone: its job is not needed
            self._apply_structural()

    def _start_structural(self):
        """Decompose the folds for the new structural parameters in a job (a copy of the
        analysis with those parameters, so a later change cannot mix into it), the views
        busy meanwhile; then show every view from the cache in one update. A change
        made while it runs replaces it."""
        a = self.analysis
        key = a.structural_key()
        snapshot = EncodingAnalysis(**{k: getattr(a, k) for k in a.STRUCTURAL},
                                    **{k: getattr(a, k) for k in ("alpha", "alpha_range",
                                                                  "n_alphas")})
        voxel, shown = a.voxel, self._shown_dir
        report = self.busy.report

        def work(job):
            # the file of the disk cache is written after the views are shown
            snapshot.engine(progress=job.guarded(lambda f, m="": report(0.9 * f, m)),
                            save_later=True)
            job.check()
            report(0.92, "alpha path ...")
            snapshot.r2_folds()    # the map's (shared: the views read them from the cache)
            snapshot.alpha_path()
            if voxel is not None and voxel < snapshot.n_voxels:
                snapshot.ridge_receptive_field(voxel)
                snapshot.lasso_receptive_field(voxel)   # tens of ms once scikit-learn is warm
            return key

        def apply(_):
            with batched():
                self._apply_structural()   # at the current alpha (one moved meanwhile too)
                self._voxel_changed()   # a click made meanwhile

        self.busy.run(work, "encoding-structural", "decomposing the folds ...",
                      current=lambda computed: computed == self.analysis.structural_key(),
                      apply=apply, on_error=lambda exc: self._source_failed(shown))

    def _apply_structural(self):
        """Show the current structural parameters' results: new data (its background,
        grid, best voxel) redraws every view; the same data's new folds, lag, CV scheme
        or precision are new values in the drawn views (in place, one message)."""
        try:
            with batched():
                new_data = self._show_data()   # new data: its background and best voxel
                self._update_samples()
                self._update_map()
                self._update_alpha_map()
                self._update_voxel_info()
                if new_data:
                    self.revision += 1
                    soon(self._doc, self._update_details)   # an alpha moved meanwhile
                else:
                    self._show_path()
                    self._show_stimulus()
                    self._show_lasso()
                    self._update_details()   # the ridge field and the time course
            self._prefetch()
        except Exception as exc:  # noqa: BLE001 - bad combination: say so, keep serving
            report_error(exc)

    def _prefetch(self):
        """Served: the runs' products of the setting shown, computed in the background
        when idle (a next number of folds or CV scheme then reads no responses)."""
        if served(self._doc):
            self.analysis.prefetch_run_blocks()

    @notify_errors
    def _alpha_changed(self, event):
        a = self.analysis
        if not math.isclose(10.0 ** self.w_alpha.value, a.alpha, rel_tol=1e-6):
            self.w_alpha.value = round(math.log10(a.alpha), 6)
        if self.busy.active:
            return  # shown with the structural change's result
        self._update_map()  # with the histogram (bound to alpha): the first message
        soon(self._doc, self._update_details)

    @notify_errors
    @in_batch
    def _update_details(self):
        """The voxel-level views at the current alpha (second message)."""
        a = self.analysis
        if self.busy.active:
            return
        self.detail_alpha = alpha = a.alpha
        self._path.show(lambda layers: layers["marker"].location(alpha))
        if a.voxel is not None:
            voxel = a.voxel

            def ridge(layers):
                image, clim = rf_element(a.ridge_receptive_field(voxel))
                return layers["image"].image(image, clim=clim) and layers["image"].title(
                    self._ridge_title(voxel, alpha))

            self._ridge.show(ridge)
            tc = a.time_course(voxel)
            self._timecourse.show(lambda layers: update_time_course(
                layers, tc, self.run, self.sample))
        self._update_voxel_info()

    @param.depends("run", "sample", watch=True)
    @notify_errors
    @in_batch
    def _time_course_moved(self):
        """Another run, or the stimulus browser's sample: the time course in place (its
        curves, time axis and the sample's line)."""
        a = self.analysis
        if a.voxel is None or self.busy.active or not self._timecourse.layers[
                "predicted"].drawn():
            return   # drawn with the current run and sample when it is drawn
        tc = a.time_course(a.voxel)
        self._timecourse.show(lambda layers: update_time_course(
            layers, tc, self.run, self.sample))

    @notify_errors
    @in_batch
    def _threshold_changed(self, event):
        a = self.analysis
        if self.w_threshold.value != a.threshold:
            self.w_threshold.value = a.threshold
        if self.busy.active:
            return
        self.viewer.threshold = max(a.threshold, 1e-6)
        self._hist.show(lambda layers: layers["line"].location(a.threshold))
        self.summary.object = a.summary()

    @notify_errors
    @in_batch
    def _voxel_changed(self, event=None):
        a = self.analysis
        if a.voxel is None or self.busy.active:
            return
        if self.viewer.voxel_index() != a.voxel_ijk():
            self.viewer.crosshair_mm = a.voxel_mm()
        self._update_voxel_info()

    def _clicked(self, event):
        ijk = self.viewer.voxel_index()
        if ijk is None:
            return
        try:
            v = self.analysis.voxel_at(ijk)
            if v is None:
                report_info(f"voxel {ijk} is outside the mask")
                return
            if v != self.analysis.voxel:
                self.analysis.voxel = v
        except (DataError, ValueError) as exc:
            report_error(exc)

    def _update_samples(self):
        runs = self.analysis.sample_index()[1]
        n_runs = int(runs.max()) + 1
        self.param.run.bounds = (1, n_runs)
        self.w_run.param.update(end=max(n_runs, 2), value=min(self.w_run.value, n_runs))
        n = len(runs)
        self.param.sample.bounds = (0, n - 1)
        self.w_sample.param.update(end=max(n - 1, 1), value=min(self.w_sample.value, n - 1))
        self._stimulus_text()

    @param.depends("sample", watch=True)
    @notify_errors
    def _stimulus_text(self):
        self.stimulus_info.object = self._stimulus_description()

    # ---- layout ------------------------------------------------------------------------
    def _labelled(self) -> list:
        """The analysis' widgets, each with its parameter's doc as a tooltip."""
        a = self.analysis.param
        # the Data selector when there is a choice (the server's nilearn data, the user's
        # files once analysed: then it appears, see sources.py)
        return [self.source_slot] + [with_tooltip(w, p) for w, p in (
            (self.w_alpha, self.param.log10_alpha), (self.w_threshold, a.threshold),
            (self.w_cv, a.cv), (self.w_folds, a.n_folds), (self.w_lag, a.lag),
            (self.w_dtype, a.dtype))]

    def __panel__(self):
        from dashboard.export import ExportBar

        # Served, the tab comes first with the map, its histogram and the widgets; the
        # voxel's views, the alpha path and the stimulus browser follow once the page has
        # loaded, or at the next tick if it has (in a second message): a first visitor
        # sees an interactive page sooner.
        stimulus = pn.Column(width=240)
        voxel_slot = pn.Column(sizing_mode="stretch_width")
        path_slot = pn.Column(sizing_mode="stretch_width")
        alpha_slot = pn.Column()
        details = loading("details-loading", size=30)

        def show_details():
            # the text first: a pane changed just after its model is made, in the same
            # batch, gets the design's stylesheets from the CDN (Panel 1.9)
            self._details_shown = True
            self._update_voxel_info()
            self._update_alpha_map()
            self._prefetch()
            with batched():
                stimulus[:] = [pn.layout.Divider(), pn.pane.Markdown("**Stimulus browser**"),
                               with_tooltip(self.w_sample, self.param.sample),
                               self.stimulus_pane, self.stimulus_info]
                voxel_slot[:] = [self.voxel_info]
                path_slot[:] = [self.path]
                alpha_slot[:] = [self.best_alpha_pane]
                details[:] = [pn.Row(self.rf_ridge, self.rf_lasso), self.timecourse,
                              with_tooltip(self.w_run, self.param.run), ExportBar(source=self, stem="encoding"),
                              pn.pane.Markdown("**Clusters** of R\u00b2 above the threshold "
                                               "(click a row to go there)"), self.clusters]

        controls = pn.Column(
            pn.pane.Markdown("**Ridge encoding** (Miyawaki 2008)"),
            *self._labelled(), self.display, self.progress, self.status, self.upload_card(),
            stimulus,
            width=240)
        self.views[:] = [self.summary, self.viewer, voxel_slot,
                         pn.Row(self.hist, path_slot, alpha_slot, sizing_mode="stretch_width"),
                         self.significance, details]
        main = self.views
        if not self._details_shown:
            if pn.state.loaded:  # the tab is made after the page (presentation, late start)
                soon(self._doc, notify_errors(show_details))
            else:
                pn.state.onload(notify_errors(show_details))
        else:
            show_details()
        return pn.Row(controls, main, sizing_mode="stretch_width")
