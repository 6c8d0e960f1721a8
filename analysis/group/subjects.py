"""The subjects of a group analysis: file paths, a shared mask, where they come from.

A :class:`SubjectSpec` is what a Dask task carries (paths only, cheap to send to a
worker); a :class:`SubjectList` gathers the subjects with the group mask they all
share. :func:`dataset_subjects` reads a ``fetch_development_fmri`` folder (the
synthetic one by default), :func:`file_subjects` the user's own files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import DataError

AGE_GROUPS = ("both", "adult", "child")


@dataclass(frozen=True)
class SubjectSpec:
    """One subject as a task sees it: file paths only (cheap to send to a worker).

    Attributes
    ----------
    func : str
        4D functional image (on the group mask's grid).
    confounds : str or None
        Confounds TSV (fMRIPrep-style or nilearn's reduced set).
    name : str
        Participant id or file name.
    age_group : str or None
        ``adult`` / ``child`` when the participants table says so.
    t_r : float or None
        Repetition time (None: from the header).
    """

    func: str
    confounds: str | None = None
    name: str = ""
    age_group: str | None = None
    t_r: float | None = None

    def key(self) -> str:
        """Identifies the subject's data (paths, sizes and modification times)."""
        parts = []
        for path in (self.func, self.confounds):
            if path is None:
                parts.append("-")
                continue
            try:
                st = Path(path).stat()
                parts.append(f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append(str(path))
        return "|".join(parts) + f"|t_r={self.t_r}"


@dataclass
class SubjectList:
    """The subjects of a group analysis and what they share.

    Attributes
    ----------
    subjects : list of SubjectSpec
    mask : Nifti1Image
        The group mask (every subject is masked with it).
    truth : dict or None
        The synthetic dataset's planted truth (None for other data).
    source : str
        ``synthetic``, ``development_fmri`` or ``files``.
    data_dir : str or None
    """

    subjects: list
    mask: nib.Nifti1Image
    truth: dict | None = None
    source: str = "files"
    data_dir: str | None = None
    n_available: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.subjects]


def _mni_mask_for(func) -> nib.Nifti1Image:
    """The MNI152 brain mask on ``func``'s grid (nearest neighbour)."""
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_to_img

    from ..io import load_func

    img = load_func(func)
    ref = nib.Nifti1Image(np.zeros(img.shape[:3], np.uint8), img.affine)
    mask = resample_to_img(load_mni152_brain_mask(resolution=2), ref, interpolation="nearest",
                           force_resample=True, copy_header=True)
    return nib.Nifti1Image((np.asarray(mask.dataobj) > 0).astype(np.uint8), img.affine)


def dataset_subjects(data_dir=None, n_subjects: int | None = None, age_group: str = "both",
                     size: str | None = None, mask=None) -> SubjectList:
    """Subjects of a ``fetch_development_fmri`` folder (default: the synthetic one).

    ``age_group`` (``both``, ``adult``, ``child``) filters on the participants'
    ``Child_Adult``; with ``both`` the subjects are the fetcher's choice for
    ``n_subjects`` (as ``fetch_development_fmri(n_subjects=N)``). Only
    subjects whose files are on disk are used: nothing is downloaded.
    """
    from ..datasets import development as dev

    if age_group not in AGE_GROUPS:
        raise DataError(f"age group must be one of {', '.join(AGE_GROUPS)}, not {age_group!r}")
    if data_dir is None:
        from ..datasets import ensure_synthetic

        data_dir = ensure_synthetic("connectivity", size=size)
    data_dir = Path(data_dir)
    root = dev.dataset_dir(data_dir)
    table = root / "participants.tsv"
    if not table.is_file():
        raise DataError("no development_fmri dataset here (expected development_fmri/"
                        "participants.tsv and the subjects' files)", data_dir)
    participants = pd.read_table(table)
    on_disk = participants[[
        (root / dev.FUNC.format(pid)).is_file()
        and ((root / dev.REDUCED.format(pid)).is_file() or (root / dev.CONFOUNDS.format(pid)).is_file())
        for pid in participants["participant_id"]]]
    available = {g: int((on_disk["Child_Adult"] == g).sum()) for g in ("adult", "child")}
    available["both"] = len(on_disk)
    n_max = available[age_group]
    if n_max == 0:
        raise DataError(f"no {age_group if age_group != 'both' else ''} subject's files "
                        f"in this dataset".replace("  ", " "), root)
    n = n_max if n_subjects is None else int(n_subjects)
    if not 1 <= n <= n_max:
        who = "subjects" if age_group == "both" else f"{age_group} subjects"
        raise DataError(f"n_subjects must be between 1 and {n_max} ({n_max} {who} on disk), "
                        f"not {n}", root)
    if age_group == "both":
        bunch = dev.load(data_dir, n_subjects=n)
        pheno = bunch.phenotypic
        rows = range(len(bunch.func))
    else:
        bunch = dev.load(data_dir, n_subjects=available["both"])
        pheno = bunch.phenotypic
        rows = [i for i in range(len(bunch.func)) if pheno["Child_Adult"][i] == age_group][:n]
    subjects = [SubjectSpec(func=str(bunch.func[i]), confounds=str(bunch.confounds[i]),
                            name=str(pheno["participant_id"][i]),
                            age_group=str(pheno["Child_Adult"][i]), t_r=float(bunch.t_r))
                for i in rows]
    truth = bunch.truth
    if mask is None:
        mask_path = root / dev.MASK
        mask = mask_path if mask_path.is_file() else _mni_mask_for(subjects[0].func)
    from ..io import load_mask

    return SubjectList(subjects=subjects, mask=load_mask(mask),
                       truth=truth, source="synthetic" if truth else "development_fmri",
                       data_dir=str(data_dir), n_available=available)


def file_subjects(funcs, confounds=None, mask=None, t_r=None, names=None) -> SubjectList:
    """The user's own subjects: one 4D image (and confounds TSV) each, one grid.

    ``mask`` defaults to the MNI152 brain mask on the first image's grid (data
    in MNI space, as the development dataset).
    """
    funcs = [str(f) for f in funcs]
    if not funcs:
        raise DataError("no subject: give at least one 4D image")
    if confounds is None:
        confounds = [None] * len(funcs)
    confounds = [None if c in (None, "") else str(c) for c in confounds]
    if len(confounds) != len(funcs):
        raise DataError(f"{len(confounds)} confounds files for {len(funcs)} images "
                        "(one per subject, in the same order)")
    for path in funcs + [c for c in confounds if c]:
        if not Path(path).is_file():
            raise DataError("file not found", path)
    names = list(names) if names else [Path(f).name.split(".")[0] for f in funcs]
    from ..io import load_mask

    mask_img = load_mask(mask) if mask is not None else _mni_mask_for(funcs[0])
    return SubjectList(subjects=[SubjectSpec(func=f, confounds=c, name=n, t_r=t_r)
                                 for f, c, n in zip(funcs, confounds, names)],
                       mask=mask_img, source="files")


def confound_names(spec: SubjectSpec) -> list[str]:
    """The confound columns of a subject's TSV (empty without one)."""
    if not spec.confounds:
        return []
    from ..io import load_confounds

    return [str(c) for c in load_confounds(spec.confounds).columns]
