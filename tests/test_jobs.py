"""CPU, memory and session bombs (issue 13, items 8-10), headless: the job registry's
cap and queue, a session's jobs cancelled with it, the app's permutation cap, the
operator's Dask scheduler, and a decoding upload masked off the event loop and freed."""

from __future__ import annotations

import re
import shutil
import threading
import time
from types import SimpleNamespace

import pytest

from analysis.errors import DataError


class FakeDoc:
    """What the registry needs of a served Bokeh document (a session's)."""

    def __init__(self, session_id: str):
        self.session_context = SimpleNamespace(id=session_id, _session=None)
        self.destroyed = []

    def on_session_destroyed(self, callback):
        self.destroyed.append(callback)

    def add_next_tick_callback(self, fn):
        fn()   # "the event loop" runs it now

    def destroy(self):
        for callback in self.destroyed:
            callback(self.session_context)


def test_the_cap_queues_a_second_job_and_starts_it_when_the_first_ends():
    from dashboard.jobs import JobRegistry, queued_message

    registry = JobRegistry(max_jobs=1)
    release = threading.Event()
    positions = []
    first = registry.submit(lambda job: release.wait(10) and "first", name="a")
    second = registry.submit(lambda job: "second", name="b", on_queued=positions.append)
    assert first.running and second.state == "queued"
    assert second.position == 1 and positions == [1]
    assert registry.running() == [first] and registry.queued() == [second]
    assert "queued, position 1" in queued_message(second.position)
    release.set()
    assert second.wait(10) and first.result == "first" and second.result == "second"
    assert registry.jobs() == []


def test_long_jobs_leave_a_slot_to_quick_ones_which_pass_them_in_the_queue():
    """Issue 13 (every move answered): a visitor's structural change (seconds) queued
    behind other visitors' permutation tests and group runs (minutes) and stayed
    unanswered for 30 s under the hostile load. Long jobs take all slots but one; quick
    jobs pass queued long ones; the cap on jobs running at once still holds."""
    from dashboard.jobs import JobRegistry

    registry = JobRegistry(max_jobs=2)
    release = {name: threading.Event() for name in ("perm", "group", "quick", "later")}
    order = []

    def hold(name):
        def work(job):
            order.append(name)
            release[name].wait(10)
            return name
        return work

    perm = registry.submit(hold("perm"), name="permutations", long=True)
    group = registry.submit(hold("group"), name="group-run", long=True)
    quick = registry.submit(hold("quick"), name="structural")
    later = registry.submit(hold("later"), name="structural")
    assert perm.running and group.state == "queued"      # one slot stays for quick work
    assert quick.running and later.state == "queued"    # the cap: 2 running
    assert later.position == 1 and group.position == 2  # the quick job passes the long one
    assert registry.running() == [perm, quick]
    release["quick"].set()        # the quick slot frees: the next quick job, not the long one
    assert quick.wait(10) and later.wait(0.01) is False
    deadline = time.monotonic() + 10
    while not later.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert later.running and group.state == "queued"
    release["perm"].set()         # the long slot frees: the long job
    assert perm.wait(10)
    deadline = time.monotonic() + 10
    while not group.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert group.running
    release["later"].set(), release["group"].set()
    assert later.wait(10) and group.wait(10)
    assert order == ["perm", "quick", "later", "group"]
    # with one slot, a long job may take it (nothing would run it otherwise)
    single = JobRegistry(max_jobs=1)
    assert single.max_long == 1
    assert single.submit(lambda job: "ok", long=True).wait(10)


def test_a_jobs_error_reaches_the_caller():
    from dashboard.jobs import JobRegistry

    registry = JobRegistry(max_jobs=2)
    errors, done = [], []

    def fail(job):
        raise DataError("bad file")

    job = registry.submit(fail, on_error=errors.append, on_done=done.append)
    assert job.wait(10)
    assert job.state == "failed" and done == []
    assert len(errors) == 1 and str(errors[0]) == "bad file"


def test_a_destroyed_session_stops_its_permutation_test_within_5_s(decoding_dir):
    from analysis.decoding import DecodingAnalysis
    from dashboard.jobs import STOP_WITHIN, JobRegistry

    registry = JobRegistry(max_jobs=1)
    doc, other = FakeDoc("closing"), FakeDoc("staying")
    a = DecodingAnalysis.from_dataset(decoding_dir, n_permutations=10_000)
    a.scores()
    started = threading.Event()

    def permutations(job):
        cancel = threading.Event()
        job.on_cancel(cancel.set)
        a.param.watch(lambda e: started.set(), "permutation_progress")
        return a.run_permutations(cancel)

    running = registry.submit(permutations, name="permutations", doc=doc)
    queued = registry.submit(lambda job: pytest.fail("a dropped job ran"), doc=doc)
    kept = registry.submit(lambda job: "kept", doc=other)
    assert started.wait(60), "the permutation test did not start"
    assert running.running and queued.position == 1 and kept.position == 2
    doc.destroy()                      # the session closes
    t0 = time.monotonic()
    assert running.wait(STOP_WITHIN)
    running.thread.join(STOP_WITHIN - (time.monotonic() - t0))
    assert time.monotonic() - t0 < STOP_WITHIN
    assert running.state == "cancelled" and not running.thread.is_alive()
    assert a.permutation_result is None and not a.permutation_running
    assert "cancelled after" in a.permutation_status
    assert queued.state == "cancelled" and queued.thread is None   # dropped, never ran
    assert kept.wait(10) and kept.result == "kept"                 # another session's
    assert registry.jobs() == []


