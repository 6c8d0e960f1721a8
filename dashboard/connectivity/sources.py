"""The Connectivity tab's data source: a dataset or the user's own files.

A mixin of :class:`dashboard.connectivity.tab.ConnectivityTab`: the "Data"
selector (the built-in synthetic dataset and, with ``fmri-explorer serve --data
DIR``, the nilearn data folder's ``development_fmri``, labelled ``nilearn data:
development_fmri``, never by its path; the tab starts on it), the upload panel
(func, confounds, mask), "Analyse uploaded data" and "Back to the dataset". Every
switch reads and cleans the new data in a job (its own progress beside its
buttons), then the model takes it on the event loop: a dataset folder's first
subject (its other subjects only listed, each loaded when chosen), or the files;
the session's uploaded data leaves the shared cache when the session leaves it or
ends. The Group section follows the dataset. It uses the tab's model, lock,
scheduling and widget sync.
"""

from __future__ import annotations

import functools

import panel as pn

import param

from analysis.connectivity import cleaned, discard_subject, load_subject
from analysis.connectivity.model import CURRENT
from analysis.datasets.found import nilearn_sources, offered, same_folder
from analysis.errors import DataError
from dashboard import jobs
from dashboard.notify import notify_errors, report_error, report_info, safe_markdown
from dashboard.param_widgets import widget_for
from dashboard.share import sync_url
from dashboard.upload import UploadPanel, user_named

BUILT_IN = "built-in dataset (synthetic)"
GIVEN = "data folder of the model given"
#: The data source in the URL (read before the model is made).
SOURCE_URL_KEYS = {"source": "conn_source"}


def source_choices(model=None) -> tuple[dict, str]:
    """``({label: data_dir}, label to start on)``: the built-in dataset (None), the
    nilearn data folder's development_fmri when present (the start), or the folder of
    a model handed in."""
    choices = {BUILT_IN: None, **nilearn_sources("connectivity")}
    if model is None:
        return choices, list(choices)[-1]
    for label, folder in choices.items():
        if same_folder(folder, model.data_dir):
            return choices, label
    return {GIVEN: model.data_dir, **choices}, GIVEN


