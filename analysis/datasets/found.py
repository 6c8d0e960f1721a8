"""Which real datasets a nilearn data folder holds (``fmri-explorer serve --data DIR``).

A nilearn ``data_dir`` holds each dataset in its fetcher's layout, the layout
``fmri-explorer fetch ... --data-dir DIR`` downloads and ``fmri-explorer data ...
--out DIR`` writes:

* ``encoding``: ``miyawaki2008/`` with every file ``fetch_miyawaki2008`` expects;
* ``decoding``: ``haxby2001/`` with ``mask.nii.gz``, ``MD5SUMS`` and at least one
  ``subjN/`` holding what ``fetch_haxby(subjects=(N,))`` reads (subject 2, the
  fetcher's default and nilearn's decoding example, when present);
* ``connectivity``: ``development_fmri/`` with ``participants.tsv`` and at least
  one participant's ``*_bold.nii.gz`` and its confounds.

:func:`found_datasets` checks files exist, nothing more (no image is read), so
the server can say at start what it offers. The app's tabs offer each dataset
found under the label :func:`nilearn_label` (no server path is shown to
visitors) beside their synthetic data (:func:`nilearn_sources`, for any tab:
Panel-free). :func:`development_participants` lists a development folder's
subjects on disk from ``participants.tsv`` without loading an image: the
Connectivity tab's subject selector and each subject's lazy loading use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..config import nilearn_data_dir
from ..errors import DataError

#: analysis -> the dataset folder its nilearn fetcher writes in a data_dir
DATASETS = {"encoding": "miyawaki2008", "decoding": "haxby2001",
            "connectivity": "development_fmri"}
#: how a tab names a dataset of the nilearn data folder (never its path)
NILEARN_PREFIX = "nilearn data: "
#: fetch_haxby's default subject (nilearn's decoding example)
HAXBY_SUBJECT = 2
#: what fetch_haxby reads for one subject (besides anat.nii.gz, which subject 6 lacks)
HAXBY_SUB_FILES = ("bold.nii.gz", "labels.txt", "mask4_vt.nii.gz")
#: the development dataset's files of one participant (fetch_development_fmri's names)
DEV_FUNC = "{0}_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
DEV_CONFOUNDS = "{0}_task-pixar_desc-confounds_regressors.tsv"
DEV_REDUCED = "{0}_task-pixar_desc-reducedConfounds_regressors.tsv"


def _encoding(data_dir: Path) -> dict | None:
    from .miyawaki_layout import has_fetcher_files

    return {} if has_fetcher_files(data_dir) else None


def haxby_subjects(data_dir) -> list[int]:
    """The Haxby subjects N whose ``haxby2001/subjN/`` holds what the fetcher reads,
    ascending (empty without the dataset's ``mask.nii.gz`` and ``MD5SUMS``)."""
    root = Path(data_dir) / DATASETS["decoding"]
    if not ((root / "mask.nii.gz").is_file() and (root / "MD5SUMS").is_file()):
        return []
    found = []
    for sub in root.glob("subj*"):
        number = sub.name[4:]
        if number.isdigit() and all((sub / f).is_file() for f in HAXBY_SUB_FILES):
            found.append(int(number))
    return sorted(found)


def _decoding(data_dir: Path) -> dict | None:
    subjects = haxby_subjects(data_dir)
    if not subjects:
        return None
    return {"subjects": subjects,
            "subject": HAXBY_SUBJECT if HAXBY_SUBJECT in subjects else subjects[0]}


def _has_confounds(root: Path, pid: str) -> bool:
    return (root / DEV_REDUCED.format(pid)).is_file() or (root / DEV_CONFOUNDS.format(pid)).is_file()


def _connectivity(data_dir: Path) -> dict | None:
    root = Path(data_dir) / DATASETS["connectivity"]
    if not (root / "participants.tsv").is_file():
        return None
    suffix = DEV_FUNC.format("")
    n = sum(1 for f in root.glob(f"*{suffix}") if _has_confounds(root, f.name[:-len(suffix)]))
    return {"n_subjects": n} if n else None


_CHECKS = {"encoding": _encoding, "decoding": _decoding, "connectivity": _connectivity}


def found_datasets(data_dir) -> dict:
    """The real datasets present in the nilearn data folder ``data_dir``.

    ``{analysis: info}`` for each of ``encoding``, ``decoding``, ``connectivity``
    found there (absent ones are left out; None or a missing folder: ``{}``). Every
    ``info`` has ``dataset`` (the folder's name: ``miyawaki2008``...), ``path`` (that
    folder), ``data_dir`` and ``label`` (:func:`nilearn_label`); ``decoding`` adds
    ``subjects`` (the N of each complete ``subjN/``) and ``subject`` (the one the
    fetcher defaults to, 2, when present); ``connectivity`` adds ``n_subjects``
    (participants with an image and confounds on disk). Only checks files exist.
    """
    if data_dir is None or not Path(data_dir).is_dir():
        return {}
    data_dir = Path(data_dir)
    out = {}
    for kind, check in _CHECKS.items():
        info = check(data_dir)
        if info is not None:
            out[kind] = {"dataset": DATASETS[kind], "path": str(data_dir / DATASETS[kind]),
                         "data_dir": str(data_dir), **info}
            out[kind]["label"] = nilearn_label(kind, out[kind])
    return out


def nilearn_label(kind: str, info: dict | None = None) -> str:
    """How a tab names the nilearn data folder's ``kind`` dataset: e.g. ``nilearn data:
    miyawaki2008`` (with the subject for Haxby: ``nilearn data: haxby2001 subj2``)."""
    label = NILEARN_PREFIX + DATASETS[kind]
    if kind == "decoding" and info and info.get("subject") is not None:
        label += f" subj{info['subject']}"
    return label


def describe_found(data_dir) -> str:
    """One line for the server's start: which datasets of ``data_dir`` the app offers."""
    found = found_datasets(data_dir)
    if not found:
        return (f"fmri-explorer: no nilearn dataset in {data_dir} (expected "
                f"{', '.join(d + '/' for d in DATASETS.values())}): synthetic data only")
    parts = []
    for kind, info in found.items():
        extra = (f", {info['n_subjects']} subjects" if kind == "connectivity" else
                 f", subj{info['subject']}" if kind == "decoding" else "")
        parts.append(f"{kind} ({info['dataset']}{extra})")
    missing = [f"{kind} ({DATASETS[kind]})" for kind in DATASETS if kind not in found]
    return (f"fmri-explorer: nilearn data in {data_dir}: {', '.join(parts)}"
            + (f"; not found: {', '.join(missing)}" if missing else ""))


def nilearn_sources(kind: str, data_dir=None) -> dict:
    """``{label: data_dir}`` of the ``kind`` dataset in the nilearn data folder (``data_dir``,
    default ``$FMRI_EXPLORER_NILEARN_DATA``); ``{}`` when it is not there. A tab offers
    each label as a source beside its synthetic data, and starts on it."""
    data_dir = nilearn_data_dir() if data_dir is None else data_dir
    info = found_datasets(data_dir).get(kind)
    return {info["label"]: info["data_dir"]} if info else {}


def same_folder(a, b) -> bool:
    """Whether two data_dirs are one folder (None: the synthetic data of the app's size)."""
    from ..config import default_size, synthetic_dir

    def resolved(folder):
        folder = synthetic_dir(default_size()) if folder is None else Path(folder)
        try:
            return folder.resolve()
        except OSError:
            return folder

    return resolved(a) == resolved(b)


def offered(choices) -> Callable[[object], None]:
    """A link rule (see ``dashboard.share.sync_url``): the source is one of ``choices``
    (a tab's built-in and nilearn sources; not a session's own data)."""
    allowed = list(choices)

    def rule(value) -> None:
        if value not in allowed:
            raise ValueError("not a source a link can open")
    return rule


# --------------------------------------------------------------------------- development

_PARTICIPANTS: dict = {}
_LOCK = threading.Lock()


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def development_participants(data_dir):
    """The participants of ``data_dir/development_fmri`` whose files are on disk, as
    a DataFrame (``participant_id``, ``Child_Adult``, ``func``, ``confounds``: the
    reduced confounds file when present, else None, and ``confounds_full``), adults
    first, then by id (as :func:`analysis.datasets.development.load` orders them:
    row ``i`` is subject ``i``). Reads ``participants.tsv`` and checks files exist,
    nothing more; remembered until the folder or its table changes."""
    import pandas as pd

    root = Path(data_dir) / DATASETS["connectivity"]
    table = root / "participants.tsv"
    if not table.is_file():
        raise DataError("no development_fmri dataset here (expected development_fmri/"
                        "participants.tsv and the subjects' files; make one with "
                        "'fmri-explorer data connectivity --out DIR')", data_dir)
    key = (str(root.resolve()), _stamp(root), _stamp(table))
    with _LOCK:
        cached = _PARTICIPANTS.get(key[0])
        if cached is not None and cached[0] == key:
            return cached[1].copy()
    participants = pd.read_table(table)
    rows = []
    for _, p in participants.iterrows():
        pid = str(p["participant_id"])
        func = root / DEV_FUNC.format(pid)
        reduced, full = root / DEV_REDUCED.format(pid), root / DEV_CONFOUNDS.format(pid)
        if func.is_file() and (reduced.is_file() or full.is_file()):
            rows.append({"participant_id": pid,
                         "Child_Adult": str(p.get("Child_Adult", "")),
                         "func": str(func),
                         "confounds": str(reduced) if reduced.is_file() else None,
                         "confounds_full": str(full) if full.is_file() else None})
    out = pd.DataFrame(rows, columns=["participant_id", "Child_Adult", "func", "confounds",
                                      "confounds_full"])
    out = out.sort_values(["Child_Adult", "participant_id"], kind="stable").reset_index(drop=True)
    with _LOCK:
        _PARTICIPANTS[key[0]] = (key, out)
    return out.copy()
