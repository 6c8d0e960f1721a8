"""Connectivity tab uploads in Chromium: a corrupt file is refused and the tab keeps
working; real files are analysed in that session (cleaned in the background) and the
tab goes back to the built-in dataset."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pandas as pd

from tests.browser.helpers import set_model_value, text_of, wait_idle, wait_text, wait_text_change
from tests.browser.test_connectivity import SUMMARY, open_connectivity, visible_figure_point

CARD = ".connectivity-upload"


def open_uploads(page) -> str:
    summary = open_connectivity(page)
    page.locator(f"{CARD} .card-button >> visible=true").first.click()  # expand the card
    page.locator(f"{CARD} .upload-func input[type=file]").first.wait_for(state="attached")
    wait_idle(page)
    return summary


def test_corrupt_func_is_refused_then_the_tab_keeps_working(app_page, tmp_path,
                                                          connectivity_dir):
    page = app_page
    before = open_uploads(page)
    corrupt = tmp_path / "my_run.nii.gz"
    corrupt.write_bytes(gzip.compress(b"\x00" * 100)[:40])      # gzip magic, broken content
    page.locator(f"{CARD} .upload-func input[type=file]").first.set_input_files(str(corrupt))
    status = wait_text(page, f"{CARD} .upload-status", lambda t: "refused" in t)
    assert "my_run.nii.gz" in status
    toast = page.locator(".notyf__toast", has_text="my_run.nii.gz").first
    toast.wait_for(state="visible", timeout=30_000)
    assert page.locator(".analyse-upload button").first.is_disabled()   # nothing to analyse
    assert text_of(page, SUMMARY) == before                              # the map stays
    # the tab keeps working: type a seed coordinate, then click a slice
    set_model_value(page, "seed-x", 28.0)
    typed = wait_text(page, SUMMARY, lambda t: t.startswith("seed (28, -52, 18) r=8 mm: "))
    page.locator(".slice-axial >> visible=true").first.scroll_into_view_if_needed()
    page.mouse.click(*visible_figure_point(page, "slice-axial", 30.0, -20.0))
    clicked = wait_text_change(page, SUMMARY, typed)
    assert clicked.startswith("seed (28, -20, 18) r=8 mm: ")
    assert page.blocked_requests == []


def test_real_files_are_analysed_then_back_to_the_dataset(app_page, tmp_path,
                                                          connectivity_dir):
    from analysis.connectivity import SeedConnectivity
    from analysis.datasets import development as dev

    page = app_page
    dataset_summary = open_uploads(page)
    files = dev.subject_files(connectivity_dir, subject=1)
    img = nib.load(files["func"])
    func = tmp_path / "sub-01_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), func)
    confounds = pd.read_csv(files["confounds"], sep="\t")
    short = tmp_path / "short.tsv"
    confounds.iloc[:-2].to_csv(short, sep="\t", index=False)
    good = tmp_path / "sub-01_confounds.tsv"
    confounds.to_csv(good, sep="\t", index=False)
    inputs = {role: page.locator(f"{CARD} .upload-{role} input[type=file]").first
              for role in ("func", "confounds")}
    inputs["func"].set_input_files(str(func))
    wait_text(page, f"{CARD} .upload-status", lambda t: "received sub-01_bold" in t)
    # confounds with the wrong number of rows: refused, the map stays
    inputs["confounds"].set_input_files(str(short))
    wait_text(page, f"{CARD} .upload-status", lambda t: "received short.tsv" in t)
    page.locator(".analyse-upload button").first.click()
    n = img.shape[3]
    wait_text(page, f"{CARD} .upload-switch-status",
              lambda t: f"short.tsv: {n - 2} confound rows for {n} volumes" in t)
    assert text_of(page, SUMMARY) == dataset_summary
    # the right confounds: this session's map is the files' map
    inputs["confounds"].set_input_files(str(good))
    wait_text(page, f"{CARD} .upload-status", lambda t: "received sub-01_confounds" in t)
    page.locator(".analyse-upload button").first.click()
    expected = SeedConnectivity.from_files(func, confounds=good).summary()
    assert wait_text(page, SUMMARY, lambda t: t == expected, timeout=120) != dataset_summary
    wait_text(page, f"{CARD} .data-source", lambda t: "sub-01_bold.nii.gz" in t)
    page.locator(".use-dataset button").first.click()
    wait_text(page, SUMMARY, lambda t: t == dataset_summary, timeout=120)
    wait_text(page, f"{CARD} .data-source", lambda t: "built-in" in t)
    assert page.blocked_requests == [] and page.js_errors == []


def test_a_closed_session_frees_its_uploads(browser, tmp_path, connectivity_dir):
    """The session's folder is removed and its cleaned upload leaves the shared cache
    when the session ends (the server's unused-session check, made short here)."""
    import time

    import panel as pn

    from analysis.connectivity import CACHE
    from dashboard.connectivity import ConnectivityTab
    from analysis.datasets import development as dev
    from tests.browser.conftest import free_port, open_page, wait_http

    tabs = []

    def app():
        tabs.append(ConnectivityTab())
        return tabs[-1]

    port = free_port()
    server = pn.serve(app, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}"], liveness=True, start=True,
                      check_unused_sessions=500, unused_session_lifetime=500)
    try:
        wait_http(f"http://127.0.0.1:{port}/liveness")
        page = open_page(browser.new_page(viewport={"width": 1600, "height": 1000}),
                         f"http://127.0.0.1:{port}/")
        wait_text(page, SUMMARY, lambda t: t.startswith("seed ("))
        page.locator(f"{CARD} .card-button").first.click()
        files = dev.subject_files(connectivity_dir, subject=1)
        page.locator(f"{CARD} .upload-func input[type=file]").first.set_input_files(
            files["func"])
        wait_text(page, f"{CARD} .upload-status", lambda t: "received" in t)
        page.locator(".analyse-upload button").first.click()
        wait_text(page, f"{CARD} .data-source", lambda t: "your files" in t, timeout=120)
        (tab,) = tabs
        folder, key = tab.upload.uploads.folder, tab.model.subject_data().key
        assert (folder / "func.nii.gz").is_file() and any(k[0] == key for k in CACHE.keys())
        page.close()
        deadline = time.monotonic() + 60
        while (folder.exists() or any(k[0] == key for k in CACHE.keys())) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not folder.exists()
        assert not any(k[0] == key for k in CACHE.keys())
    finally:
        server.stop()
