"""The Group panel headless: a run in a thread fills the viewer, histogram, strip;
the seed is shared with another object; errors reach the status line."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import param

from analysis import group as G
from analysis.datasets import development as dev


class Seed(param.Parameterized):
    seed_mm = param.NumericTuple(default=G.PCC_MM, length=3)
    radius_mm = param.Number(default=8.0)


def _wait(panel, timeout=120):
    import time

    deadline = time.monotonic() + timeout
    while panel.busy and time.monotonic() < deadline:  # a job (dashboard/jobs.py), maybe rerun
        panel.job.wait(max(0.0, deadline - time.monotonic()))
    assert not panel.busy


def _progress_shown(panel) -> bool:
    """The progress bar is shown (it keeps its room hidden: its inline style says so)."""
    return panel.progress.visible and panel.progress.styles.get("visibility") != "hidden"


def test_group_panel_runs_in_a_thread_and_shows_results(group_dir, cleanings):
    from dashboard.group import GroupPanel

    source = Seed()
    model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=4, processes=False)
    panel = GroupPanel(seed_source=source, model=model)
    panel.__panel__()
    assert panel.w_n.end == 8 and panel.w_age.visible
    thread = panel.start()
    assert thread is not None and panel.w_run.disabled and _progress_shown(panel)
    _wait(panel)
    res = model.result
    assert res is not None and res.n_subjects == 4
    assert not panel.w_run.disabled and not _progress_shown(panel)
    np.testing.assert_array_equal(panel.viewer.stat_map.values, model.t_map().values)
    assert panel.viewer.marker_mm == G.PCC_MM
    assert panel.summary.object == model.summary() and "4 subjects" in panel.summary.object
    hist = panel.hist.object.get(0)
    assert isinstance(hist, hv.Histogram) and hist.data["voxels"].sum() == np.isfinite(res.t).sum()
    strip = panel.strip.object
    assert len(strip) == 4 and list(strip)[0].label == "" and \
        [el.opts.get().kwargs["title"] for el in strip] == list(res.r.subject.values)
    assert "Dask dashboard" in panel.dask_link.object
    assert len(panel.peaks_table.object) > 0
    # column titles in the field's words, not the JSON keys (issue 15 item 14)
    assert not {"node_distance_mm", "x"} & set(panel.peaks_table.object.columns)

    # display parameter: redraw only
    panel.w_threshold.value = 8.0
    assert model.threshold == 8.0 and panel.viewer.threshold == 8.0 and panel.busy is False
    assert "|t| >= 8" in panel.summary.object

    # the shared seed moves (e.g. a click in the single-subject view): the cheap re-run
    calls = len(cleanings)
    seen = []   # busy meanwhile: the progress bar shown then hidden; the Run button stays
    panel.progress.param.watch(lambda e: seen.append(("progress", _progress_shown(panel))),
                               "styles")
    panel.w_run.param.watch(lambda e: seen.append(("run disabled", e.new)), "disabled")
    source.seed_mm = (-40.0, -70.0, 36.0)
    assert model.seed_mm == (-40.0, -70.0, 36.0) and panel.w_x.value == -40.0
    _wait(panel)
    assert seen == [("progress", True), ("progress", False)]
    assert model.result.seed_mm == (-40.0, -70.0, 36.0)
    assert model.result.timings["cleaned_now"] == 0 and len(cleanings) == calls
    # ... and the panel's seed widgets move the shared seed too
    panel.w_z.value = 30.0
    _wait(panel)
    assert source.seed_mm == (-40.0, -70.0, 30.0) and model.result.seed_mm[2] == 30.0


def test_group_panel_bad_scheduler_reports_and_keeps_working(group_dir, monkeypatch):
    from dashboard.group import ALLOW_SCHEDULER_EDIT_ENV, GroupPanel

    monkeypatch.setenv(ALLOW_SCHEDULER_EDIT_ENV, "1")  # the operator allows choosing one
    model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3, processes=False,
                                timeout=1.0)
    panel = GroupPanel(model=model)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    panel.w_scheduler.value = f"127.0.0.1:{port}"
    assert model.scheduler == f"127.0.0.1:{port}"
    panel.start()
    _wait(panel, 30)
    assert panel.status.object.startswith("error: the Dask scheduler at")
    assert not panel.w_run.disabled and model.result is None
    panel.w_scheduler.value = ""
    panel.start()
    _wait(panel)
    assert model.result.n_subjects == 3 and panel.status.object == ""


def test_group_panel_with_no_arguments_and_a_shared_single_subject_seed(connectivity_dir):
    """Cheap to build (nothing computed until Run); shares the single-subject seed."""
    from analysis.connectivity import SeedConnectivity
    from dashboard.group import GroupPanel

    alone = GroupPanel()
    assert alone.model.result is None and alone.viewer.stat_map is None
    assert alone.w_n.end == dev.SIZES["small"]["n_subjects"]
    assert alone.viewer.background is not None
    single = SeedConnectivity(size="small", seed_mm=(4.0, -50.0, 24.0))
    shared = GroupPanel(seed_source=single)
    assert shared.model.seed_mm == (4.0, -50.0, 24.0) and shared.w_x.value == 4.0
    single.seed_mm = (0.0, -52.0, 18.0)   # no result yet: the seed follows, nothing runs
    assert shared.model.seed_mm == (0.0, -52.0, 18.0) and not shared.busy


def test_a_failed_run_is_reported_when_the_event_loop_gets_to_it(group_dir, monkeypatch):
    # served, the report runs on the session's loop after the worker thread's except block
    from dashboard.group import GroupPanel

    from dashboard import jobs

    model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3, processes=False)
    panel = GroupPanel(model=model)
    queued = []
    monkeypatch.setattr(jobs, "deliver", lambda doc, fn: queued.append(fn))

    def fail(progress=None, cancel=None):
        raise RuntimeError("no workers left")

    monkeypatch.setattr(model, "run", fail)
    assert panel.start().wait(30)   # a job of dashboard/jobs.py
    for fn in queued:  # the loop runs them later
        fn()
    assert panel.status.object == "error: RuntimeError: no workers left"
    assert not panel.w_run.disabled


def test_group_panel_shows_corrected_thresholds(group_dir):
    """The summary gives df and the FDR and FWE thresholds with their voxel counts, the
    histogram marks them, and *Show voxels at* thresholds the map at each (issue 17)."""
    from dashboard.group import GroupPanel

    model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=6, processes=False,
                                n_permutations=100)
    panel = GroupPanel(model=model)
    panel.__panel__()
    panel.start()
    _wait(panel)
    inf = model.result.inference
    assert inf.n_permutations == 100 and inf.n_voxels_fdr > 0
    text = panel.summary.object
    assert text == model.summary()
    assert "(df 5)" in text and f"FDR q < 0.05: |t| >= {inf.fdr_t_threshold:.2f}, " \
        f"{inf.n_voxels_fdr:,} voxels" in text
    assert f"FWE p < 0.05: |t| > {inf.fwe_t_threshold:.2f}, {inf.n_voxels_fwe:,} voxels " \
           "(100 sign flips)" in text
    lines = {round(abs(el.data), 9) for el in panel.hist.object if isinstance(el, hv.VLine)}
    assert {round(inf.fdr_t_threshold, 9), round(inf.fwe_t_threshold, 9),
            model.threshold} <= lines
    assert "Benjamini-Hochberg" in panel.w_correction.description
    assert "sign" in panel.w_permutations.description

    # FDR, then FWE: the viewer shows exactly the voxels each declares (a redraw, no run)
    before = model.result
    panel.w_correction.value = "fdr"
    assert model.correction == "fdr" and not panel.busy and model.result is before
    shown = panel.viewer.stat_map.values
    assert np.isfinite(shown).sum() == inf.n_voxels_fdr
    np.testing.assert_array_equal(shown, model.shown_t_map().values)
    assert np.abs(shown[np.isfinite(shown)]).min() == inf.fdr_t_threshold
    assert "FDR q < 0.05" in panel.viewer.title
    assert_clusters_of_the_shown_map(panel, inf.n_voxels_fdr)
    panel.w_correction.value = "fwe"
    assert np.isfinite(panel.viewer.stat_map.values).sum() == inf.n_voxels_fwe
    assert "FWE p < 0.05" in panel.viewer.title
    assert_clusters_of_the_shown_map(panel, inf.n_voxels_fwe)

    # more permutations: the statistics run again (the subjects stay cleaned)
    panel.w_permutations.value = 200
    assert model.n_permutations == 200
    _wait(panel)
    assert model.result is not before and model.result.inference.n_permutations == 200
    assert "(200 sign flips)" in panel.summary.object


def assert_clusters_of_the_shown_map(panel, n_voxels):
    """The Group section's cluster table is the clusters of the voxels the correction
    declares (issue 17): cluster_table of the shown map, every declared voxel in one,
    regions named (development data: MNI)."""
    from analysis.reporting import NOT_MNI, cluster_table
    from analysis.volumes import affine_of

    da = panel.viewer.stat_map
    values = np.asarray(da.transpose("x", "y", "z").values)
    ours = cluster_table(values, affine_of(da), float(panel.viewer.threshold),
                         two_sided=True, atlas=panel.viewer.atlas, in_mni=True)
    pd.testing.assert_frame_equal(panel.clusters.table, ours)
    peaks = ours[ours["subpeak"] == ""]
    assert peaks["size_voxels"].sum() == n_voxels
    assert (ours["region"] != NOT_MNI).all()


def test_display_parameters_set_on_the_model_move_the_widgets(connectivity_dir):
    from dashboard.group import GroupPanel

    model = G.GroupConnectivity(data_dir=str(connectivity_dir), n_subjects=2)
    panel = GroupPanel(model=model)
    model.param.update(correction="fwe", threshold=5.0, n_permutations=300)
    assert panel.w_correction.value == "fwe" and panel.w_threshold.value == 5.0
    assert panel.w_permutations.value == 300 and not panel.busy   # no result: nothing runs
