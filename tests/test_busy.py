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


def test_a_progress_bar_of_the_tab_keeps_its_room_and_is_hidden_by_its_style():
    """A tab's own progress bar (also used for its other work, dashboard/busy.py's
    ``progress_bar``) is shown and hidden by its inline style, never by ``visible`` (in
    the browser a change of ``visible`` lays the whole page out again)."""
    from dashboard.busy import Busy, bar_shown, progress_bar, show_bar

    bar = progress_bar("probe-bar")
    changed = []
    bar.param.watch(lambda *events: changed.extend(e.name for e in events),
                    ["visible", "styles", "value"])
    assert bar.visible and not bar_shown(bar)
    busy = Busy(None, "probe", progress=bar)
    busy.show(True, "cleaning ...")
    assert bar_shown(bar) and busy.progress is bar
    busy.show(False)
    assert not bar_shown(bar) and bar.visible
    show_bar(bar, True, value=40)   # the tab's other work
    assert bar_shown(bar) and bar.value == 40
    assert "visible" not in changed and changed.count("styles") == 3


def test_a_progress_bar_handed_over_hidden_is_shown_and_hidden_with_visible():
    """A tab's bar handed over hidden by ``visible`` (Encoding's significance bar) keeps
    being shown and hidden that way."""
    import panel as pn

    from dashboard.busy import Busy, bar_shown

    bar = pn.indicators.Progress(value=0, max=100, visible=False)
    busy = Busy(None, "probe", progress=bar)
    busy.show(True, "testing ...")
    assert bar.visible and bar_shown(bar)
    busy.show(False)
    assert not bar.visible and not bar_shown(bar)


def test_the_connectivity_tabs_busy_state_never_switches_visible(connectivity_dir):
    """The Connectivity tab's progress bar (structural changes, other model changes) is
    shown and hidden by its style only."""
    from analysis.connectivity import SeedConnectivity
    from dashboard.busy import bar_shown
    from dashboard.connectivity import ConnectivityTab

    tab = ConnectivityTab(model=SeedConnectivity(data_dir=str(connectivity_dir),
                                                 size="small"))
    changed = []
    tab.progress.param.watch(
        lambda *events: changed.extend((e.name, bar_shown(tab.progress)) for e in events),
        ["visible", "styles"])
    other = next(v for v in tab.model.param.p_method.objects if v != tab.model.p_method)
    tab.w_p_method.value = other    # a model change with the busy state (not served)
    assert tab.model.p_method == other
    assert changed == [("styles", True), ("styles", False)] and tab.progress.visible


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


def test_the_decoding_permutation_tests_bar_never_switches_visible(decoding_dir):
    """The Decoding tab's permutation test: its progress bar shown while it runs and
    hidden after, by its style only (the Run button still disabled meanwhile)."""
    from dashboard.busy import bar_shown
    from dashboard.decoding import DecodingTab

    tab = DecodingTab()
    changed, run_disabled = [], []
    tab.progress.param.watch(
        lambda *events: changed.extend((e.name, bar_shown(tab.progress)) for e in events),
        ["visible", "styles"])
    tab.w_run.param.watch(lambda e: run_disabled.append(e.new), "disabled")
    tab.w_perms.value = 20
    tab.start_permutations()
    assert tab.permutation_job is not None and tab.permutation_job.wait(60)
    assert _wait(lambda: not bar_shown(tab.progress))
    assert ("styles", True) in changed and changed[-1] == ("styles", False)
    assert all(name == "styles" for name, _ in changed) and tab.progress.visible
    assert run_disabled[0] is True and run_disabled[-1] is False