class UploadSource:
    """The tab's data sources: the datasets of the "Data" selector, the uploads (the
    user's own files, this session only), and the switch between them."""

    def _init_sources(self, model=None, source=None):
        """The selector's choices and start (a link's ``conn_source``, one offered,
        first); returns the data_dir a model made by the tab starts on."""
        self._source_dirs, start = source_choices(model)
        with param.parameterized.discard_events(self):
            self.param.source.objects = list(self._source_dirs)
            self.source = source if source is not None else start
        if GIVEN not in self._source_dirs:
            sync_url(self, SOURCE_URL_KEYS, rules={"source": offered(self._source_dirs)})
        return self._source_dirs[self.source]

    def _source_chosen(self, event):
        """A dataset chosen in the selector: switch to it (from the uploads too)."""
        if self._syncing or self._switching:
            return
        m = self.model
        if m.uses_own_data or not same_folder(self._source_dirs[self.source], m.data_dir):
            self.use_dataset()

    def _show_source(self):
        """The model's dataset folder in the selector (after a switch, or one refused)."""
        for label, folder in self._source_dirs.items():
            if same_folder(folder, self.model.data_dir):
                self._syncing = True
                try:
                    self.source = label
                    self.w_source.value = label
                finally:
                    self._syncing = False
                return

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
        back = "Back to the built-in dataset" if len(self._source_dirs) == 1 else \
            "Back to the dataset"
        self.w_dataset = pn.widgets.Button(label=back,
                                           color="default", disabled=True,
                                           css_classes=["use-dataset"], width=230)
        t_r = self.model.param.t_r      # its label and doc; 0 here: from the header
        self.w_upload_tr = widget_for(t_r, 0.0, "upload-t-r", label=f"{t_r.label}, "
                                      "0 = from the header", start=0.0, width=230)
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
            pn.state.on_session_destroyed(lambda ctx: self.forget_uploads())

    def _dataset_label(self) -> str:
        m = self.model
        if m.uses_own_data:
            names = m.subject_data().info.get("uploads", {})
            files = ", ".join(names[r] for r in ("func", "confounds", "mask") if r in names)
            return f"**Data:** your files ({safe_markdown(files)})"
        label = next((label for label, folder in self._source_dirs.items()
                      if same_folder(folder, m.data_dir)), BUILT_IN)
        if label == BUILT_IN:
            return "**Data:** the built-in dataset"
        return f"**Data:** {safe_markdown(label)} ({m.n_subjects} subjects)"

    def _uploads_changed(self, event):
        self.w_analyse.disabled = "func" not in event.new or self._switching

    def analyse_uploads(self):
        """Switch this session's analysis to the uploaded files (cleaned in the background)."""
        paths = dict(self.upload.paths)
        if "func" not in paths:
            raise DataError("upload a 4D functional image (NIfTI) first")
        names = dict(self.upload.uploads.names)
        t_r = float(self.w_upload_tr.value or 0.0) or None
        # the upload is this session's: what the process' stores compute from it goes
        # when the session ends (analysis.store.release, dashboard/app.py)
        owner = jobs.session_key(self._doc)

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
            subject.owner = owner
            self._upload_keys.add(subject.key)
            return subject

        self._switch(load, "reading your files ...", names=names, paths=paths)

    def use_dataset(self):
        """To the dataset chosen in the selector: back from the uploads (they stay for
        another try) to the same subject, or another folder from its first subject."""
        folder = self._source_dirs[self.source]
        m = self.model
        same = same_folder(folder, m.data_dir)
        self._switch(None, f"{'back to' if same else 'reading'} the dataset ...",
                     data_dir=CURRENT if same else folder)

    def _switch(self, load, message, names=None, paths=None, data_dir=CURRENT):
        if self._switching:
            return
        self._switching = True
        self.w_analyse.disabled = self.w_dataset.disabled = self.w_source.disabled = True
        self.upload_progress.param.update(value=0, visible=True)
        self.upload_status.object = message
        work = functools.partial(self._prepare, load, names or {}, paths or {}, data_dir)
        if self._served():   # a job (dashboard/jobs.py): capped, cancelled with the session
            self._switch_job = jobs.submit(
                work, name="connectivity-upload", doc=self._doc, long=True,
                on_queued=lambda n: setattr(self.upload_status, "object",
                                            jobs.queued_message(n)))
        else:
            work()

    def _prepare(self, load, names, paths, data_dir=CURRENT, job=None):
        """A job, off the event loop: read the files (or the dataset folder's subject)
        and clean them (cached), with progress."""
        m = self.model
        progress = job.guarded(self._upload_progress) if job is not None else \
            self._upload_progress
        try:
            subject = load() if load is not None else m.dataset_subject(data_dir)
            if job is not None:
                job.check()
            cleaned(subject, m.settings_for(subject).check(), progress=progress)
            if job is not None and job.cancelled and load is not None:
                discard_subject(subject.key)   # the session went meanwhile: nothing kept
                return
        except Exception as exc:  # noqa: BLE001 - shown in this session, the map stays
            if job is not None and job.cancelled:
                return   # the session is gone (or going): nobody to tell
            self._schedule(functools.partial(self._switch_failed, user_named(exc, names, paths)))
            return
        self._schedule(functools.partial(self._apply_switch, subject if load else None,
                                         data_dir))

    def _apply_switch(self, subject, data_dir=CURRENT):
        """On the event loop: the model takes the new data (cleaned already: no wait)."""
        m = self.model
        with self._lock:
            previous = m.subject_data().key if m.uses_own_data else None
            try:
                moved = tuple(m.seed_mm)
                m.use_data(subject, data_dir=data_dir)
            except Exception as exc:  # noqa: BLE001
                self._switch_failed(exc)
                return
            own = m.uses_own_data
            if not own:   # the folder's subjects (listed, not loaded)
                self._syncing = True
                try:
                    self.w_subject.options = self._subject_options()
                finally:
                    self._syncing = False
            self._sync_widgets()
            self._set_background()
            self._switching = False
            self._show_source()
            self.w_source.disabled = False
            if data_dir is not CURRENT and getattr(self, "_group_panel", None) is not None:
                self._group_panel.use_data_dir(m.data_dir)
            self.w_subject.disabled = own
            self.w_dataset.disabled = not own
            self.w_analyse.disabled = "func" not in self.upload.paths
            self.data_source.object = self._dataset_label()
            self.upload_progress.visible = False
            self.upload_status.object = ""
            if previous is not None and previous != (subject.key if subject else None):
                discard_subject(previous)            # the session left those files
                self._upload_keys.discard(previous)
            if tuple(m.seed_mm) != moved:
                report_info(f"the seed moved to {tuple(round(v, 1) for v in m.seed_mm)} mm: "
                            "the previous one is outside this brain")

    def _switch_failed(self, exc):
        m = self.model
        in_use = m.subject_data().key if m.uses_own_data else None
        for key in list(self._upload_keys - {in_use}):   # refused files: nothing kept
            discard_subject(key)
            self._upload_keys.discard(key)
        self._switching = False
        self.w_analyse.disabled = "func" not in self.upload.paths
        self.w_dataset.disabled = not m.uses_own_data
        self.w_source.disabled = False
        self._show_source()
        self.upload_progress.visible = False
        self.upload_status.object = f"**refused:** {safe_markdown(report_error(exc))}"
        self._sync_widgets()

    def _upload_progress(self, fraction: float, message: str = "") -> None:
        def show():
            self.upload_progress.value = int(round(100 * fraction))
            if fraction < 1.0:
                self.upload_status.object = message
        self._schedule(show)

    def forget_uploads(self) -> None:
        """What the session's end runs: this session's uploaded data leaves the shared
        cache (the upload panel's ``uploads.cleanup()`` removes the files)."""
        for key in list(self._upload_keys):
            discard_subject(key)
        self._upload_keys.clear()
