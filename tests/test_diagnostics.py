"""The operator's memory report: one JSON line per interval, counting session objects."""

from __future__ import annotations

import json
import time

NAME = "analysis.preprocessing.CleaningSettings"  # declared with the preprocessing group


def test_snapshot_counts_live_project_objects():
    from analysis.connectivity import CleaningSettings
    from dashboard import diagnostics

    before = diagnostics.snapshot(top=100_000)["objects"].get(NAME, 0)
    keep = [CleaningSettings(smoothing_fwhm=float(i)) for i in range(37)]
    during = diagnostics.snapshot(top=100_000)["objects"].get(NAME, 0)
    assert during - before == len(keep)
    del keep
    assert diagnostics.snapshot(top=100_000)["objects"].get(NAME, 0) == before


def test_report_off_by_default_and_appends_lines(tmp_path, monkeypatch):
    from dashboard import diagnostics

    monkeypatch.delenv("FMRI_EXPLORER_MEMORY_REPORT", raising=False)
    assert diagnostics.start() is None
    path = tmp_path / "memory.jsonl"
    monkeypatch.setenv("FMRI_EXPLORER_MEMORY_REPORT", str(path))
    monkeypatch.setenv("FMRI_EXPLORER_MEMORY_REPORT_S", "0.2")
    reporter = diagnostics.start()
    assert reporter is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not path.exists()
                                           or len(path.read_text().splitlines()) < 2):
        time.sleep(0.1)
    reporter.stop()
    reporter.join(5)
    assert not reporter.is_alive()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) >= 2 and lines[1]["t"] >= lines[0]["t"]
    assert lines[0]["rss_mb"] > 0


def test_snapshot_names_the_modules_loaded_since_the_previous_one():
    """A module a session imports first stays loaded: the report names it once."""
    import sys
    import types

    from dashboard import diagnostics

    diagnostics.snapshot()
    name = "fmri_explorer_test_module_loaded_later"
    sys.modules[name] = types.ModuleType(name)
    try:
        first = diagnostics.snapshot()
        assert name in first["new_modules"] and first["modules"] == len(sys.modules)
        assert name not in diagnostics.snapshot()["new_modules"]
    finally:
        del sys.modules[name]


def test_snapshot_lists_a_large_array_with_its_holder():
    """With no session open, the report names the large arrays alive and what holds them
    (memory kept after the sessions closed: which cache, which object)."""
    import types

    import numpy as np

    from dashboard import diagnostics

    holder = types.SimpleNamespace(cache={"fmri_explorer_test_key": np.ones(3 * 2**20 // 8 + 5)})
    shot = diagnostics.snapshot()
    assert shot["sessions"]["open"] == 0
    ours = [a for a in shot["large_arrays"] if a[3].endswith("[fmri_explorer_test_key]")]
    assert ours and ours[0][1] == [3 * 2**20 // 8 + 5] and ours[0][2] == "float64", \
        shot["large_arrays"]
    del holder.cache["fmri_explorer_test_key"]
    assert not [a for a in diagnostics.snapshot()["large_arrays"]
                if "fmri_explorer_test_key" in a[3]]


def test_census_keeps_other_threads_from_running_meanwhile():
    """The object census holds references to every object, among them a tuple another
    thread is building (CPython then fails that thread's build with 'SystemError: bad
    argument to internal function', seen in a served session): threads building tuples
    from generators while snapshots are taken all finish."""
    import threading

    from dashboard import diagnostics

    errors, stop = [], threading.Event()

    def build():
        while not stop.is_set():
            try:
                tuple(str(i) for i in range(200))
            except SystemError as exc:   # pragma: no cover - the defect
                errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            diagnostics.snapshot()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


def test_memory_report_gives_glibcs_heap_figures():
    """The report's ``malloc`` figures tell a heap that keeps freed memory (``free``) from
    memory in use: a large array shows in ``mmapped`` while alive, not after."""
    import numpy as np
    import pytest

    from dashboard.diagnostics import malloc_stats

    before = malloc_stats()
    if not before:
        pytest.skip("no mallinfo2 here (not glibc >= 2.33)")
    assert set(before) == {"arenas", "in_use", "free", "mmapped"}
    assert before["in_use"] > 0 and before["in_use"] <= before["arenas"]
    big = np.ones(2**24)        # 128 MB: above any mmap threshold
    alive = malloc_stats()
    assert alive["mmapped"] >= before["mmapped"] + 120
    del big
    assert malloc_stats()["mmapped"] <= alive["mmapped"] - 120
