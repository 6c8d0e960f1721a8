"""Group seed connectivity on Dask: equal to a serial loop, planted network recovered,
cleaning cached on the workers, failures reported clearly."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import nibabel as nib
import numpy as np
import pytest
from scipy.stats import ttest_1samp

from analysis import group as G
from analysis.datasets import development as dev
from analysis.errors import DataError
from analysis.volumes import to_masked

N_SUBJECTS = 8
DMN = "DefaultMode"


@pytest.fixture(scope="module")
def group_dir(data_home):
    """Small synthetic development-like data with 8 subjects (the default small has 3)."""
    path = data_home / "group-small-8"
    if not dev.is_present(path):
        dev.generate(path, size="small", n_subjects=N_SUBJECTS)
    return path


@pytest.fixture(scope="module")
def analysis(group_dir):
    """Every subject on a LocalCluster of 2 (thread) workers, the seed example's PCC seed."""
    g = G.GroupConnectivity(data_dir=str(group_dir), processes=False, n_workers=2)
    g.run()
    yield g
    G.close_engines()


def _geometry(subjects: G.SubjectList):
    mask = np.asarray(subjects.mask.dataobj).astype(bool)
    xyz = nib.affines.apply_affine(subjects.mask.affine, np.argwhere(mask))
    nodes = subjects.truth["nodes"]
    centres = np.array([[n["x"], n["y"], n["z"]] for n in nodes])
    networks = np.array([n["network"] for n in nodes])
    return xyz, centres, networks


def _planted_dmn_map(subjects: G.SubjectList) -> np.ndarray:
    """The planted default-mode layout per mask voxel: a sum of Gaussian node blobs."""
    xyz, centres, networks = _geometry(subjects)
    d = np.linalg.norm(xyz[:, None] - centres[networks == DMN][None], axis=2)
    sigma = subjects.truth["node_sigma_mm"]
    return np.exp(-d ** 2 / (2 * sigma ** 2)).sum(axis=1)


def _far_from_seed(subjects, seed_mm, mm=20.0):
    xyz, _, _ = _geometry(subjects)
    return np.linalg.norm(xyz - np.asarray(seed_mm), axis=1) > mm


# --------------------------------------------------------------------------- equality

