"""The Connectivity tab's script: nilearn's seed-to-voxel correlation example.

:func:`connectivity_script` renders a :class:`~analysis.connectivity.SeedConnectivity`
as a stand-alone script: the seed's ``NiftiSpheresMasker`` and the brain's
``NiftiMasker``, cleaned alike with every setting of the preprocessing group
(one constant each, its doc as the comment), ``r = brain.T @ seed / n_volumes``
and the map (r or Fisher z) written to NIfTI.
"""

from __future__ import annotations

from ..errors import DataError
from ..preprocessing import BRAIN_ONLY, SETTINGS, Preprocessing
from .common import WIDTH, _NEEDS, _absolute, _constants, _script, _uploaded_note

__all__ = ["connectivity_script"]


def _comment(doc: str) -> str:
    """A parameter's doc as a constant's comment (no full stop)."""
    return " ".join((doc or "").split()).rstrip(".")


def _keywords(names, indent: int) -> str:
    """``name=NAME`` keyword arguments, wrapped at :data:`WIDTH` (``indent`` columns in)."""
    lines, line = [], ""
    for name in names:
        piece = f"{name}={name.upper()},"
        if line and indent + len(line) + 1 + len(piece) > WIDTH - 4:
            lines.append(line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    lines.append(line)
    return ("\n" + " " * indent).join(lines).rstrip(",")


def connectivity_script(model) -> str:
    """A script reproducing a :class:`~analysis.connectivity.SeedConnectivity` map.

    nilearn's seed-to-voxel example with the model's data and parameters: the
    seed's ``NiftiSpheresMasker`` (unsmoothed sphere mean) and the brain's
    ``NiftiMasker`` (smoothed), both detrended, band-passed, cleaned of the
    ticked confound columns and standardised alike; ``r = brain.T @ seed /
    n_volumes``. Prints ``n_volumes``, ``n_voxels``, ``n_seed_voxels``,
    ``r_min``, ``r_max``, ``peak_mm`` (the voxel of highest r), with
    ``fisher_z`` also ``z_min`` and ``z_max``, then ``threshold`` (in the
    map's units), ``n_above_threshold``, ``colour_range``, ``map_file`` and
    ``summary``. Writes the map (r or Fisher z) to a NIfTI file.

    Raises :class:`~analysis.errors.DataError` for data a script cannot read
    (an image or a confounds table in memory).
    """
    subject = model.subject_data()
    settings = model.settings()
    uploads = subject.info.get("uploads") or {}
    if uploads:
        func, confounds, mask = uploads.get("func"), uploads.get("confounds"), uploads.get("mask")
        data_note = _uploaded_note()
    else:
        if subject.func is None:
            raise DataError("this data is an image in memory: a script needs its file")
        if subject.confounds is not None and subject.confounds_path is None:
            raise DataError("these confounds are a table in memory: a script needs their file")
        func = _absolute(subject.func)
        confounds = _absolute(subject.confounds_path) if subject.confounds_path else None
        mask = _absolute(subject.mask_path) if subject.mask_path else None
        pid = subject.info.get("participant_id")
        if pid is not None and not model.uses_own_data:
            kind = "synthetic development-like" if subject.info.get("truth") else "development"
            data_note = (f"Data: subject {model.subject} ({pid}) of the {kind} fMRI dataset\n"
                         f"(nilearn's fetch_development_fmri layout).")
        else:
            data_note = "Data: your files."
    if confounds is None and subject.confounds is not None:
        raise DataError("the confounds file of this data is not known")
    columns = list(settings.confound_columns) if settings.confound_columns and \
        subject.confounds is not None else None
    fisher_z = bool(model.fisher_z)
    zscore = settings.standardize == "zscore"
    # the keywords of both maskers (every setting but the brain masker's own), and T_R
    masker_names = list(settings.masker_kwargs())
    output = "seed_correlation_z.nii.gz" if fisher_z else "seed_correlation_r.nii.gz"

    docstring = f"""
Seed-to-voxel correlation, as fmri-explorer's Connectivity tab computed it.

Reproduces nilearn's example "Producing single subject maps of seed-to-voxel
correlation" (plot_seed_to_voxel_correlation.py) with the tab's settings: the
mean time series of a sphere around the seed (NiftiSpheresMasker, unsmoothed) is
correlated with every brain voxel's (NiftiMasker, smoothed), both detrended,
band-pass filtered, cleaned of the chosen confounds and z-scored alike.

{data_note}

{_NEEDS}
"""
    imports = """
import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import image, masking
from nilearn.maskers import NiftiMasker, NiftiSpheresMasker
"""
    constants = _constants([
        "data",
        ("FUNC", func, "4D functional image (x, y, z, time)"),
        ("CONFOUNDS", confounds, "confounds table (TSV, fMRIPrep style), or None"),
        ("MASK", mask, "brain mask; None: computed as NiftiMasker does (background)"),
        ("T_R", float(settings.t_r), "repetition time (s)"),
        "seed",
        ("SEED_MM", tuple(float(v) for v in model.seed_mm), "sphere centre (x, y, z), MNI mm"),
        ("RADIUS_MM", float(model.radius_mm), "sphere radius (mm)"),
        "preprocessing (the same for the seed and the brain voxels; None: off)",
        # every setting of the preprocessing group, its doc as the comment
        *[(name.upper(), getattr(settings, name), _comment(Preprocessing.param[name].doc))
          for name in SETTINGS],
        ("CONFOUND_COLUMNS", columns, "confounds regressed out (None: no confound regression)"),
        "map",
        ("THRESHOLD", float(model.threshold), "threshold on |r| (on a Fisher z map: arctanh "
                                              "of it)"),
        ("FISHER_Z", fisher_z, "map Fisher z = arctanh(r) instead of r"),
        ("CLIM", None if model.clim is None else tuple(float(v) for v in model.clim),
         "colour range (None: symmetric, max |value|)"),
        ("OUTPUT", output, "the map as NIfTI"),
    ])
    if zscore:
        standardize_text = '''
# nilearn's maskers offer the sample z-score only ("zscore_sample", ddof 1): they clean
# without standardising, then the population z-score (ddof 0) is taken here
cleaning["standardize"] = None


def zscore(signals):
    """Centre each column and divide it by its (population) standard deviation."""
    signals = signals - signals.mean(axis=0)
    std = signals.std(axis=0)
    std[std < np.finfo(np.float64).eps] = 1.0  # a constant signal stays at 0
    return signals / std

'''
        zscore_apply = ("seed_time_series = zscore(seed_time_series)\n"
                        "brain_time_series = zscore(brain_time_series)\n")
    else:
        standardize_text = ""
        zscore_apply = ""
    body = f'''
# ---- the functional image, in float64 (as the app computes)
func_img = image.load_img(FUNC, dtype="float64")

# ---- the brain mask
if MASK is None:
    # what NiftiMasker computes when given none: the voxels unlike the background
    mask_img = masking.compute_background_mask(func_img)
else:
    mask_data = np.asarray(nib.load(MASK).dataobj).reshape(func_img.shape[:3])
    mask_img = nib.Nifti1Image((mask_data != 0).astype(np.uint8), func_img.affine)

# ---- confounds: the chosen columns ("n/a", e.g. the first row of a derivative: 0)
confounds = None
if CONFOUNDS is not None and CONFOUND_COLUMNS:
    table = pd.read_csv(CONFOUNDS, sep="\\t", na_values=["n/a"])
    confounds = table[CONFOUND_COLUMNS].astype(float).fillna(0.0).to_numpy()

# ---- the seed example's two maskers, cleaned alike
cleaning = dict({_keywords(masker_names, 16)},
                # band-pass all voxels at once: the same, ~5x faster (nilearn >= 0.12)
                clean_args={{"butterworth__copy": True}})
{standardize_text}
# the seed: mean time series of the voxels within RADIUS_MM of SEED_MM (unsmoothed)
seed_masker = NiftiSpheresMasker([SEED_MM], radius=RADIUS_MM, **cleaning)
seed_time_series = seed_masker.fit_transform(func_img, confounds=confounds)
# every brain voxel's time series, smoothed
brain_masker = NiftiMasker(mask_img=mask_img, {_keywords(BRAIN_ONLY, 27)}, **cleaning)
brain_time_series = brain_masker.fit_transform(func_img, confounds=confounds)
{zscore_apply}
# ---- seed-to-voxel correlation: both are z-scored, r is their mean product
seed = seed_time_series[:, 0]
r = brain_time_series.T @ seed / seed.shape[0]  # (n_voxels,)
fisher_z = np.arctanh(r)

# the sphere's voxels that carry a signal (in the brain, or varying in time: a
# constant voxel adds nothing to the cleaned mean), found with nilearn's sphere
# rule: the masker's inverse transform of a 1 on the whole grid
grid = nib.Nifti1Image(np.ones(func_img.shape[:3], dtype=np.uint8), func_img.affine)
sphere_img = NiftiSpheresMasker([SEED_MM], radius=RADIUS_MM, mask_img=grid).fit()\\
    .inverse_transform(np.ones((1, 1)))
sphere = np.asarray(sphere_img.dataobj).reshape(func_img.shape[:3]) > 0
raw = np.asarray(func_img.dataobj)
brain = np.asarray(brain_masker.mask_img_.dataobj).astype(bool)
varying = raw.max(axis=3) > raw.min(axis=3)
n_seed_voxels = int((sphere & (brain | varying)).sum())

# ---- the map: r or Fisher z, thresholded on |r| >= THRESHOLD
values = fisher_z if FISHER_Z else r
threshold = float(np.arctanh(THRESHOLD)) if FISHER_Z else THRESHOLD
n_above = int((np.abs(r) >= THRESHOLD).sum())  # |z| >= arctanh(t) exactly when |r| >= t
if CLIM is not None:
    colour_range = tuple(CLIM)
else:
    top = float(np.abs(values[np.isfinite(values)]).max())
    colour_range = (-top, top)
# the peak: the brain voxel of highest r, in mm
peak_ijk = np.argwhere(brain)[np.argmax(r)]
peak_mm = nib.affines.apply_affine(func_img.affine, peak_ijk)
brain_masker.inverse_transform(values).to_filename(OUTPUT)
# To look at it (needs matplotlib):
#   from nilearn import plotting
#   plotting.plot_stat_map(OUTPUT, threshold=threshold, vmax=max(map(abs, colour_range)),
#                          cut_coords=SEED_MM)

# ---- results, as the tab's summary shows them
show("n_volumes", brain_time_series.shape[0])
show("n_voxels", r.size)
show("n_seed_voxels", n_seed_voxels)
show("r_min", r.min())
show("r_max", r.max())
show("peak_mm", peak_mm)
if FISHER_Z:
    show("z_min", np.nanmin(fisher_z))
    show("z_max", np.nanmax(fisher_z))
show("threshold", threshold)
show("n_above_threshold", n_above)
show("colour_range", colour_range)
show("map_file", OUTPUT)
seed_text = "(" + ", ".join(f"{{v:g}}" for v in np.round(np.asarray(SEED_MM, float), 2)) + ")"
if FISHER_Z:
    value_range = f"Fisher z in [{{np.nanmin(fisher_z):.2f}}, {{np.nanmax(fisher_z):.2f}}]"
    above = f"|Fisher z| >= {{threshold:.2f}}"
else:
    value_range = f"r in [{{r.min():.2f}}, {{r.max():.2f}}]"
    above = f"above {{THRESHOLD:g}}"
show("summary", f"seed {{seed_text}} r={{RADIUS_MM:g}} mm: {{n_seed_voxels:,}} voxels; "
                f"{{value_range}}; {{n_above:,}} voxels {{above}}")
'''
    return _script(docstring, imports, constants, body)
