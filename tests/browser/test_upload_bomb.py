"""A hostile upload in Chromium: a small .nii.gz whose header claims a gigabyte is refused
by its header, the server's memory stays far below what the data would take, and the
session lives on.

The browser tests serve the app in this process, so the server's memory is this
process's resident size.
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import psutil

from analysis.config import MAX_IMAGE_ENV
from tests.browser.helpers import set_model_value, text_of, wait_text, wait_text_change
from tests.browser.test_connectivity_upload import CARD, open_uploads
from tests.browser.test_connectivity import SUMMARY

SHAPE = (128, 128, 128, 125)   # float32: 1.0 GB of data


def bomb(path, shape=SHAPE):
    """A gzipped NIfTI of a few kB whose header claims ``shape`` float32 voxels: the data
    is all zeros, which gzip packs a thousandfold."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    block = header.binaryblock + b"\x00" * 4
    zeros = b"\x00" * (64 * 2**20)
    with gzip.open(path, "wb", compresslevel=9) as gz:   # 64 MB of the 1 GB is there
        gz.write(block)
        gz.write(zeros)
    return path


def test_a_header_bomb_is_refused_and_memory_stays_low(app_page, tmp_path, monkeypatch,
                                                      connectivity_dir):
    monkeypatch.setenv(MAX_IMAGE_ENV, "256")       # the operator's cap for this server
    page = app_page
    before = open_uploads(page)
    path = bomb(tmp_path / "tiny_bomb.nii.gz")
    assert path.stat().st_size < 2**20               # well under the upload limit
    server = psutil.Process()
    rss_before = server.memory_info().rss
    page.locator(f"{CARD} .upload-func input[type=file]").first.set_input_files(str(path))
    status = wait_text(page, f"{CARD} .upload-status", lambda t: "refused" in t)
    assert "tiny_bomb.nii.gz" in status and "GB" in status and "limit" in status
    grown = server.memory_info().rss - rss_before
    assert grown < 256 * 2**20, f"the server grew by {grown / 2**20:.0f} MB for a refused file"
    assert page.locator(".analyse-upload button").first.is_disabled()
    assert text_of(page, SUMMARY) == before
    # the session lives: a new seed still answers
    set_model_value(page, "seed-x", 28.0)
    after = wait_text_change(page, SUMMARY, before)
    assert after.startswith("seed (28, -52, 18)")
