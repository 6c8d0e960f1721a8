"""Uploads: the user's own files, for their session only.

Files land in a per-session temporary folder under fixed names chosen by the
server (``func.nii.gz``, ``mask.nii``, ``labels.txt``...): the name the browser
sends is only checked (extension, no path parts), never used as a path. Each
file is size-limited (``$FMRI_EXPLORER_MAX_UPLOAD_MB``, default 500) and
type-checked (NIfTI images are opened with nibabel; a functional image must be
4D; a feature table is read as the encoding reads it). Some roles take several files at
once (:data:`MULTIPLE`: the runs of an encoding and their feature tables): each is
checked, stored as ``runs-000.nii.gz``, ``runs-001.nii.gz``..., and ``paths[role]`` is
the list, in the order the browser gave them. The folder is removed when the session
ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
import panel as pn
import param

from analysis.config import max_upload_bytes
from analysis.errors import DataError
from analysis.io import load_func, load_mask
from dashboard.notify import report_error, report_info, safe_markdown
from dashboard.render.browser import FILE_INPUT_MODEL_JS
from dashboard.render.server import session_doc

NIFTI = (".nii.gz", ".nii")
#: role -> (allowed extensions, description)
ROLES = {
    "func": (NIFTI, "4D functional image"),
    "mask": (NIFTI, "3D mask"),
    "labels": ((".txt", ".csv", ".tsv"), "labels (one row per volume)"),
    "label_names": ((".txt", ".json"), "code-to-name table"),
    "confounds": ((".tsv", ".txt"), "confounds TSV"),
    "runs": (NIFTI, "4D runs (one or more)"),
    "features": ((".npy", ".csv", ".tsv"), "feature tables, one per run"),
}
#: Roles whose file input takes several files at once (``paths[role]`` is a list).
MULTIPLE = frozenset({"runs", "features"})
#: Roles holding a 4D functional image.
FUNCTIONAL = frozenset({"func", "runs"})


def check_name(filename: str, role: str) -> str:
    """The extension of an uploaded file's name, after refusing unsafe names."""
    if role not in ROLES:
        raise DataError(f"unknown upload role {role!r}")
    name = str(filename or "")
    if (not name or "/" in name or "\\" in name or "\x00" in name or name.startswith(".")
            or ".." in name.replace("\\", "/").split("/") or ".." in name):
        raise DataError(f"refused file name {name!r}: it must be a plain file name")
    lower = name.lower()
    allowed, what = ROLES[role]
    for ext in allowed:
        if lower.endswith(ext):
            return ext
    raise DataError(f"{name}: a {what} must end in {' or '.join(allowed)}")


