"""Script injection (issue 13, item 5) and links that broke the page (item 11).

A shared link, an uploaded file's name and the labels inside an uploaded file are
the visitor's text: the page shows them as text (escaped), never as markup. A
link's bad value is ignored with one notification naming it; its valid values
still apply and the page comes up.
"""

from __future__ import annotations

import gzip
import io
import json
from urllib.parse import quote

import numpy as np
import pytest

from tests.browser.conftest import open_page
from tests.browser.helpers import text_of, wait_text

#: Sets a global if it ever runs as HTML.
XSS = '<img src=x onerror="window.__xss=1">'
XSS_NAME = "<img src=x onerror=window.__xss=1>"

#: Any element in the page (shadow roots too) carrying an inline handler.
HANDLERS_JS = """() => { const out = [];
  const walk = (root) => { for (const el of root.querySelectorAll('*')) {
      for (const a of el.getAttributeNames ? el.getAttributeNames() : [])
        if (a.startsWith('on')) out.push(el.outerHTML.slice(0, 200));
      if (el.shadowRoot) walk(el.shadowRoot); } };
  walk(document); return out; }"""


def _link(app_url, **query) -> str:
    return app_url + "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())


def toasts(page) -> list[str]:
    return [t.inner_text() for t in page.locator(".notyf__toast").all()]


def wait_toast(page, needle: str, timeout: float = 30_000) -> str:
    """The text of the notification containing ``needle`` (waits for it)."""
    page.locator(".notyf__toast", has_text=needle).first.wait_for(state="visible",
                                                                   timeout=timeout)
    return next(t for t in toasts(page) if needle in t)


def assert_no_script(page) -> None:
    page.wait_for_timeout(300)  # an <img src=x> fails to load within milliseconds
    assert page.evaluate("() => window.__xss") is None
    assert page.evaluate(HANDLERS_JS) == []


# ---- links ---------------------------------------------------------------------------
@pytest.mark.parametrize("query, key", [
    ({"tab": XSS}, "tab"),
    ({"present": XSS}, "present"),
    ({"theme": XSS}, "theme"),
    ({"tab": "encoding", "enc_alpha": XSS}, "enc_alpha"),
    ({"tab": "decoding", "dec_C": XSS}, "dec_C"),
    ({"tab": "decoding", "dec_conditions": json.dumps([XSS, "face"])}, "dec_conditions"),
    ({"tab": "connectivity", "conn_radius": XSS}, "conn_radius"),
])
def test_a_links_value_is_shown_as_text(page, app_url, encoding_dir, decoding_dir,
                                        connectivity_dir, query, key):
    open_page(page, _link(app_url, **query))
    text = wait_toast(page, f"{key}=")
    assert_no_script(page)
    assert "ignored from the link" in text
    value = query[key]
    assert value in text or value[:40] in text  # the literal text, cut when long
    assert text_of(page, ".summary")  # the page works


# ---- uploads -------------------------------------------------------------------------
def _open_uploads(page):
    card = page.locator(".decoding-upload").first
    card.locator(".card-button, button").first.click()  # expand the collapsed card
    page.locator(".upload-func input[type=file]").first.wait_for(state="attached")


def _nifti(data: np.ndarray) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    return gzip.compress(img.to_bytes())


def _upload(page, role: str, name: str, data: bytes) -> None:
    page.locator(f".upload-{role} input[type=file]").first.set_input_files(
        {"name": name, "mimeType": "application/octet-stream", "buffer": data})


def test_an_uploaded_files_name_is_shown_as_text(page, app_url, decoding_dir):
    open_page(page, _link(app_url, tab="decoding"))
    wait_text(page, ".summary", lambda t: " vs " in t)
    _open_uploads(page)
    # refused (not a gzip file): the message names the file
    _upload(page, "func", XSS_NAME + ".nii.gz", b"not an image")
    assert XSS_NAME in wait_toast(page, XSS_NAME)
    status = wait_text(page, ".upload-status", lambda t: "refused" in t)
    assert XSS_NAME in status
    assert_no_script(page)
    # accepted: "received <name>"
    rng = np.random.default_rng(0)
    _upload(page, "func", XSS_NAME + ".nii.gz",
            _nifti(rng.normal(size=(5, 5, 5, 40)).astype(np.float32)))
    status = wait_text(page, ".upload-status", lambda t: "received" in t, timeout=60)
    assert XSS_NAME in status
    assert_no_script(page)


