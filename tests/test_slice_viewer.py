"""The shared slice viewer: slicing, thresholds, click-to-voxel mapping."""

import nibabel as nib
import numpy as np
import pytest

from analysis.volumes import to_xarray, voxel_to_mm
from dashboard.slice_viewer import SliceViewer, colour_range, threshold_map


@pytest.fixture
def volume():
    # dimensions all differ; x axis flipped as in radiological-convention headers
    rng = np.random.default_rng(0)
    data = rng.standard_normal((7, 9, 5))
    affine = np.array([[-3.0, 0, 0, 30], [0, 2.5, 0, -40], [0, 0, 4.0, -10], [0, 0, 0, 1]])
    return data, affine, to_xarray(nib.Nifti1Image(data, affine), name="t")


def _element_value(viewer, view, x, y):
    """The map value the rendered HoloViews element shows at data (x, y)."""
    overlay = viewer.view_element(view)
    image = [el for el in overlay if el.vdims and el.vdims[0].name == "t"][0]
    return image[x, y]


@pytest.mark.parametrize("view", ["sagittal", "coronal", "axial"])
def test_click_maps_to_voxel_and_element_shows_its_value(volume, view):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, map_label="t")
    ijk = (2, 6, 3)
    x, y, z = voxel_to_mm(affine, ijk)
    viewer.set_crosshair((x, y, z))
    # click on the view at the voxel's in-plane coordinates, slightly off-centre
    coords = {"x": x + 0.4, "y": y - 0.3, "z": z + 0.5}
    h, v = {"sagittal": ("y", "z"), "coronal": ("x", "z"), "axial": ("x", "y")}[view]
    viewer.tap(view, coords[h], coords[v])
    assert viewer.voxel_index() == ijk
    assert viewer.crosshair_mm == pytest.approx((x, y, z))
    assert viewer.value_at_crosshair() == pytest.approx(data[ijk])
    # the drawn element holds the same value at that point (row 0 of hv.Image is the top)
    assert _element_value(viewer, view, coords[h], coords[v]) == pytest.approx(data[ijk])


def test_click_moves_only_in_plane_coordinates(volume):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da)
    viewer.set_crosshair(voxel_to_mm(affine, (1, 1, 1)))
    x0 = viewer.crosshair_mm[0]
    target = voxel_to_mm(affine, (1, 7, 4))
    viewer.tap("sagittal", target[1], target[2])
    assert viewer.voxel_index() == (1, 7, 4)
    assert viewer.crosshair_mm[0] == x0


def test_threshold_hides_small_values_and_nan():
    values = np.array([-2.0, -0.5, 0.0, 0.5, 3.0, np.nan])
    out = threshold_map(values, 1.0)
    assert np.isnan(out[[1, 2, 3, 5]]).all()
    assert out[0] == -2.0 and out[4] == 3.0


def test_colour_range_symmetric_and_not():
    values = np.array([-1.0, 0.5, 4.0, np.nan])
    assert colour_range(values, symmetric=True) == (-4.0, 4.0)
    assert colour_range(values, symmetric=False) == (-1.0, 4.0)


def test_background_on_another_grid(volume):
    data, affine, da = volume
    fine = np.arange(14 * 18 * 10, dtype=float).reshape(14, 18, 10)
    fine_affine = affine.copy()
    fine_affine[:3, :3] /= 2
    bg = to_xarray(nib.Nifti1Image(fine, fine_affine))
    viewer = SliceViewer(stat_map=da, background=bg)
    viewer.set_crosshair(voxel_to_mm(affine, (3, 4, 2)))
    overlay = viewer.view_element("axial")
    assert len(overlay) >= 4  # background, map, two crosshair lines
    background = [el for el in overlay if el.vdims and el.vdims[0].name == "background"][0]
    assert background.dimension_values(2, flat=False).shape == (18, 14)  # on its own grid
    assert viewer.voxel_index() == (3, 4, 2)


def test_click_without_following_reports_only(volume):
    data, affine, da = volume
    viewer = SliceViewer(stat_map=da, follow_clicks=False)
    viewer.set_crosshair(voxel_to_mm(affine, (1, 1, 1)))
    before = viewer.crosshair_mm
    clicks = []
    viewer.param.watch(lambda e: clicks.append(e.new), "click_mm")
    target = voxel_to_mm(affine, (4, 5, 1))
    viewer.tap("axial", target[0] + 0.3, target[1] - 0.2)
    viewer.tap("axial", target[0], target[1])  # the same voxel again: reported again
    assert viewer.crosshair_mm == before
    assert clicks == [pytest.approx(tuple(target))] * 2


def test_palette_is_what_holoviews_makes_of_the_name():
    from holoviews.plotting.util import process_cmap

    from dashboard.slice_viewer import palette

    for name in ("fire", "gray", "RdBu_r", "Blues"):
        assert list(palette(name)) == process_cmap(name)
        assert palette(name) is palette(name)  # looked up once
    assert palette(["#000000", "#ffffff"]) == ["#000000", "#ffffff"]