class SessionUploads:
    """A session's uploaded files, in its own temporary folder."""

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes = max_upload_bytes() if max_bytes is None else int(max_bytes)
        self.folder = Path(tempfile.mkdtemp(prefix="fmri-explorer-upload-"))
        self.files: dict[str, Path] = {}
        self.names: dict[str, str] = {}
        weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        doc = session_doc()   # this session's, never another's (render/server.py)
        if doc is not None and doc.session_context is not None:
            pn.state.on_session_destroyed(lambda ctx: self.cleanup())

    def accept(self, role: str, filename: str, data: bytes) -> Path:
        """Check and store one upload; return its server-side path."""
        target = self._accept(role, filename, data, f"{role}")
        self.files[role] = target
        self.names[role] = filename
        return target

    def accept_many(self, role: str, files) -> list[Path]:
        """Check and store several uploads of one role at once (``files``: ``(filename,
        bytes)`` pairs, in order); all or none: the first refused one raises (the role's
        previous files stay). Returns their server-side paths, in order."""
        files = list(files)
        if not files:
            raise DataError(f"no file given for the {ROLES[role][1] if role in ROLES else role}")
        stage = f"{role}.new"
        written = []
        try:
            for i, (filename, data) in enumerate(files):
                written.append(self._accept(role, filename, data, f"{stage}-{i:03d}"))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        old = self.files.get(role)
        for path in (old if isinstance(old, list) else [old] if old else []):
            path.unlink(missing_ok=True)
        targets = []
        for i, path in enumerate(written):
            target = path.with_name(path.name.replace(stage, role, 1))
            os.replace(path, target)
            targets.append(target)
        self.files[role] = targets
        self.names[role] = [str(name) for name, _ in files]
        return targets

    def _accept(self, role: str, filename: str, data: bytes, stem: str) -> Path:
        ext = check_name(filename, role)
        size = len(data or b"")
        if size == 0:
            raise DataError(f"{filename}: the file is empty")
        if size > self.max_bytes:
            raise DataError(over_limit_message(filename, size, self.max_bytes))
        if ext == ".nii.gz" and data[:2] != b"\x1f\x8b":
            raise DataError(f"{filename}: not a gzipped NIfTI file")
        target = self.folder / f"{stem}{ext}"
        tmp = self.folder / f".{stem}.partial{ext}"
        tmp.write_bytes(data)
        try:
            if ext in NIFTI:
                if role in FUNCTIONAL:
                    img = load_func(tmp)
                    np.asanyarray(img.dataobj[..., 0])  # the data decode, not just the header
                else:
                    load_mask(tmp)
            elif role == "features":
                from analysis.encoding.user import load_features

                load_features(tmp)      # numbers, a table, within the limits
            os.replace(tmp, target)
        except DataError as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(exc.problem, filename) from None
        except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
            tmp.unlink(missing_ok=True)
            raise DataError(f"cannot read it ({type(exc).__name__})", filename) from None
        return target

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.files.clear()


def over_limit_message(filename: str, size: int, limit: int) -> str:
    """The refusal of a file over the upload limit (the page's check and the server's)."""
    mb, top = size / 2**20, limit / 2**20
    digits = 1
    while digits < 6 and round(mb, digits) <= round(top, digits):  # "1.05 MB", not "1.0 MB"
        digits += 1
    return f"{filename}: {mb:.{digits}f} MB is over the upload limit of {top:g} MB"


#: MIME type the page reports for a file it kept back (over the limit): never a real one.
OVER_LIMIT_MIME = "application/x-fmri-explorer-over-limit"

#: Installed in the page (once) when an upload card is first opened: a file input's
#: ``input`` event (fired before ``change``, and composed: seen at the document) with
#: a file over the limit takes the file out of the input and stops the ``change`` event
#: that would make Bokeh read it and send it whole, base64, in one websocket message
#: (a file near the limit would close the connection and lose the session). Only the
#: file's name and size reach the server, as the widget's ``filename`` and a marker
#: ``mime_type``.
SIZE_CHECK_JS = """
window.__fmriUploadLimit = limit;
if (!window.__fmriUploadCheck) {
  window.__fmriUploadCheck = true;
""" + FILE_INPUT_MODEL_JS + """
  document.addEventListener('input', (event) => {
    const input = event.composedPath()[0];
    if (!input || input.tagName !== 'INPUT' || input.type !== 'file') return;
    const max = window.__fmriUploadLimit;
    const big = [...(input.files || [])].find((f) => max > 0 && f.size > max);
    if (!big) return;
    const root = input.getRootNode();
    const stop = (e) => { if (e.composedPath()[0] === input) e.stopImmediatePropagation(); };
    root.addEventListener('change', stop, true);
    setTimeout(() => root.removeEventListener('change', stop, true), 0);
    input.value = '';
    const model = fileInputModel(input);
    if (model) {
      model.setv({filename: big.name,
                  mime_type: mime + ';size=' + big.size + ';t=' + Date.now()});
    }
  }, true);
}
"""


