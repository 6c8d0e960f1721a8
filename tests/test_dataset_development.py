"""The development-like synthetic dataset: fetcher layout, planted truth, subjects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from analysis.datasets import development as dev
from analysis.errors import DataError
from analysis.io import load_confounds


@pytest.fixture(scope="module")
def bunch(connectivity_dir):
    return dev.load(connectivity_dir)


def _clean(x, confounds=None):
    from nilearn import signal

    return signal.clean(x, confounds=confounds, detrend=True, standardize="zscore_sample",
                        low_pass=0.1, high_pass=0.01, t_r=2.0)


def test_fetcher_reads_the_layout_without_network(connectivity_dir, no_network):
    from nilearn.datasets import fetch_development_fmri

    one = fetch_development_fmri(n_subjects=1, data_dir=str(connectivity_dir), verbose=0)
    assert len(one.func) == 1 and one.t_r == 2
    assert list(one.phenotypic["Child_Adult"]) == ["adult"]
    func = Path(one.func[0])
    assert func.parent == connectivity_dir / "development_fmri"
    assert func.name == "sub-pixar123_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    assert Path(one.confounds[0]).name == "sub-pixar123_task-pixar_desc-reducedConfounds_regressors.tsv"
    two = fetch_development_fmri(n_subjects=2, data_dir=str(connectivity_dir), verbose=0)
    assert sorted(two.phenotypic["Child_Adult"]) == ["adult", "child"]
    every = fetch_development_fmri(data_dir=str(connectivity_dir), verbose=0)
    assert len(every.func) == dev.SIZES["small"]["n_subjects"]
    assert all(Path(f).is_file() for f in every.func + every.confounds)
    # the seed's own code reads it: NiftiSpheresMasker with the reduced confounds
    from nilearn.maskers import NiftiSpheresMasker

    seed = NiftiSpheresMasker([dev.PCC_MM], radius=8, detrend=True, standardize="zscore_sample",
                              low_pass=0.1, high_pass=0.01, t_r=one.t_r).fit_transform(
        one.func[0], confounds=[one.confounds[0]])
    assert seed.shape == (dev.N_VOLUMES, 1) and np.isfinite(seed).all()


def test_shapes_tr_mask_and_subject_order(bunch, connectivity_dir):
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.masking import compute_background_mask

    assert bunch.truth["size"] == "small"
    assert list(bunch.phenotypic["Child_Adult"]) == ["adult", "child", "child"]
    assert list(bunch.phenotypic["participant_id"]) == [s["participant_id"]
                                                        for s in bunch.truth["subjects"]]
    img = nib.load(bunch.func[0])
    res = dev.SIZES["small"]["resolution"]
    mni = load_mni152_brain_mask(resolution=res)
    assert img.shape == mni.shape + (dev.N_VOLUMES,)
    assert img.header.get_zooms() == (res, res, res, 2.0)
    assert np.allclose(img.affine, mni.affine)
    mask = np.asarray(mni.dataobj) > 0
    assert bunch.truth["n_brain_voxels"] == mask.sum()
    # the seed's NiftiMasker computes exactly the MNI brain mask on these data
    computed = np.asarray(compute_background_mask(bunch.func[0]).dataobj) > 0
    assert np.array_equal(computed, mask)


def test_full_size_geometry_is_mni_4mm():
    geom = dev.shared_geometry("full")
    assert geom["mask"].shape == (50, 59, 48)
    assert 28_000 < geom["n_vox"] < 30_000
    assert len(geom["node_xyz"]) == 300
    assert sum(n == dev.DMN for n in geom["node_net"]) == 67
    nearest = np.linalg.norm(np.asarray(geom["node_xyz"]) - dev.PCC_MM, axis=1).min()
    assert nearest < 8  # a default-mode node near the PCC seed


def test_confounds_tsv_fmriprep_style(bunch, connectivity_dir):
    pid = bunch.phenotypic["participant_id"][0]
    full = dev.dataset_dir(connectivity_dir) / dev.CONFOUNDS.format(pid)
    first_row = full.read_text().splitlines()[1].split("\t")
    header = full.read_text().splitlines()[0].split("\t")
    assert first_row[header.index("framewise_displacement")] == "n/a"
    for name in dev.MOTION + ["csf", "white_matter", "global_signal", "framewise_displacement"]:
        assert name in header
    df = load_confounds(full, n_volumes=dev.N_VOLUMES)
    assert np.isnan(df["framewise_displacement"][0]) and df.iloc[1:].notna().all().all()
    # global_signal is the mean brain signal of each volume
    img = nib.load(bunch.func[0])
    mask = np.asarray(nib.load(dev.dataset_dir(connectivity_dir) / dev.MASK).dataobj) > 0
    mean = np.asarray(img.dataobj)[mask].mean(axis=0, dtype=np.float64)
    assert np.allclose(df["global_signal"], mean, rtol=1e-6)
    # the reduced file nilearn uses: its 15 columns, same values, FD first row 0
    reduced = pd.read_csv(bunch.confounds[0], sep="\t")
    assert list(reduced.columns) == dev.REDUCED_COLUMNS
    assert reduced["framewise_displacement"][0] == 0
    assert np.allclose(reduced.iloc[1:].to_numpy(), df[dev.REDUCED_COLUMNS].iloc[1:].to_numpy())
    with pytest.raises(DataError, match="167 confound rows for 168 volumes"):
        tmp = full.parent / "short.tsv"
        try:
            df.iloc[:167].to_csv(tmp, sep="\t", index=False, na_rep="n/a")
            load_confounds(tmp, n_volumes=dev.N_VOLUMES)
        finally:
            tmp.unlink(missing_ok=True)


def _node_signals(func, confounds, coords):
    from nilearn.maskers import NiftiSpheresMasker

    masker = NiftiSpheresMasker(coords, radius=5, allow_overlap=True, detrend=True,
                                standardize="zscore_sample", low_pass=0.1, high_pass=0.01, t_r=2)
    return masker.fit_transform(func, confounds=confounds)


def test_default_mode_nodes_correlate_with_each_other_not_other_networks(bunch):
    nodes = bunch.truth["nodes"]
    coords = np.array([[n["x"], n["y"], n["z"]] for n in nodes])
    labels = np.array([n["network"] for n in nodes])
    rng = np.random.default_rng(0)
    dmn = rng.choice(np.flatnonzero(labels == dev.DMN), 20, replace=False)
    other = rng.choice(np.flatnonzero((labels != dev.DMN) & (labels != "unassigned")), 20,
                       replace=False)
    sig = _node_signals(bunch.func[0], [bunch.confounds[0]], coords[np.r_[dmn, other]])
    corr = np.corrcoef(sig.T)
    within = corr[:20, :20][np.triu_indices(20, 1)].mean()
    between = np.abs(corr[:20, 20:]).mean()
    assert within > 0.3
    assert between < 0.15
    assert within > 3 * between


def test_planted_network_time_course_is_recovered(bunch, connectivity_dir):
    tcs, names = dev.network_time_courses(connectivity_dir)
    assert tcs.shape == (3, dev.N_VOLUMES, len(names))
    sig = _node_signals(bunch.func[0], [bunch.confounds[0]], [dev.PCC_MM])[:, 0]
    truth = _clean(tcs[0].astype(float))
    corr = np.array([np.corrcoef(sig, truth[:, k])[0, 1] for k in range(len(names))])
    assert names[int(np.argmax(corr))] == dev.DMN
    assert corr.max() > 0.5


def test_subjects_differ_but_share_the_networks(bunch, connectivity_dir):
    subjects = bunch.truth["subjects"]
    for key in ("noise_sd", "network_strength", "motion_scale", "global_amplitude"):
        assert len({s[key] for s in subjects}) == len(subjects)
    adult = [s["mean_fd"] for s in subjects if s["child_adult"] == "adult"]
    child = [s["mean_fd"] for s in subjects if s["child_adult"] == "child"]
    assert min(child) > max(adult)  # children move more
    # one planted DMN: the PCC signal tracks each subject's own DMN time course
    tcs, names = dev.network_time_courses(connectivity_dir)
    k = names.index(dev.DMN)
    for s in range(len(subjects)):
        sig = _node_signals(bunch.func[s], [bunch.confounds[s]], [dev.PCC_MM])[:, 0]
        own = np.corrcoef(sig, _clean(tcs[s][:, [k]].astype(float))[:, 0])[0, 1]
        other = np.corrcoef(sig, _clean(tcs[(s + 1) % 3][:, [k]].astype(float))[:, 0])[0, 1]
        assert own > 0.5 and abs(other) < own - 0.3


def test_artefacts_need_confound_regression_and_filtering(bunch, connectivity_dir):
    """Far from every node, voxels correlate through the artefacts, until cleaned."""
    from nilearn.masking import apply_mask
    from scipy.spatial import cKDTree

    mask = nib.load(dev.dataset_dir(connectivity_dir) / dev.MASK)
    ijk = np.argwhere(np.asarray(mask.dataobj) > 0)
    xyz = nib.affines.apply_affine(mask.affine, ijk)
    nodes = np.array([[n["x"], n["y"], n["z"]] for n in bunch.truth["nodes"]])
    far = cKDTree(nodes).query(xyz)[0] > 16
    x = apply_mask(bunch.func[0], mask)[:, far][:, ::3].astype(float)
    conf = np.genfromtxt(bunch.confounds[0], skip_header=1)

    def mean_corr(y):  # shared artefacts make far voxels correlate positively
        c = np.corrcoef(y.T)
        return c[np.triu_indices(len(c), 1)].mean()

    from nilearn import signal

    cleaned = mean_corr(_clean(x, conf))
    no_confounds = mean_corr(_clean(x))
    no_filter = mean_corr(signal.clean(x, confounds=conf, detrend=True,
                                       standardize="zscore_sample", t_r=2))
    assert abs(cleaned) < 0.1
    assert no_confounds > 0.4
    assert no_filter > 0.2


def test_determinism_cli_and_atomic(tmp_path, connectivity_dir):
    out = tmp_path / "again"
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "data", "connectivity",
                           "--size", "small", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, check=True)
    info = json.loads(proc.stdout)
    assert info["n_subjects"] == 3 and info["t_r"] == 2.0
    assert info["shape"][3] == dev.N_VOLUMES
    assert dev.is_present(out)
    a = nib.load(info["func"][1]).get_fdata()
    b = nib.load(dev.load(connectivity_dir).func[1]).get_fdata()
    assert np.array_equal(a, b)
    # another seed: other data; one subject only; an error leaves nothing behind
    def boom(fraction, message):
        if fraction > 0.5:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        dev.generate(tmp_path / "broken", size="small", seed=1, progress=boom, n_subjects=1)
    assert not dev.is_present(tmp_path / "broken")
    assert list((tmp_path / "broken").iterdir()) == []
    assert not dev.is_present(tmp_path / "nothing")


def test_participants_make_the_fetchers_choices_exist():
    for n in (1, 2, 3, 4, 20, 155):
        adults, children = dev.participant_ids(n)
        assert len(adults) + len(children) == n
        assert len(adults) >= 1 and (n < 2 or len(children) >= 1)
    adults, children = dev.participant_ids(20)
    assert len(adults) == 4 and children[0] == "sub-pixar001" and adults[0] == "sub-pixar123"
    with pytest.raises(DataError, match="n_subjects"):
        dev.participant_ids(0)


def test_subject_files_and_bad_subject(connectivity_dir):
    files = dev.subject_files(connectivity_dir, subject=2)
    assert files["participant_id"] == "sub-pixar002" and files["t_r"] == 2.0
    assert Path(files["confounds_full"]).is_file()
    with pytest.raises(DataError, match="subject 3 does not exist"):
        dev.subject_files(connectivity_dir, subject=3)
    with pytest.raises(DataError, match="no development_fmri dataset"):
        dev.load(Path(connectivity_dir) / "nowhere")
