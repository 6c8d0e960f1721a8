"""Haxby 2001-like synthetic dataset (decoding), real Haxby data and user files.

Layout written by :func:`generate`, exactly what
``nilearn.datasets.fetch_haxby(data_dir=data_dir)`` (``subjects=(2,)``) expects,
so the seed tutorial runs unchanged on it and nothing is downloaded::

    data_dir/haxby2001/mask.nii.gz            whole-brain mask
    data_dir/haxby2001/MD5SUMS                checksum list (fetcher reads it)
    data_dir/haxby2001/subj2/bold.nii.gz      4D int16, (x, y, z, 1452), TR 2.5 s
    data_dir/haxby2001/subj2/labels.txt       ``labels chunks`` header, one row a volume
    data_dir/haxby2001/subj2/mask4_vt.nii.gz  ventral-temporal mask (~464 voxels)
    data_dir/haxby2001/subj2/mask8*_{face,house}_vt.nii.gz   face/house sub-masks
    data_dir/haxby2001/subj2/anat.nii.gz      anatomical background
    data_dir/haxby2001/subj2/ground_truth.json, ground_truth.npz   planted truth
    data_dir/haxby2001/.fmri-explorer-synthetic.json   manifest: the files written (ours)

The masked-data cache (per functional file's content, mask and standardize)
lives in the cache folder (``data_home()/cache/masked-*.npy``), never beside
the data.

Planted structure (the same at both sizes):

* 12 runs x 121 volumes; each run: 6 rest, then the 8 categories in 9-volume
  blocks (random order per run) separated by 6 or 5 rest volumes, 6 rest at the
  end; exactly the real file's layout.
* Inside the VT mask, every category has a distributed, spatially smooth
  pattern; patterns overlap (a shared visual response plus category
  components, orthonormalised in VT). Houses have the strongest component of
  their own (:data:`CATEGORY_GAIN`) and faces and cats share an animate one
  (:data:`ANIMATE`), so, as in the real data, face vs house is the easy pair
  and face vs cat a harder one. Boxcars are convolved with the Glover HRF.
* **No planted difference**: ``bottle`` and ``chair`` share one identical
  pattern (:data:`NULL_PAIR`): decoding them is at chance; the permutation
  test's negative control.
* Run effects: a run-specific offset pattern and drift, and a run-specific
  deviation of each category's pattern (the response to a category differs a
  little from run to run); AR(1) noise.
* A task-correlated artefact (like head motion locked to the blocks): in each
  run a new pattern, orthogonal to every planted pattern and to the other
  runs' (so nothing of it carries over to another run), present during the
  blocks themselves (not delayed by the HRF), with the sign
  :data:`ARTEFACT_SIGN` of the block's category (face +, cat -: within a run
  they move apart along it; bottle and chair: none). A held-out run's artefact
  is new to the classifier, but unshuffled ``KFold(5)`` on face vs cat
  (216 samples, 18 a run, in time order) cuts 4 of the 12 runs between a
  training and a test fold: a third of the test samples then share their
  run's artefact with training samples of known label. So KFold scores higher
  than leave-one-run-out (the seed's lesson). The artefact is kept small
  enough that this optimism stays steady across fold counts: with 18 samples
  a run, KFold(3), (4) and (6) fall on run boundaries (each is leave-4, 3 or
  2-runs-out: no leak), while 5, 7 and 8 folds cut runs; their accuracies
  stay within 0.1 of one another (face vs cat).

The code is split by job: the constants, planted truth and :func:`generate` in
:mod:`.haxby_synthetic`, the masked-data caches (disk and process) and
:func:`masked_data` in :mod:`.haxby_masked`, the loaders (:class:`HaxbyData`,
:func:`load`, :func:`load_user`) here; this module re-exports their names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from .haxby_masked import (  # noqa: F401 - re-exported
    MEMORY, MEMORY_ENTRIES, _read_cache, _write_cache, cache_name,
    clear_memory_cache, masked_data)
from .haxby_synthetic import (  # noqa: F401 - re-exported
    ANIMATE, AR_RHO, ARTEFACT_SIGN, BASELINE, BLOCK, CATEGORIES, CATEGORY, CATEGORY_GAIN,
    DATASET,
    GENERATOR_VERSION, N_PER_RUN, N_RUNS, NOISE, NULL_PAIR, REST_END, REST_GAPS,
    REST_START, RUN_CATEGORY, RUN_DRIFT, RUN_OFFSET, SHARED, SIZES, SUB_FILES, SUBJECT,
    T_R, dataset_dir, describe, generate, glover_hrf, is_present, run_layout, subject_dir)

# --------------------------------------------------------------------------- loading

@dataclass
class HaxbyData:
    """One subject's decoding data, wherever it came from.

    ``func`` is the 4D image path, ``labels`` a DataFrame with ``labels`` and
    ``chunks`` (and ``code`` for numeric files), ``masks`` maps mask names
    (``ventral-temporal``, ``whole brain``) to mask images or paths,
    ``anat`` the background (path or image or None).
    """

    func: Path
    labels: pd.DataFrame
    masks: dict
    anat: object = None
    t_r: float | None = T_R
    source: str = "synthetic"
    n_volumes: int = 0
    info: dict = field(default_factory=dict)


def load(data_dir=None, size: str | None = None, subject: int = SUBJECT,
         standardize=True, progress=None) -> HaxbyData:
    """A Haxby dataset (synthetic or real) read through ``nilearn.datasets.fetch_haxby``.

    ``data_dir`` defaults to the synthetic cache of ``size`` (generated on
    first use). Real data: point ``data_dir`` at a folder where ``fetch_haxby``
    has downloaded it. The ventral-temporal masked data (``standardize`` as
    ``NiftiMasker``; ``None`` to skip) is read into the process cache too (from
    the ``.npy`` cache; masked with nilearn the first time) and kept in
    ``info["masked_shape"]``.
    """
    from nilearn.datasets import fetch_haxby

    from ..io import load_func, load_labels

    if data_dir is None:
        from . import ensure_synthetic

        data_dir = ensure_synthetic("decoding", size=size)
    data_dir = Path(data_dir)
    # a synthetic folder of this generator, or the files fetch_haxby reads for the subject
    # (a real download has no ground truth): never a download from here
    from .found import haxby_subjects

    if not (is_present(data_dir) or subject in haxby_subjects(data_dir)):
        raise DataError(f"no Haxby dataset here (expected haxby2001/subj{subject}/bold.nii.gz, "
                        "labels.txt, mask4_vt.nii.gz ...; fetch one with 'fmri-explorer fetch "
                        "decoding --data-dir DIR' or make one with 'fmri-explorer data "
                        "decoding --out DIR')", data_dir)
    bunch = fetch_haxby(data_dir=str(data_dir), subjects=(subject,), verbose=0)
    func = Path(bunch.func[0])
    img = load_func(func)
    labels = load_labels(bunch.session_target[0], n_volumes=img.shape[3])
    synthetic = (Path(func).parent / "ground_truth.json").exists()
    info = {"data_dir": str(data_dir), "subject": subject,
            "labels": str(bunch.session_target[0]),
            "mask_files": {"ventral-temporal": str(bunch.mask_vt[0]),
                           "whole brain": str(bunch.mask)}}
    if standardize is not None:
        from ..io import load_mask

        X = masked_data(func, load_mask(bunch.mask_vt[0], img), standardize, progress=progress)
        info["masked_shape"] = list(X.shape)
    return HaxbyData(
        func=func, labels=labels,
        masks={"ventral-temporal": Path(bunch.mask_vt[0]), "whole brain": Path(bunch.mask)},
        anat=Path(bunch.anat[0]) if bunch.anat and bunch.anat[0] else None,
        t_r=float(bunch.t_r), source="synthetic" if synthetic else "nilearn fetch_haxby",
        n_volumes=int(img.shape[3]), info=info)


def _numeric_codes(path) -> list[int] | None:
    """The codes of a headerless numeric labels file (``label run`` a row), or None for
    a file with names (a ``labels chunks`` header) or one that cannot be read (the
    labels reader then says why)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().split()
        if not first:
            return None
        float(first[0])
        raw = pd.read_csv(path, sep=r"[\s,]+", header=None, engine="python")
        return sorted({int(c) for c in raw.iloc[:, 0].astype(int)})
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError):
        return None


def load_user(func, mask, labels, label_names=None) -> HaxbyData:
    """The user's own files: a 4D NIfTI, a mask and a labels file (see :mod:`analysis.io`).

    Numeric label codes are named by ``label_names`` (a code-to-name table: a file or
    a dict); without one they stay their numbers, as strings (``"1"``, ``"2"``): no
    dataset's names are assumed (``info["named"]`` says whether a table named them).
    """
    from ..io import load_func, load_labels, load_mask, t_r_of

    img = load_func(func)
    mask_img = load_mask(mask, img)
    codes = _numeric_codes(labels) if label_names is None else None
    named = label_names is not None or codes is None
    if codes is not None:
        label_names = {c: str(c) for c in codes}   # each code named by its number
    table = load_labels(labels, n_volumes=img.shape[3], names=label_names)
    return HaxbyData(func=Path(func), labels=table, masks={"user mask": mask_img},
                     anat=None, t_r=t_r_of(img), source="user files",
                     n_volumes=int(img.shape[3]),
                     info={"mask": str(mask), "labels": str(labels), "named": named,
                           "mask_files": ({"user mask": str(mask)}
                                          if isinstance(mask, (str, Path)) else {})})
