"""The synthetic development-like data teaches the lessons of real rest data (issue 15).

A group of 20 subjects gives a peak t like real seed studies' (8-20, not hundreds);
leaving the confounds in raises correlations broadly but not everywhere; filtering
less does not make the whole brain correlated; an older generator's folder is made
again.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.connectivity import RADIUS_MM, clean_data, load_subject, seed_correlation
from analysis.datasets import development as dev
from analysis.datasets import development_synthetic
from analysis.group import confound_names, dataset_subjects, group_stats, serial_seed_maps
from analysis.preprocessing import Preprocessing

N_GROUP = 20


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    path = tmp_path_factory.mktemp("group20")
    dev.generate(path, size="small", n_subjects=N_GROUP)
    return dataset_subjects(path)


def _mm(subjects):
    mask = np.asarray(subjects.mask.dataobj) > 0
    affine = subjects.mask.affine
    return np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]


def test_twenty_subjects_give_a_group_t_like_real_seed_studies(twenty):
    """Seed at the PCC, default cleaning, Fisher z, one-sample t (as ``fmri-explorer
    group``): peak t outside the seed sphere in 8-20, at a default-mode node."""
    assert len(twenty.subjects) == N_GROUP
    settings = Preprocessing().cleaning_settings(2.0, confound_names(twenty.subjects[0])).check()
    r = serial_seed_maps(twenty.subjects, settings, twenty.mask, dev.PCC_MM, RADIUS_MM)
    stats = group_stats(r)
    xyz = _mm(twenty)
    outside = np.linalg.norm(xyz - np.asarray(dev.PCC_MM), axis=1) > RADIUS_MM
    t = np.where(outside & np.isfinite(stats["t"]), stats["t"], -np.inf)
    peak = int(np.argmax(t))
    print(f"group peak t outside the seed sphere ({N_GROUP} subjects, small): {t[peak]:.2f}")
    assert 8 < t[peak] < 20
    # subjects differ at the peak as real ones do (not nearly identical maps)
    z = np.arctanh(np.clip(r[:, peak], -0.999, 0.999))
    assert z.std(ddof=1) > 0.08 and z.max() - z.min() > 0.3
    assert (z > 0).all()
    # the peak is on the planted default-mode network
    nodes = twenty.truth["nodes"]
    coords = np.array([[n["x"], n["y"], n["z"]] for n in nodes])
    nearest = int(np.argmin(np.linalg.norm(coords - xyz[peak], axis=1)))
    assert nodes[nearest]["network"] == dev.DMN
    # the truth records how the subjects differ
    subjects = twenty.truth["subjects"]
    assert all(1.0 < s["jitter_rms_mm"] < 6.0 for s in subjects)
    strengths = [s["network_gains"][dev.DMN] for s in subjects]
    assert max(strengths) > 1.5 * min(strengths)


def _seed_map(spec, mask, columns, **params):
    subject = load_subject(spec.func, confounds=spec.confounds, mask=mask, t_r=spec.t_r,
                           name=spec.name)
    settings = Preprocessing(**params).cleaning_settings(2.0, columns).check()
    return seed_correlation(clean_data(subject, settings), dev.PCC_MM, RADIUS_MM).r


def test_confounds_off_raise_correlations_broadly_not_everywhere(connectivity_dir):
    subjects = dataset_subjects(connectivity_dir)
    columns = confound_names(subjects.subjects[0])
    for spec in subjects.subjects:
        on = _seed_map(spec, subjects.mask, columns)
        off = _seed_map(spec, subjects.mask, columns, regress_confounds=False)
        print(f"{spec.name}: r > 0.5 in {np.mean(on > 0.5):.3f} (confounds on), "
              f"{np.mean(off > 0.5):.3f} (off); median r {np.median(on):.3f} / "
              f"{np.median(off):.3f}")
        assert np.median(off) > np.median(on) + 0.05     # broadly raised
        assert np.mean(off > 0.5) < 0.5                   # but not everywhere
        assert np.mean(on > 0.5) < 0.2


@pytest.mark.parametrize("band", [{"low_pass": 0.2}, {"low_pass": 0, "high_pass": 0}],
                         ids=["low-pass 0.2 Hz", "no band-pass"])
def test_less_filtering_does_not_correlate_the_whole_brain(connectivity_dir, band):
    subjects = dataset_subjects(connectivity_dir)
    columns = confound_names(subjects.subjects[0])
    for spec in subjects.subjects:
        r = _seed_map(spec, subjects.mask, columns, **band)
        print(f"{spec.name} {band}: r > 0.5 in {np.mean(r > 0.5):.3f}")
        assert np.mean(r > 0.5) < 0.5
    # with the confounds left in as well, still not every voxel
    r = _seed_map(subjects.subjects[0], subjects.mask, columns, regress_confounds=False, **band)
    assert np.mean(r > 0.5) < 0.9


def test_an_older_generators_folder_is_made_again(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(development_synthetic, "GENERATOR_VERSION", 1)
        dev.generate(tmp_path, size="small", n_subjects=1)
        assert dev.is_present(tmp_path)
    truth = dev.dataset_dir(tmp_path) / dev.TRUTH
    assert json.loads(truth.read_text())["generator_version"] == 1
    assert not dev.is_present(tmp_path)                  # this version wants its own data
    dev.generate(tmp_path, size="small", n_subjects=1)
    assert dev.is_present(tmp_path)
    assert json.loads(truth.read_text())["generator_version"] == dev.GENERATOR_VERSION
