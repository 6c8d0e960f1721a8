"""The Encoding tab's data sources: the synthetic dataset, the nilearn data folder's,
and the user's own files.

With ``fmri-explorer serve --data DIR`` (``$FMRI_EXPLORER_NILEARN_DATA``), the
tab's "Data" selector offers the folder's ``miyawaki2008`` beside the synthetic
dataset, labelled ``nilearn data: miyawaki2008`` (never the server's path), and
the tab starts on it. A switch sets the analysis' ``data_dir``, a structural
change: computed in a job under the busy overlay like a new CV scheme (see
``EncodingTab._structural_changed``), then the new data's background and best
voxel are shown. The source is kept in the URL (``enc_source``); a link can name
only a source offered here (an analysis handed in by a notebook is offered as
:data:`GIVEN`, which no link can open, nor the session's own files).

**Your files** (the card under the controls, :class:`dashboard.upload.UploadPanel`):
4D runs (one or more), a mask and one feature table per run (``.npy``, ``.csv`` or
``.tsv``, one row per volume), paired in the order of their names (``run2`` before
``run10``), with the delays (volumes) and how a square number of features is drawn.
"Analyse" reads them as ``fmri-explorer encoding --func ... --mask ... --stimuli ...``
does (:func:`analysis.encoding.user.load_user_encoding`: the same numbers) and
decomposes the folds, in a job under the tab's busy overlay; then they become the
source :data:`USER_FILES` (the analysis' ``own``), shown on their own grid. A refusal
is one line naming the user's file (never the server's path). What is computed from
them stays with the session (the process' stores, owned by it; never on disk).
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param

from analysis.datasets.found import nilearn_sources, offered, same_folder
from analysis.errors import DataError
from dashboard import jobs
from dashboard.display import folded_card
from dashboard.notify import notify_errors, report_error, report_info, safe_markdown
from dashboard.param_widgets import tooltip, widget_for, with_tooltip
from dashboard.share import sync_url
from dashboard.upload import UploadPanel, user_named

SYNTHETIC = "synthetic (Miyawaki-like)"
GIVEN = "data of the analysis given"
USER_FILES = "your files (upload)"
#: The data source in the URL (read before the analysis is made: the rest of the link
#: is checked against that data).
SOURCE_URL_KEYS = {"source": "enc_source"}
#: The roles of the upload panel: runs, a mask, feature tables.
UPLOAD_ROLES = ["runs", "mask", "features"]
_NOTHING = object()   # no data shown yet


def source_choices(analysis=None) -> tuple[dict, str]:
    """``({label: data_dir}, label to start on)``: the synthetic dataset (None), the
    nilearn data folder's when present (the start), or the given analysis' data."""
    choices = {SYNTHETIC: None, **nilearn_sources("encoding")}
    if analysis is None:
        return choices, list(choices)[-1]
    for label, folder in choices.items():
        if same_folder(folder, analysis.data_dir):
            return choices, label
    return {GIVEN: analysis.data_dir, **choices}, GIVEN


def _data_id(analysis):
    """What identifies the data an analysis shows: its own files' key, or its folder."""
    if analysis.own is not None:
        return ("own", analysis.own.key)
    return ("dir", analysis.data_dir)


def _same_data(a, b) -> bool:
    if a is _NOTHING or b is _NOTHING or a[0] != b[0]:
        return False
    return a[1] == b[1] if a[0] == "own" else same_folder(a[1], b[1])


def paired_files(paths: dict, names: dict) -> tuple[list, list, list, list]:
    """``(runs, features, run names, feature names)``: the uploaded runs and feature
    tables, each list in the natural order of the user's names (``run2`` before
    ``run10``), so that the i-th table goes with the i-th run."""
    from analysis.encoding.user import natural_key

    def ordered(role):
        pairs = sorted(zip(names[role], paths[role]), key=lambda p: natural_key(p[0]))
        return [p for _, p in pairs], [n for n, _ in pairs]

    runs, run_names = ordered("runs")
    features, feature_names = ordered("features")
    return runs, features, run_names, feature_names


def _named(exc, names: dict, paths: dict):
    """``exc`` naming the user's files: its file (:func:`dashboard.upload.user_named`)
    and any server-side file name its text quotes."""
    exc = user_named(exc, names, paths)
    if not isinstance(exc, DataError):
        return exc
    problem = exc.problem
    for role, path in paths.items():
        several = isinstance(path, (list, tuple))
        for p, name in zip(path if several else [path],
                           names.get(role, []) if several else [names.get(role)]):
            if name is not None:
                problem = problem.replace(p.name, str(name))
    return DataError(problem, exc.path) if problem != exc.problem else exc


