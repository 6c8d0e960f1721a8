"""The Decoding tab's automatic permutation p (issue 17), headless on the small synthetic data.

After a change the tab runs a cheap permutation test by itself and shows its p beside
the accuracy (``.summary-p``): the p of the analysis' own test (100 permutations, the
same seed) as the Run button computes it, ``p <= 1/(n+1)`` when no permuted score
reached the observed one; a newer change cancels it; Run with more permutations refines
it; too slow, or with the server's job slots taken, it is left to Run.
"""

from __future__ import annotations

import html
import threading

import numpy as np
import pytest

#: KFold on the small synthetic face vs cat: C=1 decodes (no permuted score reaches the
#: observed one), C=1e-4 does not (p about 0.85)
DECODES, AT_CHANCE = 1.0, 1e-4


@pytest.fixture
def registry(monkeypatch):
    """A registry of this test's own (the process' may hold other tests' jobs)."""
    from dashboard import jobs

    fresh = jobs.JobRegistry(max_jobs=2)
    monkeypatch.setattr(jobs, "REGISTRY", fresh)
    return fresh


@pytest.fixture
def tab(decoding_dir, registry, monkeypatch):
    """A tab whose automatic test may take its time (the machine is shared in tests)."""
    from dashboard.decoding import DecodingTab, auto_p

    monkeypatch.setattr(auto_p, "AUTO_SECONDS", 300.0)
    tab = DecodingTab()
    yield tab
    tab.cleanup()


def text(pane) -> str:
    return html.unescape(pane.object)


def reference(tab, n: int):
    """The permutation test of the tab's current parameters, as Run computes it (the
    analysis' ``run_permutations`` with ``n`` permutations and its seed)."""
    ref = tab.analysis.copy()
    ref.n_permutations = n
    result = ref.run_permutations()
    assert result is not None, ref.permutation_status
    return result


def wait_auto(tab, timeout: float = 240):
    job = tab.auto_permutation_job
    assert job is not None and job.wait(timeout), job
    return job


def test_p_text_says_the_smallest_p_as_a_bound():
    from dashboard.decoding.auto_p import p_summary

    assert p_summary(3 / 101, 100) == "p = 0.0297 (100 permutations)"
    assert p_summary(1 / 101, 100) == "p <= 0.0099 (= 1/(n+1), 100 permutations)"
    assert p_summary(1 / 1001, 1000) == "p <= 0.000999 (= 1/(n+1), 1000 permutations)"


def test_after_a_change_the_p_appears_by_itself_as_run_computes_it(tab):
    tab.w_cv.value = "kfold"
    tab.w_C.value = AT_CHANCE
    # background work: the line says so, the views are not made busy
    assert text(tab.p_line) == "p: computing (100 permutations) ..."
    assert not tab.busy.active
    job = wait_auto(tab)
    assert job.state == "done"
    ref = reference(tab, 100)
    shown = tab.shown_permutation_result
    np.testing.assert_array_equal(shown.null.values, ref.null.values)
    p = float(ref.p_value)
    assert float(shown.p_value) == p and p > 2 / 101   # a p, not the bound
    assert text(tab.p_line) == f"p = {p:.3g} (100 permutations)"
    # the summary line is the analysis' (its p beside it); Run's test was not run
    assert text(tab.summary) == tab.analysis.summary()
    assert tab.analysis.permutation_result is None and tab.permutation_job is None


def test_no_permuted_score_reaching_the_observed_says_p_at_most_1_over_n_plus_1(tab):
    tab.w_cv.value = "kfold"
    tab.w_C.value = DECODES
    assert wait_auto(tab).state == "done"
    ref = reference(tab, 100)
    assert (ref.null.values < float(ref.score)).all()
    assert float(tab.shown_permutation_result.p_value) == float(ref.p_value) == 1 / 101
    assert text(tab.p_line) == "p <= 0.0099 (= 1/(n+1), 100 permutations)"