def test_distributed_equals_serial_loop(analysis):
    subjects = analysis.subject_list()
    res = analysis.result
    assert analysis.engine().n_workers == 2
    assert res.r.dims == ("subject", "voxel")
    assert list(res.r.subject.values) == subjects.names and len(subjects.names) == N_SUBJECTS
    ref = G.serial_seed_maps(subjects.subjects, analysis.settings(), subjects.mask,
                             analysis.seed_mm, analysis.radius_mm)
    assert ref.shape == res.r.shape
    assert np.abs(ref - res.r.values).max() < 1e-6
    # the group statistics are scipy's one-sample t-test on Fisher z
    t_ref = ttest_1samp(np.arctanh(ref), 0.0, axis=0).statistic
    np.testing.assert_allclose(res.t, t_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(res.mean_z, np.arctanh(ref).mean(axis=0), atol=1e-6)
    # ... and come back as volumes in mm on the group mask
    t_map = analysis.t_map()
    assert t_map.dims == ("x", "y", "z") and "affine" in t_map.attrs
    np.testing.assert_array_equal(to_masked(t_map, subjects.mask), res.t)
    assert np.isnan(t_map.values[~np.asarray(subjects.mask.dataobj).astype(bool)]).all()


def test_statistics_on_the_workers_equal_those_computed_here(analysis):
    """The app's default (1,000 sign flips) runs the statistics on a worker with the seed
    maps; more than ``WORKER_PERMUTATIONS`` run here, in chunks: both give the numbers of
    ``group_inference`` on the same maps in this process."""
    from analysis.group.results import WORKER_PERMUTATIONS, compute_group, group_result

    subjects = analysis.subject_list()
    settings = analysis.settings(subjects)
    engine = analysis.engine()
    assert analysis.n_permutations <= WORKER_PERMUTATIONS
    res = analysis.result
    assert res.timings["stats_s"] > 0 and res.inference.n_permutations == analysis.n_permutations
    for n_perm in (analysis.n_permutations, WORKER_PERMUTATIONS + 1):
        ours = compute_group(subjects, settings, res.seed_mm, res.radius_mm, engine=engine,
                             n_permutations=n_perm)
        here = group_result(ours.r.values, subjects, res.seed_mm, res.radius_mm,
                            ours.n_seed_voxels, n_permutations=n_perm)
        a, b = ours.inference, here.inference
        assert a.n_permutations == b.n_permutations == n_perm
        for name in ("t", "p", "h0_max_t", "logp_fwe", "fdr", "fwe", "h0_max_size",
                     "cluster_size", "logp_cluster_fwe"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert (a.fwe_t_threshold, a.fdr_t_threshold, a.n_voxels_fwe, a.n_clusters_fwe) == \
            (b.fwe_t_threshold, b.fdr_t_threshold, b.n_voxels_fwe, b.n_clusters_fwe)
        np.testing.assert_array_equal(ours.r.values, res.r.values)


#: The slow statistics' task below (module level: Dask pickles a task's function by
#: reference, and the thread workers of the ``analysis`` fixture share these events).
_STATS_STARTED, _STATS_RELEASE = threading.Event(), threading.Event()


def _slow_statistics(*args):
    from analysis.group.tasks import group_statistics

    _STATS_STARTED.set()
    _STATS_RELEASE.wait(30)
    return group_statistics(*args)


def test_a_cancel_while_the_statistics_run_on_a_worker_stops_the_run_at_once(analysis,
                                                                            monkeypatch):
    """Closing the tab while the group statistics run on a worker: the run stops within
    a second (the cancel is checked every 0.2 s), not when the worker's task ends."""
    from analysis.group import engine as engine_module
    from analysis.group.results import compute_group

    _STATS_STARTED.clear()
    _STATS_RELEASE.clear()
    monkeypatch.setattr(engine_module, "group_statistics", _slow_statistics)
    subjects = analysis.subject_list()
    cancel, outcome = threading.Event(), []

    def run():
        try:
            compute_group(subjects, analysis.settings(subjects), (0.0, -52.0, 18.0),
                          engine=analysis.engine(), cancel=cancel)
            outcome.append("finished")
        except G.Cancelled:
            outcome.append("cancelled")

    worker = threading.Thread(target=run)
    try:
        worker.start()
        assert _STATS_STARTED.wait(30), "the statistics never started"
        cancel.set()
        t0 = time.monotonic()
        worker.join(5)
        assert not worker.is_alive() and time.monotonic() - t0 < 1.0
        assert outcome == ["cancelled"]
    finally:
        _STATS_RELEASE.set()
        worker.join(30)


def test_subject_map_equals_the_single_subject_analysis(analysis, group_dir):
    """Subject 0's group-engine map is the single-subject tab's map (same cleaning)."""
    from analysis.connectivity import SeedConnectivity

    single = SeedConnectivity(data_dir=str(group_dir), subject=0)
    ours = analysis.subject_volume(0)
    theirs = single.r_map()
    both = np.isfinite(ours.values) & np.isfinite(theirs.values)
    assert both.sum() == np.isfinite(ours.values).sum() > 1000
    assert np.abs(ours.values[both] - theirs.values[both]).max() < 1e-6


def test_axial_strip_is_each_subjects_volume_cut_at_the_slice(analysis):
    """The subject strip (taken from the maps at once) holds, for every subject, the axial
    slice of that subject's volume nearest the asked z, NaN outside the mask."""
    res = analysis.ensure()
    for z_mm in (res.seed_mm[2], -7.0, 1e6):
        strip = analysis.axial_strip(z_mm)
        assert strip.dims == ("subject", "y", "x")
        assert list(strip.subject.values) == list(res.r.subject.values)
        for i in range(res.n_subjects):
            cut = analysis.subject_volume(i).sel(z=z_mm, method="nearest").transpose("y", "x")
            np.testing.assert_array_equal(strip.isel(subject=i).values, cut.values)
            np.testing.assert_array_equal(strip.x.values, cut.x.values)
            np.testing.assert_array_equal(strip.y.values, cut.y.values)
            assert strip.attrs["z_mm"] == float(cut.z.values)
        assert np.isfinite(strip.values).any() or z_mm == 1e6


def test_high_variance_confounds_reach_each_subjects_cleaning(group_dir):
    """The preprocessing group's option is a group parameter (inherited, not re-declared):
    the settings carry it, and a subject's map equals nilearn's maskers with it on."""
    from dataclasses import replace

    from analysis.connectivity.reference import reference_seed_map

    g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=2, processes=False,
                            high_variance_confounds=True)
    subjects = g.subject_list()
    settings = g.settings(subjects)
    assert settings.high_variance_confounds and settings.confound_columns
    spec = subjects.subjects[0]
    ours = G.serial_seed_maps([spec], settings, subjects.mask, g.seed_mm, g.radius_mm)[0]
    r, _ = reference_seed_map(spec.func, g.seed_mm, g.radius_mm, confounds=spec.confounds,
                              mask_img=subjects.mask, settings=settings)
    assert np.abs(ours - r).max() < 1e-5
    off = G.serial_seed_maps([spec], replace(settings, high_variance_confounds=False),
                             subjects.mask, g.seed_mm, g.radius_mm)[0]
    assert np.abs(off - ours).max() > 0.05


# --------------------------------------------------------------------------- caching

def test_seed_move_reruns_only_the_cheap_step_on_the_workers(analysis, group_dir, cleanings):
    before = analysis.result
    analysis.seed_mm = (-40.0, -70.0, 36.0)
    try:
        moved = analysis.run()
        assert len(cleanings) == 0
        assert moved.timings["cleaned_now"] == 0
        assert np.abs(moved.r.values - before.r.values).max() > 0.1
        # display parameters do not compute at all
        summary = analysis.summary()
        analysis.threshold = 6.0
        assert analysis.summary() != summary and analysis.result is moved
        assert len(cleanings) == 0
    finally:
        analysis.param.update(seed_mm=G.PCC_MM, threshold=3.0)
        analysis.run()
    # another object (another app session) with a subset of the subjects shares the data
    other = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3, processes=False)
    res = other.run()
    assert res.timings["cleaned_now"] == 0 and len(cleanings) == 0
    np.testing.assert_array_equal(res.r.values, analysis.result.r.sel(subject=res.r.subject).values)
    # a structural change cleans again, once per subject
    other.smoothing_fwhm = 4.0
    assert other.run().timings["cleaned_now"] == 3 and len(cleanings) == 3


