"""Seed connectivity: the fast engine against the seed's nilearn pipeline, the
Param class, planted truth, bad input, and no re-cleaning on a seed move."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis import connectivity as C
from analysis.connectivity.reference import reference_seed_map
from analysis.datasets import development as dev
from analysis.errors import DataError

SEEDS = [((0, -52, 18), 8.0), ((-2, -50, 18), 8.0), ((30, -20, 50), 4.0),
         ((10, 40, 0), 12.5), ((-40, 10, 30), 2.0)]
COMMON = dict(detrend=True, standardize="zscore_sample", standardize_confounds=True,
              low_pass=0.1, high_pass=0.01, t_r=2.0)


@pytest.fixture(scope="module")
def files(connectivity_dir):
    return dev.subject_files(connectivity_dir, subject=0)


@pytest.fixture(scope="module")
def img64(files):
    img = nib.load(files["func"])
    return nib.Nifti1Image(img.get_fdata(dtype=np.float64), img.affine, img.header)


@pytest.fixture(scope="module")
def reference(img64, files):
    """The seed's brain masker (float64) once per confound setting; spheres per seed."""
    from nilearn.maskers import NiftiMasker, NiftiSpheresMasker

    brains = {}

    def brain(confounds):
        key = str(confounds)
        if key not in brains:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                masker = NiftiMasker(smoothing_fwhm=6, **COMMON)
                brains[key] = (masker.fit_transform(img64, confounds=confounds), masker)
        return brains[key]

    def seed_map(seed, radius, confounds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = NiftiSpheresMasker([seed], radius=radius, **COMMON).fit_transform(
                img64, confounds=confounds)
        b, masker = brain(confounds)
        return (b.T @ ts / ts.shape[0])[:, 0], ts[:, 0], masker

    return seed_map


@pytest.fixture(scope="module")
def subject(files):
    return C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])


@pytest.fixture(scope="module")
def sc(connectivity_dir):
    return C.SeedConnectivity(data_dir=str(connectivity_dir))


@pytest.mark.parametrize("with_confounds", [True, False])
def test_seed_maps_equal_the_seed_pipeline(subject, files, reference, with_confounds):
    columns = tuple(subject.confound_names) if with_confounds else None
    data = C.clean_data(subject, C.CleaningSettings(confound_columns=columns))
    confounds = [files["confounds"]] if with_confounds else None
    for seed, radius in SEEDS:
        fast = C.seed_correlation(data, seed, radius)
        r, ts, masker = reference(seed, radius, confounds)
        assert np.array_equal(np.asarray(masker.mask_img_.dataobj).astype(bool), data.mask)
        assert np.abs(fast.r - r).max() < 1e-5, (seed, radius)
        assert np.abs(fast.seed_signal - ts).max() < 1e-5
    # the seed's own function (the reference used by the benchmark) agrees too
    r, _ = reference_seed_map(files["func"], SEEDS[0][0], SEEDS[0][1], confounds=confounds[0]
                              if confounds else None)
    assert np.abs(C.seed_correlation(data, *SEEDS[0]).r - r).max() < 1e-5