class UploadPanel(pn.viewable.Viewer):
    """File inputs for some roles; ``paths`` holds the accepted files by role."""

    roles = param.List(default=["func", "mask", "labels"], doc="Which files to ask for.")
    paths = param.Dict(default={}, doc="Accepted uploads: role -> server-side path.")

    def __init__(self, **params):
        super().__init__(**params)
        self.uploads = SessionUploads()
        limit = self.uploads.max_bytes / 2**20
        self._inputs = {}
        rows = []
        for role in self.roles:
            allowed, what = ROLES[role]
            widget = pn.widgets.FileInput(accept=",".join(allowed), label=what,
                                          multiple=role in MULTIPLE,
                                          css_classes=[f"upload-{role}"], width=230)
            widget.param.watch(lambda event, role=role: self._received(role, event), "value")
            widget.param.watch(lambda event, role=role: self._refused_in_page(role, event),
                               "mime_type")
            self._inputs[role] = widget
            rows.append(widget)  # the widget shows its label
        self._status = pn.pane.Markdown(f"Up to {limit:.0f} MB per file; kept for this "
                                        "session only.", css_classes=["upload-status"])
        self._layout = pn.Column(*rows, self._status)

    @property
    def inputs(self) -> Mapping[str, pn.widgets.FileInput]:
        """The file input of each role: a script (or a test) gives a file through it as
        the browser does, ``filename`` first, then ``value`` (the bytes)."""
        return MappingProxyType(self._inputs)

    @property
    def status(self) -> pn.pane.Markdown:
        """The line under the inputs: the size limit, then the last file received or
        refused (and why)."""
        return self._status

    def _received(self, role: str, event) -> None:
        widget = self._inputs[role]
        if event.new is None:
            return
        try:
            if role in MULTIPLE:
                values = event.new if isinstance(event.new, list) else [event.new]
                names = widget.filename
                names = names if isinstance(names, list) else [names] * len(values)
                self.uploads.accept_many(role, zip(names, values))
                received = ", ".join(str(n) for n in names)
            else:
                self.uploads.accept(role, widget.filename, event.new)
                received = str(widget.filename)
        except DataError as exc:
            report_error(exc)
            self._status.object = f"**refused:** {safe_markdown(exc)}"
            return
        finally:
            widget.value = None  # free the bytes held by the widget
        self.paths = {**self.paths, role: self.uploads.files[role]}
        self._status.object = f"received {safe_markdown(received)} ({role})"
        report_info(f"received {received}")

    def check_size_in(self, card: pn.Card) -> pn.Card:
        """Check each file's size in the page, before it is sent (see :data:`SIZE_CHECK_JS`):
        installed when ``card`` (holding this panel, collapsed) is opened. Returns it."""
        card.jscallback(args={"limit": int(self.uploads.max_bytes), "mime": OVER_LIMIT_MIME},
                        collapsed=SIZE_CHECK_JS)
        return card

    def _refused_in_page(self, role: str, event) -> None:
        """The page kept a file over the limit back: say so (nothing was sent)."""
        marker = event.new if isinstance(event.new, str) else ""
        if not marker.startswith(OVER_LIMIT_MIME):
            return
        fields = dict(part.split("=", 1) for part in marker.split(";")[1:] if "=" in part)
        try:
            size = int(fields.get("size", ""))
        except ValueError:
            return
        name = self._inputs[role].filename
        name = ", ".join(map(str, name)) if isinstance(name, list) else name
        exc = DataError(over_limit_message(str(name or "the file"),
                                           size, self.uploads.max_bytes))
        report_error(exc)
        self._status.object = f"**refused:** {safe_markdown(exc)}"

    def __panel__(self):
        return self._layout


def user_named(exc, names: dict, paths: dict):
    """A DataError about an uploaded file, named as the user named it (``names``: role ->
    the user's file name) rather than by the server's path in the session folder
    (``paths``: role -> that path); any other exception unchanged."""
    if isinstance(exc, DataError) and exc.path is not None:
        for role, path in paths.items():
            if role not in names:
                continue
            several = isinstance(path, (list, tuple))
            for p, name in zip(path if several else [path],
                               names[role] if several else [names[role]]):
                if str(p) == exc.path:
                    return DataError(exc.problem, name)
    return exc