# --------------------------------------------------------------------------- planted truth

def test_top_peaks_lie_in_planted_default_mode_nodes(analysis):
    peaks = analysis.peaks()
    top = peaks.head(5)
    assert len(top) == 5
    assert (top["network"] == DMN).all(), top
    # node blobs have sigma 5 mm (6 mm voxels), each subject's nodes jittered by about
    # 2 mm (anatomy differs): every top peak inside its node's blob
    assert (top["node_distance_mm"] <= 12.0).all(), top
    payload = analysis.report()
    assert payload["peak_t"] == pytest.approx(float(top["t"].iloc[0]))
    assert payload["n_subjects"] == N_SUBJECTS and payload["seed"] == list(G.PCC_MM)
    json.dumps(payload)  # JSON-able as it is


def test_group_map_recovers_the_network_better_than_any_subject(analysis):
    subjects = analysis.subject_list()
    res = analysis.result
    planted = _planted_dmn_map(subjects)
    far = _far_from_seed(subjects, res.seed_mm)  # not the seed's own sphere

    def recovery(values):
        return np.corrcoef(planted[far], np.asarray(values)[far])[0, 1]

    per_subject = [recovery(G.fisher_z(r)) for r in res.r.values]
    assert min(per_subject) > 0.3  # every subject carries the shared network
    assert recovery(res.t) > max(per_subject) + 0.03
    assert recovery(res.mean_z) > max(per_subject) + 0.03


