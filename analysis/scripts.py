"""Stand-alone scripts that reproduce an analysis with plain nilearn and scikit-learn.

Each function takes an analysis model (its data and current parameters) and
returns the text of a Python script that needs only numpy, pandas, nibabel,
nilearn and scikit-learn, never this package:

* :func:`encoding_script` (:class:`analysis.encoding.EncodingAnalysis`): the
  Miyawaki example's ``MultiNiftiMasker``, ``Ridge`` per fold of ``KFold`` or
  ``LeaveOneGroupOut``, ``r2_score`` per voxel;
* :func:`decoding_script` (:class:`analysis.decoding.DecodingAnalysis`): the
  Haxby tutorial's ``NiftiMasker``, ``SVC`` (or ``LogisticRegression``),
  ``cross_val_score``, ``permutation_test_score``, the weights on the brain;
* :func:`connectivity_script` (:class:`analysis.connectivity.SeedConnectivity`):
  the seed-to-voxel example's ``NiftiSpheresMasker`` and ``NiftiMasker``.

A script reads the files the model reads (absolute paths; a session's uploads
by the names the user gave them, from the folder it runs in), sets every
parameter as a named constant at its top, and prints the numbers of the app's
summary one a line as ``name: value`` (floats at full precision, lists as
Python literals), the last line ``summary: ...`` being the app's summary line.

Panel-free (no panel, holoviews or bokeh): the dashboard's "Code (.py)" export
calls these functions, and so can a notebook.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from .errors import DataError
from .preprocessing import BRAIN_ONLY, SETTINGS, Preprocessing

__all__ = ["encoding_script", "decoding_script", "connectivity_script"]

#: Longest line of a generated script before a list is wrapped or a comment moved up.
WIDTH = 88


# --------------------------------------------------------------------------- rendering

def _plain(value):
    """``value`` with numpy scalars and paths made plain Python (for ``repr``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _text(value) -> str:
    """One-line literal, strings in double quotes where that needs no escape."""
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, tuple):
        items = [_text(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _literal(value, indent: int = 0) -> str:
    """A Python literal for ``value``; a list too long for one line, several items a line."""
    value = _plain(value)
    text = _text(value)
    if len(text) + indent <= WIDTH or not isinstance(value, (list, dict)) or not value:
        return text
    if isinstance(value, dict):
        items = [f"{_text(k)}: {_text(v)}" for k, v in value.items()]
        open_, close = "{", "}"
    else:
        items = [_text(v) for v in value]
        open_, close = "[", "]"
    lines, line = [], ""
    for item in items:
        piece = f"{item},"
        if line and len(line) + 1 + len(piece) > WIDTH - 4:
            lines.append(line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    lines.append(line)
    return open_ + "\n" + "".join(f"    {ln}\n" for ln in lines) + close


def _constants(rows) -> str:
    """``NAME = value  # comment`` lines; a comment that does not fit goes above its line.

    ``rows``: ``(name, value, comment)`` tuples; a str row starts a block with a heading.
    """
    out, block = [], []

    def fits(line, comment, width):
        return "\n" not in line and width + 4 + len(comment) <= WIDTH

    def flush():
        inline = [f"{n} = {v}" for n, v, c in block
                  if c and fits(f"{n} = {v}", c, len(f"{n} = {v}"))]
        width = max((len(line) for line in inline), default=0)
        for name, value, comment in block:
            line = f"{name} = {value}"
            if not comment:
                out.append(line)
            elif len(line) <= width and fits(line, comment, width):
                out.append(f"{line.ljust(width)}  # {comment}")
            elif fits(line, comment, len(line)):
                out.append(f"{line}  # {comment}")
            else:
                out.extend([*(f"# {part}" for part in textwrap.wrap(comment, WIDTH - 2)), line])
        block.clear()

    for row in rows:
        if isinstance(row, str):
            flush()
            out += ["", f"# ---- {row}"]
        else:
            name, value, comment = row
            block.append((name, _literal(value, indent=len(name) + 3), comment))
    flush()
    return "\n".join(out).lstrip("\n") + "\n"


def _script(docstring: str, imports: str, constants: str, body: str) -> str:
    return (f'"""{docstring.strip()}\n"""\n\n{imports.strip()}\n\n{constants.strip()}\n\n\n'
            f"{_SHOW.strip()}\n\n\n{body.strip()}\n")


#: The output helper every script defines.
_SHOW = '''
def show(name, value):
    """Print one result as ``name: value`` (floats at full precision, lists as literals)."""
    if isinstance(value, (float, np.floating)):
        value = repr(float(value))
    elif isinstance(value, (list, tuple, np.ndarray)):
        value = repr([float(v) for v in value])
    print(f"{name}: {value}", flush=True)
'''

_NEEDS = ("Needs numpy, pandas, nibabel, nilearn and scikit-learn only. Prints one result a\n"
          "line, ``name: value``, the last one the app's summary; writes the map to OUTPUT.")


def _absolute(path) -> str:
    return os.path.abspath(str(path))


def _uploaded_note() -> str:
    return ("Data: your uploaded files, by the names you gave them: run this script in the\n"
            "folder that holds them.")


# --------------------------------------------------------------------------- connectivity

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
    value_range = f"z in [{{np.nanmin(fisher_z):.2f}}, {{np.nanmax(fisher_z):.2f}}]"
    above = f"|z| >= {{threshold:.2f}}"
else:
    value_range = f"r in [{{r.min():.2f}}, {{r.max():.2f}}]"
    above = f"above {{THRESHOLD:g}}"
show("summary", f"seed {{seed_text}} r={{RADIUS_MM:g}} mm: {{n_seed_voxels:,}} voxels; "
                f"{{value_range}}; {{n_above:,}} voxels {{above}}")
'''
    return _script(docstring, imports, constants, body)


# --------------------------------------------------------------------------- decoding

def _decoding_files(model, files: dict | None) -> tuple[dict, str]:
    """The files a decoding script reads (func, mask, labels) and a line saying whose.

    ``files`` (role -> name) replaces the data's own paths: a session's uploads, by
    the names the user gave them, read from the folder the script runs in.
    """
    from .decoding import PRIVATE

    data = model.data
    info = data.info
    files = {r: str(f) for r, f in (files or {}).items() if f}
    mask = info.get("mask_files", {}).get(model.mask)
    labels = info.get("labels")
    if files or info.get(PRIVATE):  # uploads: by name, in the current folder
        own = {"func": Path(data.func).name, "mask": Path(mask or "mask.nii.gz").name,
               "labels": Path(labels or "labels.txt").name}
        return {r: files.get(r, own[r]) for r in own}, _uploaded_note()
    if labels is None:
        raise DataError("the labels file of this data is not known: a script cannot read it")
    if mask is None:
        raise DataError(f"the mask {model.mask!r} is an image in memory: a script needs "
                        f"its file")
    if data.source == "user files":
        note = "Data: your files."
    else:
        kind = "synthetic Haxby-like" if data.source == "synthetic" else "Haxby 2001"
        note = (f"Data: subject {info.get('subject', 2)} of the {kind} dataset (nilearn's "
                f"fetch_haxby layout).")
    return ({"func": _absolute(data.func), "mask": _absolute(mask),
             "labels": _absolute(labels)}, note)


def decoding_script(model, map_kind: str = "weights", threshold: float = 0.0,
                    files: dict | None = None) -> str:
    """A script reproducing a :class:`~analysis.decoding.DecodingAnalysis`.

    The Haxby tutorial with the model's data and parameters: ``NiftiMasker``
    (the chosen mask, ``standardize``) on every volume, the chosen
    conditions' volumes, ``SVC(kernel="linear", C)`` or
    ``LogisticRegression(C)``, ``cross_val_score`` with unshuffled
    ``KFold(n_folds)`` or ``LeaveOneGroupOut`` on the runs; the decoder fitted
    on all samples for the training accuracy and the map (``map_kind``:
    ``"weights"``, or ``"pattern"``, the Haufe activation pattern); with a
    permutation test run for these parameters, ``permutation_test_score``
    too. Prints ``n_samples``, ``n_voxels``, ``fold_scores``, ``mean_score``,
    ``chance``, ``train_score``, (``p_value``), ``contrast``, ``map_peak``
    (max |value|), ``threshold``, ``n_above_threshold`` (|value| >= threshold),
    ``map_file`` and ``summary``.

    ``files``: the names the script reads instead of the data's own paths,
    ``{"func", "mask", "labels"}`` (a session's uploads, by the names the user
    gave them).
    """
    if map_kind not in ("weights", "pattern"):
        raise DataError(f"map_kind must be weights or pattern, not {map_kind!r}")
    paths, data_note = _decoding_files(model, files)
    labels = model.data.labels
    code_names = None
    if "code" in labels:  # numeric codes, named as the app named them
        pairs = labels[["code", "labels"]].drop_duplicates().sort_values("code")
        code_names = {int(c): str(n) for c, n in zip(pairs["code"], pairs["labels"])}
    perm = model.permutation_result
    n_permutations = (int(perm.sizes["permutation"]) if perm is not None
                      and perm.attrs.get("key") == repr(model._cv_key()) else 0)
    output = f"{map_kind}_map.nii.gz"

    docstring = f"""
Decoding with a linear classifier, as fmri-explorer's Decoding tab computed it.

Reproduces nilearn's "A introduction tutorial to fMRI decoding" (Haxby et al.
2001, plot_decoding_tutorial.py) with the tab's settings: the masked, standardised
fMRI volumes of the chosen conditions, a cross-validated linear classifier, and
the decoder's weights (or its activation pattern) on the brain.

{data_note}

{_NEEDS}
"""
    imports = """
import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.maskers import NiftiMasker
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (KFold, LeaveOneGroupOut, cross_val_score,
                                     permutation_test_score)
from sklearn.svm import SVC
"""
    rows = [
        "data",
        ("FUNC", paths["func"], "4D functional image (x, y, z, time)"),
        ("MASK", paths["mask"], f"mask of the voxels decoded from ({model.mask})"),
        ("LABELS", paths["labels"], "one row a volume: condition and run"),
    ]
    if code_names is not None:
        rows.append(("LABEL_NAMES", code_names, "the name of each numeric label code"))
    rows += [
        "decoder",
        ("CONDITIONS", [str(c) for c in model.conditions], "the conditions to discriminate"),
        ("STANDARDIZE", "zscore_sample" if model.standardize else None,
         "z-score each voxel over all volumes (None: no)"),
        ("CLASSIFIER", model.classifier, '"svc": linear SVC; "logistic": logistic regression'),
        ("C", float(model.C), "inverse regularisation strength"),
        ("CV", model.cv, '"run": leave-one-run-out; "kfold": KFold(N_FOLDS)'),
        ("N_FOLDS", int(model.n_folds), "folds of KFold"),
        ("N_PERMUTATIONS", n_permutations, "permutation test (0: none)"),
        ("RANDOM_STATE", int(model.random_state), "seed of the permutations"),
        "map",
        ("MAP", map_kind, '"weights": the decoder\'s; "pattern": Haufe et al. 2014'),
        ("CONTRAST", int(model.contrast), "which decoder's map, with more than two conditions"),
        ("THRESHOLD", float(threshold), "voxels with |value| below are hidden"),
        ("OUTPUT", output, "the map as NIfTI"),
    ]
    constants = _constants(rows)
    if code_names is not None:
        read_labels = '''
# PyMVPA-style attributes: "code run" a row, no header
raw = pd.read_csv(LABELS, sep=r"[\\s,]+", header=None, engine="python")
labels = pd.DataFrame({"labels": raw[0].astype(int).map(LABEL_NAMES),
                       "chunks": raw[1].astype(int)})
'''
    else:
        read_labels = '''
# nilearn's Haxby labels: header "labels chunks", one row a volume
labels = pd.read_csv(LABELS, sep=r"\\s+")
'''
    body = f'''
# ---- the fMRI data: every volume, masked (and standardised), as the tutorial
mask = nib.load(MASK)
mask_data = np.asarray(mask.dataobj).reshape(mask.shape[:3])
mask_img = nib.Nifti1Image((mask_data != 0).astype(np.uint8), mask.affine)
masker = NiftiMasker(mask_img=mask_img, standardize=STANDARDIZE)
fmri_masked = masker.fit_transform(FUNC)  # (n_volumes, n_voxels)

# ---- the volumes of the chosen conditions
{read_labels.strip()}
condition_mask = labels["labels"].isin(CONDITIONS).to_numpy()
X = fmri_masked[condition_mask]
y = labels["labels"].to_numpy()[condition_mask].astype(str)
runs = labels["chunks"].to_numpy()[condition_mask]

# ---- the classifier and the cross-validation
if CLASSIFIER == "svc":
    decoder = SVC(kernel="linear", C=C)
else:
    decoder = LogisticRegression(C=C, max_iter=2000)
if CV == "run":
    cv, groups = LeaveOneGroupOut(), runs  # each run held out in turn
    cv_name = "leave-one-run-out"
else:
    cv, groups = KFold(n_splits=N_FOLDS), None  # unshuffled, as the tutorial
    cv_name = f"KFold({{N_FOLDS}})"
fold_scores = cross_val_score(decoder, X, y, cv=cv, groups=groups)  # accuracy
mean_score = float(np.mean(fold_scores))
chance = float(pd.Series(y).value_counts().max() / len(y))  # the largest class

# ---- trained on all samples: the training accuracy and the map
decoder.fit(X, y)
train_score = float(np.mean(decoder.predict(X) == y))
coef = np.atleast_2d(decoder.coef_)  # (n_decoders, n_voxels)
row = min(CONTRAST, len(coef) - 1)
classes = [str(c) for c in decoder.classes_]
if len(classes) == 2:
    contrast = f"{{classes[1]}} (+) vs {{classes[0]}} (-)"
elif CLASSIFIER == "svc":  # one-vs-one: pairs (i, j), i < j
    pairs = [(i, j) for i in range(len(classes)) for j in range(i + 1, len(classes))]
    contrast = f"{{classes[pairs[row][0]]}} (+) vs {{classes[pairs[row][1]]}} (-)"
else:
    contrast = f"{{classes[row]}} (+) vs rest"
if MAP == "weights":
    values = coef[row]
else:
    # activation pattern A = cov(X) w / var(X w) (Haufe et al. 2014)
    Xc = X - X.mean(axis=0)
    s = Xc @ coef[row]
    var_s = s.var(ddof=1) or 1.0
    values = Xc.T @ s / (len(X) - 1) / var_s
n_above = int((np.abs(values) >= THRESHOLD).sum())
masker.inverse_transform(values).to_filename(OUTPUT)

# ---- results, as the tab's summary shows them
show("n_samples", len(y))
show("n_voxels", X.shape[1])
show("fold_scores", fold_scores)
show("mean_score", mean_score)
show("chance", chance)
show("train_score", train_score)
summary = (f"{{' vs '.join(CONDITIONS)}}, {{type(decoder).__name__}} C={{C:g}}, {{cv_name}}: "
           f"{{mean_score:.3f}} (chance {{round(chance, 3)}}, train {{round(train_score, 3)}})")
if N_PERMUTATIONS:
    # labels shuffled (within runs for leave-one-run-out), the same folds
    score, null, p_value = permutation_test_score(
        decoder, X, y, groups=groups, cv=cv, n_permutations=N_PERMUTATIONS,
        random_state=RANDOM_STATE)
    show("p_value", p_value)
    summary += f", p={{p_value:.3g}} ({{N_PERMUTATIONS}} permutations)"
show("contrast", contrast)
show("map_peak", np.abs(values).max())
show("threshold", THRESHOLD)
show("n_above_threshold", n_above)
show("map_file", OUTPUT)
show("summary", summary)
'''
    return _script(docstring, imports, constants, body)


# --------------------------------------------------------------------------- encoding

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
    from .datasets import miyawaki

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
