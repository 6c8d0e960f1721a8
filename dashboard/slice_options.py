"""How the slice viewer shows a map (issue 15, items 17 and 18).

* Colour maps (:data:`COLOUR_MAPS`): the maps the tabs used (red-blue, fire) and
  perceptually uniform, colour-blind-safe ones (viridis, cividis; inferno, magma). The
  colours a map *shows* (:func:`shown_palette`) start visibly above the black background:
  the dark bottom of a sequential map is cut (its first shown colour has a contrast of at
  least 3:1 against black, :data:`MIN_LUMINANCE`) and a diverging map skips its near-white
  middle, so that voxels just above the threshold never look like holes.
* The threshold on the colour bar: the part of the bar below the threshold (|value| <
  threshold), which the views never show, is greyed (:func:`shown_palette`); the bar's
  mapper is the views', so the bar and the views always agree.
* Orientation letters (:func:`orientation_labels`): L/R, A/P, S/I on each view's edges,
  in a black margin around the image (:func:`frame_limits`), never over the data. The
  views draw x (mm, RAS+) increasing to the right: the right of an axial or coronal view
  is the subject's right (neurological convention).
* The hover (:func:`voxel_hover`): the voxel centre in mm and the voxel's index
  ``(i, j, k)`` in the map's grid under the mouse, computed in the browser from the
  grid's origin and step and the crosshair's slices (no per-pixel columns to send).
"""

from __future__ import annotations

import functools

import numpy as np

from dashboard.render.live import set_colours  # noqa: F401 (the viewer's in-place colours)

from analysis.volumes import DIMS
from dashboard.slice_data import VIEWS, image_shape, padding, palette

#: the colour bar's title for each map the tabs show, by the short name of its values
#: (``SliceViewer.map_label``, which the crosshair readout, the hover and the histogram
#: keep): the quantity in the field's words, not a bare letter
QUANTITY_TITLES = {
    "R2": "CV R²",
    "r": "correlation r",
    "Fisher z": "Fisher z",
    "t": "t statistic",
    "weights": "SVC weight",
    "pattern": "activation",
}


def quantity_title(label: str) -> str:
    """The colour bar's title of a map whose values are named ``label``
    (:data:`QUANTITY_TITLES`; any other name as it is)."""
    return QUANTITY_TITLES.get(label, label)


#: the colour maps offered, ``{label: name}`` (names as HoloViews knows them)
COLOUR_MAPS = {
    "red-blue (colour-blind safe)": "RdBu_r",
    "cool-warm (diverging)": "coolwarm",
    "fire": "fire",
    "hot": "hot",
    "viridis (uniform, colour-blind safe)": "viridis",
    "cividis (uniform, colour-blind safe)": "cividis",
    "inferno (uniform)": "inferno",
    "magma (uniform)": "magma",
}
#: the maps whose middle is the neutral colour (0 of a signed map)
DIVERGING = frozenset({"RdBu_r", "coolwarm"})
#: the least relative luminance of a shown colour of a sequential map: a contrast of 3:1
#: against black (WCAG's minimum for graphical objects)
MIN_LUMINANCE = 0.1
#: the fraction of a diverging map's colours around its middle that is skipped (whitish)
DIVERGING_GAP = 0.08
#: the number of colours of a shown palette
N_COLOURS = 256
#: the colours of the colour bar's part below the threshold (on light, on dark neighbours)
BELOW_ON_DARK, BELOW_ON_LIGHT = "#d0d0d0", "#505050"
#: the width of the margin holding the orientation letters (px), and the letters' style
LETTER_MARGIN_PX = 14
LETTER_STYLE = dict(text_color="#e8e8e8", text_font_size="11px", text_font_style="bold")
#: the colour of the views' frame around the image (the image's NaN colour)
FRAME_COLOUR = "black"

#: the letters of each view's edges: (left, right, bottom, top); x in mm increasing to the
#: right (RAS+: right is R), y (anterior) and z (superior) up
ORIENTATION = {
    "sagittal": ("P", "A", "I", "S"),
    "coronal": ("L", "R", "I", "S"),
    "axial": ("L", "R", "P", "A"),
}