def test_subjects_differ_but_share_the_planted_network(analysis):
    subjects = analysis.subject_list()
    truth = subjects.truth["subjects"]
    for key in ("noise_sd", "network_strength", "motion_scale"):
        assert len({s[key] for s in truth}) == len(truth), key
    z = G.fisher_z(analysis.result.r.values)
    far = _far_from_seed(subjects, analysis.seed_mm)
    corr = np.corrcoef(z[:, far])
    off = corr[~np.eye(len(z), dtype=bool)]
    assert off.max() < 0.95          # the maps differ ...
    assert off.min() > 0.2           # ... around a shared network (as real subjects do)
    planted = _planted_dmn_map(subjects) > 0.5
    base = planted[far].mean()       # the network's share of the far voxels
    for zi in z:                     # each subject's strongest far voxels sit in the network
        top = np.argsort(zi[far])[-50:]   # (planted at the mean anatomy: nodes jittered)
        assert planted[far][top].mean() > max(0.5, 3 * base), base


def test_peak_t_at_the_planted_nodes_grows_with_subjects(analysis, group_dir):
    """The t at the planted default-mode nodes grows with N.

    Measured at the node centres (median over the nodes away from the seed):
    the brain-wide maximum of t is not a fair measure with 2-5 degrees of
    freedom, where a tiny sample standard deviation gives a huge t anywhere.
    """
    subjects = analysis.subject_list()
    xyz, centres, networks = _geometry(subjects)
    dmn = centres[networks == DMN]
    dmn = dmn[np.linalg.norm(dmn - np.asarray(G.PCC_MM), axis=1) > 20]
    d = np.linalg.norm(xyz[:, None] - dmn[None], axis=2)
    at_node = d.argmin(axis=0)[d.min(axis=0) <= 3.0]   # nodes with a voxel within 3 mm
    assert len(at_node) > 20
    node_t = []
    for n in (3, 5, N_SUBJECTS):
        g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=n, processes=False)
        res = g.run()
        assert res.timings["cleaned_now"] == 0  # cleaned once, for the module's analysis
        node_t.append(float(np.median(res.t[at_node])))
    # subjects differ (a weak one can lower t at 5), but more subjects beat fewer
    assert node_t[2] > max(node_t[:2]), node_t


def test_age_group_selects_participants(group_dir):
    children = G.dataset_subjects(group_dir, n_subjects=3, age_group="child")
    assert [s.age_group for s in children.subjects] == ["child"] * 3
    adults = G.dataset_subjects(group_dir, age_group="adult")
    assert {s.age_group for s in adults.subjects} == {"adult"}
    n_adults = adults.n_available["adult"]
    with pytest.raises(DataError, match=f"between 1 and {n_adults}"):
        G.dataset_subjects(group_dir, n_subjects=n_adults + 1, age_group="adult")
    with pytest.raises(DataError, match="age group"):
        G.dataset_subjects(group_dir, age_group="teen")
    # the fetcher's choice for N, as fetch_development_fmri(n_subjects=N)
    both = G.dataset_subjects(group_dir, n_subjects=2)
    assert sorted(s.age_group for s in both.subjects) == ["adult", "child"]


def test_user_files(group_dir, tmp_path, analysis):
    root = dev.dataset_dir(group_dir)
    subjects = analysis.subject_list().subjects[:3]
    g = G.GroupConnectivity.from_files([s.func for s in subjects],
                                       confounds=[s.confounds for s in subjects],
                                       mask=root / dev.MASK, t_r=2.0, processes=False)
    res = g.run()
    assert res.timings["cleaned_now"] == 0  # same files, same settings: already on the workers
    np.testing.assert_array_equal(res.r.values, analysis.result.r.values[:3])
    with pytest.raises(DataError, match="2 confounds files for 3 images"):
        G.file_subjects([s.func for s in subjects], confounds=[s.confounds for s in subjects[:2]])
    with pytest.raises(DataError, match="file not found"):
        G.file_subjects([tmp_path / "missing.nii.gz"])


def test_group_needs_two_subjects_and_a_seed_in_the_brain(analysis, group_dir):
    with pytest.raises(DataError, match="at least 2 subjects"):
        G.group_stats(np.zeros((1, 10)))
    g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3, processes=False,
                            seed_mm=(90.0, 90.0, 90.0))
    with pytest.raises(DataError, match="outside the brain"):
        g.run()
    assert "outside the brain" in g.error and not g.running
    g.seed_mm = G.PCC_MM
    assert g.run().n_subjects == 3  # works again


# --------------------------------------------------------------------------- clusters

