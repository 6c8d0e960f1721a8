"""The Encoding tab's widgets (:class:`EncodingWidgets`, a mixin of
:class:`dashboard.encoding.tab.EncodingTab`): built from the Parameters' labels, docs,
choices and ranges, set from the analysis, and what a shared link may set."""

from __future__ import annotations

import math

import panel as pn

from dashboard.notify import notify_errors
from dashboard.param_widgets import widget_for
from dashboard.share import within


class EncodingWidgets:
    """Needs ``analysis``, the tab's Parameters (``log10_alpha``, ``sample``, ``run``),
    ``_source_widget()`` and ``_set_analysis(name, value)``."""

    def _link_rules(self) -> dict:
        """What a shared link may set, beyond the analysis' own bounds: what the widgets
        can show, and a voxel of the data (see :func:`dashboard.share.sync_url`)."""
        def voxel(v):
            n = int(self.analysis.n_voxels)
            if not 0 <= v < n:
                raise ValueError(f"the data has voxels 0 to {n - 1}")

        tolerance = 1e-9
        return {"alpha": within(10.0 ** self.w_alpha.start * (1 - tolerance),
                                10.0 ** self.w_alpha.end * (1 + tolerance)),
                "threshold": within(self.w_threshold.start, self.w_threshold.end),
                "n_folds": within(self.w_folds.start, self.w_folds.end),
                "lag": within(self.w_lag.start, self.w_lag.end),
                "voxel": voxel}

    def _widgets_from_analysis(self):
        """Show the analysis' values (e.g. from a shared link) in the widgets."""
        a = self.analysis
        self.log10_alpha = round(math.log10(a.alpha), 6)
        self.w_alpha.value = self.log10_alpha
        self.detail_alpha = a.alpha
        self.w_threshold.value = a.threshold
        self.w_cv.value = a.cv
        self.w_folds.param.update(value=a.n_folds, disabled=a.cv != "kfold")
        self.w_lag.value = a.lag
        self.w_dtype.value = a.dtype

    def _build_widgets(self):
        a = self.analysis
        # labels, tooltips, choices and ranges from the Parameters (param_widgets.py)
        slider = dict(width=205)   # a tooltip icon beside it, in the 240 px column
        self.w_alpha = widget_for(self.param.log10_alpha, self.log10_alpha, "alpha-slider",
                                  format="0.00", **slider)
        self.w_threshold = widget_for(a.param.threshold, a.threshold, "threshold-slider",
                                      format="0.000", **slider)
        self.w_cv = widget_for(a.param.cv, a.cv, "cv-select", width=220)
        self.w_folds = widget_for(a.param.n_folds, a.n_folds, "folds-slider",
                                  widget_type=pn.widgets.IntSlider, disabled=a.cv != "kfold",
                                  **slider)
        self.w_lag = widget_for(a.param.lag, a.lag, "lag-slider", **slider)
        self.w_dtype = widget_for(a.param.dtype, a.dtype, "dtype-select", width=220)
        self._source_widget()
        # the sample's and run's ranges are the data's (set in _update_samples)
        self.w_sample = widget_for(self.param.sample, 0, "sample-slider",
                                   widget_type=pn.widgets.IntSlider, start=0, end=1, **slider)
        self.w_run = widget_for(self.param.run, 1, "run-slider",
                                widget_type=pn.widgets.IntSlider, start=1, end=2, width=300)

        def setter(name, transform=lambda v: v):
            @notify_errors
            def set_value(event):
                self._set_analysis(name, transform(event.new))
            return set_value

        self.w_alpha.link(self, value="log10_alpha")
        self.w_threshold.param.watch(setter("threshold", float), "value")
        self.w_cv.param.watch(setter("cv"), "value")
        self.w_folds.param.watch(setter("n_folds", int), "value")
        self.w_lag.param.watch(setter("lag", int), "value")
        self.w_dtype.param.watch(setter("dtype"), "value")
        self.w_sample.link(self, value="sample")
        self.w_run.link(self, value="run")
