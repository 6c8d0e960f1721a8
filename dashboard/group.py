"""Group section of the Connectivity tab: seed maps for many subjects on Dask.

A thin view over :class:`analysis.group.GroupConnectivity`. The Run button
starts the group analysis as a job (:mod:`dashboard.jobs`: capped per process,
cancelled with its session, its Dask futures then cancelled and released; the
app keeps serving). The Dask scheduler is the operator's
(``$FMRI_EXPLORER_SCHEDULER``): shown, not editable, unless
``$FMRI_EXPLORER_ALLOW_SCHEDULER_EDIT=1``;
the cluster's progress fills a bar, then the group t map is shown in the
shared :class:`~dashboard.slice_viewer.SliceViewer` over the MNI template,
with a histogram of t, the subjects' r maps as a strip of axial slices at the
seed's z, the peaks, and a link to the Dask dashboard. The summary gives the
t-test's degrees of freedom and the FDR and FWE (sign-flipping permutations)
thresholds with their voxel counts; *Show voxels at* thresholds the map
uncorrected, at FDR q < 0.05 or at FWE p < 0.05 (the histogram marks the
FDR and FWE levels). Once the subjects are
cleaned on the workers, a new seed (typed, clicked on the group map, or
moved in the single-subject view when the seed is shared) re-runs only the
cheap per-subject step.

``GroupPanel()`` stands alone (synthetic data of the app's size);
``GroupPanel(seed_source=obj)`` shares ``obj.seed_mm`` (and ``radius_mm``)
with another Parameterized, e.g. the single-subject ``SeedConnectivity``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import panel as pn
import param

from analysis.config import default_size
from analysis.errors import DataError
from analysis.preprocessing import PARAMETERS as PREPROCESSING
from analysis.group import GroupConnectivity, idle_seconds, scheduler_address
from dashboard import jobs
from dashboard.display import folded_card
from dashboard.batch import batched
from dashboard.busy import Throttle, progress_bar
from dashboard.notify import report_error
from dashboard.param_widgets import ParamWidgets, tooltip, widget_for, with_tooltip
from dashboard.seed_input import SeedInput
from dashboard.render.server import session_doc
from dashboard.clusters import ClusterTable
from dashboard.connectivity.views import peak_regions
from dashboard.slice_viewer import SliceViewer, snap

from .group_runs import GroupRuns
from .group_views import PEAK_COLUMNS, hist_layers, robust_clim, show_hist, shown_map, \
    show_strip, strip_layers

#: Environment variable: set to 1 to let visitors type a Dask scheduler address in the app.
#: Off by default: the server would connect wherever a visitor says, and Dask's protocol
#: unpickles what a scheduler sends. The operator sets the scheduler
#: (``$FMRI_EXPLORER_SCHEDULER``, ``fmri-explorer group --scheduler``).
ALLOW_SCHEDULER_EDIT_ENV = "FMRI_EXPLORER_ALLOW_SCHEDULER_EDIT"


def scheduler_editable() -> bool:
    """Whether the operator allows visitors to choose the Dask scheduler."""
    return os.environ.get(ALLOW_SCHEDULER_EDIT_ENV, "").strip().lower() in (
        "1", "true", "yes", "on")


#: Width of a slider in the controls' columns (a tooltip icon beside it).
SLIDER_WIDTH = 230
#: Subjects a group starts with when the folder has more (the real development data's
#: 155 would clean for a quarter of an hour on two workers): the slider goes up to all.
START_SUBJECTS = 10


class GroupPanel(GroupRuns, pn.viewable.Viewer):
    """Widgets, Run button, progress, group t map, t histogram, subject strip, peaks."""

    def __init__(self, seed_source: param.Parameterized | None = None,
                 model: GroupConnectivity | None = None, **params):
        super().__init__(**params)
        self._doc = session_doc()   # this session's, never another's (render/server.py)
        self.model = model or GroupConnectivity(size=default_size())
        self.seed_source = seed_source
        self._job: jobs.Job | None = None
        self._syncing = False
        self._rerun = False
        self._rerun_light = True
        if self._doc is not None and self._doc.session_context is not None:
            # the session's cluster use ends with it: an unused local cluster shuts down
            # (its workers' memory goes back) once no session has used it for a while
            pn.state.on_session_destroyed(
                lambda ctx, model=self.model: model.close(wait=idle_seconds()))
        m = self.model
        if seed_source is not None:
            m.seed_mm = tuple(float(v) for v in seed_source.seed_mm)
            if hasattr(seed_source, "radius_mm"):
                m.radius_mm = float(seed_source.radius_mm)

        available = self._available()
        n_max = max(available.get(m.age_group, 2), 2)
        if m.n_subjects is None and n_max > START_SUBJECTS:
            m.n_subjects = START_SUBJECTS   # a large folder: the group takes N of them
        p = m.param
        # labels, tooltips, choices and ranges from the Parameters (param_widgets.py); the
        # number of subjects offered is the data's
        self.w_n = widget_for(p.n_subjects, min(m.n_subjects or n_max, n_max),
                              "group-n-subjects", widget_type=pn.widgets.IntSlider,
                              end=n_max, width=SLIDER_WIDTH)
        self.w_age = widget_for(p.age_group, m.age_group, "group-age", width=250,
                                visible=bool(available.get("adult") or available.get("child")))
        self.seed_input = SeedInput(m.seed_mm, step=4.0, css_prefix="group-seed",
                                    parameter=p.seed_mm)
        self.w_x, self.w_y, self.w_z = self.seed_input.widgets
        self.w_radius = widget_for(p.radius_mm, m.radius_mm, "group-radius", width=SLIDER_WIDTH)
        self.w_threshold = widget_for(p.threshold, m.threshold, "group-threshold",
                                      width=SLIDER_WIDTH)
        self.w_correction = widget_for(p.correction, m.correction, "group-correction",
                                       width=SLIDER_WIDTH)
        self.w_permutations = widget_for(p.n_permutations, m.n_permutations,
                                         "group-permutations", widget_type=pn.widgets.IntInput,
                                         width=SLIDER_WIDTH)
        env = scheduler_address(None)
        self.scheduler_editable = scheduler_editable()
        if self.scheduler_editable:
            self.w_scheduler = pn.widgets.TextInput(
                label=p.scheduler.label, description=tooltip(p.scheduler), value=m.scheduler,
                placeholder=env or "tcp://host:8786", css_classes=["group-scheduler"])
        else:
            # the operator's setting, shown: a visitor never points the server elsewhere
            self.w_scheduler = pn.widgets.StaticText(
                label=p.scheduler.label,
                value=scheduler_address(m.scheduler) or "a local cluster on this server",
                css_classes=["group-scheduler"])
        # each subject's cleaning: the same Parameters (and widgets) as the single subject's
        self.prep = ParamWidgets(m, PREPROCESSING, css_classes={
            n: "group-" + n.replace("_", "-") for n in PREPROCESSING})
        self.prep.link(self._prep_changed)
        self.w_run = pn.widgets.Button(label="Run group analysis", color="primary",
                                       css_classes=["group-run"])
        # shown and hidden by its inline style, its room kept (dashboard/busy.py: a
        # change of ``visible`` lays the whole page out again, hundreds of ms per move)
        self.progress = progress_bar("group-progress", width=260)
        self._throttle = Throttle()
        self.status = pn.pane.Str("", css_classes=["group-status"])
        self.dask_link = pn.pane.Markdown("", css_classes=["dask-link"])
        self.summary = pn.pane.Markdown(
            "Press *Run group analysis*: each subject is cleaned once on the Dask workers, "
            "then a seed move only re-runs the cheap step there.",
            css_classes=["summary", "group-summary"], sizing_mode="stretch_width")
        self.viewer = SliceViewer(title="", map_label="t", cmap="RdBu_r", plot_height=250,
                                  crosshair_mm=tuple(float(v) for v in m.seed_mm),
                                  marker_mm=tuple(float(v) for v in m.seed_mm),
                                  in_mni=True)   # the development data, as the CLI's
        # the clusters of the voxels shown (uncorrected, FDR or FWE), updated with the map
        self.clusters = ClusterTable(self.viewer, two_sided=True, stem="group",
                                     move=self._show_peak)
        self.hist = pn.pane.HoloViews(css_classes=["group-hist"], linked_axes=False,
                                      sizing_mode="stretch_width")
        self.strip = pn.pane.HoloViews(css_classes=["group-strip"], linked_axes=False)
        # a seed move updates the histogram and the strip in place
        self._hist_layers, self._strip_layers = hist_layers(), strip_layers()
        # an HTML table: a SlickGrid widget cannot lay out inside a collapsed card
        self.peaks_table = pn.pane.DataFrame(
            pd.DataFrame(), css_classes=["group-peaks"], index=False, float_format="{:.3g}".format,
            max_height=240, width=560)
        self._set_background()

        self.w_run.on_click(lambda event: self.start())
        self.w_n.param.watch(self._widget_to_model("n_subjects", int), "value")
        self.w_age.param.watch(self._age_changed, "value")
        self.w_radius.param.watch(self._seed_typed, "value")
        self.seed_input.watch(self._seed_typed)
        self.w_threshold.param.watch(self._widget_to_model("threshold", float), "value")
        self.w_correction.param.watch(self._widget_to_model("correction", str), "value")
        self.w_permutations.param.watch(self._widget_to_model("n_permutations", int), "value")
        if self.scheduler_editable:
            self.w_scheduler.param.watch(self._widget_to_model("scheduler", str), "value")
        m.param.watch(self._on_display, ["threshold", "correction"])
        m.param.watch(self._on_statistics, ["n_permutations"])
        m.param.watch(self._on_seed_param, ["seed_mm", "radius_mm"])
        self.viewer.param.watch(self._clicked, ["crosshair_mm"])
        if seed_source is not None:
            names = [n for n in ("seed_mm", "radius_mm") if n in seed_source.param]
            seed_source.param.watch(self._source_moved, names)
        self._layout = self._build_layout()

    # ---- data ---------------------------------------------------------------------------
    def _available(self) -> dict:
        try:
            return dict(self.model.subject_list().n_available) or {
                "both": len(self.model.subject_list().subjects)}
        except Exception as exc:  # noqa: BLE001 - the panel says so, the app keeps serving
            report_error(exc)
            return {}

    def use_data_dir(self, data_dir) -> None:
        """Take the subjects from another ``fetch_development_fmri`` folder (None: the
        synthetic one), e.g. the Connectivity tab's new dataset: the subjects slider
        goes up to that folder's count (starting at :data:`START_SUBJECTS` at most);
        a run under way stops, the next Run uses them."""
        m = self.model
        data_dir = None if data_dir is None else str(data_dir)
        if data_dir == m.data_dir:
            return
        self.cancel()
        had_result = m.result is not None
        # the last map was of other subjects (and maybe another grid): gone with them
        m.param.update(data_dir=data_dir, n_subjects=None, result=None)
        available = self._available()
        n_max = max(available.get(m.age_group, 2), 2)
        n = min(n_max, START_SUBJECTS)
        self._syncing = True
        try:
            self.w_n.param.update(end=n_max, value=n)
            self.w_age.visible = bool(available.get("adult") or available.get("child"))
        finally:
            self._syncing = False
        try:
            m.n_subjects = n
        except (DataError, ValueError) as exc:
            report_error(exc)
        self._set_background()
        if had_result:
            self.summary.object = (f"New data ({n_max} subjects): press *Run group analysis* "
                                   "for the group map of its subjects.")

    def _set_background(self):
        try:
            from analysis.volumes import mni_background

            mask = self.model.subject_list().mask
            self.viewer.background = mni_background(int(round(abs(mask.affine[0, 0]))))
        except Exception as exc:  # noqa: BLE001
            report_error(exc)

    # ---- user actions ------------------------------------------------------------------------
    def _widget_to_model(self, name, transform):
        def set_value(event):
            if self._syncing:
                return
            try:
                setattr(self.model, name, transform(event.new))
            except (DataError, ValueError) as exc:
                report_error(exc)
        return set_value

    def _prep_changed(self, name, value):
        """A preprocessing widget changed: the next run cleans the subjects with it (once
        per setting on the workers); a value the model refuses is reported and undone."""
        if self._syncing:
            return
        try:
            setattr(self.model, name, value)
        except (DataError, ValueError) as exc:
            report_error(exc)
            self._syncing = True
            try:
                self.prep.show()
            finally:
                self._syncing = False
            return
        if self.model.result is not None:
            self.status.object = ("preprocessing changed: press Run group analysis to clean "
                                  "the subjects with it")

    def _age_changed(self, event):
        if self._syncing:
            return
        try:
            self.model.age_group = event.new
            n_max = max(self._available().get(event.new, 2), 2)
            self._syncing = True
            try:
                self.w_n.param.update(end=n_max, value=min(self.w_n.value, n_max))
            finally:
                self._syncing = False
            self.model.n_subjects = self.w_n.value
        except (DataError, ValueError) as exc:
            report_error(exc)

    def _seed_typed(self, event):
        if self._syncing:
            return
        self._set_seed(self.seed_input.xyz, float(self.w_radius.value))

    def _clicked(self, event):
        """A click on the group map moves the seed there (once subjects are cleaned)."""
        if self._syncing or self.model.result is None:
            return
        self._set_seed(tuple(float(v) for v in event.new), self.model.radius_mm)

    def _show_peak(self, xyz):
        """A cluster row's peak: the crosshair goes there, the seed stays."""
        self._syncing = True
        try:
            self.viewer.set_crosshair(xyz)
        finally:
            self._syncing = False

    def _set_seed(self, xyz, radius):
        try:
            self.model.param.update(seed_mm=tuple(xyz), radius_mm=radius)
            if self.seed_source is not None:
                self.seed_source.param.update(
                    seed_mm=tuple(xyz),
                    **({"radius_mm": radius} if "radius_mm" in self.seed_source.param else {}))
        except (DataError, ValueError) as exc:
            report_error(exc)

    def _source_moved(self, *events):
        src = self.seed_source
        update = {"seed_mm": tuple(float(v) for v in src.seed_mm)}
        if "radius_mm" in src.param:
            update["radius_mm"] = float(src.radius_mm)
        if any(getattr(self.model, k) != v for k, v in update.items()):
            self.model.param.update(**update)

    # ---- model -> view -------------------------------------------------------------------------
    def _on_seed_param(self, *events):
        m = self.model
        if m.result is not None:  # subjects are cleaned on the workers: the cheap step,
            self.start(light=True)  # started first (the widgets' and marker's update
            # below takes the event loop ~0.1 s: the workers need not wait for it)
        self._syncing = True
        try:
            with batched():
                self.seed_input.show(m.seed_mm)
                self.w_radius.value = float(m.radius_mm)
                self.viewer.marker_mm = tuple(float(v) for v in m.seed_mm)
        finally:
            self._syncing = False

    def _on_display(self, *events):
        m = self.model
        self._syncing = True   # set on the model (a notebook, a test): the widgets follow
        try:
            self.w_threshold.value = float(m.threshold)
            self.w_correction.value = m.correction
        finally:
            self._syncing = False
        self._redraw(move_crosshair=False)

    def _on_statistics(self, *events):
        """Another number of permutations: the statistics run again (with the cheap
        per-subject step: the subjects stay cleaned on the workers), as a job."""
        self._syncing = True
        try:
            self.w_permutations.value = int(self.model.n_permutations)
        finally:
            self._syncing = False
        if self.model.result is not None:
            self.start(light=True)

    def _redraw(self, move_crosshair=False):
        m = self.model
        if m.result is None:
            return
        # the views' updates in one message, at most one model-graph walk
        with batched():
            try:
                res = m.result
                # text first: Panel can drop later model changes of a tick that re-renders panes
                self.summary.object = m.summary()
                link = m.dashboard_link
                if link:
                    self.dask_link.object = f"[Dask dashboard]({link}) (workers, task stream)"
                seed = tuple(float(v) for v in res.seed_mm)
                t_map, shown_threshold, level, words = shown_map(m)
                update = dict(stat_map=t_map, threshold=shown_threshold, marker_mm=seed,
                              clim=robust_clim(res.t, level if level is not None
                                               and np.isfinite(level) else m.threshold),
                              title=f"group t map ({res.n_subjects} subjects, df {res.df}), "
                                    f"{words}")
                if move_crosshair:
                    update["crosshair_mm"] = snap(t_map, seed)
                self._syncing = True
                try:
                    self.viewer.param.update(**update)
                finally:
                    self._syncing = False
                inf = res.inference
                show_hist(self.hist, self._hist_layers, res.t,
                          level if level is not None and np.isfinite(level) else None,
                          fdr=inf.fdr_t_threshold if inf is not None else None,
                          fwe=inf.fwe_t_threshold if inf is not None else None)
                peaks = m.peaks().round({"t": 2, "x": 1, "y": 1, "z": 1})
                peaks["region"] = peak_regions(peaks, self.viewer.atlas, self.viewer.in_mni)
                self.peaks_table.object = peaks.drop(columns=["i", "j", "k"],
                                                     errors="ignore").rename(
                    columns=PEAK_COLUMNS)
                show_strip(self.strip, self._strip_layers, m.axial_strip())
            except Exception as exc:  # noqa: BLE001
                report_error(exc)

    def _build_layout(self):
        # each control with its Parameter's doc as a tooltip
        p = self.model.param
        controls = pn.Row(
            pn.Column(with_tooltip(self.w_n, p.n_subjects), with_tooltip(self.w_age, p.age_group),
                      with_tooltip(self.w_threshold, p.threshold),
                      with_tooltip(self.w_correction, p.correction),
                      with_tooltip(self.w_permutations, p.n_permutations), width=280),
            pn.Column(self.seed_input.title, self.seed_input,
                      with_tooltip(self.w_radius, p.radius_mm), width=300),
            pn.Column(with_tooltip(self.w_scheduler, p.scheduler),
                      pn.Row(self.w_run, self.progress), self.status, self.dask_link, width=380),
        )
        preprocessing = folded_card(
            *self.prep.views(), title="Preprocessing of each subject (cleaned once per "
            "setting on the workers)", collapsed=True, css_classes=["group-preprocessing"],
            width=600)
        return pn.Column(
            pn.pane.Markdown("### Group (Dask)", margin=(0, 10)),
            controls,
            preprocessing,
            self.summary,
            self.viewer,
            pn.Row(pn.Column(self.hist, sizing_mode="stretch_width"),
                   pn.Column(pn.pane.Markdown("**Peaks** of t among the voxels shown "
                                              "(nearest planted node on synthetic data)",
                                              margin=(0, 10)),
                             self.peaks_table),
                   sizing_mode="stretch_width"),
            pn.pane.Markdown("**Clusters** of the voxels shown (click a row to go there)",
                             margin=(0, 10)),
            self.clusters,
            pn.pane.Markdown("**Subjects** (r, axial slice at the seed's z)", margin=(0, 10)),
            self.strip,
            sizing_mode="stretch_width",
        )

    def __panel__(self):
        return self._layout