def test_existing_cluster_by_scheduler_address(analysis, group_dir, monkeypatch):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        monkeypatch.setenv(G.SCHEDULER_ENV, address)
        g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3)  # from the env var
        try:
            res = g.run()
            engine = g.engine()   # the one the run used
            assert engine.address == address and engine.cluster is None
            np.testing.assert_array_equal(
                res.r.values, analysis.result.r.sel(subject=res.r.subject).values)
        finally:
            g.close()


def test_unreachable_scheduler_clear_error_in_bounded_time(group_dir):
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3, scheduler=address,
                                timeout=2.0, processes=False)
        start = time.monotonic()
        with pytest.raises(DataError, match=r"did not answer within 2 s"):
            g.run()
        assert time.monotonic() - start < 8
    assert address in g.error and not g.running
    with socket.socket() as s:  # a closed port: refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(DataError, match="Dask scheduler at tcp://127.0.0.1"):
        G.connect(f"127.0.0.1:{closed}", timeout=2.0)
    assert time.monotonic() - start < 8
    # the same object keeps working once pointed at a local cluster
    g.scheduler = ""
    assert g.run().n_subjects == 3


@pytest.fixture
def forked_workers():
    """Worker processes are spawned (Dask's default), never forked: in the whole suite
    this process already runs threads (the browser tests' server), and a forked child
    of a threaded process can deadlock, hanging the run."""
    import dask

    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        yield


def _kill_busy_worker(engine) -> int:
    """SIGKILL the process of a worker that is running a task; its pid."""
    busy = {w for w, keys in engine.client.processing().items() if keys}
    for nanny in engine.cluster.workers.values():
        if nanny.worker_address in busy and nanny.pid:
            os.kill(nanny.pid, signal.SIGKILL)
            return nanny.pid
    raise AssertionError("no busy worker to kill")


def test_worker_killed_mid_run_the_computation_finishes(analysis, group_dir, forked_workers):
    g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=4, processes=True,
                            n_workers=2)
    killed = []

    def kill_once(fraction, message):
        if not killed and message.startswith("cleaned 1/"):
            killed.append(_kill_busy_worker(g.engine()))

    try:
        res = g.run(progress=kill_once)
    finally:
        g.close()
    assert killed
    # Dask recomputed what the dead worker held or ran: the same maps as the serial loop
    # (the module's analysis is tested equal to it)
    np.testing.assert_allclose(res.r.values, analysis.result.r.sel(subject=res.r.subject).values,
                               atol=1e-6, rtol=0)