def test_uploaded_labels_are_shown_as_text(page, app_url, decoding_dir):
    """A label is any text of the user's: conditions, summary, map title show it literally."""
    open_page(page, _link(app_url, tab="decoding"))
    wait_text(page, ".summary", lambda t: " vs " in t)
    _open_uploads(page)
    rng = np.random.default_rng(1)
    n = 40
    codes = np.tile([1, 1, 2, 2], n // 4)
    data = rng.normal(size=(5, 5, 5, n)).astype(np.float32)
    data[1:4, 1:4, 1:4, codes == 1] += 1.5  # something to decode
    _upload(page, "func", "func.nii.gz", _nifti(data))
    wait_text(page, ".upload-status", lambda t: "received func" in t, timeout=60)
    _upload(page, "mask", "mask.nii.gz", _nifti(np.ones((5, 5, 5), np.uint8)))
    wait_text(page, ".upload-status", lambda t: "received mask" in t, timeout=60)
    _upload(page, "label_names", "names.json",
            json.dumps({"1": XSS_NAME, "2": "house"}).encode())
    wait_text(page, ".upload-status", lambda t: "received names" in t, timeout=60)
    labels = io.StringIO()
    for i, code in enumerate(codes):
        labels.write(f"{code} {i // (n // 2)}\n")  # two runs
    _upload(page, "labels", "labels.txt", labels.getvalue().encode())
    # no face or cat in these labels: the first two are decoded, the label is in the summary
    summary = wait_text(page, ".summary", lambda t: XSS_NAME in t, timeout=120)
    assert summary.startswith(f"{XSS_NAME} vs house")
    # the conditions' choices show it as text too
    choices = page.locator(".conditions-select").first.evaluate(
        "el => [...el.shadowRoot.querySelectorAll('.choices__item')].map(c => c.textContent)")
    assert any(XSS_NAME in c for c in choices), choices
    assert_no_script(page)


# ---- links that broke the page --------------------------------------------------------
@pytest.mark.parametrize("query, key, applied", [
    ({"tab": "decoding", "dec_conditions": '["cat"]', "dec_cv": "kfold", "dec_n_folds": "4"},
     "dec_conditions", "KFold(4)"),
    ({"tab": "decoding", "dec_conditions": '["face","face"]', "dec_cv": "kfold",
      "dec_n_folds": "4"}, "dec_conditions", "KFold(4)"),
    ({"tab": "decoding", "dec_n_folds": "99999999", "dec_cv": "kfold", "dec_C": "0.1"},
     "dec_n_folds", "C=0.1"),
    ({"enc_alpha": "200000", "enc_cv": "kfold", "enc_n_folds": "5"}, "enc_alpha", "folds=5 "),
    ({"enc_voxel": "99999999", "enc_cv": "kfold", "enc_n_folds": "5"}, "enc_voxel", "folds=5 "),
    ({"enc_alpha": "9" * 5000, "enc_cv": "kfold", "enc_n_folds": "5"}, "enc_alpha", "folds=5 "),
    ({"enc_threshold": "0.9", "enc_alpha": "10"}, "enc_threshold", "alpha=10 "),
    ({"tab": "9" * 5000, "enc_alpha": "10"}, "tab", "alpha=10 "),
])
def test_a_bad_value_is_ignored_and_the_rest_of_the_link_applies(
        page, app_url, encoding_dir, decoding_dir, query, key, applied):
    open_page(page, _link(app_url, **query))
    text = wait_toast(page, f"{key}=")
    assert text.startswith("ignored from the link")
    assert len(text) < 1000  # a 5,000-digit value is not shown whole
    summary = wait_text(page, ".summary", lambda t: applied in t)
    assert summary
    assert sum(f"{key}=" in t for t in toasts(page)) == 1
    assert not [e for e in page.js_errors if "Bokeh" in e]


def test_a_tab_built_later_applies_its_part_of_the_link(page, app_url, encoding_dir,
                                                       decoding_dir):
    """Tabs are built on first visit: the link's values for them apply then."""
    from tests.browser.helpers import open_tab

    open_page(page, _link(app_url, enc_alpha="10", dec_cv="kfold", dec_n_folds="3",
                          dec_C="0.1", dec_mask=XSS))
    wait_text(page, ".summary", lambda t: t.startswith("alpha=10 "))
    open_tab(page, "Decoding")
    wait_text(page, ".summary", lambda t: "C=0.1, KFold(3)" in t)
    text = wait_toast(page, "dec_mask=")
    assert_no_script(page)
    assert XSS in text and "dec_C" not in text
