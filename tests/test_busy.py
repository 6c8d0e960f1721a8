"""A tab's busy state (dashboard/busy.py): views greyed out, progress and status while its
job runs; a stale result keeps it busy, a current one is shown; a failure is reported."""

from __future__ import annotations

import threading
import time

import pytest


def _wait(pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_show_and_report():
    from dashboard.busy import Busy

    busy = Busy(None, "probe")
    assert "probe-views" in busy.views.css_classes

    def shown(progress):   # inline styles only: no page layout in the browser
        return progress.visible and progress.styles.get("visibility") != "hidden"

    def greyed(views):
        return views.styles.get("pointer-events") == "none"

    assert not shown(busy.progress) and not greyed(busy.views)
    busy.show(True, "masking ...")
    assert busy.active and busy.views.styles["pointer-events"] == "none"
    assert float(busy.views.styles["opacity"]) < 1 and shown(busy.progress)
    assert not busy.views.loading   # not Panel's overlay (a layout of the whole page)
    assert busy.status.object == "masking ..."
    busy.report(0.5, "half way")
    assert busy.progress.value == 50 and busy.status.object == "half way"
    busy.report(0.6, "too soon")             # within REPORT_EVERY of the last: dropped
    assert busy.progress.value == 50 and busy.status.object == "half way"
    busy.report(1.0, "done")                 # the last always arrives
    assert busy.progress.value == 100 and busy.status.object == "done"
    busy.show(False)
    assert not busy.active and not greyed(busy.views) and not shown(busy.progress)
    # explicit values (the browser keeps a property an update leaves out)
    assert busy.views.styles["opacity"] == "1" and busy.views.styles["pointer-events"] == "auto"
    assert busy.status.object == ""
    busy.report(0.9, "late")                 # a report after the end changes nothing
    assert busy.progress.value == 0 and busy.status.object == ""


def test_a_progress_bar_of_the_tab_is_shown_and_hidden_as_the_tab_does():
    """A tab's own progress bar (also used for its other work) is toggled with
    ``visible``; its styles are the tab's."""
    import panel as pn

    from dashboard.busy import Busy

    bar = pn.indicators.Progress(value=0, max=100, visible=False)
    busy = Busy(None, "probe", progress=bar)
    busy.show(True, "cleaning ...")
    assert bar.visible and bar.styles.get("visibility") != "hidden"
    busy.show(False)
    assert not bar.visible


@pytest.mark.parametrize("current", [True, False])
def test_a_result_is_shown_only_when_current(current):
    from dashboard.busy import Busy

    busy = Busy(None, "probe")
    shown, release = [], threading.Event()

    def work(job):
        release.wait(10)
        return "result"

    busy.run(work, "probe", "working ...", current=lambda r: current, apply=shown.append)
    assert busy.active and busy.status.object == "working ..."
    release.set()
    assert _wait(lambda: busy.job is None)
    if current:
        assert shown == ["result"] and not busy.active
    else:                                    # a newer job shows its own: still busy
        assert shown == [] and busy.active


def test_a_new_run_replaces_the_running_one_and_a_failure_is_reported(monkeypatch):
    from dashboard import busy as busy_module
    from dashboard.busy import Busy

    errors = []
    monkeypatch.setattr(busy_module, "report_error", errors.append)
    busy = Busy(None, "probe")
    first_cancelled = threading.Event()

    def slow(job):
        job.on_cancel(first_cancelled.set)
        first_cancelled.wait(10)
        job.check()

    def failing(job):
        raise ValueError("bad folds")

    busy.run(slow, "probe", "one", current=lambda r: True, apply=lambda r: None)
    busy.run(failing, "probe", "two", current=lambda r: True, apply=lambda r: None)
    assert first_cancelled.wait(10)
    assert _wait(lambda: errors)
    assert str(errors[0]) == "bad folds" and not busy.active
