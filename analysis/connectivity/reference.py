"""The seed example's pipeline, verbatim in substance: the reference the fast
engine (:mod:`analysis.connectivity`) is tested and benchmarked against.

``NiftiSpheresMasker`` (sphere mean, unsmoothed, cleaned, z-scored) and
``NiftiMasker`` (smoothed, cleaned, z-scored) with the same cleaning, then
``dot(brain.T, seed) / n_volumes``.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np


def reference_seed_map(func, seed_mm, radius_mm=8.0, confounds=None, mask_img=None,
                       settings=None, dtype=np.float64):
    """The seed's r map: ``(r, brain_masker)``; ``r`` has shape ``(n_voxels,)``.

    Parameters
    ----------
    func : path or Nifti1Image
    seed_mm : (x, y, z)
    radius_mm : float
    confounds : path, array or None
        Passed to both maskers' ``fit_transform`` (as the seed does).
    mask_img : Nifti1Image or None
        None: the brain masker computes its background mask (the seed's default).
    settings : analysis.connectivity.CleaningSettings, optional
        Default: the seed's (6 mm, detrend, 0.01-0.1 Hz, zscore_sample, t_r 2).
    dtype : numpy dtype or None
        Cast the image (float64: the precise reference); None keeps it.
    """
    from nilearn.maskers import NiftiMasker, NiftiSpheresMasker

    from ..preprocessing import CleaningSettings

    settings = settings or CleaningSettings()
    img = nib.load(str(func)) if not isinstance(func, nib.spatialimages.SpatialImage) else func
    if dtype is not None:
        img = nib.Nifti1Image(img.get_fdata(dtype=dtype), img.affine, img.header)
        img.set_data_dtype(dtype)
    common = settings.masker_kwargs()   # every setting the maskers take (the sphere: unsmoothed)
    conf = None if confounds is None else [confounds]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed_masker = NiftiSpheresMasker([tuple(seed_mm)], radius=radius_mm, **common)
        seed_time_series = seed_masker.fit_transform(img, confounds=conf)
        brain_masker = NiftiMasker(mask_img=mask_img, smoothing_fwhm=settings.fwhm, **common)
        brain_time_series = brain_masker.fit_transform(img, confounds=conf)
    # the population z-score ("zscore"), which nilearn 0.14 no longer offers
    seed_time_series = settings.standardized(seed_time_series)
    brain_time_series = settings.standardized(brain_time_series)
    r = np.dot(brain_time_series.T, seed_time_series) / seed_time_series.shape[0]
    return r[:, 0], brain_masker
