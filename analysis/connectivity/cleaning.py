"""Cleaning, once per subject and preprocessing setting: the brain matrix as the seed's
brain masker makes it and the seed-domain matrix (:func:`clean_data`), kept in the
process' store (:data:`CACHE`, :func:`cleaned`)."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, replace

import nibabel as nib
import numpy as np

from ..errors import DataError
from ..preprocessing import CleaningSettings
from ..progress import null_progress
from ..store import Store
from .rawdata import MAX_RADIUS_MM, cleaning_matrix, raw_data, smoothed_brain  # noqa: F401
from .rawdata import forget as _forget_raw
from .subject import SubjectData

log = logging.getLogger(__name__)

#: The seed example's PCC seed (MNI mm) and sphere radius.
PCC_MM = (0.0, -52.0, 18.0)
RADIUS_MM = 8.0

# --------------------------------------------------------------------------- cleaning

@dataclass
class CleanedData:
    """A subject's cleaned signals for one preprocessing setting.

    Attributes
    ----------
    brain : ndarray, shape (n_volumes, n_voxels)
        Smoothed, cleaned, standardised brain voxels (the brain masker's output).
    domain : ndarray, shape (n_volumes, n_domain)
        Unsmoothed voxels a sphere can reach, cleaned, not standardised.
    domain_mm : ndarray, shape (n_domain, 3)
        Their MNI coordinates; ``domain_ijk`` their voxel indices,
        ``domain_in_brain`` whether they are brain voxels.
    mask : ndarray of bool, shape (x, y, z)
        The brain mask (voxel order of ``brain``'s columns: C order).
    """

    brain: np.ndarray
    domain: np.ndarray
    domain_mm: np.ndarray
    domain_ijk: np.ndarray
    domain_in_brain: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    settings: CleaningSettings
    subject_key: str
    name: str = ""
    domain_lookup: np.ndarray | None = None

    def __post_init__(self):
        if self.domain_lookup is None:
            lookup = np.full(self.mask.shape, -1, dtype=np.int64)
            lookup[tuple(self.domain_ijk.T)] = np.arange(len(self.domain_ijk))
            self.domain_lookup = lookup
        self.inverse_affine = np.linalg.inv(self.affine)
        self.zooms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def n_volumes(self) -> int:
        return int(self.brain.shape[0])

    @property
    def n_voxels(self) -> int:
        return int(self.brain.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.brain.nbytes + self.domain.nbytes)


def confound_matrix(subject: SubjectData, settings: CleaningSettings,
                    data: np.ndarray | None = None) -> np.ndarray | None:
    """The confounds the cleaning regresses out, ``(n_volumes, k)`` or None: the ticked
    columns of the subject's table and, with ``high_variance_confounds``, as nilearn's
    maskers, the 5 highest-variance components of the whole image's voxels (unmasked,
    unsmoothed; ``data`` is the image's array when already read), before the columns."""
    confounds = None
    if settings.confound_columns and subject.confounds is not None:
        missing = [c for c in settings.confound_columns if c not in subject.confounds.columns]
        if missing:
            raise DataError(f"no confound column(s) {', '.join(missing)}", subject.confounds_path)
        confounds = subject.confounds[list(settings.confound_columns)].to_numpy(dtype=float)
    if settings.high_variance_confounds:
        from nilearn.image import high_variance_confounds

        if data is None:
            data = subject.img.get_fdata(dtype=np.float64, caching="unchanged")
        hv = high_variance_confounds(nib.Nifti1Image(data, np.asarray(subject.img.affine)))
        confounds = hv if confounds is None else np.hstack([hv, confounds])
    return confounds


def clean_data(subject: SubjectData, settings: CleaningSettings, progress=None,
               domain: np.ndarray | None = None, keep_image: bool = False) -> CleanedData:
    """Clean one subject's data for one preprocessing setting (no cache).

    Returns the brain matrix exactly as the seed's ``NiftiMasker`` (same
    mask, smoothing, detrend, band-pass, confounds, high-variance confounds,
    standardisation; float64)
    and the unsmoothed, unstandardised seed-domain matrix.

    The image is read once per subject (:func:`~analysis.connectivity.rawdata.raw_data`);
    the cleaning is nilearn's ``signal.clean`` as a matrix ``L`` (its result on the
    identity: the cleaning is linear in time), applied to the seed domain's series and
    to the smoothed brain voxels' (smoothing, per volume, commutes with it), then
    nilearn's standardisation: equal to nilearn's maskers within rounding
    (tests/test_connectivity_speed_cleaning.py). ``domain``: the cleaned seed domain
    when known (a cleaning with the same settings but the smoothing); ``keep_image``: the
    image read is kept for the subject's next cleanings (:data:`~.rawdata.RAW`; the
    sessions' :func:`cleaned` does), else only used if kept already.
    """
    from nilearn import signal

    progress = progress or null_progress
    settings.check()
    progress(0.0, f"{subject.name}: loading")
    raw = raw_data(subject, keep=keep_image)
    confounds = confound_matrix(subject, settings,
                                raw.image_array() if settings.high_variance_confounds else None)
    progress(0.3, f"{subject.name}: cleaning the seed voxels")
    operator = cleaning_matrix(raw.volumes.shape[0], confounds, settings)
    domain_clean = (operator @ raw.domain_raw.astype(np.float64) if domain is None
                    else domain)
    progress(0.45, f"{subject.name}: smoothing ({settings.fwhm or 0:g} mm)")
    brain_raw = smoothed_brain(raw, settings.fwhm)
    progress(0.8, f"{subject.name}: cleaning the brain voxels")
    brain = operator @ brain_raw
    del brain_raw
    if settings.nilearn_standardize:
        brain = signal.standardize_signal(brain, standardize=settings.nilearn_standardize,
                                          detrend=False)
    brain = settings.standardized(brain)
    progress(1.0, f"{subject.name}: cleaned")
    return CleanedData(
        brain=np.ascontiguousarray(brain), domain=np.ascontiguousarray(domain_clean),
        domain_mm=nib.affines.apply_affine(raw.affine, raw.domain_ijk),
        domain_ijk=raw.domain_ijk, domain_in_brain=raw.domain_in_brain, mask=raw.mask,
        affine=raw.affine, settings=settings, subject_key=subject.key, name=subject.name)


#: Cleaned data per (subject data, settings), shared by every session; an upload's
#: entries belong to its session (``SubjectData.owner``) and go when it ends.
CACHE = Store("connectivity.cleaned", max_entries=4)


#: cleaned matrices kept on disk (the most recently used; about 40 MB each at full size)
DISK_ENTRIES = 48
_DISK_PREFIX = "connectivity-cleaned-"


def disk_key(subject: SubjectData, settings: CleaningSettings) -> str | None:
    """The disk cache key of a built-in (shared) subject's cleaned data: the content of
    its files (:func:`analysis.cache.content_key`) and the settings; None for data that
    must not outlive its session (an upload) or that has no files."""
    from ..cache import content_key

    if subject.owner is not None or subject.func is None:
        return None
    if subject.confounds is not None and subject.confounds_path is None:
        return None   # a confounds table in memory
    parts = [content_key(subject.func),
             content_key(subject.confounds_path) if subject.confounds_path else "-",
             content_key(subject.mask_path) if subject.mask_path else "background",
             f"{subject.t_r!r}", repr(settings)]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:24]


_ARRAYS = ("brain", "domain", "domain_mm", "domain_ijk", "domain_in_brain", "mask", "affine")


def _load_disk(path, subject: SubjectData, settings: CleaningSettings) -> CleanedData | None:
    from ..cache import open_entry, touch

    if not os.path.lexists(path):
        return None
    try:
        with open_entry(path) as fh, np.load(fh, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in _ARRAYS}
        n_vol, n_vox = arrays["brain"].shape
        if (n_vol != subject.n_volumes or arrays["mask"].shape != subject.img.shape[:3]
                or int(arrays["mask"].sum()) != n_vox
                or arrays["domain"].shape != (n_vol, len(arrays["domain_ijk"]))):
            raise ValueError("arrays of another shape")
    except Exception as exc:  # noqa: BLE001 - any damage means: clean again
        log.info("cache entry %s ignored: %s", path, exc)
        return None
    touch(path)
    return CleanedData(**arrays, settings=settings, subject_key=subject.key, name=subject.name)


def _save_disk(path, data: CleanedData) -> None:
    from ..cache import prune, write_atomic

    if write_atomic(path, lambda fh: np.savez(fh, **{k: getattr(data, k) for k in _ARRAYS}),
                    quiet=True):
        prune(_DISK_PREFIX, ".npz", DISK_ENTRIES)


#: disk writes still running (path -> thread): the cleaned data is used at once, written
#: meanwhile (about 80 MB at full size: a few tenths of a second not spent waiting)
_SAVING: dict = {}
_SAVING_LOCK = threading.Lock()


def _save_later(path, data: CleanedData) -> None:
    def save():
        try:
            _save_disk(path, data)
        finally:
            with _SAVING_LOCK:
                _SAVING.pop(str(path), None)

    thread = threading.Thread(target=save, name="connectivity-save", daemon=True)
    with _SAVING_LOCK:
        _SAVING[str(path)] = thread
    thread.start()


def flush_saves(path=None) -> None:
    """Wait for the disk writes still running (of ``path`` only, when given)."""
    with _SAVING_LOCK:
        threads = [t for p, t in _SAVING.items() if path is None or p == str(path)]
    for thread in threads:
        thread.join()


def _sibling_domain(subject: SubjectData, settings: CleaningSettings):
    """The cleaned seed domain of a cached cleaning of ``subject`` that differs from
    ``settings`` by the smoothing only (the domain is not smoothed: the same array)."""
    for key in CACHE.keys():
        if key[0] == subject.key and replace(key[1], smoothing_fwhm=settings.smoothing_fwhm) \
                == settings:
            data = CACHE.get(key)
            if data is not None:
                return data.domain
    return None


def cleaned(subject: SubjectData, settings: CleaningSettings, progress=None) -> CleanedData:
    """:func:`clean_data`, cached per (subject data, settings) for the whole process
    (sessions asking at once wait for one cleaning), and for a built-in subject on disk
    too (the cache folder, keyed by its files' content: a subject seen before, in any
    session or run, loads in a few tens of ms instead of being cleaned again)."""
    def compute():
        key = disk_key(subject, settings)
        if key is None:
            return clean_data(subject, settings, progress=progress,
                              domain=_sibling_domain(subject, settings), keep_image=True)
        from ..cache import cache_file

        path = cache_file(f"{_DISK_PREFIX}{key}.npz")
        flush_saves(path)
        data = _load_disk(path, subject, settings)
        if data is None:
            data = clean_data(subject, settings, progress=progress,
                              domain=_sibling_domain(subject, settings), keep_image=True)
            _save_later(path, data)
        return data

    return CACHE.get_or_compute((subject.key, settings), compute, owner=subject.owner)


def prefetch(subject: SubjectData, settings: CleaningSettings) -> bool:
    """Clean a built-in subject into the cache folder only, not kept in memory (e.g. the
    warm-up's subjects a session may switch to: they then load from disk). False when
    there is nothing to do (in memory or on disk already, or an upload's data)."""
    from ..cache import cache_file

    key = disk_key(subject, settings)
    if key is None or is_cached(subject.key, settings):
        return False
    path = cache_file(f"{_DISK_PREFIX}{key}.npz")
    flush_saves(path)
    if os.path.lexists(path):
        return False
    _save_disk(path, clean_data(subject, settings))       # its image not kept either
    return True


def discard_subject(subject_key: str) -> int:
    """Drop every cleaned matrix of one subject (e.g. a session's upload, when the
    session leaves it); return how many were dropped."""
    _forget_raw(subject_key)
    return CACHE.discard(lambda key: key[0] == subject_key)


def is_cached(subject_key: str, settings: CleaningSettings) -> bool:
    """True when this subject's data cleaned with ``settings`` is in the store."""
    return (subject_key, settings) in CACHE
