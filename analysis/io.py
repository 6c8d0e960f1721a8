"""The user's own files: a 4D NIfTI, a mask, labels, stimuli and confounds.

Every reader validates what it reads and raises :class:`~analysis.errors.DataError`
naming the file and the problem: a file that is not NIfTI, a 3D image where 4D
is needed, a mask whose shape or affine does not match the data, a labels or
confounds file whose length differs from the number of volumes, an unknown
label, NaN or constant voxels.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .errors import DataError
from .volumes import load_img

#: Haxby 2001 category codes as used by PyMVPA's attribute files.
HAXBY_CODES = {0: "rest", 1: "face", 2: "house", 3: "shoe", 4: "cat",
               5: "scissors", 6: "scrambledpix", 7: "bottle", 8: "chair"}


def load_func(path) -> nib.Nifti1Image:
    """A 4D functional image; a clear error for anything else."""
    img = load_img(path)
    if len(img.shape) != 4:
        raise DataError(f"a 4D image (x, y, z, time) is needed, this one is "
                        f"{len(img.shape)}D with shape {tuple(img.shape)}", path)
    if img.shape[3] < 3:
        raise DataError(f"only {img.shape[3]} volume(s); a time series is needed", path)
    return img


def t_r_of(img, default: float | None = None) -> float | None:
    """The repetition time from the NIfTI header (seconds), or ``default``."""
    zooms = img.header.get_zooms()
    if len(zooms) > 3 and zooms[3] > 0:
        t_r = float(zooms[3])
        units = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
        return t_r / 1000.0 if units == "msec" else t_r
    return default


def load_mask(path, func_img=None, atol: float = 1e-3) -> nib.Nifti1Image:
    """A 3D binary mask; checked against ``func_img``'s grid when given."""
    img = load_img(path)
    shape = tuple(img.shape)
    if len(shape) == 4 and shape[3] == 1:
        img = nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine, img.header)
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"a mask must be a 3D image, this one has shape {shape}", path)
    data = np.asarray(img.dataobj)
    if not np.any(data):
        raise DataError("the mask selects no voxel", path)
    if func_img is not None:
        fshape = tuple(func_img.shape[:3])
        if shape != fshape:
            raise DataError(f"mask shape {shape} does not match the data's {fshape}", path)
        if not np.allclose(img.affine, func_img.affine, atol=atol):
            raise DataError("mask affine does not match the data's affine "
                            "(resample the mask onto the functional grid)", path)
    return nib.Nifti1Image((data != 0).astype(np.uint8), img.affine)


def check_masked(data: np.ndarray, path=None, what: str = "voxels", mask=None) -> np.ndarray:
    """Refuse NaN/inf and constant time series in masked data ``(n_volumes, n_voxels)``.

    nilearn's maskers read NaN and infinity as 0, so masked data alone cannot
    show them: when voxels look constant and ``path`` is the image they came
    from, the image itself is searched (inside ``mask`` when given), so that a
    NaN image is reported as one, not as constant voxels.
    """
    bad = ~np.isfinite(data)
    if bad.any():
        n = int(bad.any(axis=0).sum())
        raise DataError(f"{n} {what} in the mask contain NaN or infinite values", path)
    constant = np.ptp(data, axis=0) == 0
    if mask is not None or constant.any():
        _refuse_nonfinite_file(path, mask, what)
    if constant.any():
        raise DataError(f"{int(constant.sum())} {what} in the mask have a constant "
                        f"time series (use a tighter mask)", path)
    return data


def _refuse_nonfinite_file(path, mask, what) -> None:
    """:func:`check_finite` on the image file ``path`` when it is one (else nothing)."""
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        return
    try:
        n = count_nonfinite(path, mask)
    except (DataError, OSError, ValueError):
        return  # not readable as an image here: the caller's message stands
    if n:
        _raise_nonfinite(n, path, mask is not None, what)


def _raise_nonfinite(n: int, path, in_mask: bool, what: str):
    what = what[:-1] if n == 1 and what.endswith("s") else what
    where = "in the mask " if in_mask else ""
    raise DataError(f"the image contains NaN or infinite values ({n} {what} {where}affected)",
                    path if isinstance(path, (str, Path)) else None)


