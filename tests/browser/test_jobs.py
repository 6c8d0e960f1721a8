"""Session bombs in Chromium: a closed tab's permutation test stops within 5 s; a file
over the upload limit is refused in the page (never sent) and the session lives."""

from __future__ import annotations

import os
import time

from tests.browser.conftest import open_page
from tests.browser.helpers import set_model_value, text_of, wait_idle, wait_text, wait_text_change
from tests.browser.test_connectivity import SUMMARY, open_connectivity


def _permutation_jobs():
    from dashboard.jobs import REGISTRY

    return [j for j in REGISTRY.jobs() if j.name == "permutations"]


def test_closing_the_tab_stops_its_permutation_test_within_5_s(browser, app_url):
    from dashboard.decoding import MAX_APP_PERMUTATIONS
    from tests.browser.test_decoding import open_decoding

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = open_page(context.new_page(), app_url)
    open_decoding(page)
    set_model_value(page, "perm-count", MAX_APP_PERMUTATIONS)
    page.locator(".perm-run button").first.click()
    deadline = time.monotonic() + 30
    while not any(j.running for j in _permutation_jobs()) and time.monotonic() < deadline:
        time.sleep(0.05)
    job = next(j for j in _permutation_jobs() if j.running)
    # it runs: the page shows its progress
    wait_text(page, ".perm-status", lambda t: "permutations" in t)
    assert not job.finished.is_set()
    context.close()          # the visitor closes the tab
    closed = time.monotonic()
    assert job.wait(10)
    stopped = time.monotonic() - closed
    assert job.state == "cancelled", job.state
    assert stopped < 5.0, f"the job ran {stopped:.1f} s after the tab closed"
    assert not job.thread.is_alive()


def test_a_file_over_the_limit_is_refused_in_the_page_and_the_session_lives(
        page, app_url, tmp_path, monkeypatch):
    from analysis.config import MAX_UPLOAD_ENV

    monkeypatch.setenv(MAX_UPLOAD_ENV, "1")      # this session's limit: 1 MB
    received = []
    page.on("websocket", lambda ws: ws.on(
        "framesent", lambda payload: received.append(len(payload))))
    open_page(page, app_url)
    card = ".connectivity-upload"
    before = open_connectivity(page)
    page.locator(f"{card} .card-button >> visible=true").first.click()
    page.locator(f"{card} .upload-func input[type=file]").first.wait_for(state="attached")
    wait_idle(page)
    big = tmp_path / "near_limit_bold.nii.gz"
    big.write_bytes(b"\x1f\x8b" + os.urandom(2**20 + 50_000))   # just over 1 MB
    page.locator(f"{card} .upload-func input[type=file]").first.set_input_files(str(big))
    status = wait_text(page, f"{card} .upload-status", lambda t: "over the upload limit" in t)
    assert "near_limit_bold.nii.gz" in status and "1.05 MB" in status
    assert max(received, default=0) < 2**20          # the file never went to the server
    # the session lives: a later change still updates the summary
    set_model_value(page, "seed-x", 28.0)
    after = wait_text_change(page, SUMMARY, before)
    assert after.startswith("seed (28, -52, 18)")
    assert text_of(page, f"{card} .upload-status").startswith("refused")


def test_a_decoding_upload_is_masked_in_the_background(app_page, haxby_slice):
    from tests.browser.test_decoding import open_decoding

    page = app_page
    before = open_decoding(page)
    card = ".decoding-upload"
    page.locator(f"{card} .card-button >> visible=true").first.click()
    page.locator(f"{card} .upload-func input[type=file]").first.wait_for(state="attached")
    wait_idle(page)
    for role, name in (("func", "bold.nii.gz"), ("mask", "mask.nii.gz"),
                       ("labels", "attributes.txt")):
        page.locator(f"{card} .upload-{role} input[type=file]").first.set_input_files(
            str(haxby_slice / name))
        wait_text(page, f"{card} .upload-status", lambda t, name=name: name in t)
    after = wait_text_change(page, ".summary", before, timeout=120)
    # no code table: the numeric codes stay numbers, the default pair two similar classes
    assert after.startswith("1 vs 2, SVC C=1, leave-one-run-out: ")
