"""The Connectivity tab's data source: the built-in dataset or the user's own files.

A mixin of :class:`dashboard.connectivity.tab.ConnectivityTab`: the upload
panel (func, confounds, mask), "Analyse uploaded data" and "Back to the built-in
dataset". The switch reads and cleans the files in a job (its own progress
beside its buttons), then the model takes the new data on the event loop; the
session's uploaded data leaves the shared cache when the session leaves it or
ends. It uses the tab's model, lock, scheduling and widget sync.
"""

from __future__ import annotations

import functools

import panel as pn

from analysis.connectivity import cleaned, discard_subject, load_subject
from analysis.errors import DataError
from dashboard import jobs
from dashboard.notify import notify_errors, report_error, report_info, safe_markdown
from dashboard.param_widgets import widget_for
from dashboard.upload import UploadPanel, user_named


class UploadSource:
    """The tab's uploads (the user's own files, this session only) and the switch
    between them and the built-in dataset."""

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
        self.w_dataset = pn.widgets.Button(label="Back to the built-in dataset",
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
        return "**Data:** the built-in dataset"

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
        """Back to the built-in dataset (this session's uploads stay for another try)."""
        self._switch(None, "back to the built-in dataset ...")

    def _switch(self, load, message, names=None, paths=None):
        if self._switching:
            return
        self._switching = True
        self.w_analyse.disabled = self.w_dataset.disabled = True
        self.upload_progress.param.update(value=0, visible=True)
        self.upload_status.object = message
        work = functools.partial(self._prepare, load, names or {}, paths or {})
        if self._served():   # a job (dashboard/jobs.py): capped, cancelled with the session
            self._switch_job = jobs.submit(
                work, name="connectivity-upload", doc=self._doc,
                on_queued=lambda n: setattr(self.upload_status, "object",
                                            jobs.queued_message(n)))
        else:
            work()

    def _prepare(self, load, names, paths, job=None):
        """A job, off the event loop: read the files and clean them (cached), with progress."""
        m = self.model
        progress = job.guarded(self._upload_progress) if job is not None else \
            self._upload_progress
        try:
            subject = load() if load is not None else m.dataset_subject()
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
        self._schedule(functools.partial(self._apply_switch, subject if load else None))

    def _apply_switch(self, subject):
        """On the event loop: the model takes the new data (cleaned already: no wait)."""
        m = self.model
        with self._lock:
            previous = m.subject_data().key if m.uses_own_data else None
            try:
                moved = tuple(m.seed_mm)
                m.use_data(subject)
            except Exception as exc:  # noqa: BLE001
                self._switch_failed(exc)
                return
            self._sync_widgets()
            self._set_background()
            self._switching = False
            own = m.uses_own_data
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