def luminance(colour: str) -> float:
    """The relative luminance (WCAG, 0 black to 1 white) of a ``#rrggbb`` colour."""
    h = colour.lstrip("#")[:6]
    rgb = np.array([int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


@functools.lru_cache(maxsize=64)
def usable_start(cmap: str) -> float:
    """The fraction of a sequential map's colours cut at its dark bottom: its first colour
    of at least :data:`MIN_LUMINANCE` (0 for a diverging map, whose ends are not shown
    just above the threshold)."""
    if cmap in DIVERGING:
        return 0.0
    colours = palette(cmap)
    for i, colour in enumerate(colours):
        if luminance(colour) >= MIN_LUMINANCE:
            return i / max(len(colours) - 1, 1)
    return 0.0


def shown_palette(cmap: str, low: float, high: float, threshold: float = 0.0,
                  n: int = N_COLOURS) -> list:
    """The ``n`` colours of a linear colour mapper from ``low`` to ``high`` showing ``cmap``.

    A sequential map: its colours from :func:`usable_start` up, linearly. A diverging map:
    0 at its middle, each side (negative, positive) scaled to its own end of the range,
    without the :data:`DIVERGING_GAP` around the middle. The bins of values wholly below
    the threshold (``-threshold < value < threshold``; a mapper puts a bin's upper edge in
    the next bin) are grey: the colour bar's threshold mark.
    """
    colours = palette(cmap)
    last = len(colours) - 1
    low, high = float(low), float(high)
    if not high > low:
        high = low + 1.0
    edges = np.linspace(low, high, n + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    if cmap in DIVERGING:
        half = 0.5 - DIVERGING_GAP
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.clip(centres / high, 0, 1) if high > 0 else np.zeros(n)
            down = np.clip(centres / low, 0, 1) if low < 0 else np.zeros(n)
        fraction = np.where(centres >= 0, 0.5 + DIVERGING_GAP + half * up,
                            0.5 - DIVERGING_GAP - half * down)
    else:
        start = usable_start(cmap)
        fraction = start + (1 - start) * (centres - low) / (high - low)
    shown = [colours[int(round(f * last))] for f in np.clip(fraction, 0, 1)]
    if threshold > 0:
        below = _below(edges, threshold)
        if below.any():
            idx = np.flatnonzero(below)   # the band's neighbours set its grey's lightness
            nearby = [shown[i] for i in (idx[0] - 1, idx[-1] + 1) if 0 <= i < n]
            dark = np.mean([luminance(c) for c in nearby]) < 0.35 if nearby else True
            grey = BELOW_ON_DARK if dark else BELOW_ON_LIGHT
            shown = [grey if b else c for b, c in zip(below, shown)]
    return shown


def _below(edges: np.ndarray, threshold: float) -> np.ndarray:
    """The bins (between ``edges``) whose values are all below the threshold; never the
    end bins, which also show the values beyond the colour range (clipped to them)."""
    below = (edges[:-1] > -threshold) & (edges[1:] <= threshold)
    below[0] = below[-1] = False
    return below


def threshold_band(low: float, high: float, threshold: float, n: int = N_COLOURS) -> tuple:
    """``(start, end)``: the values the grey bins of :func:`shown_palette` span (the
    threshold mark on the colour bar); None when no bin is wholly below the threshold."""
    edges = np.linspace(float(low), float(high), n + 1)
    below = _below(edges, threshold)
    if threshold <= 0 or not below.any():
        return None
    idx = np.flatnonzero(below)
    return float(edges[idx[0]]), float(edges[idx[-1] + 1])


# ---- the frame and its orientation letters ---------------------------------------------
def half_steps(grid) -> dict:
    """Half a voxel of ``grid`` along each dim (mm): how far its image reaches beyond the
    voxel centres."""
    out = {}
    for dim in DIMS:
        c = np.asarray(grid[dim].values, dtype=float) if grid is not None else np.zeros(1)
        out[dim] = abs(float(c[1] - c[0])) / 2 if c.size > 1 else 0.5
    return out


def frame_limits(extent: dict, halves: dict, view: str, frame_height: int,
                 margin_px: int = LETTER_MARGIN_PX) -> tuple:
    """``(xlim, ylim, margin_mm, frame_width)`` of a view.

    The frame keeps the size it had without letters (``frame_height`` high, as wide as
    the voxel centres' ``extent`` asks: the app sizes the presentation layout by it);
    inside it, the same mm per pixel across and up, the whole image (the centres plus
    half a voxel, ``halves``) fits with a margin of ``margin_px`` pixels on each side for
    the letters, centred.
    """
    h, v, _ = VIEWS[view]
    (x0, x1), (y0, y1) = extent[h], extent[v]
    frame_width = max(60, int(frame_height * ((x1 - x0) or 1.0) / ((y1 - y0) or 1.0)))
    scale = max((x1 - x0 + 2 * halves[h]) / max(frame_width - 2 * margin_px, 1),
                (y1 - y0 + 2 * halves[v]) / max(frame_height - 2 * margin_px, 1))
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xr, yr = scale * frame_width / 2, scale * frame_height / 2
    return (xm - xr, xm + xr), (ym - yr, ym + yr), margin_px * scale, frame_width


def orientation_labels(view: str, xlim, ylim, margin: float) -> dict:
    """The letters of ``view``'s edges and their positions (mm), in the middle of the
    margins: ``{h: [...], v: [...], "text": [...]}`` (left, right, bottom, top)."""
    h, v, _ = VIEWS[view]
    (x0, x1), (y0, y1) = xlim, ylim
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xs = [x0 + margin / 2, x1 - margin / 2, xm, xm]
    ys = [ym, ym, y0 + margin / 2, y1 - margin / 2]
    return {h: xs, v: ys, "text": list(ORIENTATION[view])}


def black_frame(plot, element) -> None:
    """A HoloViews hook: the view's frame black (:data:`FRAME_COLOUR`) under the image, as
    the image's NaN voxels, whatever the theme paints the figure's background (a box
    under the glyphs, added once per drawn figure)."""
    from bokeh.models import BoxAnnotation

    figure = plot.state
    if not any(getattr(r, "name", None) == "slice-frame" for r in figure.center):
        figure.add_layout(BoxAnnotation(fill_color=FRAME_COLOUR, fill_alpha=1.0,
                                        line_alpha=0.0, level="underlay",
                                        name="slice-frame"))


def view_frame(view: str, extent, grid, frame_height: int) -> tuple:
    """:func:`frame_limits` of ``view`` for the views' ``extent`` ((min, max) of x, y, z)
    on ``grid`` (the volume that set it)."""
    return frame_limits(dict(zip(DIMS, extent)), half_steps(grid), view, frame_height)


def orientation_letters(view: str, extent, grid, frame_height: int) -> list:
    """The letters of ``view``'s edges as a HoloViews element, in the margins of its frame
    (:func:`view_frame`); [] before there is a frame."""
    import holoviews as hv

    if extent is None:
        return []
    h, v, _ = VIEWS[view]
    xlim, ylim, margin, _ = view_frame(view, extent, grid, frame_height)
    return [hv.Labels(orientation_labels(view, xlim, ylim, margin), kdims=[h, v],
                      vdims=["text"]).opts(**LETTER_STYLE)]


# ---- the hover ---------------------------------------------------------------------------
#: the hover's voxel (``part`` "mm": its centre, "index": its (i, j, k)) under the mouse:
#: ``grid`` is [origin, step, size] of x, y and z, ``xyz`` the crosshair (the sliced dim's
#: position), ``h``/``v`` the view's axes
VOXEL_JS = """
if (grid.length != 9) return "";
const dims = ["x", "y", "z"];
const out = [];
for (let d = 0; d < 3; d++) {
  const c = dims[d] == h ? special_vars.x : (dims[d] == v ? special_vars.y : xyz[d]);
  const [origin, step, size] = grid.slice(3 * d, 3 * d + 3);
  let i = step != 0 ? Math.round((c - origin) / step) : 0;
  if (i < 0 || i >= size) return "outside the image";
  out.push(part == "mm" ? (origin + i * step).toFixed(1) : String(i));
}
return "(" + out.join(", ") + ")";
"""

#: the hover's rows (label, field) before the map's value
VOXEL_TOOLTIPS = [("voxel centre (mm)", "$x{custom}"), ("voxel (i, j, k)", "$y{custom}")]


def grid_args(grid) -> list:
    """``[origin, step, size]`` of x, y, z of the image ``grid`` shows (voxel order,
    without its display padding: :func:`dashboard.slice_data.padding`), as
    :data:`VOXEL_JS` takes them; [] without a grid."""
    if grid is None:
        return []
    out = []
    for dim, pad, size in zip(DIMS, padding(grid), image_shape(grid)):
        c = np.asarray(grid[dim].values, dtype=float)
        step = float(c[-1] - c[0]) / (c.size - 1) if c.size > 1 else 0.0
        out += [float(c[pad]), step, int(size)]
    return out


def voxel_hover(view: str, grid, xyz) -> dict:
    """The hover formatters of ``view``'s voxel rows (:data:`VOXEL_TOOLTIPS`)."""
    from bokeh.models import CustomJSHover

    h, v, _ = VIEWS[view]
    common = {"grid": grid_args(grid), "xyz": [float(c) for c in xyz], "h": h, "v": v}
    return {"$x": CustomJSHover(args={**common, "part": "mm"}, code=VOXEL_JS),
            "$y": CustomJSHover(args={**common, "part": "index"}, code=VOXEL_JS)}