def test_a_second_change_cancels_the_first_automatic_run(tab):
    tab.w_cv.value = "kfold"
    tab.w_C.value = DECODES
    first = tab.auto_permutation_job
    shown = []   # (summary, p) each time the p changes
    tab.p_line.param.watch(lambda e: shown.append((text(tab.summary), html.unescape(e.new))),
                           "object")
    tab.w_C.value = AT_CHANCE        # before the first test has ended
    second = tab.auto_permutation_job
    assert second is not first
    assert first.wait(30) and first.state == "cancelled"
    assert second.wait(240) and second.state == "done"
    p = float(reference(tab, 100).p_value)
    assert text(tab.p_line) == f"p = {p:.3g} (100 permutations)"
    assert shown and shown[-1][1] == text(tab.p_line)
    new = [p_text for summary, p_text in shown if "C=0.0001" in summary]
    assert new and all(t in ("p: computing (100 permutations) ...",
                             f"p = {p:.3g} (100 permutations)") for t in new), new


def test_run_with_more_permutations_refines_the_p(tab):
    tab.w_cv.value = "kfold"
    tab.w_C.value = AT_CHANCE
    assert wait_auto(tab).state == "done"
    auto = text(tab.p_line)
    assert auto.endswith("(100 permutations)")
    tab.w_perms.value = 200
    assert text(tab.p_line) == auto    # the count typed: the p shown stays until Run
    tab.start_permutations()
    assert tab.permutation_job.wait(240) and tab.permutation_job.state == "done"
    p = float(reference(tab, 200).p_value)
    assert float(tab.analysis.permutation_result.p_value) == p
    assert text(tab.p_line) == f"p = {p:.3g} (200 permutations)"
    assert ", p" not in text(tab.summary)   # said once, beside the accuracy


def test_run_cancels_a_running_automatic_test(tab):
    tab.w_cv.value = "kfold"
    tab.w_C.value = DECODES
    auto = tab.auto_permutation_job
    tab.w_perms.value = 20
    tab.start_permutations()
    assert auto.wait(30) and auto.state == "cancelled"
    assert tab.permutation_job.wait(240)
    assert text(tab.p_line) == "p <= 0.0476 (= 1/(n+1), 20 permutations)"


def test_a_test_whose_cv_fit_says_slow_is_left_to_run(tab, monkeypatch):
    from dashboard.decoding import auto_p

    monkeypatch.setattr(auto_p, "AUTO_SECONDS", 0.001)
    before = tab.auto_permutation_job
    tab.w_cv.value = "kfold"              # its CV fit, timed, says: too slow
    assert tab.auto_permutation_job is before
    assert before.wait(30) and before.state == "cancelled"   # the older one stopped
    assert text(tab.p_line) == "p: press Run"
    assert tab.shown_permutation_result is None


def test_a_test_slow_on_its_first_permutations_is_left_to_run(tab, monkeypatch):
    from dashboard.decoding import auto_p

    monkeypatch.setattr(auto_p, "CV_TO_AUTO", 0.0)     # the CV fit says nothing
    monkeypatch.setattr(auto_p, "AUTO_SECONDS", 0.001)
    tab.w_cv.value = "kfold"
    job = wait_auto(tab, 60)
    assert job.state == "done"            # stopped on its first permutations' pace
    assert text(tab.p_line) == "p: press Run"
    assert tab.shown_permutation_result is None
    tab.w_C.value = AT_CHANCE             # the same size: known slow, not started again
    assert tab.auto_permutation_job is job
    assert text(tab.p_line) == "p: press Run"


def test_with_every_slot_taken_the_automatic_test_does_not_queue(tab, registry):
    from dashboard import jobs

    tab.w_C.value = AT_CHANCE
    assert wait_auto(tab, 240).state == "done"
    release = threading.Event()
    blockers = [jobs.submit(lambda job: release.wait(60), name="someone else's")
                for _ in range(registry.max_jobs)]
    try:
        before = tab.auto_permutation_job
        tab.w_cv.value = "kfold"
        assert tab.auto_permutation_job is before and registry.queued() == []
        assert text(tab.p_line) == "p: press Run"
    finally:
        release.set()
    assert all(b.wait(10) for b in blockers)


def test_the_sessions_end_cancels_the_automatic_test(tab):
    tab.w_cv.value = "kfold"
    tab.w_C.value = DECODES
    job = tab.auto_permutation_job
    tab.cleanup()
    assert job.wait(30) and job.state == "cancelled"