def test_cancel_all_stops_every_job():
    from dashboard.jobs import JobRegistry

    registry = JobRegistry(max_jobs=1)
    jobs = [registry.submit(lambda job: job.cancel_event.wait(30)) for _ in range(3)]
    assert registry.cancel_all(timeout=5)
    assert [j.state for j in jobs] == ["cancelled"] * 3


def test_a_closed_page_cancels_its_jobs_after_the_grace(monkeypatch):
    from dashboard import jobs as J

    registry = J.JobRegistry(max_jobs=1)
    doc = FakeDoc("page")
    session = SimpleNamespace(connection_count=1)
    doc.session_context._session = session
    job = registry.submit(lambda job: job.cancel_event.wait(30), doc=doc)
    registry.check_connections(now=0.0)
    session.connection_count = 0       # the tab closed
    registry.check_connections(now=1.0)
    assert job.running
    registry.check_connections(now=1.0 + J.DISCONNECT_GRACE)
    assert job.wait(5) and job.state == "cancelled"


def test_the_app_caps_permutations_at_10000(decoding_dir):
    from dashboard.decoding import MAX_APP_PERMUTATIONS, DecodingTab

    assert MAX_APP_PERMUTATIONS == 10_000
    tab = DecodingTab()
    assert tab.w_perms.end == 10_000
    before = tab.analysis.n_permutations
    tab.w_perms.value = 100_000         # typed past the widget's end: refused, notified
    assert tab.analysis.n_permutations == before
    tab.start_permutations()            # and Run refuses it (nothing starts)
    assert tab.permutation_job is None and not tab.analysis.permutation_running
    with pytest.raises(ValueError):    # any path: a notebook handle, a link, a script
        tab.analysis.n_permutations = 10_001
    tab.analysis.n_permutations = 10_000
    from analysis.decoding import DecodingAnalysis

    DecodingAnalysis.from_dataset(decoding_dir, n_permutations=100_000)  # the CLI may


def test_the_scheduler_is_the_operators_unless_allowed(group_dir, monkeypatch):
    import panel as pn

    from analysis import group as G
    from dashboard.group import ALLOW_SCHEDULER_EDIT_ENV, GroupPanel
    from dashboard.share import check_whitelist

    monkeypatch.delenv(ALLOW_SCHEDULER_EDIT_ENV, raising=False)
    monkeypatch.setenv(G.SCHEDULER_ENV, "tcp://10.0.0.1:8786")
    model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3, processes=False)
    panel = GroupPanel(model=model)
    assert isinstance(panel.w_scheduler, pn.widgets.StaticText)   # shown, not edited
    assert panel.w_scheduler.value == "tcp://10.0.0.1:8786" and model.scheduler == ""
    with pytest.raises(TypeError):      # a link can never set it
        check_whitelist(model, {"scheduler": "group_scheduler"})
    monkeypatch.setenv(ALLOW_SCHEDULER_EDIT_ENV, "1")
    editable = GroupPanel(model=G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3))
    assert isinstance(editable.w_scheduler, pn.widgets.TextInput)
    editable.w_scheduler.value = "tcp://127.0.0.1:1"
    assert editable.model.scheduler == "tcp://127.0.0.1:1"


def test_a_scheduler_with_no_workers_fails_within_the_timeout(group_dir):
    from distributed import Client, LocalCluster

    from analysis import group as G

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3,
                                scheduler=cluster.scheduler_address, timeout=1.0)
        t0 = time.monotonic()
        with pytest.raises(DataError, match="has no workers"):
            g.run()
        assert time.monotonic() - t0 < 10
        assert cluster.scheduler_address in g.error
        with Client(cluster) as client:   # no task was left on the scheduler
            assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0


