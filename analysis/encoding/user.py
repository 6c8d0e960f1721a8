"""Encoding on the user's own files: runs, a mask, one feature table per run (issue 16).

The default pipeline, so that results can be checked against a few lines of nilearn and
scikit-learn (``tests/test_encoding_user.py`` does):

* each run masked with ``MultiNiftiMasker(mask_img=MASK, detrend=True,
  standardize="zscore_sample")``;
* each run's features delayed by each delay in volumes (rows shifted down, zeros at the
  start of the run), the delayed copies side by side (delays ``[2]`` by default: the
  Miyawaki example's lag);
* runs concatenated; ``KFold(K)`` unshuffled or leave-one-run-out; ``Ridge(alpha)`` per
  fold, ``r2_score(..., multioutput="raw_values")``, mean over folds.

The ridge is the project's fast engine (:class:`analysis.encoding.engine.RidgeCV`: one
decomposition per fold, then any alpha); :func:`best_alphas` is the alpha of the best
fold-mean R^2 per voxel over a grid (as himalaya's ``RidgeCV`` picks it).

Feature files: ``.npy`` (a 2D numeric array; the header's shape is checked before the
data is read), ``.csv`` or ``.tsv`` (header optional), one row per volume, one column per
feature, any number of features.

:class:`UserEncodingData` is also what the Encoding tab analyses when a visitor uploads
their files (``EncodingAnalysis(own=...)``): it carries what the tab's views need beyond
the ridge's inputs (the raw features, a mean image as background, the repetition time,
the user's file names) and, when the features form a square grid, how its pixels are
ordered (:data:`GRID_ORDERS`; column-major as in Miyawaki's label files).
"""

from __future__ import annotations

import csv
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from ..cache import npy_header
from ..config import max_image_bytes, max_upload_bytes
from ..errors import DataError
from ..io import is_number
from ..progress import null_progress

if TYPE_CHECKING:
    import xarray as xr

#: the Miyawaki example's lag, in volumes
DEFAULT_DELAYS = (2,)
FEATURE_SUFFIXES = (".npy", ".csv", ".tsv")
#: The most delays (volumes) a model takes, and the largest delay.
MAX_DELAYS, MAX_DELAY = 10, 20
#: How a square number of features is drawn as an image: the pixels' order in a row of
#: the table (``"F"``: column-major, as Miyawaki's label files and nilearn's example
#: reshape them; ``"C"``: row-major), or ``None``: never an image.
GRID_ORDERS = ("F", "C", None)


