"""The Encoding tab's HoloViews elements, drawn from the analysis' current results.

A mixin of :class:`dashboard.encoding.tab.EncodingTab`: the callbacks of its
live plots and DynamicMaps (R^2 histogram, alpha path, ridge and Lasso
receptive fields, time course, stimulus). Each draws the element for its
arguments; an error becomes a notification and an empty element of the same
shape, so a view never breaks the page.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.notify import report_error
from dashboard.slice_viewer import palette

from .views import PLOT_H, r2_histogram, receptive_field_image, time_course_plot


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
            return receptive_field_image(rf.values, self._ridge_title(voxel, self.detail_alpha),
                                         planted=self._planted(voxel), hooks=hooks)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            return receptive_field_image(np.zeros((10, 10)), "ridge", hooks=hooks)

    def _lasso_element(self, voxel, revision):
        try:
            if voxel is None:
                return receptive_field_image(np.zeros((10, 10)), "LassoLarsCV: click a voxel")
            rf = self.analysis.lasso_receptive_field(voxel)
            return receptive_field_image(rf.values, f"LassoLarsCV, voxel {voxel}",
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
        try:
            stim = self.analysis.stimulus(sample).values.astype(float)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)
            stim = np.zeros((10, 10))
        return hv.Image((np.arange(10), np.arange(10), stim), kdims=["col", "row"],
                        vdims=["pixel"]).opts(
            cmap=palette("gray"), clim=(0, 1), invert_yaxis=True, frame_width=150,
            frame_height=150, toolbar=None, xaxis=None, yaxis=None,
            title=f"stimulus of sample {sample}",
            fontsize={"title": 10})
