"""The Encoding tab's script: nilearn's Miyawaki encoding example.

:func:`encoding_script` renders an :class:`~analysis.encoding.EncodingAnalysis`
as a stand-alone script: the random-image runs through ``MultiNiftiMasker``,
``Ridge`` per fold of ``KFold`` or ``LeaveOneGroupOut``, ``r2_score`` per voxel
and the fold-mean R^2 map written to NIfTI.
"""

from __future__ import annotations

import os

from .common import _NEEDS, _absolute, _constants, _script

__all__ = ["encoding_script"]


def encoding_script(model) -> str:
    """A script reproducing an :class:`~analysis.encoding.EncodingAnalysis`.

    The Miyawaki encoding example with the model's data and parameters: the
    random-image runs cleaned by ``MultiNiftiMasker(detrend=True,
    standardize="zscore_sample")``; per run, the first ``lag`` volumes and the
    last ``lag`` images dropped; ``Ridge(alpha)`` fitted on each training fold
    of unshuffled ``KFold(n_folds)`` (or ``LeaveOneGroupOut`` on the runs),
    ``r2_score`` per voxel on the test fold, averaged over folds. Prints
    ``n_samples``, ``n_voxels``, ``n_folds``, ``mean_r2`` (over voxels of the
    fold-mean R^2), ``max_r2``, ``threshold``, ``n_above_threshold`` (fold-mean
    R^2 above it), ``map_file`` and ``summary``.
    """
    from ..datasets import miyawaki

    data = model.data()
    func = [_absolute(f) for f in data.func]
    label = [_absolute(f) for f in data.label]
    root = os.path.dirname(os.path.dirname(func[0]))        # .../miyawaki2008
    mask = _absolute(miyawaki.listed(os.path.dirname(root))["mask"])
    synthetic = data.truth is not None
    dtype = str(model.dtype)
    cv = model.cv
    output = "r2_map.nii.gz"

    expected_func = [os.path.join(root, f) for f in miyawaki.func_files("random")]
    expected_label = [os.path.join(root, f) for f in miyawaki.label_files("random")]
    standard = func == expected_func and label == expected_label
    rows = ["data"]
    if standard:
        rows.append(("DATA_DIR", root, "the dataset (nilearn's fetch_miyawaki2008 layout)"))
    else:
        rows += [("FUNC_FILES", func, "the random-image runs (4D images)"),
                 ("STIMULI_FILES", label, "their images, one CSV row a volume")]
    rows.append(("MASK", mask, "the visual-cortex mask"))
    rows += [
        "model",
        ("ALPHA", float(model.alpha), "ridge regularisation (sklearn's Ridge alpha)"),
        ("LAG", int(model.lag), "volumes between an image and its response"),
        ("CV", cv, '"kfold": KFold(N_FOLDS); "run": leave-one-run-out'),
        ("N_FOLDS", int(model.n_folds), "folds of KFold"),
        ("DTYPE", dtype, "floating point type of the responses"),
        "map",
        ("THRESHOLD", float(model.threshold), "voxels with a mean R^2 at or below are hidden"),
        ("OUTPUT", output, "the fold-mean R^2 map as NIfTI"),
    ]
    constants = _constants(rows)
    if standard:
        files_text = '''
# ---- the random-image runs (the 12 runs before them show figures, as in the example)
FUNC_FILES = [f"{DATA_DIR}/func/data_random_run{run:02d}.nii.gz" for run in range(1, 21)]
STIMULI_FILES = [f"{DATA_DIR}/label/data_random_run{run:02d}_label.csv"
                 for run in range(1, 21)]

'''
    else:
        files_text = ""
    kind = "the synthetic Miyawaki-like dataset" if synthetic else "the Miyawaki 2008 data"
    docstring = f"""
Voxel-wise ridge encoding, as fmri-explorer's Encoding tab computed it.

Reproduces nilearn's example "Encoding models for visual stimuli from Miyawaki
et al. 2008" (plot_miyawaki_encoding.py) with the tab's settings: each voxel's
activity is predicted from the 10x10 binary image shown LAG volumes before by a
ridge regression, scored by its cross-validated R^2.

Data: {kind} (nilearn's fetch_miyawaki2008 layout).

{_NEEDS}
"""
    imports = """
import numpy as np
from nilearn.maskers import MultiNiftiMasker
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, LeaveOneGroupOut
"""
    body = f'''
{files_text.strip()}

# ---- the fMRI data: each run detrended and z-scored, as the example
masker = MultiNiftiMasker(mask_img=MASK, detrend=True, standardize="zscore_sample")
masker.fit()
fmri_runs = masker.transform(FUNC_FILES)  # a (n_volumes, n_voxels) array per run

# ---- the images: 10x10 binary pixels, one CSV row (Fortran order) a volume
stimulus_shape = (10, 10)
stimuli_runs = [np.reshape(np.loadtxt(f, dtype=int, delimiter=",", ndmin=2),
                           (-1,) + stimulus_shape, order="F") for f in STIMULI_FILES]

# ---- samples: an image and the response LAG volumes later (per run)
fmri_data = np.vstack([run[LAG:] for run in fmri_runs]).astype(DTYPE)
stimuli = np.vstack([run[:len(run) - LAG] for run in stimuli_runs]).astype(float)
stimuli = stimuli.reshape(len(stimuli), -1)  # (n_samples, 100 pixels)
runs = np.concatenate([np.full(len(run) - LAG, i) for i, run in enumerate(fmri_runs)])

# ---- cross-validated R^2 of a ridge regression, voxel by voxel
if CV == "run":
    folds = LeaveOneGroupOut().split(stimuli, groups=runs)
else:
    folds = KFold(n_splits=N_FOLDS).split(stimuli)  # unshuffled, as the example
estimator = Ridge(alpha=ALPHA)
scores = []
for train, test in folds:
    predictions = estimator.fit(stimuli[train], fmri_data[train]).predict(stimuli[test])
    scores.append(r2_score(fmri_data[test], predictions, multioutput="raw_values"))
scores = np.array(scores)  # (n_folds, n_voxels)
mean_r2 = scores.mean(axis=0)  # the map: R^2 per voxel, averaged over folds
n_above = int((mean_r2 > THRESHOLD).sum())
masker.inverse_transform(mean_r2).to_filename(OUTPUT)

# ---- results, as the tab's summary shows them
show("n_samples", len(stimuli))
show("n_voxels", mean_r2.size)
show("n_folds", len(scores))
show("mean_r2", mean_r2.mean())
show("max_r2", mean_r2.max())
show("threshold", THRESHOLD)
show("n_above_threshold", n_above)
show("map_file", OUTPUT)
show("summary", f"alpha={{ALPHA:.4g}} folds={{len(scores)}} mean R2={{mean_r2.mean():.3f}} "
                f"voxels above {{THRESHOLD:g}}: {{n_above}}")
'''
    return _script(docstring, imports, constants, body)
