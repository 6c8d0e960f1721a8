"""The slice viewer's data: slices of a volume, voxel snapping, colour ranges, thresholds.

Plain numpy on ``xr.DataArray`` volumes with dims ``(x, y, z)`` in mm (as made by
:func:`analysis.volumes.to_xarray`), and a slice as an ``hv.Image``
(:func:`slice_image`): moved out of :mod:`dashboard.slice_viewer`, which imports (and
so still offers) every name here.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.volumes import DIMS
from dashboard.render.styles import colormap


def palette(cmap):
    """A colour map's colours, as HoloViews makes them from its name, looked up once
    per name (anything else, e.g. a list of colours, is returned as it is).

    Given a name, HoloViews searches the colour-map lists of matplotlib, Bokeh and
    colorcet each time it draws an image (3 lists per image, every slider move); given
    the colours, it uses them as they are.
    """
    return colormap(cmap) if isinstance(cmap, str) else cmap


#: view name -> (horizontal dim, vertical dim, sliced dim)
VIEWS = {
    "sagittal": ("y", "z", "x"),
    "coronal": ("x", "z", "y"),
    "axial": ("x", "y", "z"),
}


def view_title(view: str, position: float) -> str:
    """A view's title: its name and the slice's position, e.g. ``axial  z=12 mm``."""
    return f"{view}  {VIEWS[view][2]}={position:.0f} mm"


def slice_arrays(da: xr.DataArray, view: str, position: float) -> tuple:
    """``(xs, ys, values[y, x])`` of the slice of ``da`` nearest ``position`` on ``view``.

    Plain numpy (a view of the volume, no copy), coordinates ascending: what
    ``da.sortby(dims).sel({s: position}, method="nearest").transpose(v, h)`` gives.
    """
    h, v, s = VIEWS[view]
    cs = da[s].values
    order = np.argsort(cs, kind="stable")
    k = int(order[np.abs(cs[order] - position).argmin()])
    values = np.take(da.values, k, axis=da.dims.index(s))
    if [d for d in da.dims if d != s] == [h, v]:
        values = values.T
    xs, ys = da[h].values, da[v].values
    if xs.size > 1 and xs[1] < xs[0]:
        xs, values = xs[::-1], values[:, ::-1]
    if ys.size > 1 and ys[1] < ys[0]:
        ys, values = ys[::-1], values[::-1, :]
    return xs, ys, values


def padding(grid: xr.DataArray) -> tuple:
    """Empty slices added on each side of the image along x, y, z for display
    (``attrs["padding"]``, as :func:`dashboard.decoding.displayable` pads a one-slice
    image); (0, 0, 0) for a volume shown as it is."""
    pad = grid.attrs.get("padding") or (0, 0, 0)
    return tuple(int(p) for p in pad)


def image_shape(grid: xr.DataArray) -> tuple:
    """The shape of the image ``grid`` shows (without its display padding)."""
    return tuple(int(grid.sizes[d]) - 2 * p for d, p in zip(DIMS, padding(grid)))


def image_index(grid: xr.DataArray, ijk) -> tuple | None:
    """``ijk`` on ``grid`` (padded for display or not) as an index of the image itself;
    None in the padding (outside the image)."""
    out = tuple(int(i) - p for i, p in zip(ijk, padding(grid)))
    if not all(0 <= i < n for i, n in zip(out, image_shape(grid))):
        return None
    return out


def snap(da: xr.DataArray, xyz) -> tuple:
    """The voxel centre of ``da``'s grid nearest to ``xyz`` (mm)."""
    out = []
    for dim, value in zip(DIMS, xyz):
        c = da[dim].values
        out.append(float(c[np.abs(c - value).argmin()]))
    return tuple(out)


def colour_range(values: np.ndarray, symmetric: bool = True) -> tuple:
    """A colour range for a map: symmetric around 0 for signed maps."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (-1.0, 1.0) if symmetric else (0.0, 1.0)
    if symmetric:
        m = float(np.abs(finite).max()) or 1.0
        return (-m, m)
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi if hi > lo else lo + 1.0)


def threshold_map(values: np.ndarray, threshold: float) -> np.ndarray:
    """Values with ``|value| < threshold`` (and non-finite ones) set to NaN."""
    values = np.asarray(values, dtype=float)
    out = values.copy()
    with np.errstate(invalid="ignore"):
        out[~(np.abs(values) >= threshold)] = np.nan
    return out


def slice_image(da: xr.DataArray, view: str, position: float, vdim: str, values=None,
                regions=None):
    """An ``hv.Image`` of one slice of ``da`` (:func:`slice_arrays`; ``values`` maps its
    values first), from plain arrays (fast to build and update); with ``regions`` (region
    indices on ``da``'s grid), a second value dimension."""
    import holoviews as hv

    from dashboard.clusters import REGION_DIM

    h, v, _ = VIEWS[view]
    xs, ys, data = slice_arrays(da, view, position)
    data = data if values is None else values(data)
    if min(len(xs), len(ys)) == 1:   # one voxel across (a one-slice image): given bounds
        return _thin_image(xs, ys, data, None if regions is None
                           else slice_arrays(regions, view, position)[2], h, v, vdim)
    if regions is None:
        return hv.Image((xs, ys, data), kdims=[h, v], vdims=[vdim])
    return hv.Image((xs, ys, data, slice_arrays(regions, view, position)[2]),
                    kdims=[h, v], vdims=[vdim, REGION_DIM])


def _thin_image(xs, ys, data, regions, h, v, vdim):
    """:func:`slice_image` of a slice one voxel across, whose step HoloViews cannot infer
    from its coordinates: the other axis' step (or 1 mm), as explicit bounds."""
    import holoviews as hv

    from dashboard.clusters import REGION_DIM

    steps = [float(np.abs(np.diff(c)).mean()) if len(c) > 1 else None for c in (xs, ys)]
    known = [s for s in steps if s]
    steps = [s or (known[0] if known else 1.0) for s in steps]
    (sx, sy) = steps
    bounds = (float(xs.min()) - sx / 2, float(ys.min()) - sy / 2,
              float(xs.max()) + sx / 2, float(ys.max()) + sy / 2)
    rows = np.flipud(np.asarray(data)) if ys[0] < ys[-1] else np.asarray(data)
    if regions is None:
        return hv.Image(rows, bounds=bounds, kdims=[h, v], vdims=[vdim])
    regions = np.flipud(np.asarray(regions)) if ys[0] < ys[-1] else np.asarray(regions)
    return hv.Image(np.dstack([rows, regions]), bounds=bounds, kdims=[h, v],
                    vdims=[vdim, REGION_DIM])
