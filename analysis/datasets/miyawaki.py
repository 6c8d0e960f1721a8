"""Miyawaki 2008 (encoding): a synthetic look-alike and the loader for both.

The synthetic dataset is written in the layout that
:func:`nilearn.datasets.fetch_miyawaki2008` produces under its ``data_dir``::

    data_dir/miyawaki2008/
        func/data_figure_run01..12.nii.gz    func/data_random_run01..20.nii.gz
        label/data_figure_run01..12_label.csv label/data_random_run01..20_label.csv
        mask/mask.nii.gz  mask/{LH,RH}{lag*,V1d,...}.nii.gz   (nilearn's list)
        bg.nii.gz
        synthetic_truth.npz  synthetic.json                  (planted truth, ours)
        .fmri-explorer-synthetic.json                        (manifest: files we wrote)

so the fetcher returns it without network and the seed's code runs unchanged.

Planted structure (``full``): 20 random-image runs x 145 volumes of random
10x10 binary images, each held for 3 volumes (6 s, as in the study: the same
CSV row on 3 consecutive lines; 100 pixels in Fortran order, as in the real
files) and 12 figure runs; a visual-cortex mask of about 5,400 voxels in two
hemispheres; each responsive voxel has a receptive field, a Gaussian blob in
the 10x10 grid whose centre varies smoothly with the voxel's position
(retinotopy: hemisphere -> visual hemifield, posterior -> anterior ->
column, ventral -> dorsal -> row); its response is the receptive field's drive
convolved with an HRF-like kernel (:func:`hrf_kernel`) largest 2 volumes after
the image, so lag 2 explains the most and lags 1 and 3 less but still some;
plus linear and slow drifts and noise; a quarter of the voxels respond to
nothing. ``synthetic_truth.npz`` keeps, in mask order, ``centre`` (row, col,
floats), ``peak`` (row, col of the largest receptive-field weight),
``responsive``, ``amplitude`` and ``rf`` (n_voxels, 10, 10), and the ``hrf``.
A folder of an older generator (``generator_version`` in ``synthetic.json``
other than :data:`GENERATOR_VERSION`) is not :func:`is_present`: it is made again.

:func:`load` reads a synthetic or real folder through the fetcher, applies the
seed's preprocessing (``MultiNiftiMasker(mask_img, detrend=True,
standardize="zscore_sample")`` on the random runs) and caches the cleaned
matrix as ``.npy`` in the cache folder (``data_home()/cache/miyawaki-*.npy``,
keyed on the files' content) so that loading again is fast.

The code is split by job: the fetcher's file layout and the dataset's
constants in :mod:`.miyawaki_layout`, the generator and its planted truth in
:mod:`.miyawaki_synthetic`, reading and cleaning the runs (:func:`load`,
:func:`load_files`, :class:`EncodingData`) here; this module re-exports their
names.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ..cache import cache_file, content_key, load_npy, save_npy
from ..errors import DataError
from ..io import load_func, load_mask, load_stimuli, t_r_of
from ..progress import null_progress, scaled
from .miyawaki_layout import (  # noqa: F401 - re-exported
    GENERATOR_VERSION, INFO_FILE, LAG, MASK_FILES, N_FIGURE_RUNS, N_RANDOM_RUNS, NAME,
    STIMULUS_SHAPE, T_R, TRUTH_FILE, dataset_dir, expected_files, func_files,
    has_fetcher_files, is_present, label_files, mask_files)
from .miyawaki_synthetic import (  # noqa: F401 - re-exported
    RANDOM_BLOCK, SIZES, _geometry, describe, generate, hrf_kernel, load_truth)

# --------------------------------------------------------------------------- loading

def fetch(data_dir):
    """``nilearn.datasets.fetch_miyawaki2008(data_dir=...)``, refusing to download."""
    data_dir = Path(data_dir)
    if not has_fetcher_files(data_dir):
        missing = [f for f in expected_files() if not (dataset_dir(data_dir) / f).is_file()]
        raise DataError(f"not a Miyawaki 2008 folder: {len(missing)} of the fetcher's files "
                        f"are missing (first: {missing[0]}); run "
                        f"'fmri-explorer data encoding --out DIR' or download the real data",
                        dataset_dir(data_dir))
    from nilearn.datasets import fetch_miyawaki2008

    return fetch_miyawaki2008(data_dir=str(data_dir), verbose=0)


def listed(data_dir) -> dict:
    """``func``, ``label``, ``mask``, ``mask_roi`` and ``background`` as
    :func:`fetch` returns them (same strings, same order), from the layout alone.

    Used for the synthetic folder this package writes (a test checks it equals the
    fetcher's answer); a real download goes through :func:`fetch`.
    """
    data_dir = Path(data_dir)
    if not has_fetcher_files(data_dir):
        return fetch(data_dir)  # its error names the missing files
    root = os.path.join(str(data_dir), NAME)
    paths = lambda files: [os.path.join(root, f) for f in files]  # noqa: E731
    return dict(func=paths(func_files("figure") + func_files("random")),
                label=paths(label_files("figure") + label_files("random")),
                mask=os.path.join(root, "mask", MASK_FILES[0]),
                mask_roi=paths(mask_files()[1:]),
                background=os.path.join(root, "bg.nii.gz"))


@dataclass
class EncodingData:
    """The cleaned random-image runs of a Miyawaki-style dataset.

    Attributes
    ----------
    fmri : ndarray (n_volumes, n_voxels)
        The seed's ``masker.transform(...)`` output, runs stacked (no lag applied).
    stimuli : ndarray (n_volumes, 10, 10) int
        The images, one per volume (CSV rows reshaped in Fortran order).
    run_lengths : list of int
        Volumes per run.
    """

    fmri: np.ndarray
    stimuli: np.ndarray
    run_lengths: list
    mask_img: nib.Nifti1Image
    background: object = None
    func: list = field(default_factory=list)
    label: list = field(default_factory=list)
    source: str = ""
    t_r: float | None = None
    truth: dict | None = None
    #: the cleaned matrix's cache key (files' paths, sizes and times); None if not cached
    cache_key: str | None = None

    @property
    def n_voxels(self) -> int:
        return self.fmri.shape[1]

    @property
    def runs(self) -> np.ndarray:
        """The run of each volume, ``(n_volumes,)``."""
        return np.repeat(np.arange(len(self.run_lengths)), self.run_lengths)

    def lagged(self, lag: int = LAG):
        """The seed's samples: drop the first ``lag`` volumes and last ``lag`` images per run.

        Returns ``(Y (n_samples, n_voxels), X (n_samples, 100) float, runs (n_samples,),
        volumes (n_samples,))`` where ``volumes`` indexes rows of :attr:`fmri`.
        """
        x, runs, y_idx = self.lagged_index(lag)
        return self.fmri[y_idx], x, runs, y_idx

    def lagged_index(self, lag: int = LAG):
        """``(X, runs, volumes)`` of :meth:`lagged`, without ``Y`` (a copy of the data)."""
        lag = int(lag)
        if lag < 0 or lag >= min(self.run_lengths):
            raise DataError(f"lag must be between 0 and {min(self.run_lengths) - 1} volumes, "
                            f"not {lag}")
        y_idx, x_idx = [], []
        start = 0
        for n in self.run_lengths:
            y_idx.append(np.arange(start + lag, start + n))
            x_idx.append(np.arange(start, start + n - lag))
            start += n
        y_idx = np.concatenate(y_idx)
        x_idx = np.concatenate(x_idx)
        x = self.stimuli[x_idx].reshape(len(x_idx), -1).astype(float)
        return x, self.runs[y_idx], y_idx


def _cache_key(func, labels, mask_img) -> str:
    """The cleaned matrix's key: the content of every run and stimuli file, in order, and
    of the mask (not where they are: a copied dataset finds its cache)."""
    h = hashlib.sha1(b"miyawaki-seed-pipeline-v2")
    for p in list(func) + list(labels):
        h.update(content_key(p).encode())
    data = np.asarray(mask_img.dataobj).astype(bool)
    h.update(np.packbits(data).tobytes() + str(data.shape).encode())
    h.update(np.round(np.asarray(mask_img.affine, float), 4).tobytes())
    return h.hexdigest()[:16]


def clean_runs(func, mask, progress=None) -> np.ndarray:
    """The seed's preprocessing: ``MultiNiftiMasker(detrend, zscore_sample)`` per run, stacked."""
    from nilearn.maskers import MultiNiftiMasker

    progress = progress or null_progress
    masker = MultiNiftiMasker(mask_img=mask, detrend=True, standardize="zscore_sample")
    masker.fit()
    out = []
    for i, f in enumerate(func):
        out.append(masker.transform([f])[0])
        progress((i + 1) / len(func), f"cleaning run {i + 1}/{len(func)}")
    return np.vstack(out)


def load_files(func, labels, mask, background=None, source="files", cache=True,
               progress=None, truth=None) -> EncodingData:
    """Load the user's (or a fetcher's) random-image runs: 4D images, stimuli CSVs, a mask.

    Checks every file (4D, mask grid, one stimulus row per volume), then
    applies the seed's cleaning; the cleaned matrix is cached as ``.npy`` in
    the cache folder, keyed on the files' content (an unreadable or truncated
    entry is computed again and rewritten).
    """
    progress = progress or null_progress
    func = [str(f) for f in func]
    labels = [str(f) for f in labels]
    if len(func) != len(labels) or not func:
        raise DataError(f"{len(func)} functional runs but {len(labels)} stimuli files")
    first = load_func(func[0])
    mask_img = load_mask(mask, first)
    lengths, stimuli = [], []
    for f, lab in zip(func, labels):
        img = load_func(f)
        if img.shape[:3] != first.shape[:3] or not np.allclose(img.affine, first.affine, atol=1e-3):
            raise DataError("grid differs from the first run's", f)
        n = img.shape[3]
        stimuli.append(load_stimuli(lab, n_volumes=n, shape=STIMULUS_SHAPE))
        lengths.append(n)
    stimuli = np.concatenate(stimuli)

    fmri = None
    key = path = None
    if cache:
        key = _cache_key(func, labels, mask_img)
        path = cache_file(f"miyawaki-{key}.npy")
        shape = (sum(lengths), int(np.asarray(mask_img.dataobj).astype(bool).sum()))
        fmri = load_npy(path, check=lambda a: a.shape == shape and a.dtype.kind == "f")
    if fmri is None:
        fmri = clean_runs(func, mask_img, progress=scaled(progress, 0.0, 0.95))
        from ..io import check_masked

        check_masked(fmri, mask, what="voxels")
        if path is not None:
            save_npy(path, fmri)  # an unwritable cache folder: just slower next time
    progress(1.0, "loaded")
    return EncodingData(fmri=fmri, stimuli=stimuli, run_lengths=lengths, mask_img=mask_img,
                        background=background, func=func, label=labels, source=source,
                        t_r=t_r_of(first), truth=truth,
                        cache_key=key)


def load(data_dir=None, size: str | None = None, cache=True, progress=None) -> EncodingData:
    """Read a Miyawaki 2008 folder (synthetic or real) through nilearn's fetcher.

    ``data_dir`` is a nilearn data_dir (holding ``miyawaki2008/``); without it
    the synthetic dataset of ``size`` (default ``$FMRI_EXPLORER_SIZE``) is
    generated once and used. Only the 20 random-image runs are loaded, as in
    the seed (``dataset.func[12:]``).
    """
    if data_dir is None:
        from . import ensure_synthetic

        data_dir = ensure_synthetic("encoding", size, progress=scaled(progress, 0, 0.3)
                                    if progress else None)
    data_dir = Path(data_dir)
    if not has_fetcher_files(data_dir) and has_fetcher_files(data_dir.parent) \
            and data_dir.name == NAME:
        data_dir = data_dir.parent  # accept the dataset folder itself
    truth = load_truth(data_dir)
    # our own synthetic folder: its files listed as the fetcher lists them (tested equal),
    # without importing nilearn.datasets (and scikit-learn, scipy.stats: 1.5 s as the app
    # starts); a real download goes through the fetcher
    bunch = fetch(data_dir) if truth is None else listed(data_dir)
    source = "synthetic" if truth is not None else "miyawaki2008"
    return load_files(bunch["func"][12:], bunch["label"][12:], bunch["mask"],
                      background=bunch["background"],
                      source=f"{source} ({data_dir})", cache=cache, progress=progress,
                      truth=truth)
