"""The Connectivity tab's widgets, made from the model's Parameters (issue 14).

A mixin of :class:`dashboard.connectivity.tab.ConnectivityTab`: each control's label,
tooltip (the Parameter's ``doc``), choices and range come from
:class:`analysis.connectivity.SeedConnectivity`'s Parameters through
:func:`dashboard.param_widgets.widget_for`, never retyped here; only what the data
decides (the subjects offered, the seed's step) is computed. The CSS classes are the
ones the tests and benchmarks find the widgets by.
"""

from __future__ import annotations

import panel as pn

from analysis.connectivity import PREPROCESSING
from dashboard.notify import notify_errors
from dashboard.param_widgets import ParamWidgets, tooltip, widget_for, with_tooltip
from dashboard.seed_input import SeedInput

#: CSS classes of preprocessing widgets that are not their parameter's name, dashed (the
#: tests and benchmarks find widgets by them).
PREPROCESSING_CSS = {"smoothing_fwhm": "smoothing-slider"}
#: Width of the controls column's widgets (a slider's: with a tooltip icon beside it).
CONTROL_WIDTH, SLIDER_WIDTH = 270, 235


class ConnectivityWidgets:
    """The tab's controls (``w_*``, ``seed_input``, ``prep``) and their layout items;
    uses the tab's model and its callbacks (``_setter``, ``_set_param``, ...)."""

    def _build_widgets(self):
        m = self.model
        p = m.param
        # labels, tooltips, choices and ranges from the Parameters (param_widgets.py); the
        # subjects offered are the data's
        self.w_source = widget_for(self.param.source, self.source, "connectivity-source",
                                   width=CONTROL_WIDTH)
        self.w_source.link(self, value="source")
        self.w_subject = widget_for(p.subject, m.subject, "subject-select",
                                    widget_type=pn.widgets.Select,
                                    options=self._subject_options(), width=CONTROL_WIDTH)
        self.seed_input = SeedInput(m.seed_mm, step=self._voxel_size(), css_prefix="seed",
                                    parameter=p.seed_mm)
        self.w_x, self.w_y, self.w_z = self.seed_input.widgets
        self.w_radius = widget_for(p.radius_mm, m.radius_mm, "radius-slider",
                                   width=SLIDER_WIDTH)
        self.w_threshold = widget_for(p.threshold, m.threshold, "threshold-slider",
                                      width=SLIDER_WIDTH)
        self.w_fisher = widget_for(p.fisher_z, m.fisher_z, "fisher-z")
        # the map's statistics: p per voxel (Dutilleul's effective dof by default) and FDR
        self.w_p_method = widget_for(p.p_method, m.p_method, "p-method", width=CONTROL_WIDTH)
        self.w_fdr_q = widget_for(p.fdr_q, m.fdr_q, "fdr-q", width=SLIDER_WIDTH)
        # the colour range (a tuple) as its symmetric maximum: label and doc its Parameter's
        self.w_cmax = pn.widgets.FloatInput(
            label=f"{p.clim.label}: \u00b1 max (0 = auto)", description=tooltip(p.clim),
            value=self._cmax(), start=0.0, step=0.1, width=200, css_classes=["clim-max"])
        # the preprocessing group's widgets, made from its Parameters (label, doc as the
        # tooltip, bounds, step) in one loop, synced both ways by ParamWidgets
        self.prep = ParamWidgets(m, PREPROCESSING, css_classes=PREPROCESSING_CSS)
        self.w_prep = self.prep.widgets
        self.w_columns = widget_for(p.confound_columns, m.confound_columns,
                                    "confound-columns", width=CONTROL_WIDTH)
        self.r_download = pn.widgets.FileDownload(
            callback=notify_errors(lambda: self.nifti_bytes(False)), filename="seed_r_map.nii.gz",
            label="r map (NIfTI)", color="light", embed=False, css_classes=["export-r"],
            width=140)
        self.z_download = pn.widgets.FileDownload(
            callback=notify_errors(lambda: self.nifti_bytes(True)), filename="seed_z_map.nii.gz",
            label="z map (NIfTI)", color="light", embed=False, css_classes=["export-z"],
            width=140)

        self.seed_input.watch(self._seed_typed)
        self.w_subject.param.watch(self._setter("subject", int), "value")
        self.w_radius.param.watch(self._setter("radius_mm", float), "value")
        self.w_threshold.param.watch(self._setter("threshold", float), "value")
        self.w_fisher.param.watch(self._setter("fisher_z", bool), "value")
        self.w_p_method.param.watch(self._setter("p_method", str), "value")
        self.w_fdr_q.param.watch(self._setter("fdr_q", float), "value")
        self.w_cmax.param.watch(self._cmax_changed, "value")
        self.prep.link(self._set_param)
        self.w_columns.param.watch(self._setter("confound_columns", list), "value")

    def _cmax(self) -> float:
        """The colour range's symmetric maximum (0: automatic)."""
        clim = self.model.clim
        return float(max(abs(v) for v in clim)) if clim else 0.0

    def _voxel_size(self) -> float:
        try:
            data = self.model.subject_data()
            return float(abs(data.img.affine[0, 0]))
        except Exception:  # noqa: BLE001
            return 4.0

    def _subject_options(self) -> dict:
        """The dataset's subjects, listed from its participants table (155 for the real
        development data: none is loaded until chosen)."""
        m = self.model
        if not m.uses_own_data:
            try:
                table = m.participants()
                return {f"{i}: {pid} ({group})": i for i, (pid, group) in enumerate(
                    zip(table["participant_id"], table["Child_Adult"]))}
            except Exception:  # noqa: BLE001 - the numbers, as the model counts them
                pass
        return {str(i): i for i in range(m.n_subjects)}

    def _labelled(self) -> list:
        """The seed and display widgets, each with its Parameter's doc as a tooltip."""
        p = self.model.param
        # the Data selector when there is a choice (the server's nilearn data)
        sources = [self.w_source] if len(self._source_dirs) > 1 else []
        return sources + [self.w_subject, self.seed_input.title, self.seed_input] + [
            with_tooltip(w, q) for w, q in (
                (self.w_radius, p.radius_mm), (self.w_threshold, p.threshold),
                (self.w_fisher, p.fisher_z), (self.w_cmax, p.clim),
                (self.w_p_method, p.p_method), (self.w_fdr_q, p.fdr_q))]
