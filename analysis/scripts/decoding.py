"""The Decoding tab's script: nilearn's Haxby decoding tutorial.

:func:`decoding_script` renders a :class:`~analysis.decoding.DecodingAnalysis`
as a stand-alone script: ``NiftiMasker``, ``SVC`` (or ``LogisticRegression``),
``cross_val_score``, ``permutation_test_score`` when the tab ran one, and the
decoder's weights (or Haufe pattern) written to NIfTI; :func:`_decoding_files`
picks the files it reads (the data's own, or a session's uploads by name). The
classifiers and CV schemes it offers are the registered ones
(:data:`analysis.decoding.registry.CLASSIFIER_SPECS`,
:data:`analysis.registry.CV_SPECS`): their imports, constructors and names.
"""

from __future__ import annotations

from pathlib import Path

from ..decoding.registry import CLASSIFIER_SPECS
from ..errors import DataError
from ..registry import CV_SPECS
from .common import _NEEDS, _absolute, _constants, _script, _uploaded_note

__all__ = ["decoding_script"]


def _imports(lines) -> str:
    """``from module import a, b`` lines merged by module, sorted, wrapped at 88."""
    plain, names = set(), {}
    for line in lines:
        if line.startswith("from "):
            module, _, items = line[5:].partition(" import ")
            names.setdefault(module, set()).update(n.strip() for n in items.split(","))
        else:
            plain.add(line)
    out = sorted(plain)
    for module in sorted(names):
        head = f"from {module} import "
        items = sorted(names[module])
        line = head + ", ".join(items)
        if len(line) > 88:
            indent = " " * (len(head) + 1)
            rows, row = [], ""
            for item in items:
                if row and len(head) + 1 + len(row) + len(item) + 3 > 88:
                    rows.append(row.rstrip())
                    row = ""
                row += item + ", "
            rows.append(row[:-2])
            line = head + "(" + f"\n{indent}".join(rows) + ")"
        out.append(line)
    return "\n".join(out)


def _branches(var: str, cases: dict) -> str:
    """``if VAR == "a": ...`` over ``cases`` (key -> lines), else an error."""
    out = []
    for i, (key, lines) in enumerate(cases.items()):
        out.append(f'{"if" if i == 0 else "elif"} {var} == "{key}":')
        out += [f"    {line}" for line in lines]
    out += ["else:", f'    raise ValueError(f"unknown {var} {{{var}!r}}")']
    return "\n".join(out)


def _cv_name(spec) -> str:
    """The scheme's name in a summary as a script expression (``N_FOLDS`` the folds)."""
    if "{n_folds}" in spec.title:
        return 'f"' + spec.title.replace("{n_folds}", "{N_FOLDS}") + '"'
    return f'"{spec.title}"'


def _decoding_files(model, files: dict | None) -> tuple[dict, str]:
    """The files a decoding script reads (func, mask, labels) and a line saying whose.

    ``files`` (role -> name) replaces the data's own paths: a session's uploads, by
    the names the user gave them, read from the folder the script runs in.
    """
    from ..decoding import PRIVATE

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
    ``chance``, ``train_score``, (``p_value``), ``contrast`` (with more than two
    conditions: the map of one class, its one-vs-rest decoder's), ``map_peak``
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
    imports = _imports(
        ["import nibabel as nib", "import numpy as np", "import pandas as pd",
         "from nilearn.maskers import NiftiMasker", "from sklearn.base import clone",
         "from sklearn.model_selection import cross_val_score, permutation_test_score"]
        + [spec.imports for spec in CLASSIFIER_SPECS.values()]
        + [spec.imports for spec in CV_SPECS.values()])
    choose_classifier = _branches("CLASSIFIER", {
        key: [f"decoder = {spec.code}"] for key, spec in CLASSIFIER_SPECS.items()})
    choose_cv = _branches("CV", {
        key: [f"cv, groups = {spec.code}, {'runs' if spec.grouped else 'None'}"
              + (f"  # {spec.note}" if spec.note else ""),
              f"cv_name = {_cv_name(spec)}"] for key, spec in CV_SPECS.items()})
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
        ("CLASSIFIER", model.classifier,
         "; ".join(f'"{k}": {spec.label}' for k, spec in CLASSIFIER_SPECS.items())),
        ("C", float(model.C), "inverse regularisation strength"),
        ("CV", model.cv, "; ".join(f'"{k}": {spec.name("N_FOLDS")}'
                                   for k, spec in CV_SPECS.items())),
        ("N_FOLDS", int(model.n_folds), "folds of KFold"),
        ("N_PERMUTATIONS", n_permutations, "permutation test (0: none)"),
        ("RANDOM_STATE", int(model.random_state), "seed of the permutations"),
        "map",
        ("MAP", map_kind, '"weights": the decoder\'s; "pattern": Haufe et al. 2014'),
        ("CONTRAST", int(model.contrast),
         "more than two conditions: the map of CONDITIONS[CONTRAST] vs the others"),
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
{choose_classifier}
{choose_cv}
fold_scores = cross_val_score(decoder, X, y, cv=cv, groups=groups)  # accuracy
mean_score = float(np.mean(fold_scores))
chance = float(pd.Series(y).value_counts().max() / len(y))  # the largest class
# at chance: not above chance + 2 binomial standard errors (each sample tested once)
at_chance = mean_score <= chance + 2 * float(np.sqrt(chance * (1 - chance) / len(y)))

# ---- trained on all samples: the training accuracy and the map
decoder.fit(X, y)
train_score = float(np.mean(decoder.predict(X) == y))
classes = [str(c) for c in decoder.classes_]
if len(classes) == 2:  # one decoder: positive weights favour classes[1]
    w = decoder.coef_[0]
    contrast = f"{{classes[1]}} (+) vs {{classes[0]}} (-)"
else:  # one class's map: its decoder against the other conditions (one vs rest)
    target = CONDITIONS[min(CONTRAST, len(CONDITIONS) - 1)]
    w = clone(decoder).fit(X, y == target).coef_[0]
    contrast = f"{{target}} (+) vs others (-)"
if MAP == "weights":
    values = w
else:
    # activation pattern A = cov(X) w / var(X w) (Haufe et al. 2014)
    Xc = X - X.mean(axis=0)
    s = Xc @ w
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
           f"{{mean_score:.3f}}{{', at chance' if at_chance else ''}} (chance {{round(chance, 3)}}, train {{round(train_score, 3)}})")
if N_PERMUTATIONS:
    # labels shuffled (within runs for leave-one-run-out), the same folds
    score, null, p_value = permutation_test_score(
        decoder, X, y, groups=groups, cv=cv, n_permutations=N_PERMUTATIONS,
        random_state=RANDOM_STATE)
    show("p_value", p_value)
    # the smallest p N permutations can report is 1/(N + 1)
    floor = 1 / (N_PERMUTATIONS + 1)
    p_text = f"p<={{floor:.3g}}" if p_value <= floor * (1 + 1e-9) else f"p={{p_value:.3g}}"
    summary += f", {{p_text}} ({{N_PERMUTATIONS}} permutations)"
show("contrast", contrast)
show("map_peak", np.abs(values).max())
show("threshold", THRESHOLD)
show("n_above_threshold", n_above)
show("map_file", OUTPUT)
show("summary", summary)
'''
    return _script(docstring, imports, constants, body)