@dataclass
class UserEncodingData:
    """The masked runs and their delayed features, ready for the ridge.

    ``x``: ``(n_samples, n_features * len(delays))``, the delayed copies side by side
    (delay-major: all features at the first delay, then at the second...); ``y``:
    ``(n_samples, n_voxels)``; ``runs``: each sample's run (0-based).
    """

    x: np.ndarray
    y: np.ndarray
    runs: np.ndarray
    mask_img: object
    delays: tuple
    n_features: int
    feature_names: list
    grid: tuple | None   # (rows, cols) when the features form a square image (10 x 10)
    #: the features as read, runs stacked: ``(n_samples, n_features)`` (no delay)
    features: np.ndarray | None = None
    #: the first run (its mean image is the display's background), its repetition time (s)
    first_run: object = None
    t_r: float | None = None
    #: the pixel order of :attr:`grid` (see :data:`GRID_ORDERS`)
    order: str = "F"
    #: the user's names of the files: ``{"runs": [...], "mask": name, "features": [...]}``
    files: dict = field(default_factory=dict)
    #: who holds what is computed from it in the process' stores (a session's id)
    owner: object = None
    #: an unguessable key of this data (the stores' keys; no other session can name it)
    key: str = field(default_factory=lambda: f"own-{uuid.uuid4().hex}")
    #: no planted truth (synthetic data only), no disk cache: the user's data stays in memory
    truth = None
    cache_key = None
    source = "your files"

    @property
    def n_voxels(self) -> int:
        return int(self.y.shape[1])

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    @property
    def background(self):
        """The first run's mean image (the display's background; computed when first
        asked: the command line never needs it), or None."""
        if self.first_run is None:
            return None
        if "_background" not in self.__dict__:
            img = self.first_run
            self.__dict__["_background"] = nib.Nifti1Image(
                np.asarray(img.dataobj, dtype=np.float32).mean(axis=3), img.affine)
        return self.__dict__["_background"]

    @property
    def fmri(self) -> np.ndarray:
        """The masked runs, stacked: ``(n_samples, n_voxels)`` (as ``EncodingData.fmri``)."""
        return self.y

    @property
    def run_lengths(self) -> list:
        return [int(n) for n in np.bincount(self.runs)]

    def weights(self, coef) -> "xr.DataArray":
        """One voxel's coefficients ``(n_features * n_delays,)`` (delay-major) as a
        DataArray: ``(delay, row, col)`` when the features form a grid, else
        ``(delay, feature)`` with the features' names."""
        import xarray as xr

        values = np.asarray(coef, dtype=np.float64).reshape(len(self.delays), self.n_features)
        if self.grid is not None:
            values = values.reshape((len(self.delays),) + tuple(self.grid), order=self.order)
            return xr.DataArray(values, dims=("delay", "row", "col"),
                                coords={"delay": list(self.delays)})
        return xr.DataArray(values, dims=("delay", "feature"),
                            coords={"delay": list(self.delays),
                                    "feature": np.arange(self.n_features),
                                    "name": ("feature", list(self.feature_names))})

    def coefficients(self, coef, **attrs) -> "xr.DataArray":
        """Every voxel's coefficients ``(n_voxels, n_features * n_delays)`` as
        :meth:`weights` with a leading ``voxel`` dimension (named ``coef``)."""
        import xarray as xr

        one = self.weights(np.zeros(len(self.delays) * self.n_features))
        values = np.stack([self.weights(c).values for c in coef]) if len(coef) else \
            np.empty((0,) + one.shape)
        return xr.DataArray(values, dims=("voxel",) + one.dims, name="coef", attrs=attrs,
                            coords={"voxel": np.arange(len(values)), **one.coords})

    def stimulus(self, sample: int) -> "xr.DataArray":
        """The features of volume ``sample`` (no delay): ``(row, col)`` on a grid, else
        ``(feature,)``."""
        import xarray as xr

        row = np.asarray(self.features[int(sample)], dtype=np.float64)
        if self.grid is not None:
            return xr.DataArray(row.reshape(self.grid, order=self.order), dims=("row", "col"))
        return xr.DataArray(row, dims=("feature",),
                            coords={"name": ("feature", list(self.feature_names))})


