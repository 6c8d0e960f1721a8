""":class:`SeedConnectivity`, the Param class the notebook, the CLI and the dashboard
share: the subject, its preprocessing, the seed, and the map's display."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pandas as pd
import param
import xarray as xr

from ..errors import DataError
from ..preprocessing import PARAMETERS as PREPROCESSING
from ..preprocessing import T_R, CleaningSettings, Preprocessing
from ..progress import scaled
from ..store import Store
from .cleaning import CleanedData, cleaned
from .significance import Significance
from .stats import FDR_Q, P_METHODS
from .engine import (MAX_RADIUS_MM, PCC_MM, RADIUS_MM, SeedMap, _format_mm, central_seed,
                     find_peaks, label_peaks, seed_correlation, sphere_voxels, to_volume)
from .subject import SubjectData, load_subject

# --------------------------------------------------------------------------- Param class

#: dataset subjects read (headers and confounds; the images load lazily)
SUBJECTS = Store("connectivity.subjects", max_entries=32)


#: ``use_data(..., data_dir=CURRENT)``: the dataset folder in use stays
CURRENT = object()


def _dataset_root(data_dir, size=None):
    """``data_dir`` (a ``fetch_development_fmri`` folder), or the synthetic one of ``size``
    (generated on first use)."""
    if data_dir is None:
        from ..datasets import ensure_synthetic

        return ensure_synthetic("connectivity", size=size)
    return data_dir


def dataset_participants(data_dir=None, size=None) -> pd.DataFrame:
    """The participants of a development folder on disk (default: the synthetic one),
    subject ``i`` in row ``i``: read from ``participants.tsv``, no image loaded (see
    :func:`analysis.datasets.found.development_participants`)."""
    from ..datasets.found import development_participants

    return development_participants(_dataset_root(data_dir, size))


def _reduced_confounds(path) -> pd.DataFrame:
    """nilearn's reduced confounds (``fetch_development_fmri(reduce_confounds=True)``'s
    15 columns) of a full fMRIPrep-style table, for a folder without the reduced file."""
    from ..datasets.development_signal import REDUCED_COLUMNS
    from ..io import load_confounds

    table = load_confounds(path)
    return table[[c for c in REDUCED_COLUMNS if c in table.columns]]


def _subject_key(row) -> tuple:
    return ("dataset", row["func"], row["confounds"] if row["confounds"] else row["confounds_full"])


def _dataset_subject(data_dir, subject: int, size=None) -> SubjectData:
    """A dataset subject (synthetic by default), loaded once per process when first
    asked for: the folder's other subjects are only listed (:func:`dataset_participants`)."""
    from ..datasets import development

    root = _dataset_root(data_dir, size)
    table = dataset_participants(root)
    n = len(table)
    if n == 0:
        raise DataError("no subject's files in this development_fmri folder", root)
    if not 0 <= subject < n:
        raise DataError(f"subject {subject} does not exist: this dataset has {n} "
                        f"subject(s), numbered 0 to {n - 1}")
    row = table.iloc[int(subject)]
    pid = str(row["participant_id"])
    confounds = row["confounds"] if row["confounds"] else row["confounds_full"]
    key = _subject_key(row)

    def load():
        return load_subject(
            row["func"], t_r=development.T_R, name=pid,
            confounds=confounds if row["confounds"] else _reduced_confounds(confounds),
            info={"truth": development.read_truth(root), "n_subjects": n,
                  "participant_id": pid, "data_dir": str(root)})

    return SUBJECTS.get_or_compute(key, load)


