"""The slice viewer in Chromium: a click on a view moves the crosshair to that voxel."""

import nibabel as nib
import numpy as np
import pytest

from analysis.volumes import to_xarray, voxel_to_mm
from tests.browser.conftest import open_page, served
from tests.browser.helpers import click_data, text_of, wait_text_change

AFFINE = np.array([[-4.0, 0, 0, 40], [0, 4.0, 0, -60], [0, 0, 4.0, -20], [0, 0, 0, 1]])
DATA = np.random.default_rng(1).standard_normal((20, 24, 16))


@pytest.fixture(scope="module")
def viewer_url():
    import panel as pn

    from dashboard.slice_viewer import SliceViewer

    def app():
        da = to_xarray(nib.Nifti1Image(DATA, AFFINE), name="t")
        viewer = SliceViewer(stat_map=da, background=da.copy(data=np.abs(DATA)), map_label="t")
        viewer.set_crosshair(voxel_to_mm(AFFINE, (10, 12, 8)))
        return pn.Column(viewer)

    with served(app) as url:
        yield url


@pytest.mark.parametrize("view,ijk", [("axial", (3, 20, 8)), ("sagittal", (10, 5, 13)),
                                      ("coronal", (17, 12, 2))])
def test_click_reports_voxel(page, viewer_url, view, ijk):
    open_page(page, viewer_url)
    page.locator(".slice-axial canvas").first.wait_for(state="visible")
    before = text_of(page, ".crosshair-info")
    assert "voxel (10, 12, 8)" in before
    x, y, z = voxel_to_mm(AFFINE, ijk)
    h, v = {"sagittal": (y, z), "coronal": (x, z), "axial": (x, y)}[view]
    click_data(page, f"slice-{view}", h, v)
    after = wait_text_change(page, ".crosshair-info", before)
    assert f"voxel {ijk}" in after
    assert f"t {DATA[ijk]:.3g}" in after
    assert page.blocked_requests == []