def load_features(path) -> tuple[np.ndarray, list]:
    """One run's feature table: ``(values (n_volumes, n_features), names)``.

    Bounded before it is read: a text table by its file size (the upload limit), an
    ``.npy`` by the shape and type its header declares (the image limit)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "is not a file", path)
    suffix = path.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise DataError(f"features must be {', '.join(FEATURE_SUFFIXES)} (one row per volume, "
                        f"one column per feature)", path)
    if suffix == ".npy":
        values = _load_npy(path)
        names = [f"feature {i}" for i in range(values.shape[1])]
    else:
        values, names = _load_table(path, "\t" if suffix == ".tsv" else ",")
    if not np.isfinite(values).all():
        raise DataError("features contain NaN or infinite values", path)
    return values, names


def _load_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            shape, _, dtype = npy_header(f)
    except (ValueError, OSError) as exc:
        raise DataError(f"not a .npy array ({exc})", path) from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DataError(f"features must be numbers, not {dtype}", path)
    if len(shape) != 2:
        raise DataError(f"features must be a 2D array (volumes x features), not shape {shape}",
                        path)
    declared = math.prod(shape) * dtype.itemsize
    if declared > max_image_bytes():
        raise DataError(f"declares {declared / 2**20:,.0f} MB of features, over the "
                        f"{max_image_bytes() / 2**20:,.0f} MB limit", path)
    return np.load(path, allow_pickle=False).astype(np.float64)


def _load_table(path: Path, sep: str) -> tuple[np.ndarray, list]:
    size = path.stat().st_size
    if size > max_upload_bytes():
        raise DataError(f"{size / 2**20:,.0f} MB, over the {max_upload_bytes() / 2**20:,.0f} "
                        f"MB limit for a feature table", path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter=sep) if r and any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the feature table ({exc})", path) from None
    if not rows:
        raise DataError("no rows", path)
    header = not all(is_number(c) for c in rows[0])
    names = [c.strip() for c in rows[0]] if header else [f"feature {i}"
                                                          for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    width = len(names)
    for n, row in enumerate(body, start=2 if header else 1):
        if len(row) != width:
            raise DataError(f"line {n} has {len(row)} values, not {width}", path)
    try:
        values = np.array(body, dtype=np.float64).reshape(len(body), width)
    except ValueError:
        raise DataError("non-numeric feature values (only the first line may be a header)",
                        path) from None
    if not len(body):
        raise DataError("no rows of values", path)
    return values, names


def delay_features(x: np.ndarray, delays) -> np.ndarray:
    """One run's features delayed by each delay (rows shifted down, zeros at the start),
    the copies side by side: ``(n_volumes, n_features * len(delays))``."""
    n = x.shape[0]
    copies = []
    for d in delays:
        shifted = np.zeros_like(x)
        if d < n:
            shifted[d:] = x[:n - d]
        copies.append(shifted)
    return np.hstack(copies)


def check_delays(delays) -> tuple:
    delays = tuple(int(d) for d in delays)
    if not delays or any(d < 0 for d in delays) or len(set(delays)) != len(delays):
        raise DataError(f"delays must be distinct whole numbers of volumes, 0 or more "
                        f"(got {list(delays)})")
    return delays


def parse_delays(text) -> tuple:
    """Delays typed by a user (``"2"``, ``"1 2 3"``, ``"1, 2"``): distinct whole numbers
    of volumes from 0 to :data:`MAX_DELAY`, at most :data:`MAX_DELAYS` of them; a
    one-line :class:`DataError` otherwise (the text is not repeated: it may be anything)."""
    parts = [p for p in re.split(r"[\s,;]+", str(text or "").strip()) if p]
    if not parts or not all(re.fullmatch(r"\d{1,3}", p) for p in parts):
        raise DataError(f"delays: give whole numbers of volumes from 0 to {MAX_DELAY}, "
                        f"e.g. 2 or 1 2 3")
    delays = tuple(int(p) for p in parts)
    if max(delays) > MAX_DELAY:
        raise DataError(f"delays: at most {MAX_DELAY} volumes")
    if len(set(delays)) != len(delays):
        raise DataError("delays: each delay once")
    if len(delays) > MAX_DELAYS:
        raise DataError(f"delays: at most {MAX_DELAYS} of them")
    return delays


def natural_key(name: str) -> tuple:
    """Sort key of a file name with its numbers as numbers (``run2`` before ``run10``)."""
    return tuple(int(t) if t.isdigit() else t.lower()
                 for t in re.split(r"(\d+)", str(name)))


def load_user_encoding(funcs, mask, stimuli, delays=DEFAULT_DELAYS,
                       progress=None, order: str | None = "F") -> UserEncodingData:
    """Mask the runs and delay their features (see the module); ``order``: how a square
    number of features forms an image (:data:`GRID_ORDERS`)."""
    from nilearn.maskers import MultiNiftiMasker

    from ..io import load_func, load_mask, t_r_of

    progress = progress or null_progress
    if order not in GRID_ORDERS:
        raise DataError(f"the grid order must be one of {GRID_ORDERS}, not {order!r}")
    funcs, stimuli = list(funcs), list(stimuli)
    if len(funcs) != len(stimuli):
        raise DataError(f"{len(funcs)} runs but {len(stimuli)} feature files: give one feature "
                        f"file per run, in the same order")
    delays = check_delays(delays)
    tables, names = [], None
    for path in stimuli:
        values, columns = load_features(path)
        if tables and values.shape[1] != tables[0].shape[1]:
            raise DataError(f"{values.shape[1]} features, but the first run has "
                            f"{tables[0].shape[1]}", path)
        tables.append(values)
        names = names or columns
    images = []
    for i, (path, table) in enumerate(zip(funcs, tables)):
        img = load_func(path)
        if img.shape[3] != table.shape[0]:
            raise DataError(f"{img.shape[3]} volumes but {table.shape[0]} feature rows in "
                            f"{Path(stimuli[i]).name}", path)
        if images and (img.shape[:3] != images[0].shape[:3]
                       or not np.allclose(img.affine, images[0].affine, atol=1e-3)):
            raise DataError(f"not on the first run's grid (shape {tuple(img.shape[:3])} vs "
                            f"{tuple(images[0].shape[:3])}, or another affine)", path)
        images.append(img)
        progress(0.3 * (i + 1) / len(funcs), f"read run {i + 1}/{len(funcs)}")
    mask_img = load_mask(mask, images[0])
    masker = MultiNiftiMasker(mask_img=mask_img, detrend=True, standardize="zscore_sample")
    progress(0.35, "masking the runs")
    masked = masker.fit_transform(images)
    progress(0.95, "delaying the features")
    x = np.vstack([delay_features(t, delays) for t in tables])
    y = np.vstack(masked).astype(np.float64)
    runs = np.concatenate([np.full(t.shape[0], i) for i, t in enumerate(tables)])
    n_features = tables[0].shape[1]
    side = math.isqrt(n_features)
    grid = (side, side) if side * side == n_features and side > 1 and order else None
    progress(1.0, "ready")
    return UserEncodingData(x=x, y=y, runs=runs, mask_img=masker.mask_img_, delays=delays,
                            n_features=n_features, feature_names=list(names), grid=grid,
                            features=np.vstack(tables), first_run=images[0],
                            t_r=t_r_of(images[0]), order=order or "F")


def engine(data: UserEncodingData, cv: str = "kfold", n_folds: int = 10, dtype=np.float64,
           progress=None):
    """The fast ridge engine on the user's data (one decomposition per fold)."""
    from .engine import RidgeCV, make_folds

    if cv == "kfold" and not 2 <= n_folds <= data.n_samples:
        raise DataError(f"n_folds must be between 2 and the {data.n_samples} samples, "
                        f"not {n_folds}")
    if cv == "run" and len(np.unique(data.runs)) < 2:
        raise DataError("leave-one-run-out needs at least two runs")
    folds = make_folds(data.n_samples, cv=cv, n_folds=n_folds, runs=data.runs)
    return RidgeCV(data.x, data.y, folds, dtype=dtype, progress=progress)


