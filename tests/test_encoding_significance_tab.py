"""The Encoding tab's permutation test (issue 17): run from the tab as a job, its FDR
threshold equals the analysis module's on the same setting, the histogram gets the
"FDR q<0.05" line, and a change of the setting cancels or clears it."""

from __future__ import annotations

import threading

import holoviews as hv
import numpy as np
import pytest

from analysis.encoding import EncodingAnalysis
from analysis.encoding.permutation import permutation_test

pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py


@pytest.fixture
def tab(encoding_dir):
    from dashboard.encoding import EncodingTab

    return EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))


def _fdr_lines(tab) -> list:
    overlay = tab.plots["hist"].element()
    return [el for el in overlay if isinstance(el, hv.VLine) and el.label.startswith("FDR")]


def _run(sig, timeout: float = 120.0):
    sig.w_run.clicks += 1   # as the button's click
    assert sig.job is not None
    assert sig.job.wait(timeout), "the permutation test did not finish"


def test_run_gives_the_module_threshold_and_the_line(tab):
    sig = tab.significance
    assert _fdr_lines(tab) == [] and sig.result is None
    sig.w_perms.value = 40
    sig.w_scheme.value = "runs"
    _run(sig)
    r = sig.result
    assert r is not None and r.n_permutations == 40 and r.scheme == "runs"

    # the module's public function on the same analysis (same seed 0), computed anew
    a = tab.analysis
    y, x, runs, _ = a.samples()
    expected = permutation_test(a.engine(), x, y, runs, a.alpha, 40, "runs",
                                random_state=0, fdr_q=0.05)
    assert expected.r2_threshold is not None
    assert r.r2_threshold == pytest.approx(expected.r2_threshold, abs=1e-12)
    np.testing.assert_array_equal(r.significant, expected.significant)

    lines = _fdr_lines(tab)
    assert len(lines) == 1 and lines[0].label == "FDR q<0.05"
    assert lines[0].data == pytest.approx(expected.r2_threshold)
    text = sig.text.object
    assert f"{expected.n_significant:,} of {a.n_voxels:,} voxels pass FDR q<0.05" in text
    assert "40 permutations (whole runs exchanged" in text
    assert "smallest reportable p = 1/(n+1) = 0.024" in text
    assert not sig.w_run.disabled and sig.w_cancel.disabled and not sig.w_use.disabled

    # the map's threshold set to it (the slider's range: the map shows R^2 from 0)
    sig.w_use.clicks += 1
    assert a.threshold == pytest.approx(max(round(expected.r2_threshold, 6),
                                            tab.w_threshold.start))

    # a change of alpha clears it: no line, the text says so
    tab.w_alpha.value = 1.0
    assert sig.result is None and _fdr_lines(tab) == []
    assert "settings changed" in sig.text.object and sig.w_use.disabled


def test_no_voxel_passing_is_said(tab):
    sig = tab.significance
    sig.w_perms.value = 3     # p >= 1/4: FDR at q=0.05 keeps no voxel
    _run(sig)
    assert sig.result.r2_threshold is None and _fdr_lines(tab) == []
    assert sig.text.object.startswith("**No voxel passes FDR q<0.05**")
    assert sig.w_use.disabled


@pytest.fixture
def held(monkeypatch):
    """The permutations held until ``release`` is set (``started`` once they would begin)."""
    import analysis.encoding.permutation as P

    started, release = threading.Event(), threading.Event()
    real = P.permutation_null

    def slow_null(*args, **kwargs):
        started.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "permutation_null", slow_null)
    yield started, release
    release.set()


def _start_held(tab, held):
    sig = tab.significance
    sig.w_perms.value = 5
    sig.w_run.clicks += 1
    assert held[0].wait(60)
    assert sig.running and sig.w_run.disabled and not sig.w_cancel.disabled
    return sig, sig.job


def _assert_cancelled(tab, sig, job, held, message):
    held[1].set()
    assert job.wait(60)
    assert job.state == "cancelled"
    assert sig.result is None and _fdr_lines(tab) == []
    assert message in sig.text.object
    assert not sig.w_run.disabled and sig.w_cancel.disabled


def test_structural_change_cancels_a_running_test(tab, held):
    sig, job = _start_held(tab, held)
    tab.w_folds.value = 5                       # a structural change
    _assert_cancelled(tab, sig, job, held, "settings changed: the permutation test was cancelled")


def test_cancel_button_stops_the_test(tab, held):
    sig, job = _start_held(tab, held)
    sig.w_cancel.clicks += 1
    _assert_cancelled(tab, sig, job, held, "Permutation test cancelled")