def test_population_zscore_gives_pearson_r(subject, files, img64):
    """``standardize="zscore"`` (ddof 0; nilearn 0.14 dropped the option, the project
    applies it): every voxel's r is Pearson's correlation of the cleaned, unstandardized
    signals of nilearn's maskers with the seed's mean signal."""
    from nilearn.maskers import NiftiMasker, NiftiSpheresMasker

    columns = tuple(subject.confound_names)
    data = C.clean_data(subject, C.CleaningSettings(confound_columns=columns,
                                                    standardize="zscore"))
    seed, radius = SEEDS[0]
    fast = C.seed_correlation(data, seed, radius)
    plain = {**COMMON, "standardize": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = NiftiSpheresMasker([seed], radius=radius, **plain).fit_transform(
            img64, confounds=[files["confounds"]])[:, 0]
        brain = NiftiMasker(smoothing_fwhm=6, **plain).fit_transform(
            img64, confounds=[files["confounds"]])
    bc = brain - brain.mean(axis=0)
    tc = ts - ts.mean()
    pearson = bc.T @ tc / (np.linalg.norm(bc, axis=0) * np.linalg.norm(tc))
    assert np.abs(fast.r - pearson).max() < 1e-5
    # ... which the sample z-score (the seed example's) scales by (n - 1) / n
    sample = C.seed_correlation(C.clean_data(subject, C.CleaningSettings(
        confound_columns=columns)), seed, radius)
    n = ts.shape[0]
    assert np.abs(sample.r - pearson * (n - 1) / n).max() < 1e-5


@pytest.mark.parametrize("with_confounds", [True, False])
def test_high_variance_confounds_equal_nilearns_maskers(subject, files, img64, with_confounds):
    """``high_variance_confounds`` (one Parameter of the preprocessing group): nilearn's
    maskers regress the 5 highest-variance components of the whole image, before the
    table's columns, out of the sphere and the brain alike; the engine's brain matrix is
    the ``NiftiMasker``'s, its seed signals and maps those of ``NiftiSpheresMasker``."""
    from nilearn.maskers import NiftiMasker, NiftiSpheresMasker

    columns = tuple(subject.confound_names) if with_confounds else None
    confounds = [files["confounds"]] if with_confounds else None
    settings = C.CleaningSettings(confound_columns=columns, high_variance_confounds=True)
    data = C.clean_data(subject, settings)
    off = C.clean_data(subject, C.CleaningSettings(confound_columns=columns))
    common = {**COMMON, "high_variance_confounds": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        brain = NiftiMasker(smoothing_fwhm=6, **common).fit_transform(img64, confounds=confounds)
    assert np.abs(data.brain - brain).max() < 1e-8
    assert np.abs(off.brain - brain).max() > 0.1             # the option does something
    for seed, radius in SEEDS[:3]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = NiftiSpheresMasker([seed], radius=radius, **common).fit_transform(
                img64, confounds=confounds)[:, 0]
        fast = C.seed_correlation(data, seed, radius)
        assert np.abs(fast.seed_signal - ts).max() < 1e-8, seed
        assert np.abs(fast.r - brain.T @ ts / ts.size).max() < 1e-8, seed
    # the reference pipeline takes the settings' masker keywords: it agrees too
    r, _ = reference_seed_map(files["func"], SEEDS[0][0], SEEDS[0][1],
                              confounds=files["confounds"] if with_confounds else None,
                              settings=settings)
    assert np.abs(C.seed_correlation(data, *SEEDS[0]).r - r).max() < 1e-5


def test_the_preprocessing_group_is_declared_once(connectivity_dir):
    """Single-subject and group connectivity take the group's Parameters (the same
    objects' defaults, bounds, docs), the settings one field per setting, with the
    group's defaults; a Param change reaches the settings (and the cache key)."""
    import pickle

    import param

    from analysis.group import GroupConnectivity
    from analysis.preprocessing import PARAMETERS, SETTINGS, Preprocessing

    assert "high_variance_confounds" in PARAMETERS
    for cls in (C.SeedConnectivity, GroupConnectivity):
        assert issubclass(cls, Preprocessing)
        for name in PARAMETERS:
            ours, theirs = cls.param[name], Preprocessing.param[name]
            assert (ours.default, ours.doc, ours.label) == (theirs.default, theirs.doc,
                                                            theirs.label), (cls, name)
            if isinstance(theirs, param.Number):
                assert ours.bounds == theirs.bounds and ours.step == theirs.step
    defaults = C.CleaningSettings()
    for name in SETTINGS:
        assert getattr(defaults, name) == Preprocessing.param[name].default, name
    assert pickle.loads(pickle.dumps(defaults)) == defaults    # sent to Dask workers
    sc = C.SeedConnectivity(data_dir=str(connectivity_dir))
    assert sc.settings().high_variance_confounds is False
    sc.high_variance_confounds = True
    assert sc.settings().high_variance_confounds is True
    assert sc.cleaned_data().settings.high_variance_confounds is True
    assert sc.settings_for(sc.subject_data()) == sc.settings()


def test_fmriprep_confounds_with_na_first_row(files, img64, reference):
    """The full TSV (``n/a`` first row): the engine uses 0 there; so does the reference."""
    full = pd.read_csv(files["confounds_full"], sep="\t", na_values=["n/a"])
    assert np.isnan(full["framewise_displacement"][0])
    subj = C.load_subject(files["func"], confounds=files["confounds_full"], t_r=2.0)
    cols = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf",
            "white_matter", "global_signal", "framewise_displacement")
    data = C.clean_data(subj, C.CleaningSettings(confound_columns=cols))
    array = full[list(cols)].fillna(0.0).to_numpy()
    r, _, _ = reference((0, -52, 18), 8.0, array)
    assert np.abs(C.seed_correlation(data, (0, -52, 18), 8.0).r - r).max() < 1e-5


def test_param_class_defaults_and_results(sc, reference, files):
    assert sc.seed_mm == (0.0, -52.0, 18.0) and sc.radius_mm == 8 and sc.smoothing_fwhm == 6
    assert sc.t_r == 2.0 and sc.standardize == "zscore_sample"
    assert sc.confound_columns == dev.REDUCED_COLUMNS
    r_map = sc.r_map()
    assert r_map.dims == ("x", "y", "z") and r_map.attrs["units"] == "mm"
    r, ts, _ = reference((0, -52, 18), 8.0, [files["confounds"]])
    assert np.abs(r_map.values[sc.cleaned_data().mask] - r).max() < 1e-5
    assert np.isnan(r_map.values[~sc.cleaned_data().mask]).all()
    # Fisher z is arctanh(r), as a volume and as the exported NIfTI
    z = sc.z_map()
    assert np.allclose(z.values, np.arctanh(r_map.values), equal_nan=True)
    img = sc.to_nifti(fisher_z=True)
    assert np.allclose(np.asarray(img.dataobj)[sc.cleaned_data().mask],
                       np.arctanh(r).astype(np.float32), atol=1e-6)
    series = sc.seed_time_series()
    assert series.dims == ("time",) and series.size == 168 and series["time"][-1] == 334.0
    assert np.abs(series.values - ts).max() < 1e-5


def test_summary_line(sc):
    text = sc.summary()
    m = re.fullmatch(r"seed \(0, -52, 18\) r=8 mm: (\d+) voxels; r in \[(-?\d\.\d\d), (\d\.\d\d)\]; "
                     r"([\d,]+) voxels above 0\.5", text)
    assert m, text
    res = sc.ensure()
    assert int(m.group(1)) == res.n_seed_voxels
    assert float(m.group(2)) == pytest.approx(res.r.min(), abs=0.005)
    assert int(m.group(4).replace(",", "")) == int((np.abs(res.r) >= 0.5).sum())


def test_pcc_peaks_lie_in_planted_default_mode_nodes(sc):
    peaks = sc.peaks()
    assert len(peaks) == sc.n_peaks
    assert (np.diff(peaks["r"]) <= 0).all() and (peaks["r"] > sc.threshold).all()
    top = peaks.head(5)
    assert (top["network"] == dev.DMN).all(), top
    assert (top["node_distance_mm"] < 10).all(), top
    # each peak is a local maximum of the map
    vals = sc.r_map().values
    for i, j, k in peaks[["i", "j", "k"]].to_numpy():
        block = vals[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2, max(k - 1, 0):k + 2]
        assert vals[i, j, k] == np.nanmax(block)
    assert np.allclose(peaks["fisher_z"], np.arctanh(peaks["r"]))


def test_confound_regression_stops_artefacts_spreading(connectivity_dir):
    on = C.SeedConnectivity(data_dir=str(connectivity_dir)).ensure().r
    off_sc = C.SeedConnectivity(data_dir=str(connectivity_dir), regress_confounds=False)
    off = off_sc.ensure().r
    assert off_sc.settings().confound_columns is None
    # artefacts (motion, global signal) raise correlations broadly, but not everywhere:
    # real rest data does not become globally correlated (issue 15)
    assert np.median(off) > np.median(on) + 0.05 and (off > 0.5).mean() < 0.5
    assert abs(np.median(on)) < 0.1 and (np.abs(on) > 0.3).mean() < 0.35


def test_bad_seed_keeps_the_previous_map(sc):
    sc.seed_mm = (0, -52, 18)
    before, map_before = sc.result, sc.r_map()
    with pytest.raises(DataError, match=r"seed \(0, 0, 200\) mm is outside the brain"):
        sc.seed_mm = (0, 0, 200)
    assert sc.seed_mm == (0, -52, 18) and sc.result is before
    assert "outside the brain" in sc.error
    # just outside the brain: a small sphere captures no brain voxel, a large one does
    mask = sc.cleaned_data().mask
    affine = sc.cleaned_data().affine
    i, j, k = np.argwhere(mask)[np.argmax(np.argwhere(mask)[:, 2])]   # top of the brain
    outside = nib.affines.apply_affine(affine, (i, j, k + 1))
    sc.radius_mm = 2
    with pytest.raises(DataError, match="captures no brain voxel"):
        sc.seed_mm = tuple(outside)
    assert sc.result.seed_mm == (0, -52, 18)
    sc.radius_mm = 8
    assert sc.result.radius_mm == 8
    xr_map = sc.r_map()
    assert np.allclose(xr_map.values, map_before.values, equal_nan=True)


def test_bad_band_and_confounds_are_clear_errors(sc, files, tmp_path):
    before = sc.result
    with pytest.raises(DataError, match="high_pass 0.01 Hz must be below low_pass 0.005 Hz"):
        sc.low_pass = 0.005
    assert sc.low_pass == 0.1 and sc.result is before
    with pytest.raises(DataError, match="Nyquist frequency 0.25 Hz"):
        sc.low_pass = 0.3
    with pytest.raises(DataError, match="Nyquist"):
        C.CleaningSettings(high_pass=0.25, low_pass=None).check()
    assert sc.low_pass == 0.1 and sc.result is before
    short = tmp_path / "short.tsv"
    pd.read_csv(files["confounds"], sep="\t").iloc[:150].to_csv(short, sep="\t", index=False)
    with pytest.raises(DataError, match="short.tsv: 150 confound rows for 168 volumes"):
        C.load_subject(files["func"], confounds=short)
    with pytest.raises(DataError, match="radius"):
        C.sphere_voxels(sc.cleaned_data(), (0, -52, 18), 0)


def test_moving_the_seed_does_not_reclean(connectivity_dir, monkeypatch):
    calls = []
    real = C.clean_data

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    from analysis.connectivity import cleaning

    monkeypatch.setattr(cleaning, "clean_data", counting)   # where cleaned() looks it up
    sc = C.SeedConnectivity(data_dir=str(connectivity_dir), smoothing_fwhm=4.0)
    sc.ensure()
    assert len(calls) == 1
    for seed in [(10, 40, 0), (-40, 10, 30), (0, -52, 18)]:
        sc.seed_mm = seed
    sc.radius_mm = 6
    sc.threshold = 0.3
    sc.fisher_z = True
    sc.peaks(), sc.summary(), sc.z_map()
    assert len(calls) == 1
    # another session with the same settings shares the cleaned data
    other = C.SeedConnectivity(data_dir=str(connectivity_dir), smoothing_fwhm=4.0,
                               seed_mm=(10, 40, 0))
    other.ensure()
    assert len(calls) == 1
    sc.smoothing_fwhm = 5.0           # a structural change cleans once
    assert len(calls) == 2 and calls[-1].smoothing_fwhm == 5.0
    sc.smoothing_fwhm = 4.0           # back: from the cache
    assert len(calls) == 2


def test_cleaned_data_is_kept_on_disk_for_shared_subjects(connectivity_dir, monkeypatch):
    """A subject cleaned once loads from the cache folder in a later process (the store
    emptied stands for one): the same numbers, no cleaning; a damaged entry is cleaned
    again; an upload's data never goes to disk."""
    from analysis.cache import cache_file
    from analysis.connectivity import cleaning

    params = dict(data_dir=str(connectivity_dir), smoothing_fwhm=3.5, subject=1)
    sc = C.SeedConnectivity(**params)
    first = sc.ensure().r.copy()
    key = cleaning.disk_key(sc.subject_data(), sc.settings())
    entry = cache_file(f"connectivity-cleaned-{key}.npz")
    cleaning.flush_saves()                     # written in the background
    assert key and entry.is_file()
    calls = []
    real = cleaning.clean_data
    monkeypatch.setattr(cleaning, "clean_data",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    cleaning.CACHE.clear()
    assert np.array_equal(C.SeedConnectivity(**params).ensure().r, first) and not calls
    entry.write_bytes(b"not an npz")           # damaged: cleaned again and rewritten
    cleaning.CACHE.clear()
    assert np.array_equal(C.SeedConnectivity(**params).ensure().r, first) and calls == [1]
    cleaning.CACHE.clear()
    assert np.array_equal(C.SeedConnectivity(**params).ensure().r, first) and calls == [1]
    # an upload (data owned by a session) has no disk key
    upload = C.load_subject(sc.subject_data().func, mask=sc.subject_data().mask_img)
    upload.owner = "a session"
    assert cleaning.disk_key(upload, sc.settings()) is None


def test_subject_changes_the_map(connectivity_dir):
    sc = C.SeedConnectivity(data_dir=str(connectivity_dir))
    first = sc.ensure().r.copy()
    assert sc.n_subjects == 3 and sc.param.subject.bounds == (0, 2)
    sc.subject = 2
    assert sc.cleaned_data().name == "sub-pixar002"
    assert not np.allclose(sc.ensure().r, first)
    assert sc.peaks().head(3)["network"].eq(dev.DMN).all()


def test_user_files_with_a_mask(files, connectivity_dir, reference):
    mask = dev.dataset_dir(connectivity_dir) / dev.MASK
    sc = C.SeedConnectivity.from_files(files["func"], confounds=files["confounds"], mask=mask)
    assert sc.t_r == 2.0
    r, _, _ = reference((0, -52, 18), 8.0, [files["confounds"]])
    assert np.abs(sc.ensure().r - r).max() < 1e-5
    with pytest.raises(DataError, match="not a NIfTI"):
        C.load_subject(files["confounds"])


def test_analysis_does_not_import_panel():
    code = ("import sys, analysis.connectivity, analysis.connectivity.reference, "
            "analysis.commands.connectivity; "
            "assert not {'panel', 'holoviews'} & set(sys.modules), 'GUI imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_planned_is_what_an_update_will_use(connectivity_dir):
    """``planned(**changes)``: the data and settings after ``param.update(**changes)``,
    without changing the model (the tab cleans them in the background first)."""
    sc = C.SeedConnectivity(data_dir=str(connectivity_dir))
    before = (sc.subject_data().key, sc.settings(), sc.result)
    changes = dict(smoothing_fwhm=5.0, subject=1, high_pass=0.02,
                   confound_columns=list(sc.confound_columns)[:2])
    subject, settings = sc.planned(**changes)
    assert (sc.subject_data().key, sc.settings(), sc.result) == before   # nothing changed
    sc.param.update(**changes)
    assert subject.key == sc.subject_data().key and settings == sc.settings()
    with pytest.raises(ValueError):
        sc.planned(smoothing_fwhm=-1.0)
    with pytest.raises(ValueError, match="not structural"):
        sc.planned(seed_mm=(0, 0, 0))


def test_an_int16_scan_is_analysed_in_float(files, tmp_path):
    """nilearn 0.14's NiftiSpheresMasker keeps the sphere mean in the image's dtype, so an
    int16 scan's seed signal comes out truncated to integers (issue 16 item 5). The
    project reads every image as float64: its map on an int16 copy of a subject equals
    the float64 reference on that same int16 data."""
    from nilearn.maskers import NiftiSpheresMasker

    img = nib.load(str(files["func"]))
    data = img.get_fdata()
    scaled = np.round((data - data.mean()) / data.std() * 20 + 100)   # small ints: truncation shows
    int16 = tmp_path / "int16_bold.nii.gz"
    out = nib.Nifti1Image(scaled.astype(np.int16), img.affine)
    out.header.set_xyzt_units("mm", "sec")
    out.header["pixdim"][4] = 2.0
    nib.save(out, int16)
    assert nib.load(int16).get_data_dtype() == np.int16

    sc = C.SeedConnectivity.from_files(int16, confounds=files["confounds"], t_r=2.0)
    r_ref, _ = reference_seed_map(int16, (0, -52, 18), 8.0, confounds=files["confounds"],
                                  settings=sc.settings())            # cast to float64
    assert np.abs(sc.ensure().r - r_ref).max() < 1e-5

    raw = dict(detrend=False, standardize=None)
    exact = NiftiSpheresMasker([(0, -52, 18)], radius=8.0, **raw).fit_transform(
        nib.Nifti1Image(scaled, img.affine))[:, 0]
    as_stored = NiftiSpheresMasker([(0, -52, 18)], radius=8.0, **raw).fit_transform(
        nib.load(int16))[:, 0]
    if np.array_equal(as_stored, np.round(as_stored)):   # nilearn truncates: ours does not
        assert np.abs(exact - as_stored).max() > 0.05
    assert not np.array_equal(exact, np.round(exact))   # the true means are not integers
