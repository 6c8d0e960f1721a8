"""The Decoding tab's data sources: built-in datasets, the analysis given, an upload.

The choices of the tab's "Data" selector (the synthetic Haxby-like dataset, the
real Haxby 2001 slice when present, the data of an analysis a notebook hands
in, the session's own upload), the built-in datasets and their backgrounds
cached per process, the padding of a single-slice volume for display, and the
tab's handling of an upload (:class:`UploadSource`): read and masked in a job,
kept with its session only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analysis.config import nilearn_data_dir
from analysis.datasets import haxby
from analysis.datasets.found import found_datasets, nilearn_sources
from analysis.decoding import PRIVATE, DecodingAnalysis, masked_of
from analysis.io import HAXBY_CODES
from analysis.store import Store
from dashboard import jobs
from dashboard.batch import soon
from dashboard.notify import report_error
from dashboard.upload import user_named

#: Real Haxby data (one slice), offered as a second source when present.
SLICE_ENV = "FMRI_EXPLORER_HAXBY_SLICE"
SYNTHETIC = "synthetic (Haxby-like)"
REAL_SLICE = "real Haxby 2001 slice"
USER_FILES = "your files (upload)"
GIVEN = "data of the analysis given"


def _built_in_source(value) -> None:
    if value in (USER_FILES, GIVEN):
        raise ValueError("a session's own data cannot be opened from a link")
    if value not in (SYNTHETIC, REAL_SLICE, *nilearn_sources("decoding")):
        raise ValueError("not a source a link can open")


def real_slice_dir() -> Path | None:
    """The folder of the real Haxby slice: ``$FMRI_EXPLORER_HAXBY_SLICE``, else the copy
    the repository carries (``tests/data/haxby2001_slice``, with its licence note)."""
    candidates = [os.environ.get(SLICE_ENV),
                  Path(__file__).resolve().parents[2] / "tests" / "data" / "haxby2001_slice"]
    for c in candidates:
        if c and (Path(c) / "bold.nii.gz").is_file():
            return Path(c)
    return None


#: the built-in datasets and their backgrounds, shared by every session (analysis/store.py)
DATASETS = Store("decoding.datasets", max_entries=4)
BACKGROUNDS = Store("decoding.backgrounds", max_entries=4)


def _load_dataset(source: str) -> haxby.HaxbyData:
    real = found_datasets(nilearn_data_dir()).get("decoding")
    if real is not None and source == real["label"]:   # serve --data: fetch_haxby's layout
        return haxby.load(real["data_dir"], subject=real["subject"])
    if source == REAL_SLICE:
        folder = real_slice_dir()
        # its README names the codes: Haxby's (a user's numeric labels stay numbers)
        return haxby.load_user(folder / "bold.nii.gz", folder / "mask.nii.gz",
                               folder / "attributes.txt", label_names=HAXBY_CODES)
    return haxby.load()


def _dataset(source: str) -> haxby.HaxbyData:
    """Datasets shared by every session of this process."""
    return DATASETS.get_or_compute(source, lambda: _load_dataset(source))


def _background(source: str):
    return BACKGROUNDS.get_or_compute(
        source, lambda: displayable(DecodingAnalysis(_dataset(source)).background()))


def displayable(da):
    """A volume with a single slice along some axis (like the real Haxby slice),
    padded with empty (NaN) slices on both sides so that every view has a sane
    extent (about the smaller of the other two); values and their mm
    coordinates are unchanged. ``attrs["padding"]`` (slices added on each side along
    x, y, z) lets the viewer report voxel indices in the image's own grid
    (:func:`dashboard.slice_data.image_index`)."""
    import xarray as xr

    extents = {d: abs(float(da[d].values[-1] - da[d].values[0])) for d in ("x", "y", "z")}
    padding = [0, 0, 0]
    for axis, dim in enumerate(("x", "y", "z")):
        if da.sizes[dim] != 1:
            continue
        affine = np.array(da.attrs["affine"], dtype=float)
        step = affine[axis, axis]
        others = [e for d, e in extents.items() if d != dim and e > 0]
        n_side = max(1, int(round(min(others) / abs(step) / 2))) if others else 1
        c = float(da[dim].values[0])
        empty = xr.full_like(da, np.nan, dtype=float)
        before = [empty.assign_coords({dim: [c - k * step]}) for k in range(n_side, 0, -1)]
        after = [empty.assign_coords({dim: [c + k * step]}) for k in range(1, n_side + 1)]
        attrs = dict(da.attrs)
        da = xr.concat(before + [da.astype(float)] + after, dim=dim)
        affine[axis, 3] -= n_side * step
        attrs["affine"] = affine
        padding[axis] = n_side
        attrs["padding"] = tuple(padding)   # the readout and hover give the image's index
        da.attrs = attrs
    return da



class UploadSource:
    """The Decoding tab's source backgrounds and upload handling (a mixin of
    :class:`DecodingTab`): the user's files masked in a job, with a progress bar beside
    them, then offered as a source."""

    @property
    def upload_job(self) -> jobs.Job | None:
        """The job reading and masking the session's latest upload (its ``state``,
        ``wait()``): None before any, and once that upload is ready or refused."""
        return self._upload_job

    @property
    def user_data(self) -> haxby.HaxbyData | None:
        """The session's upload, read and masked (the source :data:`USER_FILES`); None
        before one is ready and once the session has ended (:meth:`cleanup`)."""
        return self._user_data

    def _set_background(self):
        try:
            if self.source == USER_FILES:
                self.viewer.background = self._user_background
            elif self.source == GIVEN:
                self.viewer.background = displayable(
                    DecodingAnalysis(self._given_data).background())
            else:
                self.viewer.background = _background(self.source)
        except Exception as exc:  # noqa: BLE001
            report_error(exc)

    def _uploaded(self, event):
        """The user's files (this session only): once func, mask and labels are in, they
        are read and masked in the background (a job: progress here, the app keeps
        serving); the masked data stays with this session (never in the process-wide
        cache nor on disk) and leaves with it."""
        paths = dict(event.new)
        if not {"func", "mask", "labels"} <= set(paths):
            return
        if self._upload_job is not None:
            self._upload_job.cancel()
        self.upload_progress.param.update(value=0, visible=True)
        self.upload_status.object = "reading your files ..."
        self.w_source.disabled = True      # busy: the source switches when the job is done
        standardize = self.analysis.standardize

        def work(job):
            show = job.guarded(self._upload_progress)
            show(0.02, "reading your files ...")
            data = haxby.load_user(paths["func"], paths["mask"], paths["labels"],
                                   label_names=paths.get("label_names"))
            data.info[PRIVATE] = True
            mask = next(iter(data.masks))
            job.check()
            masked_of(data, data.masks[mask], mask, standardize,
                      progress=lambda f, m="": show(0.1 + 0.8 * f, m or "masking ..."))
            show(0.92, "mean image ...")
            background = displayable(DecodingAnalysis(data).background())
            return data, background

        names = dict(self.upload.uploads.names)

        def failed(exc):   # named as the user named the file, not by its server path
            self._upload_failed(user_named(exc, names, paths))

        self._upload_job = jobs.submit(
            work, name="decoding-upload", doc=self._doc, long=True, on_done=self._upload_ready,
            on_error=failed, on_queued=self._upload_queued,
            on_cancelled=self._upload_cancelled)

    def _upload_progress(self, fraction, message=""):
        def show():
            self.upload_progress.value = int(round(100 * min(max(fraction, 0.0), 1.0)))
            if message:
                self.upload_status.object = message
        soon(self._doc, show)

    def _upload_queued(self, position):
        self.upload_status.object = jobs.queued_message(position)

    def _upload_failed(self, exc):
        self._upload_job = None
        self.w_source.disabled = False
        self.upload_progress.visible = False
        self.upload_status.object = f"refused: {report_error(exc)}"

    def _upload_cancelled(self):
        self.w_source.disabled = False
        self.upload_progress.visible = False
        self.upload_status.object = "cancelled"

    def _upload_ready(self, payload):
        """On the event loop: the masked upload becomes this session's data source."""
        data, background = payload
        self._upload_job = None
        self._user_data = data
        self._user_background = background
        self.w_source.disabled = False
        self.upload_progress.visible = False
        self.upload_status.object = ("" if data.info.get("named", True) else
                                     "numeric labels with no names: they stay numbers "
                                     "(add a code-to-name table to name them)")
        if USER_FILES not in self.param.source.objects:
            self.param.source.objects = [*self.param.source.objects, USER_FILES]
            self.w_source.options = list(self.param.source.objects)
        if self.source == USER_FILES:
            self._switch_source()
        else:
            self.source = USER_FILES