def best_alphas(ridge, alphas) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel, the alpha of ``alphas`` with the best fold-mean R^2, and that R^2."""
    alphas = np.asarray(alphas, dtype=np.float64)
    path = ridge.r2_path(alphas).mean(axis=1)            # (n_alphas, n_voxels)
    best = np.argmax(path, axis=0)
    return alphas[best], path[best, np.arange(path.shape[1])]


def own_files_script(data: UserEncodingData, alpha: float, cv: str = "kfold",
                     n_folds: int = 10, threshold: float = 0.05) -> str:
    """A stand-alone nilearn / scikit-learn script computing what the Encoding tab shows
    on the user's files (the module's pipeline, step by step): the files by the names the
    user gave them (``data.files``), to be run in the folder that holds them. Prints
    ``n_samples``, ``n_voxels``, ``n_features``, ``n_folds``, ``mean_r2``, ``max_r2``,
    ``n_above_threshold`` and ``summary`` and writes the fold-mean R^2 map to OUTPUT."""
    from ..scripts.common import _NEEDS, _constants, _script, _uploaded_note

    files = data.files or {}
    rows = ["data",
            ("RUNS", list(files.get("runs", [])), "the 4D runs, in order"),
            ("MASK", files.get("mask", "mask.nii.gz"), "the mask"),
            ("FEATURES", list(files.get("features", [])),
             "one feature table per run (one row per volume, one column per feature)"),
            "model",
            ("DELAYS", [int(d) for d in data.delays], "volumes between features and response"),
            ("ALPHA", float(alpha), "ridge regularisation (sklearn's Ridge alpha)"),
            ("CV", cv, '"kfold": KFold(N_FOLDS); "run": leave-one-run-out'),
            ("N_FOLDS", int(n_folds), "folds of KFold"),
            "map",
            ("THRESHOLD", float(threshold), "voxels counted above this mean R^2"),
            ("OUTPUT", "r2_map.nii.gz", "the fold-mean R^2 map as NIfTI")]
    docstring = f"""
