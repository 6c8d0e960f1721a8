"""The Encoding tab on the user's own files in Chromium: runs, a mask and feature tables
(named features, no grid) uploaded through the page's file inputs are analysed in the
background; the tab then shows their R^2 map (the summary of the same files read
headless), the best-alpha map beside it and the weights per feature and delay."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from tests.browser.helpers import text_of, wait_idle, wait_text
from tests.test_encoding_upload import HOSTILE, _write_runs

CARD = ".encoding-upload"
#: the shape of the image the stimulus browser draws ("rows x columns")
STIMULUS_SHAPE_JS = """(() => {
  for (const m of Bokeh.documents[0].all_models) {
    if (!m.renderers || !m.title || !String(m.title.text).startsWith("stimulus of")) continue;
    for (const r of m.renderers) {
      const image = r.data_source && r.data_source.data.image;
      if (image) return image[0].shape ? image[0].shape.join("x") : null;
    }
  }
  return null; })()"""
SHOT = "/tmp/encoding_upload.png"


def _files(root):
    funcs, tables, mask = _write_runs(root, len(HOSTILE), seed=11)
    runs, features = [], []
    for i, (img, x) in enumerate(zip(funcs, tables)):
        runs.append(root / f"sub-01_run{i + 1}_bold.nii.gz")
        nib.save(img, runs[-1])
        features.append(root / f"sub-01_run{i + 1}_features.tsv")
        with open(features[-1], "w") as f:
            f.write("\t".join(HOSTILE) + "\n")
            np.savetxt(f, x, delimiter="\t", fmt="%g")
    nib.save(mask, root / "mask.nii.gz")
    return runs, root / "mask.nii.gz", features


def test_uploaded_files_are_analysed_and_shown(app_page, tmp_path):
    from analysis.encoding import EncodingAnalysis
    from analysis.encoding.user import load_user_encoding

    page = app_page
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    dataset_summary = text_of(page, ".summary")
    runs, mask, features = _files(tmp_path)
    expected = EncodingAnalysis(own=load_user_encoding(runs, mask, features, (1, 2))).summary()

    page.locator(f"{CARD} .card-button >> visible=true").first.click()   # expand the card
    page.locator(f"{CARD} .upload-runs input[type=file]").first.wait_for(state="attached")
    wait_idle(page)
    inputs = {role: page.locator(f"{CARD} .upload-{role} input[type=file]").first
              for role in ("runs", "mask", "features")}
    inputs["runs"].set_input_files([str(p) for p in runs[::-1]])      # paired by name
    wait_text(page, f"{CARD} .upload-status", lambda t: "(runs)" in t)
    inputs["mask"].set_input_files(str(mask))
    wait_text(page, f"{CARD} .upload-status", lambda t: "mask.nii.gz" in t)
    inputs["features"].set_input_files([str(p) for p in features])
    wait_text(page, f"{CARD} .upload-status", lambda t: "(features)" in t)
    delays = page.locator(f"{CARD} .upload-delays input").first
    delays.fill("1 2")
    delays.press("Enter")
    wait_idle(page)
    page.locator(f"{CARD} .analyse-upload button").first.click()

    assert wait_text(page, ".summary", lambda t: t == expected, timeout=120) != dataset_summary
    status = wait_text(page, f"{CARD} .upload-switch-status", lambda t: "your files" in t)
    assert "sub-01_run1_bold.nii.gz + sub-01_run1_features.tsv" in status
    # the best-alpha map beside the R^2 map, the weights per feature and delay
    page.locator(".best-alpha-map canvas").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("""() => { const f = Bokeh.documents[0].get_model_by_name(
        "best-alpha-axial"); return !!f && f.title.text.startsWith("best alpha per voxel"); }""",
                           timeout=60_000)
    wait_text(page, ".voxel-info", lambda t: "largest ridge weight: feature" in t, timeout=60)
    info = text_of(page, ".voxel-info")
    assert "<b>" not in page.locator(".voxel-info").first.inner_html() or "&lt;b&gt;" in info
    page.locator(".rf-ridge canvas").first.wait_for(state="visible", timeout=60_000)
    # the stimulus browser shows the sample's features: one row of 7
    page.wait_for_function(STIMULUS_SHAPE_JS + " === '1x7'", timeout=60_000)
    assert page.locator(".notyf__toast", has_text="outside the mask").count() == 0
    page.set_viewport_size({"width": 1600, "height": 2100})   # the whole tab in one picture
    wait_idle(page)
    page.locator(".summary >> visible=true").first.scroll_into_view_if_needed()
    page.screenshot(path=SHOT)
    assert page.blocked_requests == [], page.blocked_requests
    assert page.js_errors == []
