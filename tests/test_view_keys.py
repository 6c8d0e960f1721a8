"""The slice views from the keyboard (issue 15 item 19): dashboard/view_keys.py."""

import nibabel as nib
import numpy as np
import pytest

from analysis.volumes import to_xarray, voxel_to_mm
from dashboard.slice_viewer import SliceViewer
from dashboard.view_keys import KEYS, moved


@pytest.fixture
def viewer():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((7, 9, 5))
    # x flipped (radiological header): "right" on screen is still +x in mm
    affine = np.array([[-3.0, 0, 0, 30], [0, 2.5, 0, -40], [0, 0, 4.0, -10], [0, 0, 0, 1]])
    v = SliceViewer(stat_map=to_xarray(nib.Nifti1Image(data, affine), name="t"),
                    map_label="t")
    v.set_crosshair(voxel_to_mm(affine, (3, 4, 2)))
    return v, data, affine


@pytest.mark.parametrize("view, key, ijk", [
    ("axial", "ArrowRight", (2, 4, 2)),    # +x in mm is -i here (x flipped)
    ("axial", "ArrowLeft", (4, 4, 2)),
    ("axial", "ArrowUp", (3, 5, 2)),
    ("axial", "ArrowDown", (3, 3, 2)),
    ("axial", "PageUp", (3, 4, 3)),
    ("axial", "PageDown", (3, 4, 1)),
    ("coronal", "ArrowUp", (3, 4, 3)),
    ("coronal", "PageUp", (3, 5, 2)),
    ("sagittal", "ArrowRight", (3, 5, 2)),
    ("sagittal", "PageDown", (4, 4, 2)),
])
def test_a_key_moves_the_crosshair_one_voxel(viewer, view, key, ijk):
    v, data, _ = viewer
    v.key(view, key)
    assert v.voxel_index() == ijk
    assert v.value_at_crosshair() == pytest.approx(data[ijk])
    assert v.click_mm is None   # moving is not selecting


def test_the_crosshair_stays_in_the_grid(viewer):
    v, _, affine = viewer
    v.set_crosshair(voxel_to_mm(affine, (0, 8, 4)))
    for key in ("ArrowLeft", "ArrowUp", "PageUp"):
        v.key("axial", key)   # x: -i is +x... i=0 is the largest x: Left moves to i=1
    assert v.voxel_index() == (1, 8, 4)
    v.set_crosshair(voxel_to_mm(affine, (6, 8, 4)))
    v.key("axial", "ArrowLeft")   # i=6 is the smallest x: nowhere further left
    assert v.voxel_index() == (6, 8, 4)


def test_enter_clicks_where_the_crosshair_is(viewer):
    v, _, affine = viewer
    v.key("axial", "ArrowUp")
    v.key("axial", "Enter")
    assert v.click_mm == pytest.approx(voxel_to_mm(affine, (3, 5, 2)))
    clicks = []
    v.param.watch(lambda e: clicks.append(e.new), "click_mm")
    v.key("coronal", "Enter")   # the same voxel again: reported again, as a click is
    assert len(clicks) == 1


def test_other_keys_and_views_do_nothing(viewer):
    v, _, _ = viewer
    before = v.crosshair_mm
    v.key("axial", "a")
    v.key("nowhere", "ArrowUp")
    assert v.crosshair_mm == before and v.click_mm is None
    assert moved(None, (1.0, 2.0, 3.0), "axial", "ArrowUp") == (1.0, 2.0, 3.0)
    assert set(KEYS) >= {"ArrowLeft", "PageUp", "Enter"}


def test_the_pages_keys_reach_the_viewer_of_the_focused_view(viewer):
    """The app's one ViewKeys reports {viewer, view, key}; route_keys moves that viewer
    only (each viewer's views carry its key_id as a css class)."""
    from dashboard.view_keys import ViewKeys, route_keys

    v, _, _ = viewer
    other = SliceViewer(stat_map=v.stat_map, map_label="t")
    other.set_crosshair(v.crosshair_mm)
    assert v.key_id != other.key_id and v.key_id.startswith("viewer-")
    keys = ViewKeys()
    route_keys(keys, lambda: [other, v])
    keys.pressed = {"viewer": v.key_id, "view": "axial", "key": "ArrowUp", "n": 1}
    assert v.voxel_index() == (3, 5, 2) and other.voxel_index() == (3, 4, 2)
    keys.pressed = {"viewer": "viewer-0", "view": "axial", "key": "ArrowUp", "n": 2}
    assert v.voxel_index() == (3, 5, 2) and other.voxel_index() == (3, 4, 2)
