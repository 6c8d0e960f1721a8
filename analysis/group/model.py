"""The Param class of group connectivity: :class:`GroupConnectivity`.

Its parameters choose the subjects, the preprocessing, the seed, the statistics
(sign-flipping permutations, cluster-forming p), the display threshold and
correction, and the cluster; :meth:`GroupConnectivity.run` computes the group map
on the cluster and its statistics here (see
:func:`~analysis.group.results.compute_group`), and the derived maps, peaks,
summary and JSON report are read from its ``result``.
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
from .stats import (ALPHA, CLUSTER_FORMING_P, FDR_Q, MAX_PERMUTATIONS, N_PERMUTATIONS,
                    RANDOM_STATE)
from .subjects import AGE_GROUPS, SubjectList, confound_names, dataset_subjects, file_subjects

_AGE_NAMES = {"both": "Adults and children", "adult": "Adults", "child": "Children"}
#: The age groups as a widget offers them: ``{label: value}`` (the values stay AGE_GROUPS).
AGE_LABELS = {_AGE_NAMES[group]: group for group in AGE_GROUPS}
#: The corrections the map can be shown at: ``{label: value}``.
CORRECTIONS = {"uncorrected |t| ≥ threshold": "uncorrected",
               f"FDR q < {FDR_Q:g}": "fdr", f"FWE p < {ALPHA:g}": "fwe"}


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
    correction = param.Selector(
        default="uncorrected", objects=CORRECTIONS, label="Show voxels at",
        doc="Which voxels of the group t map are shown: uncorrected, |t| at least the "
            "threshold above; FDR, the voxels Benjamini-Hochberg declares at q < 0.05 "
            "from the uncorrected two-sided p of the t-test (df = subjects - 1); FWE, "
            "family-wise error p < 0.05 from the sign-flipping permutations (each voxel's "
            "|t| against the largest |t| of the brain in each permutation)")
    n_permutations = param.Integer(
        default=N_PERMUTATIONS, bounds=(0, MAX_PERMUTATIONS), step=100,
        label="Permutations (sign flips)",
        doc="Sign-flipping permutations for the family-wise error (FWE) thresholds: each "
            "flips the sign of a random subset of the subjects' Fisher z maps and keeps "
            "the largest |t| (and largest cluster) in the brain; the FWE p of a voxel is "
            "(1 + permutations at least as large) / (permutations + 1), as nilearn's "
            "permuted_ols. 0: no FWE")
    cluster_forming_p = param.Number(
        default=CLUSTER_FORMING_P, bounds=(1e-8, 0.1), softbounds=(1e-4, 0.05),
        label="Cluster-forming p",
        doc="Uncorrected two-sided p whose |t| forms the clusters (face-connected voxels of "
            "one sign) tested by cluster-size FWE against the largest cluster of each "
            "permutation")
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
                                       n_permutations=self.n_permutations,
                                       cluster_forming_p=self.cluster_forming_p,
                                       random_state=RANDOM_STATE,
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
        """Per-subject axial slices at ``z_mm`` (default the seed's z): ``(subject, y, x)``,
        NaN outside the mask (one slice of every subject's volume, taken from the maps at
        once: one volume per subject took 30 ms for 20 subjects at each seed move)."""
        res = self.ensure()
        z_mm = res.seed_mm[2] if z_mm is None else z_mm
        first = self._volume(res.r.values[0], "r")
        plane = first.sel(z=z_mm, method="nearest")
        names = xr.DataArray(list(res.r.subject.values), dims="subject", name="subject")
        if first.attrs.get("resampled"):   # an oblique mask: its volumes, one by one
            slices = [self._volume(row, "r").sel(z=z_mm, method="nearest").transpose("y", "x")
                      for row in res.r.values]
            out = xr.concat(slices, dim=names)
        else:
            mask = np.asarray(self.subject_list().mask.dataobj).astype(bool)
            k = int(np.argmin(np.abs(first.z.values - float(plane.z.values))))
            # each mask voxel's position in the maps (mask order = C order of the grid)
            order = np.cumsum(mask.ravel()).reshape(mask.shape) - 1
            in_plane = mask[:, :, k]
            values = np.full((res.n_subjects,) + in_plane.shape, np.nan)
            values[:, in_plane] = np.asarray(res.r.values, dtype=np.float64)[
                :, order[:, :, k][in_plane]]
            out = xr.DataArray(values.transpose(0, 2, 1), dims=("subject", "y", "x"),
                               coords={"subject": names, "y": first.y.values,
                                       "x": first.x.values, "z": plane.z.values})
        out.name = "r"
        out.attrs["z_mm"] = float(plane.z.values)
        return out

    @param.depends("result", "threshold")
    def n_above(self) -> int:
        """Voxels with ``|t| >= threshold``."""
        return int((np.abs(self.ensure().t) >= self.threshold).sum())

    @param.depends("result", "threshold")
    def p_uncorrected_threshold(self) -> float:
        """The uncorrected two-sided p of ``|t| = threshold`` at the result's df."""
        from scipy.stats import t as t_dist

        return float(2.0 * t_dist.sf(self.threshold, self.ensure().df))

    @param.depends("result", "threshold", "correction")
    def significant(self) -> np.ndarray:
        """The voxels shown at ``correction`` (``(n_voxels,)`` bool): ``|t| >= threshold``,
        those FDR declares, or those with FWE p < 0.05 (none without permutations)."""
        res = self.ensure()
        if res.inference is None:
            return np.abs(res.t) >= self.threshold
        return res.inference.significant(self.correction, self.threshold)

    @param.depends("result", "threshold", "correction")
    def display_threshold(self) -> float | None:
        """The ``|t|`` level of ``correction``: ``threshold``, the FDR threshold (the
        smallest |t| declared) or the FWE threshold (|t| above it has FWE p < 0.05); None
        when the correction declares nothing or has no permutations."""
        if self.correction == "uncorrected":
            return float(self.threshold)
        inf = self.ensure().inference
        if inf is None:
            return None
        return inf.fdr_t_threshold if self.correction == "fdr" else inf.fwe_t_threshold

    @param.depends("result", "threshold", "correction")
    def shown_t_map(self) -> xr.DataArray:
        """The t map with the voxels ``correction`` does not show set to NaN."""
        t = np.where(self.significant(), self.ensure().t, np.nan)
        return self._volume(t, "t")

    @param.depends("result", "threshold", "correction", "n_peaks")
    def peaks(self) -> pd.DataFrame:
        """Top local maxima of t among the voxels shown (``correction``): MNI ``x, y, z``,
        ``t``, nearest node."""
        if self.correction == "uncorrected":
            volume, level = self.t_map(), self.threshold
        else:
            volume, level = self.shown_t_map(), 0.0
        table = find_peaks(volume, level, self.n_peaks).rename(columns={"value": "t"})
        return label_peaks(table, self.truth)

    def statistics(self) -> dict:
        """The group statistics as JSON-able numbers: ``df``, ``fwe_t_threshold``,
        ``n_voxels_fwe``, ``fdr_t_threshold``, ``n_voxels_fdr`` and their settings
        (None where not computed or nothing passes)."""
        res = self.ensure()
        inf = res.inference
        out = {"df": res.df, "p_uncorrected_threshold": self.p_uncorrected_threshold(),
               "fwe_t_threshold": None, "n_voxels_fwe": None, "fdr_t_threshold": None,
               "n_voxels_fdr": None, "alpha": ALPHA, "fdr_q": FDR_Q, "n_permutations": 0,
               "random_state": None, "cluster_forming_p": None, "cluster_forming_t": None,
               "cluster_size_fwe_threshold": None, "n_clusters_fwe": None,
               "correction": self.correction}
        if inf is None:
            return out
        out.update(fdr_t_threshold=inf.fdr_t_threshold, n_voxels_fdr=inf.n_voxels_fdr,
                   alpha=inf.alpha, fdr_q=inf.q, n_permutations=inf.n_permutations,
                   random_state=inf.random_state)
        if inf.n_permutations:
            out.update(fwe_t_threshold=inf.fwe_t_threshold, n_voxels_fwe=inf.n_voxels_fwe)
        if inf.cluster_t is not None:
            out.update(cluster_forming_p=inf.cluster_forming_p, cluster_forming_t=inf.cluster_t,
                       cluster_size_fwe_threshold=inf.cluster_size_fwe_threshold,
                       n_clusters_fwe=inf.n_clusters_fwe)
        # JSON has no infinity (a |t| of identical z maps): None
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in out.items()}

    @param.depends("result", "threshold", "correction")
    def summary(self) -> str:
        """One line: ``5 subjects, seed (0, -52, 18) r=8 mm: peak t 41.2 (df 4); 1,204
        voxels |t| >= 3 (p <= 0.04 uncorrected); FDR q < 0.05: ...; FWE p < 0.05: ...;
        cluster-size FWE p < 0.05 at |t| > ...``: the FDR and FWE thresholds with their
        voxel counts, and the smallest cluster size with cluster-size FWE p < 0.05."""
        res = self.ensure()
        seed = "(" + ", ".join(f"{v:g}" for v in res.seed_mm) + ")"
        finite = res.t[np.isfinite(res.t)]
        peak = float(finite.max()) if finite.size else float("nan")
        text = (f"{res.n_subjects} subjects, seed {seed} r={res.radius_mm:g} mm: "
                f"peak t {peak:.2f} (df {res.df}); {self.n_above():,} voxels "
                f"|t| >= {self.threshold:g} (p <= {self.p_uncorrected_threshold():.2g} "
                "uncorrected)")
        inf = res.inference
        if inf is None:
            return text
        fdr = (f"|t| >= {inf.fdr_t_threshold:.2f}, {inf.n_voxels_fdr:,} voxels"
               if inf.fdr_t_threshold is not None else "no voxel")
        text += f"; FDR q < {inf.q:g}: {fdr}"
        if inf.n_permutations:
            fwe = (f"|t| > {inf.fwe_t_threshold:.2f}, {inf.n_voxels_fwe:,} voxels"
                   if inf.fwe_t_threshold is not None
                   else f"not reachable with {inf.n_permutations:,} permutations")
            text += f"; FWE p < {inf.alpha:g}: {fwe} ({inf.n_permutations:,} sign flips)"
            if inf.cluster_t is not None:
                size = (f">= {inf.cluster_size_fwe_threshold:,} voxels, {inf.n_clusters_fwe:,} "
                        "cluster(s)" if inf.cluster_size_fwe_threshold is not None
                        else "not reachable")
                text += (f"; cluster-size FWE p < {inf.alpha:g} at |t| > {inf.cluster_t:.2f} "
                         f"(p < {inf.cluster_forming_p:g}): {size}")
        return text

    def to_nifti(self, which: str = "t") -> nib.Nifti1Image:
        """A group map as a float32 NIfTI image (0 outside the mask) on the group mask's
        own grid and affine: ``t``, ``mean_z``, or ``logp_fwe`` (-log10 FWE p)."""
        from ..volumes import unmask

        res = self.ensure()
        if which == "logp_fwe":
            if res.inference is None or res.inference.logp_fwe is None:
                raise DataError("no FWE map: the group statistics ran no permutation")
            values = res.inference.logp_fwe
        elif which in ("t", "mean_z"):
            values = res.t if which == "t" else res.mean_z
        else:
            raise DataError(f"unknown group map {which!r}: t, mean_z or logp_fwe")
        return unmask(values, self.subject_list().mask)

    def subject_fisher_z_nifti(self, subject) -> nib.Nifti1Image:
        """One subject's Fisher z map (by index or name) as a float32 NIfTI image on the
        group mask's grid (0 outside the mask)."""
        from ..volumes import unmask
        from .stats import fisher_z

        r = self.ensure().r
        row = r.isel(subject=subject) if isinstance(subject, (int, np.integer)) \
            else r.sel(subject=subject)
        return unmask(fisher_z(row.values), self.subject_list().mask)

    def report(self) -> dict:
        """JSON-able result: seed, subjects, peak t, the group statistics (df, FDR and FWE
        thresholds and voxel counts), peaks with MNI coordinates, timings."""
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
            **self.statistics(),
            "mean_z_max": float(np.nanmax(res.mean_z)),
            "n_seed_voxels": [int(v) for v in res.n_seed_voxels],
            "peaks": peaks.to_dict(orient="records"),
            "scheduler": self._engine.address if self._engine and self._engine.address
            else "local", "n_workers": self._engine.n_workers if self._engine else None,
            "dashboard_link": self.dashboard_link,
            "timings_s": {k: (round(v, 3) if isinstance(v, float) else v)
                          for k, v in res.timings.items()},
        }
