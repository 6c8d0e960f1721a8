"""Miyawaki 2008's file layout: the constants of the dataset and the files
:func:`nilearn.datasets.fetch_miyawaki2008` expects under ``data_dir/miyawaki2008``
(runs, stimuli CSVs, the mask and nilearn's list of ROI masks, the background),
shared by the synthetic generator (:mod:`.miyawaki_synthetic`) and the loader
(:mod:`analysis.datasets.miyawaki`, which re-exports every name here).
"""

from __future__ import annotations

import json
from pathlib import Path

NAME = "miyawaki2008"
STIMULUS_SHAPE = (10, 10)
N_FIGURE_RUNS = 12
N_RANDOM_RUNS = 20
#: Volume delay between an image and the response it drives (the seed drops 2).
LAG = 2
T_R = 2.0
TRUTH_FILE = "synthetic_truth.npz"
INFO_FILE = "synthetic.json"
#: Bumped when what the generator plants changes: older synthetic data is made again
#: (2: images held for blocks of volumes, responses through an HRF).
GENERATOR_VERSION = 2


# --------------------------------------------------------------------------- layout

def func_files(kind: str) -> list[str]:
    n = N_FIGURE_RUNS if kind == "figure" else N_RANDOM_RUNS
    return [f"func/data_{kind}_run{i:02d}.nii.gz" for i in range(1, n + 1)]


def label_files(kind: str) -> list[str]:
    n = N_FIGURE_RUNS if kind == "figure" else N_RANDOM_RUNS
    return [f"label/data_{kind}_run{i:02d}_label.csv" for i in range(1, n + 1)]


#: nilearn's ``miyawaki2008_file_mask()``, in its order (a test checks that they agree):
#: copied, because importing ``nilearn.datasets`` costs most of a second, and the served
#: app checks the dataset's files as it starts.
_LAGS = (0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9)  # in nilearn's order
_ROIS = ("V1d", "V1v", "V2d", "V2v", "V3A", "V3", "V4v", "VP")
MASK_FILES = ("mask.nii.gz", *(f"{hemi}{name}.nii.gz" for hemi in ("LH", "RH")
                               for name in (*(f"lag{a}to{a + 1}" for a in _LAGS), *_ROIS)))


def mask_files() -> list[str]:
    return [f"mask/{m}" for m in MASK_FILES]


def expected_files() -> list[str]:
    """Every file (relative to ``data_dir/miyawaki2008``) the fetcher expects."""
    return (func_files("figure") + func_files("random") + label_files("figure")
            + label_files("random") + mask_files() + ["bg.nii.gz"])


def dataset_dir(data_dir) -> Path:
    return Path(data_dir) / NAME


def has_fetcher_files(data_dir) -> bool:
    """Every file nilearn's fetcher expects is in place (real or synthetic)."""
    root = dataset_dir(data_dir)
    return all((root / f).is_file() for f in expected_files())


def is_present(data_dir) -> bool:
    """The synthetic dataset (fetcher files and planted truth) is complete, made by this
    version of the generator."""
    root = dataset_dir(data_dir)
    if not (has_fetcher_files(data_dir) and (root / TRUTH_FILE).is_file()):
        return False
    try:
        info = json.loads((root / INFO_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("generator_version") == GENERATOR_VERSION
