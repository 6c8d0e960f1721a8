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
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import max_image_bytes, max_upload_bytes
from ..errors import DataError
from ..io import is_number
from ..progress import null_progress

#: the Miyawaki example's lag, in volumes
DEFAULT_DELAYS = (2,)
FEATURE_SUFFIXES = (".npy", ".csv", ".tsv")


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

    @property
    def n_voxels(self) -> int:
        return int(self.y.shape[1])

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])


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
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
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


def load_user_encoding(funcs, mask, stimuli, delays=DEFAULT_DELAYS,
                       progress=None) -> UserEncodingData:
    """Mask the runs and delay their features (see the module)."""
    from nilearn.maskers import MultiNiftiMasker

    from ..io import load_func, load_mask

    progress = progress or null_progress
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
    grid = (side, side) if side * side == n_features and side > 1 else None
    progress(1.0, "ready")
    return UserEncodingData(x=x, y=y, runs=runs, mask_img=masker.mask_img_, delays=delays,
                            n_features=n_features, feature_names=list(names), grid=grid)


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
