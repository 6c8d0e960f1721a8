"""The Param class of group connectivity: :class:`GroupConnectivity`.

Its parameters choose the subjects, the preprocessing, the seed, the display
threshold and the cluster; :meth:`GroupConnectivity.run` computes the group map
on the cluster (see :func:`~analysis.group.results.compute_group`), and the
derived maps, peaks, summary and JSON report are read from its ``result``.
"""

from __future__ import annotations

import threading

import nibabel as nib
import numpy as np
import pandas as pd
import param
import xarray as xr

from ..connectivity import (PCC_MM, RADIUS_MM, MAX_RADIUS_MM, CleaningSettings, find_peaks,
                            label_peaks)
from ..errors import DataError
from ..preprocessing import PARAMETERS as PREPROCESSING
from ..preprocessing import T_R, Preprocessing
from ..progress import null_progress
from ..volumes import to_xarray
from .cluster import CONNECT_TIMEOUT, SCHEDULER_ENV, Cancelled, scheduler_address
from .engine import GroupEngine
from .registry import _get_engine, idle_seconds, release_engine
from .results import GroupResult, compute_group
from .subjects import AGE_GROUPS, SubjectList, confound_names, dataset_subjects, file_subjects

_AGE_NAMES = {"both": "Adults and children", "adult": "Adults", "child": "Children"}
#: The age groups as a widget offers them: ``{label: value}`` (the values stay AGE_GROUPS).
AGE_LABELS = {_AGE_NAMES[group]: group for group in AGE_GROUPS}


