"""The Encoding tab's HoloViews elements, drawn from the analysis' current results.

A mixin of :class:`dashboard.encoding.tab.EncodingTab`: the callbacks of its
live plots and DynamicMaps (R^2 histogram, alpha path, ridge and Lasso
receptive fields, time course, stimulus). Each draws the element for its
arguments; an error becomes a notification and an empty element of the same
shape, so a view never breaks the page. Also the best-alpha map (an axial slice
through the R^2 map's crosshair) and the voxel's and sample's readouts.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.notify import notify_errors, report_error, safe_markdown
from .views import (PLANTED_TEXT, PLOT_H, best_alpha_slice, r2_histogram,
                    receptive_field_image, rf_kind, stimulus_image, time_course_plot)


class EncodingElements:
    """The tab's HoloViews elements (DynamicMap callbacks; errors become notifications)."""

    def _hist_element(self, layers, revision):
        threshold = self.analysis.threshold
        try:
            return r2_histogram(self.analysis.mean_r2().values, threshold, layers=layers)
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
            height=PLOT_H, responsive=True, toolbar=None, tools=["hover"], framewise=True)
        marker = hv.VLine(self.detail_alpha).opts(color="red", line_width=2,
                                                  hooks=[layers["marker"].hook])
        return (curve * hv.Scatter((xs, ys), kdims=["alpha"], vdims=["mean R2"]).opts(
            color="black", size=4) * marker).opts(show_legend=False)

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

    def _lasso_element(self, voxel, revision):
        try:
            if voxel is None:
                return receptive_field_image(np.zeros((10, 10)), "LassoLarsCV: click a voxel")
            rf = self.analysis.lasso_receptive_field(voxel)
            return receptive_field_image(rf, f"LassoLarsCV, voxel {voxel}",
                                         planted=self._planted(voxel))
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            return receptive_field_image(np.zeros((10, 10)), "LassoLarsCV")

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

    def _stimulus_element(self, sample, revision):
        """The sample's stimulus: Miyawaki's image, or the user's features of that volume."""
        try:
            stim = self.analysis.stimulus(sample)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            stim = np.zeros((10, 10))
        return stimulus_image(stim, sample)

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

    @notify_errors
    def _alpha_grid_changed(self, event=None):
        if not self.busy.active:
            self._update_alpha_map()

    def _alpha_map_element(self, layers, crosshair, best, revision):
        """The best-alpha map's axial slice through the R^2 map's crosshair."""
        if best is None:
            return hv.Overlay([hv.Image(np.full((2, 2), np.nan)).opts(
                frame_width=200, frame_height=200, toolbar=None,
                title="best alpha per voxel (log10)")])
        alphas = best.attrs["alphas"]
        lo, hi = float(np.log10(alphas[0])), float(np.log10(alphas[-1]))
        background = self.viewer.background
        if background is not None and not all(d in background.dims for d in "xyz"):
            background = None
        return best_alpha_slice(best, crosshair, (lo, hi if hi > lo else lo + 1.0),
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
