"""The Encoding tab's HoloViews elements, drawn from the analysis' current results.

A mixin of :class:`dashboard.encoding.tab.EncodingTab`: the callbacks of its
live plots (R^2 histogram, alpha path, ridge and Lasso receptive fields, time
course, stimulus) and their in-place updates after a structural change on the
same data (new folds, lag, CV scheme or precision: new values in the same
frames). Each draws the element for its arguments; an error becomes a
notification and an empty element of the same shape, so a view never breaks the
page. Also the best-alpha map (an axial slice through the R^2 map's crosshair)
and the voxel's and sample's readouts.

Served, a LassoLarsCV receptive field not fitted yet (a new voxel; the first fit
of a process takes about a second, scikit-learn warming up) is fitted in a job: its
view says "fitting ..." meanwhile and shows the fit in place when done; the other
views do not wait for it. (A structural change's job fits the voxel's with the rest.)
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.batch import batched, served
from dashboard.notify import notify_errors, report_error, safe_markdown
from dashboard.render.live import Layer, padded
from dashboard.slice_viewer import slice_arrays
from .views import (PLANTED_TEXT, PLOT_H, best_alpha_slice, r2_histogram, rf_element,
                    receptive_field_image, rf_kind, stimulus_image, time_course_plot)

#: The Lasso view's title while its fit runs in a job.
FITTING = "fitting ..."


class EncodingElements:
    """The tab's HoloViews elements (DynamicMap callbacks; errors become notifications)."""

    def _hist_element(self, layers, revision):
        threshold = self.analysis.threshold
        try:
            # with the permutation test's FDR line once one has run (significance.py)
            return self.significance.decorate(
                r2_histogram(self.analysis.mean_r2().values, threshold, layers=layers))
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            return r2_histogram(np.zeros(1), threshold, layers=layers)

    def _path_element(self, layers, alpha_range, n_alphas, revision):
        try:
            path = self.analysis.alpha_path()
            xs, ys = path.alpha.values, path.mean_r2.values
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            xs, ys = np.array([1.0, 10.0]), np.zeros(2)
        curve = hv.Curve((xs, ys), kdims=["alpha"], vdims=["mean R2"]).opts(
            logx=True, color="black", line_width=2, title="alpha path (mean R\u00b2)",
            height=PLOT_H, responsive=True, toolbar=None, tools=["hover"], framewise=True,
            hooks=[layers["curve"].hook])
        marker = hv.VLine(self.detail_alpha).opts(color="red", line_width=2,
                                                  hooks=[layers["marker"].hook])
        return (curve * hv.Scatter((xs, ys), kdims=["alpha"], vdims=["mean R2"]).opts(
            color="black", size=4, hooks=[layers["points"].hook]) * marker).opts(
            show_legend=False)

    def _show_path(self) -> bool:
        """The alpha path's new scores in the drawn plot (same alphas), in place."""
        path = self.analysis.alpha_path()
        xs, ys = path.alpha.values, path.mean_r2.values

        def update(layers):
            finite = ys[np.isfinite(ys)]
            return (layers["curve"].xy(xs, ys) and layers["points"].xy(xs, ys)
                    and (not finite.size
                         or layers["curve"].ranges(y=padded(finite.min(), finite.max()))))

        return self._path.show(update)

    @staticmethod
    def _ridge_title(voxel, alpha) -> str:
        return f"ridge, voxel {voxel} (alpha={alpha:.3g})"

    def _ridge_element(self, layers, voxel, revision):
        hooks = [layers["image"].hook]
        try:
            if voxel is None:
                return receptive_field_image(np.zeros((10, 10)), "ridge: click a voxel",
                                             hooks=hooks)
            rf = self.analysis.ridge_receptive_field(voxel)
            return receptive_field_image(rf, self._ridge_title(voxel, self.detail_alpha),
                                         planted=self._planted(voxel), hooks=hooks)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            return receptive_field_image(np.zeros((10, 10)), "ridge", hooks=hooks)

    def _lasso_title(self, voxel, fitting=False) -> str:
        return f"LassoLarsCV, voxel {voxel}" + (f": {FITTING}" if fitting else "")

    def _lasso_pending(self, voxel) -> bool:
        """Served and the voxel's Lasso not fitted yet: it is fitted in a job."""
        return served(self._doc) and not self.analysis.has_lasso(voxel)

    def _lasso_placeholder(self, voxel):
        """Zeros shaped as the voxel's receptive field (drawn while its Lasso is fitted)."""
        ridge = self.analysis.ridge_receptive_field(voxel)
        return ridge.copy(data=np.zeros_like(ridge.values))

    def _lasso_element(self, layers, voxel, revision):
        hooks = [layers["image"].hook]
        try:
            if voxel is None:
                return receptive_field_image(np.zeros((10, 10)), "LassoLarsCV: click a voxel",
                                             hooks=hooks)
            if self._lasso_pending(voxel):
                self._fit_lasso(voxel)
                return receptive_field_image(self._lasso_placeholder(voxel),
                                             self._lasso_title(voxel, fitting=True),
                                             planted=self._planted(voxel), hooks=hooks)
            rf = self.analysis.lasso_receptive_field(voxel)
            return receptive_field_image(rf, self._lasso_title(voxel),
                                         planted=self._planted(voxel), hooks=hooks)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            return receptive_field_image(np.zeros((10, 10)), "LassoLarsCV", hooks=hooks)

    def _show_lasso(self) -> None:
        """The selected voxel's Lasso receptive field in place: its fit when known, else
        zeros titled "fitting ..." and the fit started in a job (served)."""
        a = self.analysis
        voxel = a.voxel
        if voxel is None:
            return
        pending = self._lasso_pending(voxel)
        rf = self._lasso_placeholder(voxel) if pending else a.lasso_receptive_field(voxel)

        def update(layers):
            image, clim = rf_element(rf)
            return layers["image"].image(image, clim=clim) and layers["image"].title(
                self._lasso_title(voxel, fitting=pending))

        self._lasso.show(update)
        if pending:
            self._fit_lasso(voxel)

    def _fit_lasso(self, voxel) -> None:
        """Fit the voxel's Lasso in a job (on a copy of the analysis' structural parameters:
        a later change cannot mix into it); shown in place when done, if still wanted."""
        from analysis.encoding import EncodingAnalysis
        from dashboard import jobs

        a = self.analysis
        key = (a.structural_key(), int(voxel))
        running = self.__dict__.get("_lasso_job")
        if running is not None:
            if running[0] == key and running[1].state in ("queued", "running"):
                return
            running[1].cancel()
        snapshot = EncodingAnalysis(**{k: getattr(a, k) for k in a.STRUCTURAL})

        def done(_):
            self.__dict__.pop("_lasso_job", None)
            if a.voxel == voxel and a.has_lasso(voxel):
                with batched():
                    self._show_lasso()

        job = jobs.submit(lambda job: snapshot.lasso_receptive_field(voxel),
                          name="encoding-lasso", doc=self._doc, on_done=done,
                          on_error=report_error)
        self.__dict__["_lasso_job"] = (key, job)

    def _time_course_element(self, layers, voxel, revision):
        # the run and the stimulus browser's sample are shown in place (tab._run_changed)
        try:
            if voxel is not None:
                return time_course_plot(self.analysis.time_course(voxel), run=self.run,
                                        layers=layers, sample=self.sample)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
        import xarray as xr

        empty = xr.Dataset({"measured": ("sample", np.zeros(2)),
                            "predicted": ("sample", np.zeros(2))},
                           coords={"sample": np.arange(2), "run": ("sample", np.zeros(2, int)),
                                   "time": ("sample", np.arange(2.0))},
                           attrs={"voxel": "-"})
        return time_course_plot(empty, run=1, layers=layers)

    def _stimulus(self, sample):
        try:
            return self.analysis.stimulus(sample)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            return np.zeros((10, 10))

    def _stimulus_element(self, layers, sample, revision):
        """The sample's stimulus: Miyawaki's image, or the user's features of that volume."""
        return stimulus_image(self._stimulus(sample), sample, hooks=[layers["image"].hook])

    def _show_stimulus(self) -> bool:
        """The sample's stimulus at the new lag, in place (same frame)."""
        image = stimulus_image(self._stimulus(self.sample), self.sample)
        return self._stimulus_plot.show(lambda layers: layers["image"].image(
            image, clim=image.opts.get().kwargs["clim"]))

    # ---- the best-alpha map and the readouts ---------------------------------------
    def _update_alpha_map(self):
        """Each voxel's best alpha (fold-mean R^2, over the alpha path's alphas), log10,
        as a volume (the tab's ``best_alpha_map``): shown with the details (the alpha path
        is computed there)."""
        if not self._details_shown:
            return
        from analysis.volumes import to_xarray

        a = self.analysis
        path = a.alpha_path()
        best = to_xarray(np.log10(path.best_alpha.values), mask=a.data().mask_img,
                         name="log10_alpha")
        best.attrs["alphas"] = path.alpha.values
        self.best_alpha_map = best
        self._alpha_map.show(self._alpha_map_in_place)

    def _alpha_map_in_place(self, layers) -> bool:
        """The best-alpha map's slice and colour range into the drawn plot (same grid)."""
        best = self.best_alpha_map
        if best is None:
            return False
        xs, ys, values = slice_arrays(best, "axial", float(self.viewer.crosshair_mm[2]))
        return layers["map"].image(data=Layer.grid_data(xs, ys, values),
                                   clim=self._alpha_clim(best))

    @staticmethod
    def _alpha_clim(best) -> tuple:
        alphas = best.attrs["alphas"]
        lo, hi = float(np.log10(alphas[0])), float(np.log10(alphas[-1]))
        return (lo, hi if hi > lo else lo + 1.0)

    @notify_errors
    def _alpha_grid_changed(self, event=None):
        if not self.busy.active:
            self._update_alpha_map()

    def _alpha_map_element(self, layers, crosshair, revision):
        """The best-alpha map's axial slice through the R^2 map's crosshair (a new map is
        shown in place: :meth:`_update_alpha_map`)."""
        best = self.best_alpha_map
        if best is None:
            return hv.Overlay([hv.Image(np.full((2, 2), np.nan)).opts(
                frame_width=200, frame_height=200, toolbar=None,
                title="best alpha per voxel (log10)")])
        background = self.viewer.background
        if background is not None and not all(d in background.dims for d in "xyz"):
            background = None
        return best_alpha_slice(best, crosshair, self._alpha_clim(best),
                                background=background, layers=layers)

    def _planted(self, v):
        """The pixel (row, col) voxel ``v`` was built to respond to: synthetic data only,
        None for a voxel built to respond to nothing (zero amplitude)."""
        truth = self.analysis.data().truth
        if truth is None or not bool(truth["responsive"][v]):
            return None
        return tuple(int(p) for p in truth["peak"][v])

    def _update_voxel_info(self):
        if not self._details_shown:
            return  # shown with the details (see __panel__)
        a = self.analysis
        v = a.voxel
        if v is None:
            self.voxel_info.object = "click a voxel to see its receptive field"
            return
        truth = a.data().truth
        planted = self._planted(v)
        ridge = a.ridge_receptive_field()
        r2 = float(a.mean_r2().values[v])
        best = a.alpha_path()
        x, y, z = a.voxel_mm()
        text = (f"**voxel {v}** at ({x:g}, {y:g}, {z:g}) mm: R\u00b2={r2:.3f}, "
                f"best alpha {float(best.best_alpha.values[v]):.3g} "
                f"(R\u00b2={float(best.best_r2.values[v]):.3f}); {self._peak_text(ridge)}")
        if planted is not None:
            text += (f"; built to respond to the pixel at row {planted[0]}, col {planted[1]}"
                     f"  \n{PLANTED_TEXT}")
        elif truth is not None:
            text += "; built to respond to no pixel (synthetic data: no gold box)"
        self.voxel_info.object = text

    @staticmethod
    def _peak_text(ridge) -> str:
        """Where a ridge receptive field peaks, in the page's words (names escaped)."""
        peak = dict(zip(ridge.dims, np.unravel_index(int(np.argmax(ridge.values)),
                                                     ridge.shape)))
        delay = (f" at delay {int(ridge['delay'].values[peak['delay']])}"
                 if "delay" in peak and ridge.sizes["delay"] > 1 else "")
        if rf_kind(ridge) == "weights":
            name = ridge["name"].values[peak["feature"]] if "name" in ridge.coords \
                else peak["feature"]
            return (f"largest ridge weight: feature {peak['feature']} "
                    f"({safe_markdown(name)}){delay}")
        return f"ridge peak pixel (row {peak['row']}, col {peak['col']}){delay}"

    def _stimulus_description(self) -> str:
        """The stimulus browser's sample: its run, volume and time (what it is paired with)."""
        a = self.analysis
        _, runs, volumes = a.sample_index()
        s = min(self.sample, len(runs) - 1)
        run = int(runs[s])
        seconds = (int(volumes[s]) - sum(a.data().run_lengths[:run])) * a.t_r
        if a.own is not None:
            delays = ", ".join(map(str, a.own.delays))
            return (f"sample {s}: run {run + 1}, the features of volume {int(volumes[s])} "
                    f"({seconds:g} s into its run: the dashed line on the run's time course), "
                    f"modelled in the responses {delays} volume(s) later")
        return (f"sample {s}: run {run + 1}, image {int(volumes[s]) - a.lag} paired with "
                f"volume {int(volumes[s])} ({seconds:g} s into its run: the dashed line on "
                f"the run's time course)")