def test_a_decoding_upload_is_masked_off_the_event_loop_and_freed(decoding_dir, haxby_slice,
                                                                  tmp_path, monkeypatch):
    from analysis.datasets import haxby
    from dashboard.decoding import USER_FILES, DecodingTab

    calls = []
    real = haxby.masked_data

    def recording(*args, **kwargs):
        calls.append((threading.current_thread().name, kwargs.get("shared", True),
                      str(args[0])))
        return real(*args, **kwargs)

    monkeypatch.setattr(haxby, "masked_data", recording)
    tab = DecodingTab()
    up = tab.upload
    for role, name in (("func", "bold.nii.gz"), ("mask", "mask.nii.gz"),
                       ("labels", "attributes.txt")):
        copy = tmp_path / name
        shutil.copy(haxby_slice / name, copy)
        up.uploads.accept(role, name, copy.read_bytes())
        up.paths = {**up.paths, role: up.uploads.files[role]}
    job = tab.upload_job
    assert job is not None and job.wait(120) and job.state == "done"
    assert tab.source == USER_FILES
    # no code table: the codes stay numbers, the default pair two similar classes
    assert tab.summary.object.startswith("1 vs 2, SVC C=1, leave-one-run-out: ")
    func = str(up.uploads.files["func"])
    masked = [c for c in calls if c[2] == func]
    assert masked and all(name.startswith("job-") for name, _, _ in masked)  # not the loop
    assert all(shared is False for _, shared, _ in masked)
    assert not [k for k in haxby.MEMORY.keys() if func in str(k)]   # never process-wide
    data = tab.user_data
    assert data.info.get("_masked")
    tab.cleanup()                       # what the session's end runs
    assert tab.user_data is None and not data.info.get("_masked")
    assert not [k for k in haxby.MEMORY.keys() if func in str(k)]


def test_a_cancelled_group_run_stops_and_releases_its_dask_futures(group_dir):
    from analysis import group as G

    g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=4, processes=False,
                            n_workers=1, smoothing_fwhm=5.0)
    cancel = threading.Event()
    cleaning = threading.Event()
    outcome = []

    def progress(fraction, message=""):
        if message.startswith("cleaning"):
            cleaning.set()

    def run():
        try:
            g.run(progress=progress, cancel=cancel)
            outcome.append("finished")
        except G.Cancelled:
            outcome.append("cancelled")

    try:
        worker = threading.Thread(target=run)
        worker.start()
        assert cleaning.wait(60), "the run never started cleaning"
        cancel.set()
        t0 = time.monotonic()
        worker.join(5)
        assert not worker.is_alive() and time.monotonic() - t0 < 5
        assert outcome == ["cancelled"] and g.result is None
        engine = g.engine()
        # the engine keeps the cleanings that finished before the cancel, only those:
        # each one it keeps is data held on a worker (a kept unfinished or cancelled
        # cleaning is not); the others were cancelled and released
        held = {k for keys in engine.client.has_what().values() for k in keys}
        assert sum(k.startswith("clean-") for k in held) == len(engine.kept_settings())
        deadline = time.monotonic() + 10   # the scheduler forgets the run's tasks
        n = None
        while time.monotonic() < deadline:
            n = engine.client.run_on_scheduler(
                lambda dask_scheduler: len([t for t in dask_scheduler.tasks.values()
                                            if t.state != "memory"]))
            if n == 0:
                break
            time.sleep(0.2)
        assert n == 0
    finally:
        g.close()


def test_a_queued_permutation_test_says_so_in_the_tab(decoding_dir, monkeypatch):
    from dashboard import jobs
    from dashboard.decoding import DecodingTab

    monkeypatch.setattr(jobs, "REGISTRY", jobs.JobRegistry(max_jobs=1))
    release = threading.Event()
    blocker = jobs.submit(lambda job: release.wait(30), name="someone else's")
    tab = DecodingTab()
    tab.w_perms.value = 10
    try:
        tab.start_permutations()   # outside a server, its updates show at once
        assert tab.permutation_job.state == "queued"
        assert tab.perm_status.object.startswith("queued, position 1")
        assert tab.w_run.disabled and not tab.w_cancel.disabled
    finally:
        release.set()
    assert blocker.wait(10) and tab.permutation_job.wait(120)
    assert re.match(r"p(=|<=)", tab.perm_status.object) and "10 permutations" in \
        tab.perm_status.object


def test_a_closed_sessions_memory_goes_back():
    """What a closed session leaves in reference cycles (models, views, figures) is freed
    and handed back: here a cycle holding 200 MB."""
    import gc

    import numpy as np
    import psutil

    from dashboard import jobs

    process = psutil.Process()
    gc.disable()
    try:
        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        a.data = np.ones(25 * 2**20)          # 200 MB, reachable only through the cycle
        held = process.memory_info().rss
        del a, b
        assert process.memory_info().rss > held - 100 * 2**20   # still held by the cycle
        freed = jobs.release_memory()
        assert freed >= 2
        assert process.memory_info().rss < held - 150 * 2**20
    finally:
        gc.enable()


def test_memory_is_released_once_for_sessions_ending_together(monkeypatch):
    import time

    from dashboard import jobs

    passes = []
    monkeypatch.setattr(jobs, "release_memory", lambda: passes.append(time.monotonic()))
    for _ in range(3):                        # three sessions end within the delay
        jobs.release_memory_soon(delay=0.2)
    time.sleep(1.0)
    assert len(passes) == 1
    jobs.release_memory_soon(delay=0.1)       # a later one gets its own pass
    time.sleep(0.6)
    assert len(passes) == 2
