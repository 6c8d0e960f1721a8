"""The Encoding tab's widgets (:class:`EncodingWidgets`, a mixin of
:class:`dashboard.encoding.tab.EncodingTab`): built from the Parameters' labels, docs,
choices and ranges, set from the analysis, and what a shared link may set."""

from __future__ import annotations

import math

import numpy as np
import panel as pn

from dashboard.display import CARD_INSET, display_card
from dashboard.notify import notify_errors, report_info
from dashboard.param_widgets import tooltip, widget_for, with_tooltip
from dashboard.share import within

#: Width of the Display card in the 240 px controls column.
DISPLAY_WIDTH = 230


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
        self._build_display()

    # ---- the Display group: colour map, opacity, fixed colour range ----------------------
    def _build_display(self):
        """The viewer's colour map and opacity, and the fixed colour range: a checkbox and
        the range it holds (min, max; shown while it is on)."""
        p = self.param.clim_range
        self.w_fixed_clim = widget_for(self.param.fixed_clim, self.fixed_clim, "fixed-clim")
        inputs = dict(step=0.01, format="0.000", description=tooltip(p),
                      width=(DISPLAY_WIDTH - CARD_INSET) // 2 - 10)
        self.w_clim_min = pn.widgets.FloatInput(label="min R\u00b2", css_classes=["clim-min"],
                                                **inputs)
        self.w_clim_max = pn.widgets.FloatInput(label="max R\u00b2", css_classes=["clim-max"],
                                                **inputs)
        self._clim_row = pn.Row(self.w_clim_min, self.w_clim_max, visible=False, margin=0)
        self.display = display_card(self.viewer, DISPLAY_WIDTH, with_tooltip(
            self.w_fixed_clim, self.param.fixed_clim), self._clim_row, url_prefix="enc_")
        self._showing_clim = False
        self.w_fixed_clim.link(self, value="fixed_clim")
        self.param.watch(self._fixed_clim_changed, "fixed_clim")
        self.param.watch(self._clim_range_changed, "clim_range")
        for w in (self.w_clim_min, self.w_clim_max):
            w.param.watch(self._clim_typed, "value")

    def shown_clim(self, top: float) -> tuple:
        """The R^2 map's colour range: the fixed one while it is on, else 0 to the map's
        maximum ``top`` (it rescales with every alpha, lag or fold count)."""
        if self.fixed_clim and self.clim_range is not None:
            return tuple(float(v) for v in self.clim_range)
        return (0.0, max(float(top), 1e-3))

    def _fixed_clim_changed(self, event):
        self.w_fixed_clim.value = self.fixed_clim
        if self.fixed_clim and self.clim_range is None:
            self.clim_range = tuple(float(v) for v in self.viewer.colour_range())
        elif not self.fixed_clim:
            self.clim_range = None   # turned on again: the map's range then
        self._show_clim()

    def _clim_range_changed(self, event):
        self._show_clim()

    def _show_clim(self):
        """The range in its inputs (shown while fixed) and on the map."""
        fixed = self.fixed_clim and self.clim_range is not None
        self._clim_row.visible = fixed
        if fixed:
            self._showing_clim = True
            try:
                self.w_clim_min.value, self.w_clim_max.value = map(float, self.clim_range)
            finally:
                self._showing_clim = False
        if self.viewer.stat_map is not None:
            values = self.viewer.stat_map.values
            finite = np.isfinite(values).any()
            self.viewer.clim = self.shown_clim(float(np.nanmax(values)) if finite else 1.0)

    @notify_errors
    def _clim_typed(self, event):
        if self._showing_clim or not self.fixed_clim:
            return
        lo, hi = self.w_clim_min.value, self.w_clim_max.value
        if lo is None or hi is None or not lo < hi:
            report_info("the colour range's min must be below its max")
            self._show_clim()   # the range held, back in the inputs
            return
        self.clim_range = (float(lo), float(hi))