class EncodingSources:
    """The tab's ``source`` and the user's own files (a mixin of
    :class:`~dashboard.encoding.tab.EncodingTab`): uses its ``analysis``, ``viewer``,
    ``busy`` and ``_set_analysis``."""

    def _init_sources(self, analysis, source=None):
        """The choices and the start; a link's ``enc_source`` (one offered) first.
        Returns the data_dir an analysis made by the tab starts on."""
        self._source_dirs, start = source_choices(analysis)
        with param.parameterized.discard_events(self):
            self.param.source.objects = list(self._source_dirs)
            self.source = source if source is not None else start
        if GIVEN not in self._source_dirs:
            sync_url(self, SOURCE_URL_KEYS, rules={"source": offered(self._source_dirs)})
        self._shown_dir = _NOTHING
        self._user_data = None
        self._upload_job = None
        return self._source_dirs[self.source]

    @property
    def user_data(self):
        """The session's own files, read (:class:`analysis.encoding.user.UserEncodingData`):
        None before an upload has been analysed."""
        return self._user_data

    @property
    def upload_job(self) -> jobs.Job | None:
        """The job reading the uploaded files and decomposing their folds (its
        ``wait()``): None before any."""
        return self._upload_job

    def _source_widget(self):
        self.w_source = widget_for(self.param.source, self.source, "encoding-source",
                                   width=220)
        # shown when there is a choice (the server's nilearn data, the user's files)
        self.source_slot = pn.Column(
            *([self.w_source] if len(self.param.source.objects) > 1 else []), margin=0)
        self.w_source.link(self, value="source")
        self.param.watch(self._switch_source, ["source"])

    def _build_uploads(self):
        """The card's parts: the upload panel, the delays, the grid order, "Analyse"."""
        self.upload = UploadPanel(roles=list(UPLOAD_ROLES))
        delays = self.param.delays   # text (widget_for makes no text input): its label, doc
        self.w_delays = pn.widgets.TextInput(label=delays.label, value=self.delays,
                                             description=tooltip(delays), width=220,
                                             css_classes=["upload-delays"])
        self.w_delays.link(self, value="delays")
        self.w_grid = widget_for(self.param.feature_grid, self.feature_grid,
                                 "upload-grid", width=220)
        self.w_grid.link(self, value="feature_grid")
        self.w_analyse = pn.widgets.Button(label="Analyse uploaded files", color="primary",
                                           disabled=True, css_classes=["analyse-upload"],
                                           width=220)
        self.upload_status = pn.pane.Markdown("", css_classes=["upload-switch-status"],
                                              margin=(0, 5), width=230)
        self.upload.param.watch(self._uploads_changed, "paths")
        self.w_analyse.on_click(self._analyse_clicked)

    def upload_card(self) -> pn.Card:
        """The "Your files" card (collapsed; the files' sizes checked in the page)."""
        return self.upload.check_size_in(folded_card(
            self.upload, with_tooltip(self.w_delays, self.param.delays),
            with_tooltip(self.w_grid, self.param.feature_grid), self.w_analyse,
            self.upload_status,
            title="Your files: runs, mask, features", collapsed=True, width=240,
            css_classes=["encoding-upload"]))

    def _uploads_changed(self, event=None):
        self.w_analyse.disabled = not set(UPLOAD_ROLES) <= set(self.upload.paths)

    def _analyse_clicked(self, event=None):
        try:
            self.analyse_uploads()
        except DataError as exc:   # e.g. delays that are not whole numbers: said in one line
            self.upload_status.object = f"**refused:** {safe_markdown(report_error(exc))}"

    def analyse_uploads(self):
        """Read the uploaded runs, mask and features (and decompose their folds) in a job,
        the views busy meanwhile; then they are the tab's data (:data:`USER_FILES`)."""
        from analysis.encoding import EncodingAnalysis
        from analysis.encoding.user import load_user_encoding, parse_delays

        paths, names = dict(self.upload.paths), dict(self.upload.uploads.names)
        missing = [r for r in UPLOAD_ROLES if r not in paths]
        if missing:
            raise DataError(f"upload the {', '.join(missing)} first")
        delays = parse_delays(self.delays)
        order = None if self.feature_grid == "none" else self.feature_grid
        runs, features, run_names, feature_names = paired_files(paths, names)
        files = {"runs": run_names, "mask": names["mask"], "features": feature_names}
        owner = jobs.session_key(self._doc)
        a = self.analysis
        structural = {k: getattr(a, k) for k in ("cv", "n_folds", "dtype")}
        alpha_path = {k: getattr(a, k) for k in ("alpha_range", "n_alphas")}
        report = self.busy.report

        def read(job):
            show = job.guarded(report)
            data = load_user_encoding(runs, paths["mask"], features, delays, order=order,
                                      progress=lambda f, m="": show(0.5 * f, m))
            data.owner, data.files = owner, files
            show(0.5, "mean image ...")
            data.background   # the first run's mean image: computed here, not on the page's loop
            job.check()
            snapshot = EncodingAnalysis(own=data, **structural, **alpha_path)
            snapshot.engine(progress=lambda f, m="": show(0.5 + 0.4 * f, m))
            job.check()
            show(0.92, "alpha path ...")
            snapshot.alpha_path()
            return data

        def work(job):
            try:
                return read(job)
            except DataError as exc:   # named as the user named the files
                raise _named(exc, names, paths) from None

        def failed(exc):
            self._upload_done()
            self.upload_status.object = f"**refused:** {safe_markdown(exc)}"

        self.w_analyse.disabled = self.w_source.disabled = True
        self.upload_status.object = "reading your files ..."
        self.busy.run(work, "encoding-upload", "reading your files ...",
                      current=lambda data: True, apply=self._own_ready, on_error=failed,
                      long=True)
        self._upload_job = self.busy.job

    def _upload_done(self):
        self.w_source.disabled = False
        self._uploads_changed()

    def _own_ready(self, data):
        """On the event loop: the user's files read; they become the tab's data."""
        self._user_data = data
        self._upload_done()
        pairs = "; ".join(f"{safe_markdown(r)} + {safe_markdown(f)}"
                          for r, f in zip(data.files["runs"], data.files["features"]))
        self.upload_status.object = (
            f"**Data:** your files: {pairs}; mask {safe_markdown(data.files['mask'])} "
            f"({data.n_voxels} voxels, {data.n_features} features, delays "
            f"{', '.join(map(str, data.delays))})")
        if USER_FILES not in self.param.source.objects:
            self.param.source.objects = [*self.param.source.objects, USER_FILES]
            self.w_source.options = list(self.param.source.objects)
        if not len(self.source_slot):
            self.source_slot[:] = [self.w_source]
        report_info(f"your files: {data.n_voxels} voxels, {data.n_features} features")
        if self.source == USER_FILES:
            self._switch_source()
        else:
            self.source = USER_FILES

    @notify_errors
    def _switch_source(self, event=None):
        """Another source chosen: the analysis' data_dir, or the own files (a structural
        change)."""
        if self.w_source.value != self.source:
            self.w_source.value = self.source
        a = self.analysis
        if self.source == USER_FILES:
            if self._user_data is not None and a.own is not self._user_data:
                self._update_analysis(own=self._user_data)
            return
        folder = self._source_dirs[self.source]
        if a.own is not None or not same_folder(folder, a.data_dir):
            self._update_analysis(own=None, data_dir=folder)

    def _show_source(self):
        """The analysis' data (set by a switch, a link or a notebook) in the selector."""
        a = self.analysis
        if a.own is not None:
            if a.own is self._user_data and self.source != USER_FILES:
                self.source = USER_FILES
            return
        for label, folder in self._source_dirs.items():
            if same_folder(folder, a.data_dir):
                if self.source != label:
                    self.source = label
                return

    def _source_failed(self, shown):
        """The new data could not be read: back to the data shown (``shown``)."""
        if shown is _NOTHING or _same_data(shown, _data_id(self.analysis)):
            return
        if shown[0] == "own":
            if self._user_data is not None and self._user_data.key == shown[1]:
                self.source = USER_FILES
            return
        for label, folder in self._source_dirs.items():
            if same_folder(folder, shown[1]):
                self.source = label
                return

    def _show_data(self) -> bool:
        """New data (the start, or a switch): its background, and its best voxel selected
        (a voxel index of other data means nothing here). False when the data shown is
        the analysis' already (nothing done)."""
        a = self.analysis
        new = self._shown_dir is not _NOTHING
        now = _data_id(a)
        if new and _same_data(self._shown_dir, now):
            return False
        self._shown_dir = now
        self.viewer.background = a.background()
        if new:   # the new data's grid before its voxel is selected (clicks read it)
            self._update_map()
        self._update_alpha_map()
        if new or a.voxel is None:
            a.voxel = int(np.argmax(a.mean_r2().values))
        self.w_lag.disabled = a.own is not None   # the own files have their delays
        return True
