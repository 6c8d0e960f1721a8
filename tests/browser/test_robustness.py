"""Bad uploads are refused with a message and the app keeps working; a real
upload is analysed in that session only."""

import gzip


from tests.browser.helpers import set_model_value, text_of, wait_text


def _open_uploads(page):
    page.goto(page.url.split("?")[0] + "?tab=decoding")
    wait_text(page, ".summary", lambda t: "vs" in t)
    card = page.locator(".decoding-upload").first
    card.locator(".card-button, button").first.click()  # expand the collapsed card
    page.locator(".upload-func input[type=file]").first.wait_for(state="attached")


def test_corrupt_upload_then_keep_working(app_page, tmp_path, decoding_dir):
    page = app_page
    _open_uploads(page)
    corrupt = tmp_path / "scan.nii.gz"
    corrupt.write_bytes(gzip.compress(b"\x00" * 100)[:40])  # gzip magic, broken content
    page.locator(".upload-func input[type=file]").first.set_input_files(str(corrupt))
    wait_text(page, ".upload-status", lambda t: "refused" in t)
    toast = page.locator(".notyf__toast").first
    toast.wait_for(state="visible", timeout=30_000)
    assert "scan.nii.gz" in toast.inner_text()
    evil = tmp_path / "evil.txt"
    evil.write_text("not an image")
    page.locator(".upload-func input[type=file]").first.set_input_files(str(evil))
    wait_text(page, ".upload-status", lambda t: "must end in" in t)
    # the tab keeps working
    before = text_of(page, ".summary")
    set_model_value(page, "cv-select", "kfold" if "leave-one-run-out" in before else "run")
    wait_text(page, ".summary", lambda t: t != before and "vs" in t)


def test_real_files_uploaded_are_analysed(app_page, haxby_slice, tmp_path):
    page = app_page
    _open_uploads(page)
    names = haxby_slice / "attributes.txt"
    table = tmp_path / "label_names.txt"      # the slice's README's code table
    table.write_text("0 rest\n1 face\n2 house\n3 shoe\n4 cat\n5 scissors\n"
                     "6 scrambledpix\n7 bottle\n8 chair\n")
    page.locator(".upload-label_names input[type=file]").first.set_input_files(str(table))
    wait_text(page, ".upload-status", lambda t: "label_names.txt" in t, timeout=60)
    page.locator(".upload-func input[type=file]").first.set_input_files(
        str(haxby_slice / "bold.nii.gz"))
    wait_text(page, ".upload-status", lambda t: "received" in t, timeout=120)
    page.locator(".upload-mask input[type=file]").first.set_input_files(
        str(haxby_slice / "mask.nii.gz"))
    wait_text(page, ".upload-status", lambda t: "mask" in t, timeout=60)
    page.locator(".upload-labels input[type=file]").first.set_input_files(str(names))
    # numeric codes named by the user's table: face vs cat on real data
    summary = wait_text(page, ".summary", lambda t: "0.741" in t, timeout=120)
    assert summary.startswith("face vs cat")
    # the views are drawn anew on the upload's grid (40 x 20 x 1 voxels, one slice): each
    # figure's canvas as wide as its frame (nothing clipped, the colour bar shown), the
    # page not scrolling sideways
    page.wait_for_function("() => Bokeh.documents[0].is_idle", timeout=60_000)
    page.wait_for_timeout(1500)
    _views_fit(page)


def _views_fit(page, expected_views=1):
    """Every shown slice view's canvas is as wide as its frame (at least ``expected_views``
    shown), and nothing overflows the window sideways."""
    shown = 0
    for view in ("sagittal", "coronal", "axial"):
        loc = page.locator(f".slice-{view} >> visible=true")
        if loc.count() == 0:
            continue
        frame = loc.first.bounding_box()
        canvas = loc.first.locator("canvas").first.bounding_box()
        if frame is None or canvas is None or frame["width"] == 0:
            continue
        shown += 1
        assert canvas["width"] >= frame["width"] - 10, (view, frame, canvas)
    assert shown >= expected_views, shown
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
