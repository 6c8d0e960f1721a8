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