Voxel-wise ridge encoding on your own files, as fmri-explorer's Encoding tab computed
it (and `fmri-explorer encoding --func RUNS --mask MASK --stimuli FEATURES --delays
DELAYS`): each run masked, detrended and z-scored; its features delayed by each delay
(rows shifted down, zeros at the run's start; the copies side by side); a ridge per
fold, scored by R^2 per voxel, averaged over folds.

{_uploaded_note()}

{_NEEDS}
"""
    imports = """
import numpy as np
import pandas as pd
from nilearn.maskers import MultiNiftiMasker
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, LeaveOneGroupOut
"""
    body = '''
def read_features(path):
    """One run's table: (n_volumes, n_features); a first row of names is skipped."""
    if path.lower().endswith(".npy"):
        return np.load(path).astype(float)
    sep = "\\t" if path.lower().endswith(".tsv") else ","
    table = pd.read_csv(path, sep=sep, header=None, dtype=str, skip_blank_lines=True)
    if pd.to_numeric(table.iloc[0], errors="coerce").isna().any():
        table = table.iloc[1:]  # a header
    return table.astype(float).to_numpy()


def delayed(x, delays):
    """The features shifted down by each delay (zeros first), side by side."""
    copies = []
    for d in delays:
        shifted = np.zeros_like(x)
        shifted[d:] = x[:len(x) - d]
        copies.append(shifted)
    return np.hstack(copies)


# ---- the runs: masked, detrended, z-scored; the features delayed, per run
masker = MultiNiftiMasker(mask_img=MASK, detrend=True, standardize="zscore_sample")
fmri = np.vstack(masker.fit_transform(RUNS))
tables = [read_features(f) for f in FEATURES]
features = np.vstack([delayed(t, DELAYS) for t in tables])
runs = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)])

# ---- cross-validated R^2 of a ridge regression, voxel by voxel
if CV == "run":
    folds = LeaveOneGroupOut().split(features, groups=runs)
else:
    folds = KFold(n_splits=N_FOLDS).split(features)  # unshuffled
scores = []
for train, test in folds:
    predictions = Ridge(alpha=ALPHA).fit(features[train], fmri[train]).predict(features[test])
    scores.append(r2_score(fmri[test], predictions, multioutput="raw_values"))
scores = np.array(scores)  # (n_folds, n_voxels)
mean_r2 = scores.mean(axis=0)
n_above = int((mean_r2 > THRESHOLD).sum())
masker.inverse_transform(mean_r2).to_filename(OUTPUT)

show("n_samples", len(features))
show("n_voxels", mean_r2.size)
show("n_features", tables[0].shape[1])
show("n_folds", len(scores))
show("mean_r2", mean_r2.mean())
show("max_r2", mean_r2.max())
show("n_above_threshold", n_above)
show("summary", f"alpha={ALPHA:.4g} folds={len(scores)} mean R2={mean_r2.mean():.3f} "
                f"voxels above {THRESHOLD:g}: {n_above}")
'''
    return _script(docstring, imports, _constants(rows), body)
