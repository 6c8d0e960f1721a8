"""``fmri-explorer serve --data DIR`` in Chromium: each tab shows the nilearn data folder's
data (issue 16 item 2).

The app is served with ``$FMRI_EXPLORER_NILEARN_DATA`` naming a folder laid out by
``fmri-explorer data ... --out DIR`` with seed 5 (the default synthetic set has seed 0):
the Encoding and Connectivity tabs start on it, their summaries equal the analysis
classes' on that folder (the headless test's numbers), their "Data" selectors name it
without its path, and the Connectivity tab lists the folder's subjects.
"""

from __future__ import annotations

import time

from tests.browser.conftest import NILEARN_SUBJECTS, SCREENSHOTS, open_page
from tests.browser.helpers import model_value, set_model_value, text_of, wait_idle, wait_text

ENCODING_LABEL = "nilearn data: miyawaki2008"
CONNECTIVITY_LABEL = "nilearn data: development_fmri"
CONNECTIVITY_SUMMARY = ".connectivity-summary"


def _options(page, css_class: str) -> list:
    """The labels a Select offers (its model's ``options``: labels, or [value, label])."""
    import json

    options = json.loads(model_value(page, css_class, "options"))
    return [o[1] if isinstance(o, list) else o for o in options]


def _screenshot(page, name: str) -> None:
    wait_idle(page)
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_each_tab_shows_the_folders_data(page, nilearn_app_url, nilearn_data):
    from analysis.connectivity import SeedConnectivity
    from analysis.encoding import EncodingAnalysis

    open_page(page, nilearn_app_url)
    # Encoding (the first tab): the folder's data, not the synthetic set's
    expected = EncodingAnalysis(data_dir=str(nilearn_data)).summary()
    assert expected != EncodingAnalysis().summary()
    assert wait_text(page, ".summary", lambda t: t.startswith("alpha=")) == expected
    assert model_value(page, "encoding-source") == f'"{ENCODING_LABEL}"'
    assert ENCODING_LABEL in _options(page, "encoding-source")
    _screenshot(page, "serve-data-encoding.png")

    # Connectivity: the folder's subjects and map
    page.locator(".bk-tab", has_text="Connectivity").first.click()
    wait_idle(page)
    page.locator(".slice-axial canvas >> visible=true").first.wait_for(timeout=90_000)
    expected = SeedConnectivity(data_dir=str(nilearn_data)).summary()
    assert expected != SeedConnectivity().summary()
    text = wait_text(page, CONNECTIVITY_SUMMARY, lambda t: t.startswith("seed ("), timeout=90)
    assert text == expected
    assert model_value(page, "connectivity-source") == f'"{CONNECTIVITY_LABEL}"'
    subjects = _options(page, "subject-select")
    assert len(subjects) == NILEARN_SUBJECTS and subjects[0] == "0: sub-pixar123 (adult)"
    _screenshot(page, "serve-data-connectivity.png")
    assert page.blocked_requests == []


def test_the_connectivity_tab_goes_back_to_the_built_in_data(page, nilearn_app_url):
    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity.sources import BUILT_IN

    open_page(page, nilearn_app_url + "?tab=connectivity")
    before = wait_text(page, CONNECTIVITY_SUMMARY, lambda t: t.startswith("seed ("), timeout=90)
    set_model_value(page, "connectivity-source", BUILT_IN)
    expected = SeedConnectivity().summary()
    deadline = time.monotonic() + 90
    while text_of(page, CONNECTIVITY_SUMMARY) != expected:
        assert time.monotonic() < deadline, (before, text_of(page, CONNECTIVITY_SUMMARY))
        time.sleep(0.1)
    while "built-in" not in (model_value(page, "data-source", "text") or ""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert len(_options(page, "subject-select")) == SeedConnectivity().n_subjects


def test_the_encoding_tab_switches_to_the_synthetic_data_as_a_job(page, nilearn_app_url):
    """A switch is a structural change: computed in a job, then every view shows it."""
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import SYNTHETIC

    open_page(page, nilearn_app_url)
    before = wait_text(page, ".summary", lambda t: t.startswith("alpha="))
    set_model_value(page, "encoding-source", SYNTHETIC)
    synthetic = EncodingAnalysis()
    expected = synthetic.summary()
    assert wait_text(page, ".summary", lambda t: t != before, timeout=90) == expected
    best = int(synthetic.mean_r2().values.argmax())     # the new data's best voxel
    wait_text(page, ".voxel-info", lambda t: t.startswith(f"voxel {best} at"), timeout=60)
    _screenshot(page, "serve-data-encoding-synthetic.png")