class GroupConnectivity(Preprocessing):
    """Group seed-to-voxel connectivity on Dask: per-subject maps and a t map.

    *Structural* parameters (``data_dir``, ``n_subjects``, ``age_group``, the
    cleaning ones, inherited from :class:`~analysis.preprocessing.Preprocessing` as
    single-subject connectivity's) choose the subjects and key their cleaned data,
    which stays on the cluster's workers. ``seed_mm`` / ``radius_mm`` only re-run the
    cheap per-subject step there. ``threshold`` and ``n_peaks`` only change
    the display. ``scheduler`` picks the cluster (empty: a local one, or
    ``$FMRI_EXPLORER_SCHEDULER``).

    Nothing is computed on construction; :meth:`run` computes (the dashboard
    runs it in a thread) and reports progress to ``progress`` /
    ``progress_message`` and to an optional callable.
    """

    data_dir = param.String(default=None, allow_None=True, label="Data folder",
                            doc="nilearn data_dir holding development_fmri (None: synthetic)")
    n_subjects = param.Integer(default=None, allow_None=True, bounds=(2, 155),
                               label="Subjects",
                               doc="How many participants enter the group analysis (None: "
                                   "every subject on disk)")
    age_group = param.Selector(default="both", objects=AGE_LABELS, label="Age group",
                               doc="Which participants to include, by the dataset's "
                                   "child / adult grouping")
    seed_mm = param.NumericTuple(default=PCC_MM, length=3, label="Seed (MNI mm)",
                                 doc="Centre of the seed sphere: x, y, z in MNI space, in mm")
    radius_mm = param.Number(default=RADIUS_MM, bounds=(1.0, MAX_RADIUS_MM), step=1.0,
                             label="Seed radius (mm)",
                             doc="Radius of the sphere whose voxels' mean time series is "
                                 "each subject's seed signal, in mm")
    threshold = param.Number(default=3.0, bounds=(0.0, None), softbounds=(0.0, 20.0), step=0.5,
                             label="Threshold on |t|",
                             doc="Voxels of the group t map (one-sample t-test of the "
                                 "subjects' Fisher z) below this in absolute value are hidden")
    n_peaks = param.Integer(default=10, bounds=(1, 100), label="Peaks listed",
                            doc="How many local maxima above the threshold the peaks table "
                                "lists")
    scheduler = param.String(default="", label="Dask scheduler",
                             doc="Address of the Dask scheduler that runs the analysis "
                                 f"(empty: a local cluster, or ${SCHEDULER_ENV})")
    n_workers = param.Integer(default=2, bounds=(1, 64), label="Local workers",
                              doc="Workers of the local cluster")
    processes = param.Boolean(default=True, label="Workers as processes",
                              doc="Local cluster workers as processes (not threads)")
    timeout = param.Number(default=CONNECT_TIMEOUT, bounds=(0.5, 120.0),
                           label="Scheduler timeout (s)",
                           doc="Seconds to wait for a scheduler")

    progress = param.Number(default=0.0, bounds=(0.0, 1.0), precedence=-1,
                            doc="Fraction of the current run done")
    progress_message = param.String(default="", precedence=-1, doc="What the cluster is doing")
    running = param.Boolean(default=False, precedence=-1, doc="A run is under way")
    result = param.ClassSelector(class_=GroupResult, default=None, precedence=-1,
                                 doc="The last group result")
    error = param.String(default="", precedence=-1, doc="Last error message")

    STRUCTURAL = ("data_dir", "n_subjects", "age_group", *PREPROCESSING)

    def __init__(self, subject_list: SubjectList | None = None, size: str | None = None,
                 **params):
        super().__init__(**params)
        self._size = size
        self._fixed = subject_list
        self._subjects: SubjectList | None = None
        self._subjects_key = None
        self._engine: GroupEngine | None = None
        self._run_lock = threading.Lock()

    @classmethod
    def from_files(cls, funcs, confounds=None, mask=None, t_r=None, **params):
        """On the user's own files (see :func:`file_subjects`)."""
        return cls(subject_list=file_subjects(funcs, confounds=confounds, mask=mask, t_r=t_r),
                   **params)

    # ---- inputs
    def subject_list(self) -> SubjectList:
        """The chosen subjects (cached per structural choice)."""
        if self._fixed is not None:
            subjects = self._fixed
            if self.n_subjects is not None:
                if not 2 <= self.n_subjects <= len(subjects.subjects):
                    raise DataError(f"n_subjects must be between 2 and "
                                    f"{len(subjects.subjects)} for these files")
                subjects = SubjectList(subjects.subjects[:self.n_subjects], subjects.mask,
                                       subjects.truth, subjects.source, subjects.data_dir)
            return subjects
        key = (self.data_dir, self.n_subjects, self.age_group, self._size)
        if self._subjects is None or self._subjects_key != key:
            self._subjects = dataset_subjects(self.data_dir, self.n_subjects, self.age_group,
                                              size=self._size)
            self._subjects_key = key
        return self._subjects

    @property
    def truth(self) -> dict | None:
        return self.subject_list().truth

    def settings(self, subjects: SubjectList | None = None) -> CleaningSettings:
        """The cleaning settings (the preprocessing group's; every confound column of the
        first subject's table when ``regress_confounds``)."""
        subjects = subjects or self.subject_list()
        return self.cleaning_settings(self.repetition_time(subjects),
                                      confound_names(subjects.subjects[0])).check()

    def repetition_time(self, subjects: SubjectList | None = None) -> float:
        """The subjects' repetition time (s): given, else the first image's header."""
        subjects = subjects or self.subject_list()
        t_r = subjects.subjects[0].t_r
        if t_r is None:
            from ..io import load_func, t_r_of

            t_r = t_r_of(load_func(subjects.subjects[0].func)) or T_R
        return float(t_r)

    def engine(self) -> GroupEngine:
        """The Dask engine for ``scheduler`` (process-level, shared)."""
        address = scheduler_address(self.scheduler)
        if self._engine is None or self._engine.address != address \
                or self._engine.client.status not in ("running", "connecting"):
            old, self._engine = self._engine, None
            if old is not None:
                release_engine(old, wait=idle_seconds())
            self._engine, created = _get_engine(address, self.n_workers, self.processes,
                                                self.timeout)
        return self._engine

    @property
    def dashboard_link(self) -> str:
        """The Dask dashboard of the current cluster ('' before the first run)."""
        return self._engine.dashboard_link if self._engine is not None else ""

    # ---- computing
    def run(self, progress=None, cancel=None) -> GroupResult:
        """Compute the group map for the current parameters (blocking); returns it.

        ``cancel`` (a ``threading.Event``): once set, the run stops within about 0.2 s
        of waiting on the cluster, its unfinished futures are cancelled and released,
        and :class:`Cancelled` is raised."""
        extra = progress or null_progress

        def report(fraction, message=""):
            self.param.update(progress=float(min(max(fraction, 0.0), 1.0)),
                              progress_message=message)
            extra(fraction, message)

        with self._run_lock:
            self.param.update(running=True, error="", progress=0.0,
                              progress_message="starting")
            try:
                subjects = self.subject_list()
                if len(subjects.subjects) < 2:
                    raise DataError("a group t-test needs at least 2 subjects")
                settings = self.settings(subjects)
                report(0.0, "connecting to the cluster")
                engine = self.engine()
                if cancel is not None and cancel.is_set():
                    raise Cancelled("group run cancelled")
                result = compute_group(subjects, settings, self.seed_mm, self.radius_mm,
                                       engine=engine, progress=report,
                                       **({"cancel": cancel} if cancel is not None else {}))
            except Exception as exc:
                self.param.update(running=False, error=str(exc), progress=0.0,
                                  progress_message=f"failed: {exc}")
                raise
            report(1.0, f"done: {result.n_subjects} subjects")
            self.param.update(running=False, result=result)
            return result

    def ensure(self) -> GroupResult:
        if self.result is None:
            raise DataError("no group result yet: run the analysis first")
        return self.result

    def close(self, wait: float = 0.0) -> None:
        """Stop using the cluster (idempotent). A shared engine stays up while another
        object uses it; the last user's close shuts it down ``wait`` seconds later
        (the app waits :func:`idle_seconds`, for a visitor coming back; the CLI none)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            release_engine(engine, wait=wait)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- derived results
    def _volume(self, values, name) -> xr.DataArray:
        return to_xarray(np.asarray(values, dtype=np.float64), mask=self.subject_list().mask,
                         name=name)

    @param.depends("result")
    def t_map(self) -> xr.DataArray:
        """The group t map, ``(x, y, z)`` in mm, NaN outside the mask."""
        return self._volume(self.ensure().t, "t")

    @param.depends("result")
    def mean_z_map(self) -> xr.DataArray:
        """The mean Fisher z map."""
        return self._volume(self.ensure().mean_z, "mean_z")

    @param.depends("result")
    def subject_maps(self) -> xr.DataArray:
        """Every subject's r map: ``(subject, voxel)``."""
        return self.ensure().r

    def subject_volume(self, subject) -> xr.DataArray:
        """One subject's r map as a volume (by index or name)."""
        r = self.ensure().r
        row = r.isel(subject=subject) if isinstance(subject, (int, np.integer)) \
            else r.sel(subject=subject)
        return self._volume(row.values, f"r {row.subject.item()}")

    def axial_strip(self, z_mm: float | None = None) -> xr.DataArray:
        """Per-subject axial slices at ``z_mm`` (default the seed's z): ``(subject, y, x)``."""
        res = self.ensure()
        z_mm = res.seed_mm[2] if z_mm is None else z_mm
        slices = []
        for i in range(res.n_subjects):
            vol = self._volume(res.r.values[i], "r")
            slices.append(vol.sel(z=z_mm, method="nearest").transpose("y", "x"))
        out = xr.concat(slices, dim=xr.DataArray(list(res.r.subject.values), dims="subject",
                                                 name="subject"))
        out.name = "r"
        out.attrs["z_mm"] = float(slices[0].z.values) if slices else float(z_mm)
        return out

    @param.depends("result", "threshold")
    def n_above(self) -> int:
        """Voxels with ``|t| >= threshold``."""
        return int((np.abs(self.ensure().t) >= self.threshold).sum())

    @param.depends("result", "threshold", "n_peaks")
    def peaks(self) -> pd.DataFrame:
        """Top local maxima of t above the threshold: MNI ``x, y, z``, ``t``, nearest node."""
        table = find_peaks(self.t_map(), self.threshold, self.n_peaks).rename(columns={"value": "t"})
        return label_peaks(table, self.truth)

    @param.depends("result", "threshold")
    def summary(self) -> str:
        """One line: ``5 subjects, seed (0, -52, 18) r=8 mm: peak t 41.2; 1,204 voxels |t| >= 3``."""
        res = self.ensure()
        seed = "(" + ", ".join(f"{v:g}" for v in res.seed_mm) + ")"
        finite = res.t[np.isfinite(res.t)]
        peak = float(finite.max()) if finite.size else float("nan")
        return (f"{res.n_subjects} subjects, seed {seed} r={res.radius_mm:g} mm: "
                f"peak t {peak:.2f}; {self.n_above():,} voxels |t| >= {self.threshold:g}")

    def to_nifti(self, which: str = "t") -> nib.Nifti1Image:
        """The ``t`` (or ``mean_z``) map as a float32 NIfTI image (0 outside the mask) on
        the group mask's own grid and affine."""
        from ..volumes import unmask

        res = self.ensure()
        return unmask(res.t if which == "t" else res.mean_z, self.subject_list().mask)

    def report(self) -> dict:
        """JSON-able result: seed, subjects, peak t, peaks with MNI coordinates, timings."""
        res = self.ensure()
        subjects = self.subject_list()
        peaks = self.peaks()
        finite = res.t[np.isfinite(res.t)]
        return {
            "seed": list(res.seed_mm), "radius_mm": res.radius_mm,
            "n_subjects": res.n_subjects, "subjects": subjects.names,
            "age_group": self.age_group, "source": subjects.source,
            "n_voxels": int(res.t.size), "threshold": self.threshold,
            "preprocessing": {name: getattr(self, name) for name in PREPROCESSING},
            "peak_t": float(finite.max()) if finite.size else None,
            "n_above": self.n_above(),
            "mean_z_max": float(np.nanmax(res.mean_z)),
            "n_seed_voxels": [int(v) for v in res.n_seed_voxels],
            "peaks": peaks.to_dict(orient="records"),
            "scheduler": self._engine.address if self._engine and self._engine.address
            else "local", "n_workers": self._engine.n_workers if self._engine else None,
            "dashboard_link": self.dashboard_link,
            "timings_s": {k: (round(v, 3) if isinstance(v, float) else v)
                          for k, v in res.timings.items()},
        }