def count_nonfinite(img, mask=None, chunk_bytes: int = 64 << 20) -> int:
    """How many voxels (inside ``mask`` when given) hold NaN or infinity at some time point.

    Integer images cannot hold them (0 at once). Float images are read a few
    volumes at a time from the file (at most ``chunk_bytes`` at once), so the
    check never needs the whole image in memory.
    """
    if isinstance(img, (str, Path)):
        load_img(img)  # checked (cap, truncation) first
        # one open file for every chunk: a gzip stream is then read once, forwards
        img = nib.load(str(img), keep_file_open=True)
    img = load_img(img)
    dtype = np.dtype(img.get_data_dtype())
    if dtype.kind not in "fc":
        scl = getattr(img.header, "get_slope_inter", lambda: (None, None))()
        if not any(v is not None and not np.isfinite(v) for v in scl):
            return 0
    sel = None
    if mask is not None:
        sel = np.asarray(load_img(mask).dataobj).astype(bool)
        if sel.ndim == 4 and sel.shape[3] == 1:
            sel = sel[..., 0]
        if sel.shape != tuple(img.shape[:3]):
            sel = None
    shape = tuple(img.shape)
    n_vol = shape[3] if len(shape) > 3 else 1
    per_volume = int(np.prod(shape[:3])) * max(dtype.itemsize, 4)
    step = max(1, chunk_bytes // max(per_volume, 1))
    seen = None
    proxy = img.dataobj
    for start in range(0, n_vol, step):
        if len(shape) > 3:
            block = np.asarray(proxy[..., start:start + step])
            bad = ~np.isfinite(block).all(axis=3)
        else:
            block = np.asarray(proxy)
            bad = ~np.isfinite(block)
            if bad.ndim > 3:
                bad = bad.reshape(bad.shape[:3] + (-1,)).any(axis=3)
        seen = bad if seen is None else (seen | bad)
    if seen is None:
        return 0
    return int(seen[sel].sum()) if sel is not None else int(seen.sum())


def check_finite(img, mask=None, what: str = "voxels") -> None:
    """Refuse an image with NaN or infinite values (inside ``mask`` when given)."""
    n = count_nonfinite(img, mask)
    if n:
        _raise_nonfinite(n, img, mask is not None, what)


def read_label_names(path) -> dict:
    """A code-to-name table: JSON ``{"1": "face"}`` or lines ``code name``."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    text = path.read_text()
    try:
        if text.lstrip().startswith("{"):
            table = {int(k): str(v) for k, v in json.loads(text).items()}
        else:
            table = {}
            for line in text.splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                code, name = line.replace(",", " ").replace("\t", " ").split(None, 1)
                table[int(code)] = name.strip()
    except (ValueError, json.JSONDecodeError):
        raise DataError("expected lines 'code name' or a JSON object of code: name", path) from None
    if not table:
        raise DataError("no label names found", path)
    return table


def load_labels(path, n_volumes: int | None = None, names=None) -> pd.DataFrame:
    """Per-volume labels and runs as a DataFrame with columns ``labels`` and ``chunks``.

    Two formats: nilearn's Haxby ``labels.txt`` (header ``labels chunks``,
    space separated, string labels), and headerless numeric ``label run``
    columns (PyMVPA's ``attributes.txt``) whose codes are named by ``names``
    (a dict or a file, see :func:`read_label_names`; default: the Haxby codes).
    The numeric code is kept in a ``code`` column when there is one.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    try:
        first = path.read_text().split("\n", 1)[0].split()
    except UnicodeDecodeError:
        raise DataError("not a text labels file", path) from None
    try:
        if first and not is_number(first[0]):
            df = pd.read_csv(path, sep=r"\s+")
            if not {"labels", "chunks"} <= set(df.columns):
                raise DataError("header must name 'labels' and 'chunks' "
                                f"(found {' '.join(map(str, df.columns))})", path)
            df = df[["labels", "chunks"]].astype({"labels": str, "chunks": int})
        else:
            raw = pd.read_csv(path, sep=r"[\s,]+", header=None, engine="python")
            if raw.shape[1] < 2:
                raise DataError("expected two columns: label run", path)
            codes = raw.iloc[:, 0].astype(int).to_numpy()
            table = HAXBY_CODES if names is None else (
                names if isinstance(names, dict) else read_label_names(names))
            unknown = sorted(int(c) for c in set(codes) - set(table))
            if unknown:
                raise DataError(f"label codes {unknown} have no name in the code-to-name table", path)
            df = pd.DataFrame({"labels": [table[c] for c in codes],
                               "chunks": raw.iloc[:, 1].astype(int).to_numpy(),
                               "code": codes})
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot parse labels ({exc})", path) from None
    if n_volumes is not None and len(df) != n_volumes:
        raise DataError(f"{len(df)} labels for {n_volumes} volumes", path)
    return df


def resolve_label(label, labels: pd.DataFrame) -> str:
    """A condition given as a name or a numeric code, as its name."""
    names = list(dict.fromkeys(labels["labels"]))
    if str(label) in names:
        return str(label)
    if "code" in labels and is_number(str(label)):
        hit = labels.loc[labels["code"] == int(label), "labels"]
        if len(hit):
            return str(hit.iloc[0])
    raise DataError(f"unknown label {label!r}; known: {', '.join(names)}")


def load_confounds(path, n_volumes: int | None = None) -> pd.DataFrame:
    """An fMRIPrep-style confounds TSV (``n/a`` read as NaN); rows checked."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    try:
        df = pd.read_csv(path, sep="\t", na_values=["n/a"])
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse confounds TSV ({exc})", path) from None
    if df.shape[1] == 0:
        raise DataError("no confound columns", path)
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise DataError(f"non-numeric confound columns: {', '.join(non_numeric)}", path)
    if n_volumes is not None and len(df) != n_volumes:
        raise DataError(f"{len(df)} confound rows for {n_volumes} volumes", path)
    return df


def load_stimuli(path, n_volumes: int | None = None, shape=(10, 10)) -> np.ndarray:
    """A Miyawaki-style stimuli CSV: one row of 0/1 pixels per volume, Fortran order.

    Returns ``(n_volumes, *shape)`` ints.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    try:
        flat = np.loadtxt(path, dtype=int, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise DataError(f"cannot parse stimuli CSV ({exc})", path) from None
    size = int(np.prod(shape))
    if flat.shape[1] != size:
        raise DataError(f"each row needs {size} pixels, found {flat.shape[1]}", path)
    if n_volumes is not None and flat.shape[0] != n_volumes:
        raise DataError(f"{flat.shape[0]} stimulus rows for {n_volumes} volumes", path)
    return np.reshape(flat, (-1,) + tuple(shape), order="F")


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (a numeric label code, a table's first row)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
