"""Development-like synthetic dataset (seed connectivity), several subjects.

Layout written by :func:`generate`, exactly what
``nilearn.datasets.fetch_development_fmri(n_subjects=N, data_dir=data_dir)``
reads, so the seed example runs unchanged on it and nothing is downloaded::

    data_dir/development_fmri/participants.tsv
    data_dir/development_fmri/<id>_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz
    data_dir/development_fmri/<id>_task-pixar_desc-confounds_regressors.tsv          fMRIPrep-style
    data_dir/development_fmri/<id>_task-pixar_desc-reducedConfounds_regressors.tsv   nilearn's reduced set
    data_dir/development_fmri/synthetic_truth.json, synthetic_truth.npz              planted truth
    data_dir/development_fmri/.fmri-explorer-synthetic.json   manifest: the files written (ours)
    data_dir/development_fmri/synthetic_brain_mask.nii.gz                            the MNI152 brain mask used

Participant ids are real ids of the study (the fetcher looks each one up in
its table of download keys): adults ``sub-pixar123`` ..., children
``sub-pixar001`` ...; about 21 % adults (the study's 33/155), at least one of
each for two or more subjects, so that ``n_subjects=1`` (one adult) and
``n_subjects=2`` (one adult, one child) select existing subjects.

Planted structure (shared by all subjects; sizes: ``full`` = MNI152 at 4 mm,
~29k brain voxels, 4 subjects; ``small`` = 6 mm, ~8.7k voxels, 3 subjects;
both 168 volumes, TR 2 s):

* **Networks** at the 300 ROIs of ``nilearn.datasets.fetch_coords_seitzman_2018``
  (14 networks; 67 default-mode nodes, one 6.7 mm from the PCC seed
  (0, -52, 18)). Each network has one band-limited (0.01-0.1 Hz) time course
  per subject; a node's time course mixes it with a node-specific one; each
  node is a Gaussian blob on the brain. ``unassigned`` nodes are independent.
* **Artefacts that only confound regression removes**: head motion (six
  rigid-body parameters; the artefact is the baseline image's intensity
  gradient times the displacement, exactly linear in ``trans_*``/``rot_*``), a
  framewise-displacement-locked global drop, a global signal (about 0.5 % of
  baseline, mostly in grey matter: MNI152 grey-matter probability) and two
  physiological sources (mostly in white matter and CSF; their span is
  ``a_comp_cor_00..05``; ``csf`` and ``white_matter`` carry them too).
  Leaving them in raises the seed's correlations broadly (median r up) but not
  everywhere (a minority of voxels above r = 0.5), as in real rest data.
* **Artefacts that only filtering removes**: slow drifts (linear, quadratic and
  a very slow cosine, per voxel plus a shared scanner drift) and a shared
  high-frequency (0.13-0.24 Hz) oscillation, mostly away from grey matter.
  Plus white noise per voxel.
* **Subjects differ** as real ones do: noise level, overall network strength
  (log-normal) and each network's own gain and coherence, each node's position
  (about 2 mm per axis of anatomical jitter), motion (children move more) and
  global amplitude (``synthetic_truth.json``: ``subjects``, with
  ``network_gains`` and ``jitter_rms_mm``). 20 subjects give a group peak t of
  about 15 at the PCC seed (real seed studies: roughly 8-20).
* ``generator_version`` in ``synthetic_truth.json``: a folder of an older
  generator is not :func:`is_present` and is made again.

The full fMRIPrep-style confounds TSV has ``n/a`` in the first row of
``framewise_displacement`` (fMRIPrep's convention). The reduced TSV is written
as nilearn's ``fetch_development_fmri`` writes it (same 15 columns, numpy text)
with that first value set to 0, as in the real downsampled dataset, because
nilearn's cleaning refuses NaN confounds.

The code is split by job: the constants and the planted signal model (no
files) in :mod:`.development_signal`, writing the dataset and reading its
planted truth in :mod:`.development_synthetic`, loading subjects through the
fetcher (:func:`load`, :func:`subject_files`) here; this module re-exports
their names.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError
from .development_signal import (  # noqa: F401 - re-exported
    ADULT_IDS, BAND, BASELINE, CHILD_IDS, COMPCOR, DMN, FULL_COLUMNS, MOTION, N_VOLUMES,
    PCC_MM, REDUCED_COLUMNS, SIZES, T_R, UNIT, band_limited, framewise_displacement,
    participant_ids, seitzman_nodes, shared_geometry, subject_networks, subject_params,
    subject_rng, synthesize_subject)
from .development_synthetic import (  # noqa: F401 - re-exported
    CONFOUNDS, DATASET, FUNC, GENERATOR_VERSION, MASK, REDUCED, TRUTH, TRUTH_NPZ, dataset_dir,
    describe, generate, is_present, network_time_courses, read_truth)


def load(data_dir=None, n_subjects: int | None = None, size: str | None = None,
         age_group: str = "both", reduce_confounds: bool = True):
    """Subjects (synthetic or real) read through ``nilearn.datasets.fetch_development_fmri``.

    Returns the fetcher's Bunch (``func``, ``confounds``, ``phenotypic``,
    ``t_r``), subjects ordered adults first, then by id (so index ``i`` is the
    same subject for every ``n_subjects``), plus ``truth`` (the planted truth
    dict, None for real data) and ``data_dir``. ``data_dir`` defaults to the
    synthetic cache of ``size`` (generated on first use); ``n_subjects``
    defaults to every subject present.
    """
    from nilearn.datasets import fetch_development_fmri

    if data_dir is None:
        from . import ensure_synthetic

        data_dir = ensure_synthetic("connectivity", size=size)
    data_dir = Path(data_dir)
    root = dataset_dir(data_dir)
    if not (root / "participants.tsv").is_file():
        raise DataError("no development_fmri dataset here (expected development_fmri/"
                        "participants.tsv and the subjects' files; make one with "
                        "'fmri-explorer data connectivity --out DIR')", data_dir)
    truth = read_truth(data_dir)
    if n_subjects is None:
        n_subjects = len(pd.read_table(root / "participants.tsv"))
    bunch = fetch_development_fmri(n_subjects=n_subjects, data_dir=str(data_dir), verbose=0,
                                   age_group=age_group, reduce_confounds=reduce_confounds)
    pheno = bunch.phenotypic.reset_index(drop=True)
    order = pheno.sort_values(["Child_Adult", "participant_id"], kind="stable").index.to_numpy()
    bunch.func = [bunch.func[i] for i in order]
    bunch.confounds = [bunch.confounds[i] for i in order]
    bunch.phenotypic = pheno.loc[order].reset_index(drop=True)
    bunch.truth = truth
    bunch.data_dir = str(data_dir)
    return bunch


def subject_files(data_dir=None, subject: int = 0, size: str | None = None) -> dict:
    """One subject's ``func``, ``confounds`` (reduced) and ``confounds_full`` paths, id, t_r."""
    bunch = load(data_dir, size=size)
    n = len(bunch.func)
    if not 0 <= subject < n:
        raise DataError(f"subject {subject} does not exist: this dataset has {n} "
                        f"subject(s), numbered 0 to {n - 1}")
    pid = str(bunch.phenotypic["participant_id"][subject])
    full = Path(bunch.confounds[subject]).with_name(CONFOUNDS.format(pid))
    return {"func": bunch.func[subject], "confounds": bunch.confounds[subject],
            "confounds_full": str(full) if full.is_file() else None,
            "participant_id": pid, "t_r": float(bunch.t_r), "n_subjects": n,
            "truth": bunch.truth, "data_dir": bunch.data_dir}
