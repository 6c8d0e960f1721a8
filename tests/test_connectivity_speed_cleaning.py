"""The fast cleaning (issue 15, speed of structural changes): the image read once per
subject, the cleaning as nilearn's ``signal.clean`` of the identity applied by a matrix
product, the smoothing on the voxels the mask needs; equal to nilearn's own maskers
(``NiftiMasker`` smoothed, cleaned and z-scored; ``signal.clean`` of the sphere domain's
raw series) on the same data, for smoothing widths whose kernel reaches the grid's
edge or not, and for the other preprocessing settings."""

from __future__ import annotations

import threading
import warnings

import nibabel as nib
import numpy as np
import pytest

from analysis import connectivity as C
from analysis.connectivity import rawdata
from analysis.datasets import development as dev


@pytest.fixture(scope="module")
def files(connectivity_dir):
    return dev.subject_files(connectivity_dir, subject=0)


@pytest.fixture(scope="module")
def subject(files):
    return C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])


@pytest.fixture(scope="module")
def img64(files):
    img = nib.load(files["func"])
    return nib.Nifti1Image(img.get_fdata(dtype=np.float64), img.affine, img.header)


def _nilearn_brain(img64, subject, settings):
    """The seed example's brain matrix: nilearn's NiftiMasker with these settings."""
    from nilearn.maskers import NiftiMasker

    conf = None
    if settings.confound_columns:
        conf = [subject.confounds[list(settings.confound_columns)].to_numpy(dtype=float)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masker = NiftiMasker(mask_img=subject.mask_img, smoothing_fwhm=settings.fwhm,
                             **settings.masker_kwargs())
        return settings.standardized(masker.fit_transform(img64, confounds=conf))


SETTINGS = [
    dict(smoothing_fwhm=6.0),
    dict(smoothing_fwhm=0.0),                  # no smoothing: the mask's raw series
    dict(smoothing_fwhm=2.0),                  # a kernel of one voxel
    dict(smoothing_fwhm=20.0),                 # the kernel reaches the grid's edge
    dict(smoothing_fwhm=8.0, detrend=False, high_pass=None),
    dict(smoothing_fwhm=4.0, low_pass=None, high_pass=None, standardize="zscore"),
    dict(smoothing_fwhm=6.0, confounds=False, high_variance_confounds=True),
]


@pytest.mark.parametrize("changes", SETTINGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_fast_cleaning_equals_nilearns_maskers(subject, img64, changes):
    changes = dict(changes)
    columns = () if changes.pop("confounds", True) is False else tuple(subject.confound_names)
    settings = C.CleaningSettings(confound_columns=columns, **changes).check()
    data = C.clean_data(subject, settings)
    expected = _nilearn_brain(img64, subject, settings)
    assert data.brain.shape == expected.shape
    assert np.abs(data.brain - expected).max() < 1e-8
    # the seed domain: nilearn's signal.clean of its raw (unsmoothed) series
    from nilearn import signal

    from analysis.connectivity.cleaning import confound_matrix

    conf = confound_matrix(subject, settings, img64.get_fdata())   # with the high-variance ones
    raw = img64.get_fdata()[tuple(data.domain_ijk.T)].T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        domain = signal.clean(raw, confounds=conf, **settings.clean_kwargs(standardize=None))
    scale = max(np.abs(domain).max(), 1.0)
    assert np.abs(data.domain - domain).max() < 1e-9 * scale


def test_smoothing_on_the_box_equals_the_whole_grid(subject, img64):
    """The smoothed brain voxels computed on the box the mask needs equal nilearn's
    ``smooth_img`` of the whole image, then masked (the same floats)."""
    from nilearn.image import smooth_img

    raw = rawdata.raw_data(subject)
    mask = np.asarray(subject.mask_img.dataobj).astype(bool)
    for fwhm in (3.0, 6.0, 11.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            whole = np.asarray(smooth_img(img64, fwhm).dataobj)[mask].T
        assert np.allclose(rawdata.smoothed_brain(raw, fwhm), whole, rtol=1e-12, atol=1e-9)


def test_the_image_is_read_once_per_subject(files, monkeypatch):
    """Loading a subject reads its image (for the background mask); the sessions'
    cleanings then use those values: the image is not decompressed again for each
    setting. A cleaning outside them (a group's subject) does not keep it."""
    subject = C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])
    rawdata.RAW.discard(lambda key: True)
    reads = []
    original = rawdata.volumes_of
    monkeypatch.setattr(rawdata, "volumes_of", lambda img: reads.append(1) or original(img))
    for fwhm in (4.25, 5.25):
        C.cleaned(subject, C.CleaningSettings(smoothing_fwhm=fwhm,
                                              confound_columns=tuple(subject.confound_names)))
    assert reads == [] and subject.key in rawdata.RAW
    rawdata.RAW.discard(lambda key: True)          # evicted: read again, once
    C.cleaned(subject, C.CleaningSettings(smoothing_fwhm=3.25))
    assert reads == [1]
    rawdata.RAW.discard(lambda key: True)
    C.clean_data(subject, C.CleaningSettings(smoothing_fwhm=3.25))
    assert reads == [1, 1] and subject.key not in rawdata.RAW


def test_scaled_images_are_read_as_float64(tmp_path, files):
    """An int16 image with a scale factor: the values the cleaning uses are
    ``get_fdata(dtype=float64)``'s (not the handed-over float32 ones)."""
    img = nib.load(files["func"])
    data = img.get_fdata()
    out = nib.Nifti1Image(np.round(data * 10).astype(np.int16), img.affine)
    out.header.set_slope_inter(0.1, 3.0)
    out.header["pixdim"][4] = 2.0
    path = tmp_path / "scaled.nii.gz"
    nib.save(out, path)
    subject = C.load_subject(path, confounds=files["confounds"], t_r=2.0)
    raw = rawdata.raw_data(subject)
    assert np.array_equal(raw.image_array(), nib.load(path).get_fdata(dtype=np.float64))


def test_prefetch_fills_the_cache_folder_not_the_memory(connectivity_dir, monkeypatch):
    """The warm-up's next subjects: cleaned into the cache folder only (no cleaned matrix
    or image kept in memory); a switch to one then loads it, the same numbers, no
    cleaning; a second prefetch does nothing."""
    from analysis.connectivity import cleaning
    from analysis.connectivity.model import SUBJECTS

    SUBJECTS.clear()                                   # as in a new process
    sc = C.SeedConnectivity(data_dir=str(connectivity_dir), smoothing_fwhm=7.5)
    assert not sc.subject_loaded(2)
    subject, settings = sc.planned(subject=2)
    assert sc.subject_loaded(2)
    assert cleaning.prefetch(subject, settings)
    assert not cleaning.is_cached(subject.key, settings) and subject.key not in rawdata.RAW
    assert not cleaning.prefetch(subject, settings)          # on disk already
    calls = []
    real = cleaning.clean_data
    monkeypatch.setattr(cleaning, "clean_data", lambda *a, **k: calls.append(1) or real(*a, **k))
    sc.subject = 2
    assert calls == []
    fresh = real(subject, settings)
    assert np.array_equal(sc.cleaned_data().brain, fresh.brain)
    assert np.array_equal(sc.cleaned_data().domain, fresh.domain)


def test_a_smoothing_change_reuses_the_seed_domain(connectivity_dir):
    """The seed domain is not smoothed: a cleaning that differs by the smoothing only
    shares the cached one's (one array in memory, not two)."""
    sc = C.SeedConnectivity(data_dir=str(connectivity_dir), smoothing_fwhm=5.0, subject=1)
    domain = sc.cleaned_data().domain
    sc.smoothing_fwhm = 9.0
    assert sc.cleaned_data().domain is domain
    sc.detrend = False
    assert sc.cleaned_data().domain is not domain


def test_a_new_subject_is_read_in_the_job_with_the_tab_busy(connectivity_dir, monkeypatch):
    """Served, a change to a subject not read yet returns at once with the tab busy: the
    subject's image is read (and cleaned) in the job, not on the event loop; then the
    model shows it."""
    import time

    from analysis.connectivity import model as model_module
    from analysis.connectivity.model import SUBJECTS, SeedConnectivity
    from dashboard.connectivity import ConnectivityTab

    tab = ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))
    monkeypatch.setattr(ConnectivityTab, "_served", lambda self: True)
    SUBJECTS.clear()
    main = threading.current_thread()
    reads = []
    real = model_module.load_subject

    def load(*args, **kwargs):
        reads.append((threading.current_thread() is not main, tab.busy.active))
        return real(*args, **kwargs)

    monkeypatch.setattr(model_module, "load_subject", load)
    tab.w_subject.value = 1
    assert tab.model.subject == 0                      # not applied yet: in the job
    deadline = time.monotonic() + 60
    while tab.model.subject != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tab.model.subject == 1 and tab.model.result is not None
    assert reads and all(in_job and busy for in_job, busy in reads)