class SeedConnectivity(Significance, Preprocessing):
    """Seed-to-voxel correlation, as the seed example, live.

    *Structural* parameters (the preprocessing group, inherited from
    :class:`~analysis.preprocessing.Preprocessing`: ``smoothing_fwhm``, ``detrend``,
    the band, ``standardize``, ...; the data's ``t_r`` and ``confound_columns``) and
    the ``subject`` key the cleaned data (cached for the whole process, shared
    between sessions).
    *Display* parameters (``seed_mm``, ``radius_mm``, ``threshold``,
    ``fisher_z``, ``clim``, ``n_peaks``) reuse it: a new seed is one
    matrix-vector product.

    A bad seed or setting raises :class:`DataError`, the parameter goes back
    to its previous value and the previous map stays.

    Data: ``data_dir`` (a ``fetch_development_fmri`` folder; default the
    synthetic dataset) and ``subject``; or the user's files with
    :meth:`from_files`.
    """

    # ---- data
    data_dir = param.String(default=None, allow_None=True, constant=True, label="Data folder",
                            doc="nilearn data_dir holding development_fmri (None: the synthetic "
                                "dataset); use_data(None, data_dir=...) switches it")
    subject = param.Integer(default=0, bounds=(0, None), label="Subject",
                            doc="The participant whose scan is analysed (adults first, then "
                                "by participant id)")

    # ---- structural: key the cleaned data (the preprocessing group's parameters are
    # inherited from analysis.preprocessing.Preprocessing; these two are the data's)
    t_r = param.Number(default=T_R, bounds=(0.0, None), inclusive_bounds=(False, True),
                       label="Repetition time (s)",
                       doc="Time between two volumes in seconds, read from the image's header")
    confound_columns = param.ListSelector(default=[], objects=[], label="Confound columns",
                                          doc="Columns of the confounds table (head motion, "
                                              "tissue signals) regressed out of every voxel")

    # ---- display: reuse the cleaned data
    seed_mm = param.NumericTuple(default=PCC_MM, length=3, label="Seed (MNI mm)",
                                 doc="Centre of the seed sphere: x, y, z in MNI space, in mm")
    radius_mm = param.Number(default=RADIUS_MM, bounds=(1.0, MAX_RADIUS_MM), step=1.0,
                             label="Seed radius (mm)",
                             doc="Radius of the sphere whose voxels' mean time series is the "
                                 "seed's signal, in mm")
    threshold = param.Number(default=0.5, bounds=(0.0, 0.99), step=0.05,
                             label="Threshold on |r|",
                             doc="Voxels whose correlation with the seed is below this in "
                                 "absolute value are hidden (on a z map: arctanh of it)")
    fisher_z = param.Boolean(default=False, label="Show Fisher z",
                             doc="Show Fisher z = arctanh(r) instead of the correlation r")
    clim = param.NumericTuple(default=None, length=2, allow_None=True, label="Colour range",
                              doc="Limits of the colour scale (None: symmetric around 0, up "
                                  "to the map's largest absolute value)")
    n_peaks = param.Integer(default=10, bounds=(1, 100), label="Peaks listed",
                            doc="How many local maxima above the threshold the peaks table "
                                "lists")

    # ---- display: statistics of the map (they reuse the cleaning's voxel spectra)
    p_method = param.Selector(
        default="effective-dof", objects=list(P_METHODS), label="p-value method",
        doc="How each voxel's p value for r is computed. effective-dof: Dutilleul's "
            "modified t-test, with the degrees of freedom the band-passed, cleaned series "
            "really have (from the cleaning filter and each series' spectrum; about 40 of "
            "168 volumes for a 0.01-0.1 Hz band). naive: the volumes taken as independent "
            "(n - 2 degrees of freedom), which finds far too many voxels")
    fdr_q = param.Number(default=FDR_Q, bounds=(0.001, 0.5), step=0.01, label="FDR q",
                         doc="False discovery rate across the brain's voxels "
                             "(Benjamini-Hochberg): the expected share of false positives "
                             "among the voxels kept")

    # ---- state
    result = param.ClassSelector(class_=SeedMap, default=None, precedence=-1,
                                 doc="The current seed map")
    error = param.String(default="", precedence=-1, doc="Last error message")

    STRUCTURAL = ("subject", *PREPROCESSING, "t_r", "confound_columns")
    DISPLAY = ("seed_mm", "radius_mm")

    def __init__(self, subject_data: SubjectData | None = None, size: str | None = None,
                 progress=None, **params):
        super().__init__(**params)
        self._size = size
        self._fixed = subject_data          # the user's own files
        self.progress = progress            # callable(fraction, message), e.g. the app's bar
        self._data: CleanedData | None = None
        self._subject: SubjectData | None = None
        self._reverting = False
        self._setup_subject(initial=True, explicit=set(params))
        self.param.watch(self._on_structural, list(self.STRUCTURAL))
        self.param.watch(self._on_seed, list(self.DISPLAY))

    @classmethod
    def from_files(cls, func, confounds=None, mask=None, t_r=None, **params):
        """On the user's own files (see :func:`load_subject`)."""
        return cls(subject_data=load_subject(func, confounds=confounds, mask=mask, t_r=t_r),
                   **params)

    # ---- data handling
    def subject_data(self) -> SubjectData:
        """The current subject's inputs."""
        if self._fixed is not None:
            return self._fixed
        return self.dataset_subject()

    def dataset_subject(self, data_dir=CURRENT) -> SubjectData:
        """The dataset's current ``subject`` (loaded once per process); with ``data_dir``
        (a development folder, None: the synthetic one), that folder's first subject:
        what :meth:`use_data` switches to with it."""
        if data_dir is CURRENT:
            return _dataset_subject(self.data_dir, self.subject, size=self._size)
        return _dataset_subject(data_dir, 0, size=self._size)

    def subject_loaded(self, subject: int) -> bool:
        """Whether the dataset's ``subject`` is read already (on the user's files: yes):
        :meth:`planned` for it is then quick, else it reads the subject's image."""
        if self._fixed is not None:
            return True
        try:
            table = self.participants()
            return 0 <= int(subject) < len(table) and \
                _subject_key(table.iloc[int(subject)]) in SUBJECTS
        except Exception:  # noqa: BLE001 - planned() will say what is wrong
            return False

    def participants(self) -> pd.DataFrame:
        """The dataset's subjects (``participant_id``, ``Child_Adult``...), subject ``i``
        in row ``i``, listed without loading their images (one is loaded when chosen)."""
        return dataset_participants(self.data_dir, size=self._size)

    @property
    def truth(self) -> dict | None:
        """The planted truth of the synthetic dataset (None for other data)."""
        return (self._subject.info.get("truth") if self._subject else None)

    @property
    def n_subjects(self) -> int:
        return int(self._subject.info.get("n_subjects", 1)) if self._subject else 1

    def _setup_subject(self, initial=False, explicit=()):
        subject = self.subject_data()
        self._subject = subject
        names = subject.confound_names
        updates = {}
        with param.parameterized.discard_events(self):
            self.param.confound_columns.objects = names
            self.param.subject.bounds = (0, max(self.n_subjects - 1, 0))
            if initial:
                if not self.confound_columns or any(c not in names for c in self.confound_columns):
                    updates["confound_columns"] = list(names)
                if "t_r" not in explicit:
                    updates["t_r"] = subject.t_r
            else:
                keep = [c for c in self.confound_columns if c in names]
                updates["confound_columns"] = keep if keep or not names else list(names)
            self.param.update(**updates)

    def settings_for(self, subject: SubjectData) -> CleaningSettings:
        """The settings :meth:`use_data` will clean ``subject`` with: the current
        preprocessing, ``t_r`` from that data and all of its confound columns (as
        :meth:`from_files` and the CLI's ``--confounds``)."""
        return self.cleaning_settings(subject.t_r, subject.confound_names)

    def planned(self, **changes) -> tuple[SubjectData, CleaningSettings]:
        """The data and the cleaning settings the model would use after
        ``param.update(**changes)`` (structural parameters), without changing anything:
        a tab cleans them in the background first, then applies the changes at once.
        A value the parameters refuse raises ``ValueError`` here."""
        unknown = set(changes) - set(self.STRUCTURAL)
        if unknown:
            raise ValueError(f"not structural parameters: {sorted(unknown)}")
        subject = self.subject_data()
        columns = list(changes.get("confound_columns", self.confound_columns))
        if "subject" in changes and self._fixed is None:
            subject = _dataset_subject(self.data_dir, int(changes["subject"]), size=self._size)
            names = subject.confound_names
            keep = [c for c in columns if c in names]        # as _setup_subject keeps them
            columns = keep if keep or not names else list(names)
        values = {n: changes.get(n, getattr(self, n)) for n in PREPROCESSING}
        prep = Preprocessing(**values)   # checks each value against its Parameter
        return subject, prep.cleaning_settings(changes.get("t_r", self.t_r), columns)

    def use_data(self, subject_data: SubjectData | None, data_dir=CURRENT) -> SeedMap:
        """Switch to other data: the user's files (a :class:`SubjectData`, see
        :func:`load_subject`) or, with None, back to the dataset's ``subject``; with
        None and ``data_dir``, to another dataset folder (None: the synthetic one) from
        its first subject (``data_dir`` and ``subject`` change with it).

        The preprocessing stays; ``t_r`` comes from the data and every confound
        column of its table is regressed (as :meth:`from_files`). When the current
        seed's sphere captures no brain voxel of the new data, the seed moves to the
        brain voxel nearest the mask's centre. A :class:`DataError` (e.g. a band
        above the new data's Nyquist frequency) leaves everything as it was.
        """
        names = ("t_r", "confound_columns", "seed_mm", "subject")
        saved = (self._fixed, self._subject, self._data, self.result,
                 {n: getattr(self, n) for n in names},
                 list(self.param.confound_columns.objects), self.param.subject.bounds,
                 self.data_dir)
        self._fixed = subject_data
        self._reverting = True            # the watchers stay quiet: one compute below
        try:
            if data_dir is not CURRENT and subject_data is None:
                with param.edit_constant(self):
                    self.data_dir = None if data_dir is None else str(data_dir)
                self.param.subject.bounds = (0, None)
                self.subject = 0
            subject = self.subject_data()
            self._subject = subject
            settings = self.settings_for(subject)
            self.param.confound_columns.objects = subject.confound_names
            self.param.subject.bounds = (0, max(self.n_subjects - 1, 0))
            self.param.update(t_r=subject.t_r,
                              confound_columns=list(settings.confound_columns or ()))
            self._data = None
            data = self.cleaned_data()
            try:
                sphere_voxels(data, self.seed_mm, self.radius_mm)
            except DataError:
                self.seed_mm = central_seed(data)
            result = self.compute()
        except Exception:
            self._fixed, self._subject, self._data, self.result = saved[:4]
            with param.edit_constant(self):
                self.data_dir = saved[7]
            self.param.confound_columns.objects = saved[5]
            self.param.subject.bounds = saved[6]
            self.param.update(**saved[4])
            raise
        finally:
            self._reverting = False
        return result

    @property
    def uses_own_data(self) -> bool:
        """True on the user's files (:meth:`from_files`, :meth:`use_data`)."""
        return self._fixed is not None

    def settings(self) -> CleaningSettings:
        """The structural parameters as :class:`CleaningSettings`."""
        return self.cleaning_settings(self.t_r, self.confound_columns)

    def cleaned_data(self) -> CleanedData:
        """The cleaned data for the current structural parameters (cached)."""
        if self._data is None:
            self._data = cleaned(self.subject_data(), self.settings().check(),
                                 progress=scaled(self.progress, 0.0, 1.0) if self.progress else None)
        return self._data

    def compute(self) -> SeedMap:
        """(Re)compute the map for the current parameters; returns it."""
        data = self.cleaned_data()
        result = seed_correlation(data, self.seed_mm, self.radius_mm)
        self.error = ""
        self.result = result
        return result

    def ensure(self) -> SeedMap:
        return self.result if self.result is not None else self.compute()

    # ---- watchers (side effects)
    def _revert(self, events, exc):
        self.error = str(exc)
        self._reverting = True
        try:
            self.param.update(**{e.name: e.old for e in events})
        finally:
            self._reverting = False

    def _on_structural(self, *events):
        if self._reverting:
            return
        old_data, old_subject = self._data, self._subject
        try:
            if any(e.name == "subject" for e in events):
                self._setup_subject()
            self._data = None
            self.compute()
        except DataError as exc:
            self._data, self._subject = old_data, old_subject
            self._revert(events, exc)
            raise

    def _on_seed(self, *events):
        if self._reverting:
            return
        try:
            self.compute()
        except DataError as exc:
            self._revert(events, exc)
            raise

    # ---- derived results
    def _volume(self, values, name):
        return to_volume(self.cleaned_data(), values, name)

    @param.depends("result")
    def r_map(self) -> xr.DataArray:
        """The r map, ``(x, y, z)`` in mm, NaN outside the brain."""
        return self._volume(self.ensure().r, "r")

    @param.depends("result")
    def z_map(self) -> xr.DataArray:
        """The Fisher z map, ``arctanh(r)``."""
        return self._volume(self.ensure().z, "fisher_z")

    @param.depends("result", "fisher_z")
    def stat_map(self) -> xr.DataArray:
        """The map shown: z when ``fisher_z``, else r."""
        return self.z_map() if self.fisher_z else self.r_map()

    @param.depends("threshold", "fisher_z")
    def display_threshold(self) -> float:
        """The threshold in the shown map's units (``arctanh`` for z)."""
        return float(np.arctanh(self.threshold)) if self.fisher_z else float(self.threshold)

    @param.depends("result", "fisher_z", "clim")
    def colour_range(self) -> tuple:
        if self.clim is not None:
            return tuple(self.clim)
        values = self.ensure().z if self.fisher_z else self.ensure().r
        m = float(np.nanmax(np.abs(values[np.isfinite(values)]))) if values.size else 1.0
        return (-m, m)

    @param.depends("result")
    def seed_time_series(self) -> xr.DataArray:
        """The seed's standardised time series, dim ``time`` in s."""
        ts = self.ensure().seed_signal
        return xr.DataArray(ts, dims=("time",), coords={"time": np.arange(ts.size) * self.t_r},
                            name="seed", attrs={"seed_mm": self.ensure().seed_mm,
                                                "radius_mm": self.ensure().radius_mm})

    @param.depends("result", "threshold", "fisher_z", "n_peaks")
    def peaks(self) -> pd.DataFrame:
        """Top local maxima of r above the threshold: MNI ``x, y, z``, ``r``, ``fisher_z``."""
        table = find_peaks(self.r_map(), self.threshold, self.n_peaks)
        table = table.rename(columns={"value": "r"})
        table["fisher_z"] = np.arctanh(table["r"].to_numpy())
        return label_peaks(table, self.truth)

    @param.depends("result", "threshold", "fisher_z")
    def n_above(self) -> int:
        """Voxels with |r| at or above the threshold."""
        return int((np.abs(self.ensure().r) >= self.threshold).sum())

    @param.depends("result", "threshold", "fisher_z")
    def summary(self) -> str:
        """One line: ``seed (0, -52, 18) r=8 mm: 33 voxels; r in [-0.64, 0.95]; 1,204 voxels above 0.5``."""
        res = self.ensure()
        if self.fisher_z:
            z = res.z
            rng = f"Fisher z in [{np.nanmin(z):.2f}, {np.nanmax(z):.2f}]"
            thr = f"|Fisher z| >= {self.display_threshold():.2f}"
        else:
            rng = f"r in [{res.r.min():.2f}, {res.r.max():.2f}]"
            thr = f"above {self.threshold:g}"
        return (f"seed {_format_mm(res.seed_mm)} r={res.radius_mm:g} mm: "
                f"{res.n_seed_voxels:,} voxels; {rng}; {self.n_above():,} voxels {thr}")

    def to_nifti(self, fisher_z: bool | None = None) -> nib.Nifti1Image:
        """The r (or z) map as a NIfTI image (float32, 0 outside the brain) on the data's
        own grid and affine, as the seed's ``inverse_transform`` writes it."""
        from ..volumes import unmask

        z = self.fisher_z if fisher_z is None else fisher_z
        res, data = self.ensure(), self.cleaned_data()
        return unmask(res.z if z else res.r, (data.mask, data.affine))

    def voxels_info(self) -> dict:
        res = self.ensure()
        return {"seed": list(res.seed_mm), "radius_mm": res.radius_mm,
                "n_seed_voxels": res.n_seed_voxels, "n_voxels": int(res.r.size),
                "r_min": float(res.r.min()), "r_max": float(res.r.max())}


def with_settings(settings: CleaningSettings, **changes) -> CleaningSettings:
    """A copy of ``settings`` with ``changes`` (dataclasses.replace, checked)."""
    return replace(settings, **changes).check()