def test_workers_dying_fail_clearly_and_write_nothing(group_dir, tmp_path, monkeypatch, capsys,
                                                     forked_workers):
    """With no retries allowed, a killed worker fails the CLI run with a one-line
    error, and --out is not written (not even a temporary file)."""
    import dask

    from analysis.cli import main

    real = G.compute_group

    def killing(subject_list, settings, seed_mm, radius_mm=8.0, engine=None, progress=None,
                **stats):   # the group statistics' settings pass through
        done = []

        def hook(fraction, message):
            progress(fraction, message)
            if not done and message.startswith("cleaned 1/"):
                done.append(_kill_busy_worker(engine))

        return real(subject_list, settings, seed_mm, radius_mm, engine=engine, progress=hook,
                    **stats)

    monkeypatch.setattr(G.model, "compute_group", killing)  # where run() looks it up
    out = tmp_path / "t_map.nii.gz"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        rc = main(["group", "--seed", "0", "-52", "18", "--data", str(group_dir),
                   "--n-subjects", "4", "--json", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "workers kept dying" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
    assert all(key[2] is not True for key in G._ENGINES)  # the CLI shut its cluster down


def test_cli_json_and_atomic_out(group_dir, tmp_path, capsys, analysis):
    from analysis.cli import main

    out = tmp_path / "t_map.nii.gz"
    rc = main(["group", "--seed", "0", "-52", "18", "--data", str(group_dir), "--n-subjects",
               "5", "--threads", "--json", "--out", str(out), "--threshold", "4"])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["seed"] == [0.0, -52.0, 18.0] and payload["n_subjects"] == 5
    assert payload["n_workers"] == 2 and payload["scheduler"] == "local"
    first = payload["peaks"][0]
    assert {"x", "y", "z", "t", "network", "node_distance_mm"} <= set(first)
    assert first["network"] == DMN and payload["peak_t"] == pytest.approx(first["t"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t_map.nii.gz"]
    img = nib.load(out)
    subjects = G.dataset_subjects(group_dir, n_subjects=5)
    ref = G.group_stats(analysis.result.r.sel(subject=subjects.names).values)["t"]
    mask = np.asarray(subjects.mask.dataobj).astype(bool)
    np.testing.assert_allclose(np.asarray(img.dataobj)[mask], ref.astype(np.float32), rtol=1e-5)


def test_cli_bad_input_one_line(group_dir, capsys):
    from analysis.cli import main

    assert main(["group", "--seed", "0", "-52", "18", "--data", str(group_dir),
                 "--n-subjects", "40"]) == 2
    assert "between 1 and 8" in capsys.readouterr().err
    assert main(["group", "--seed", "0", "-52", "18", "--n-subjects", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_real_dataset_layout_without_truth_uses_the_mni_mask(group_dir, tmp_path, analysis,
                                                             no_network):
    """A fetch_development_fmri folder with no planted truth (real data): the subjects
    are read through the fetcher offline, masked with the MNI152 brain mask."""
    import shutil

    src = dev.dataset_dir(group_dir)
    dst = dev.dataset_dir(tmp_path)
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if not f.name.startswith("synthetic_"):
            shutil.copy(f, dst / f.name)
    subjects = G.dataset_subjects(tmp_path, n_subjects=3)
    assert subjects.truth is None and subjects.source == "development_fmri"
    ours = np.asarray(subjects.mask.dataobj).astype(bool)
    planted = np.asarray(analysis.subject_list().mask.dataobj).astype(bool)
    assert ours.shape == planted.shape
    assert (ours & planted).sum() / (ours | planted).sum() > 0.8   # the same brain, roughly
    g = G.GroupConnectivity(data_dir=str(tmp_path), n_subjects=3, processes=False)
    res = g.run()
    assert res.n_subjects == 3 and "network" not in g.peaks().columns
    assert g.report()["source"] == "development_fmri"


def test_engine_keeps_the_cleaned_data_of_the_last_settings_only(connectivity_dir, cleanings):
    from analysis.connectivity import CleaningSettings

    subjects = G.dataset_subjects(connectivity_dir, n_subjects=2)
    engine = G.GroupEngine(n_workers=1, processes=False)
    try:
        for fwhm in (6.0, 4.0, 2.0):
            engine.seed_maps(subjects.subjects, CleaningSettings(smoothing_fwhm=fwhm),
                             subjects.mask, G.PCC_MM)
        kept = engine.kept_settings()
        assert {s.smoothing_fwhm for s in kept} == {4.0, 2.0} and len(kept) == 4
        assert cleanings.count(engine.client) == 6
        held = {k for keys in engine.client.has_what().values() for k in keys}
        assert sum(k.startswith("clean-") for k in held) <= 4
    finally:
        engine.close()


def test_a_shared_cluster_shuts_down_when_its_last_user_leaves(group_dir, monkeypatch):
    """Sessions share one local cluster; it stays up while one of them uses it, and shuts
    down (its workers' memory goes back) once the last has left and the idle time passed;
    a user coming back within that time keeps it."""
    import time

    kw = dict(data_dir=str(group_dir), n_subjects=2, processes=False, n_workers=1,
              scheduler="", radius_mm=6.0)
    a, b = G.GroupConnectivity(**kw), G.GroupConnectivity(**kw)
    engine = a.engine()
    assert b.engine() is engine                     # one cluster for both
    a.close(wait=0.0)
    assert engine.client.status == "running"        # b still uses it
    b.close(wait=0.3)
    assert engine.client.status == "running"        # idle, not closed yet
    c = G.GroupConnectivity(**kw)
    assert c.engine() is engine                     # taken up again in time: kept
    time.sleep(0.6)
    assert engine.client.status == "running"
    c.close(wait=0.3)
    deadline = time.monotonic() + 10
    while engine.client.status != "closed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.client.status == "closed"
    assert all(e is not engine for e in G._ENGINES.values())
    d = G.GroupConnectivity(**kw)                   # a later visitor gets a new cluster
    try:
        assert d.engine() is not engine and d.engine().client.status == "running"
    finally:
        d.close()
