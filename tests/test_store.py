"""The one cache store (analysis/store.py): bounded, thread-safe, computed once,
per-session eviction, optional disk layer; and the analyses' caches go through it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from analysis import store
from analysis.store import DiskLayer, Store


def test_bounded_by_entries_least_recently_used_first():
    s = Store("test.entries", max_entries=3)
    for k in "abc":
        s.put(k, k.upper())
    assert s.get("a") == "A"          # a is now the most recent
    s.put("d", "D")
    assert s.keys() == ["c", "a", "d"] and "b" not in s
    assert s.get("b", "missing") == "missing"


def test_bounded_by_bytes_keeps_the_newest_entry():
    s = Store("test.bytes", max_entries=100, max_bytes=3 * 800)
    for i in range(5):
        s.put(i, np.zeros(100))      # 800 bytes each
    assert s.keys() == [2, 3, 4] and s.stats()["bytes"] == 2400
    s.put("big", np.zeros(1000))     # larger than the bound alone: kept, the rest go
    assert s.keys() == ["big"]


def test_computed_once_while_others_wait():
    s = Store("test.once", max_entries=4)
    calls, started = [], threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(s.get_or_compute("k", slow)))
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(results) == 5 and all(r is results[0] for r in results)
    assert s.stats()["misses"] == 1 and s.stats()["hits"] >= 1


def test_a_failed_computation_is_raised_and_not_kept():
    s = Store("test.fail", max_entries=4)

    def boom():
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        s.get_or_compute("k", boom)
    assert "k" not in s
    assert s.get_or_compute("k", lambda: 7) == 7


def test_per_session_eviction_keeps_shared_and_other_sessions_entries():
    a, b = Store("test.owners.a", max_entries=10), Store("test.owners.b", max_entries=10)
    a.put("shared", 1)
    a.put("upload-1", 2, owner="session-1")
    a.put("both", 3, owner="session-1")
    a.put("both", 3, owner="session-2")
    b.put("upload-1-too", 4, owner="session-1")
    assert store.release("session-1") == 2          # in every store
    assert a.keys() == ["shared", "both"] and len(b) == 0
    assert a.release("session-2") == 1 and a.keys() == ["shared"]
    a.put("x", 5, owner="session-3")
    a.put("x", 5)                                   # asked for without an owner: shared now
    assert a.release("session-3") == 0 and "x" in a


def test_disk_layer_is_read_before_computing_and_written_after(tmp_path):
    def load(key):
        f = tmp_path / f"{key}.npy"
        return np.load(f) if f.exists() else None

    def save(key, value):
        np.save(tmp_path / f"{key}.npy", value)

    s = Store("test.disk", max_entries=2, disk=DiskLayer(load, save))
    assert s.get_or_compute("k", lambda: np.arange(3)).tolist() == [0, 1, 2]
    assert (tmp_path / "k.npy").exists()
    s.clear()                                        # as a new process would start

    def never():
        raise AssertionError("computed again although on disk")

    assert s.get_or_compute("k", never).tolist() == [0, 1, 2]


def test_the_analyses_caches_are_stores():
    import analysis.connectivity  # noqa: F401 - registers its stores
    import analysis.encoding  # noqa: F401

    names = set(store.stats())
    assert {"connectivity.cleaned", "connectivity.subjects", "encoding.engines",
            "encoding.r2", "encoding.lasso"} <= names
    assert all(set(v) == {"entries", "bytes", "hits", "misses", "owned"}
               for v in store.stats().values())


def test_an_uploads_cleaned_data_goes_with_its_session(connectivity_dir):
    from analysis import connectivity as C
    from analysis.datasets import development as dev

    files = dev.subject_files(connectivity_dir, subject=0)
    subject = C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])
    subject.owner = "visitor-session"
    settings = C.CleaningSettings()
    C.cleaned(subject, settings)
    assert C.is_cached(subject.key, settings)
    store.release("another-session")
    assert C.is_cached(subject.key, settings)
    store.release("visitor-session")
    assert not C.is_cached(subject.key, settings)


def test_trim_goes_back_to_the_warm_entries_and_keeps_sessions_own():
    s = Store("test.trim", max_entries=10)
    s.put("default", 1)
    s.mark_warm()                       # the server's warm-up is done
    s.put("alpha=3", 2)                 # filled by visitors' moves
    s.put("upload", 3, owner="session-1")
    s.get("default")
    assert s.trim() == 1
    assert s.keys() == ["upload", "default"]   # warm kept; a live session's own kept
    s.release("session-1")
    assert s.keys() == ["default"]


def test_the_stores_go_back_to_warm_when_the_last_session_ends(monkeypatch):
    import time

    from dashboard import jobs

    s = Store("test.idle", max_entries=10)
    s.put("warm", 1)
    s.mark_warm()
    monkeypatch.setattr(jobs, "RELEASE_AFTER", 0.1)
    monkeypatch.setattr(jobs, "release_memory", lambda: 0)
    jobs.session_started()
    jobs.session_started()
    s.put("visitor", 2)
    jobs.session_ended()                # one session is left: nothing is trimmed
    time.sleep(0.5)
    assert "visitor" in s
    jobs.session_ended()
    time.sleep(0.5)
    assert s.keys() == ["warm"] and jobs.live_sessions() == 0
