"""One subject's inputs for connectivity: the 4D image, its confounds and mask, read and
checked (:func:`load_subject`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import DataError

# --------------------------------------------------------------------------- subject data

@dataclass
class SubjectData:
    """One subject's inputs: the 4D image, its confounds table and brain mask.

    Attributes
    ----------
    func : Path or None
        The 4D NIfTI file (None for an in-memory image).
    img : nibabel.Nifti1Image
    confounds : pandas.DataFrame or None
        Numeric confounds (``n/a`` read as NaN, then set to 0), one row a volume.
    mask_img : nibabel.Nifti1Image
        Brain mask: given, or computed as the seed's ``NiftiMasker`` does.
    t_r : float
    key : str
        Identifies the data for caching (file, size, mtime, mask, confounds).
    name : str
    """

    func: Path | None
    img: nib.Nifti1Image
    confounds: pd.DataFrame | None
    mask_img: nib.Nifti1Image
    t_r: float
    key: str
    name: str = ""
    confounds_path: Path | None = None
    info: dict = field(default_factory=dict)
    #: the mask file given to :func:`load_subject` (None: computed, or an image in memory)
    mask_path: Path | None = None
    #: the session the data belongs to (an upload), or None (shared): what is computed
    #: from it is dropped when that session ends (:func:`analysis.store.release`)
    owner: Hashable | None = None

    @property
    def n_volumes(self) -> int:
        return int(self.img.shape[3])

    @property
    def confound_names(self) -> list[str]:
        return [] if self.confounds is None else [str(c) for c in self.confounds.columns]


def _file_key(path) -> str:
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def load_subject(func, confounds=None, mask=None, t_r=None, name: str | None = None,
                 info: dict | None = None) -> SubjectData:
    """Read (and check) one subject's files.

    Parameters
    ----------
    func : path or Nifti1Image
        4D functional image.
    confounds : path, DataFrame or None
        fMRIPrep-style TSV (``n/a`` handled: set to 0, e.g. the first row of
        ``framewise_displacement``); rows must match the volumes.
    mask : path, Nifti1Image or None
        Brain mask on the functional grid; None: computed with
        ``nilearn.masking.compute_background_mask``, as the seed's
        ``NiftiMasker`` does.
    t_r : float, optional
        Repetition time; default from the image header.
    """
    from ..io import load_confounds, load_func, load_mask, t_r_of

    if isinstance(func, nib.spatialimages.SpatialImage):
        img, func_path = func, None
        if len(img.shape) != 4:
            raise DataError(f"a 4D image (x, y, z, time) is needed, got shape {img.shape}")
        key = "img:" + hashlib.sha1(np.ascontiguousarray(img.get_fdata()[..., :3])
                                    .tobytes()).hexdigest()
    else:
        func_path = Path(func)
        img = load_func(func_path)
        key = _file_key(func_path)
    n_volumes = int(img.shape[3])
    t_r = float(t_r) if t_r else t_r_of(img)
    if not t_r:
        raise DataError("no repetition time in the header: give --t-r", func_path)
    conf_df, conf_path = None, None
    if confounds is not None:
        if isinstance(confounds, pd.DataFrame):
            conf_df = confounds.copy()
            if len(conf_df) != n_volumes:
                raise DataError(f"{len(conf_df)} confound rows for {n_volumes} volumes")
            key += ":conf-df:" + hashlib.sha1(pd.util.hash_pandas_object(conf_df).values
                                              .tobytes()).hexdigest()
        else:
            conf_path = Path(confounds)
            conf_df = load_confounds(conf_path, n_volumes=n_volumes)
            key += ":conf:" + _file_key(conf_path)
        conf_df = conf_df.astype(float).fillna(0.0)
    if mask is None:
        from nilearn.masking import compute_background_mask

        from .rawdata import hand_over, unscaled, volumes_from

        # the image is read here for its mask: its first cleaning takes these values
        native = np.asanyarray(img.dataobj)
        mask_img = compute_background_mask(nib.Nifti1Image(native, img.affine))
        if unscaled(img, native) and np.isfinite(native).all():
            hand_over(key + ":mask:background", volumes_from(native))
        del native
        mask_img = nib.Nifti1Image(np.asarray(mask_img.dataobj).astype(np.uint8), img.affine)
        key += ":mask:background"
    else:
        mask_img = load_mask(mask, img)
        key += ":mask:" + (_file_key(mask) if isinstance(mask, (str, Path)) else hashlib.sha1(
            np.asarray(mask_img.dataobj).tobytes()).hexdigest())
    if not np.asarray(mask_img.dataobj).any():
        raise DataError("the brain mask selects no voxel", func_path)
    return SubjectData(func=func_path, img=img, confounds=conf_df, mask_img=mask_img,
                       t_r=t_r, key=key, name=name or (func_path.name if func_path else "image"),
                       confounds_path=conf_path, info=dict(info or {}),
                       mask_path=Path(mask) if isinstance(mask, (str, Path)) else None)


