"""The one slice viewer every tab uses.

Orthogonal views (sagittal, coronal, axial) of a statistical map over a
background image, in mm, with a crosshair. A click on any view moves the
crosshair there (snapped to the nearest voxel centre of the map's grid) and
reports the voxel; tabs watch ``viewer.param.crosshair_mm`` to react.

Both images are ``xr.DataArray`` volumes with dims ``(x, y, z)`` in mm, as
made by :func:`analysis.volumes.to_xarray`; they may lie on different grids
(an anatomical background finer than the functional map), each is sliced on
its own grid at the crosshair.

Region names (issue 17): the readout and the hover name the region at the point
(:class:`dashboard.clusters.RegionNames`: atlas, space, the hover's region column).

Display (:mod:`dashboard.slice_options`): colour maps (``cmap``) shown from visibly
above the background, ``opacity``, the colour bar greyed below the threshold, L/R A/P S/I
letters around each view, a hover with the voxel's centre (mm), index and value;
:meth:`SliceViewer.controls` for a tab. Data helpers: :mod:`dashboard.slice_data`.
Keyboard (arrows, Page Up/Down, Enter on a focused view): :mod:`dashboard.view_keys`.
"""

from __future__ import annotations

import weakref
from types import MappingProxyType
from typing import Mapping

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr

from analysis.volumes import DIMS, affine_of, mm_to_voxel
from dashboard.batch import batched
from dashboard.clusters import REGION_DIM, RegionNames
from dashboard.notify import safe_markdown
from dashboard.render.live import Layer, LivePane, named
from dashboard.render.server import session_doc
from dashboard.render.theme import colour_bar_title, readable_ticks
from dashboard.slice_data import (  # noqa: F401 - offered here too
    VIEWS, colour_range, image_index, palette, slice_arrays, slice_image, snap,
    threshold_map, view_title)
from dashboard.view_keys import ViewInput
from dashboard.slice_options import (
    COLOUR_MAPS, FRAME_COLOUR, VOXEL_TOOLTIPS, black_frame, grid_args, orientation_letters,
    quantity_title, set_colours, shown_palette, view_frame, voxel_hover)

hv.extension("bokeh", logo=False)
# Canvas, not WebGL: Bokeh's WebGL draws lines and markers, not images, so these views gain
# nothing from it, and each repaint then copies a WebGL canvas onto the plot's (a software
# renderer on a machine without a GPU: 50 ms a slider move in headless Chromium). Browsers
# also limit a page to 16 WebGL contexts.
hv.renderer("bokeh").webgl = False

#: The slice viewers of each served session (the app enlarges them when presenting).
_SESSION_VIEWERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def session_viewers(doc=None) -> list:
    """The slice viewers created in a session (default: the current one)."""
    doc = doc if doc is not None else pn.state.curdoc
    return list(_SESSION_VIEWERS.get(doc, ())) if doc is not None else []

class SliceViewer(RegionNames, ViewInput, pn.viewable.Viewer):
    """Orthogonal slices of ``stat_map`` over ``background``, a crosshair, region names."""

    stat_map = param.ClassSelector(class_=xr.DataArray, allow_None=True, doc="""
        The map to show, dims (x, y, z) in mm; NaN is transparent.""")
    background = param.ClassSelector(class_=xr.DataArray, allow_None=True, doc="""
        The anatomy under the map, dims (x, y, z) in mm, grey scale.""")
    readout_map = param.ClassSelector(class_=xr.DataArray, allow_None=True, doc="""
        Optional: the values the crosshair readout reports, on the map's grid (e.g. the
        map before it was cut for display); None (default): the map's own values.""")
    threshold = param.Number(default=0.0, bounds=(0, None), doc="""
        Map values with |value| below this are hidden.""")
    clim = param.Tuple(default=None, length=2, allow_None=True, doc="""
        Colour range of the map; None: from the data (symmetric if `symmetric`).""")
    symmetric = param.Boolean(default=True, doc="""
        Automatic colour range symmetric around zero (signed maps).""")
    cmap = param.Selector(default="RdBu_r", objects=COLOUR_MAPS, label="Colour map", doc="""
        The colours of the map. Red-blue and cool-warm (diverging: 0 in the middle) suit
        signed maps; viridis and cividis are perceptually uniform and colour-blind safe.
        Every map starts visibly above the black background (its darkest or whitest part
        is left out); the colour bar greys the values below the threshold.""")
    opacity = param.Number(default=1.0, bounds=(0.1, 1.0), step=0.05, label="Map opacity",
                           doc="""
        How opaque the map is over the anatomy: 1 hides the anatomy under the map's
        voxels, lower values let it show through.""")
    crosshair_mm = param.Tuple(default=(0.0, 0.0, 0.0), length=3, doc="""
        Crosshair position in mm; a click on a view sets it.""")
    marker_mm = param.Tuple(default=None, length=3, allow_None=True, doc="""
        Optional marker (e.g. the seed) in mm.""")
    follow_clicks = param.Boolean(default=True, doc="""
        A click moves the crosshair. Off: a click only sets `click_mm`, and the owner
        moves the crosshair itself, together with what the click changes (one redraw).""")
    click_mm = param.Tuple(default=None, length=3, allow_None=True, doc="""
        The last clicked position, snapped to a voxel centre (set on every click).""")
    title = param.String(default="", doc="Title above the views.")
    map_label = param.String(default="value", doc="""
        Short name of the map's values (crosshair readout, hover); the colour bar says it in
        words (:func:`dashboard.slice_options.quantity_title`).""")
    plot_height = param.Integer(default=260, bounds=(120, 1200), doc="Height of each view (px).")

    # Derived: the frame of the views (a change redraws them through HoloViews).
    _extent = param.Tuple(default=None, length=3, allow_None=True, precedence=-1, doc="""
        (min, max) in mm of each axis of the grid: the views' frames.""")
    _rev = param.Integer(default=0, precedence=-1, doc="""
        Bumped when the views must be drawn anew by HoloViews (new frame, grid or colour map);
        other changes update the drawn Bokeh models directly.""")

    _layers: dict = {}  # view -> layer name -> Layer (set per instance)
    _drawn_cmap = None
    _drawn_extent = None

    def __init__(self, **params):
        super().__init__(**params)
        doc = session_doc()   # this session's, never another's (render/server.py)
        if doc is not None:
            _SESSION_VIEWERS.setdefault(doc, weakref.WeakSet()).add(self)
        self._init_regions(doc, follow="atlas" not in params)
        self._update_extent()
        self._taps = {}
        self._panes = {}
        # Each layer is drawn by HoloViews once (again on a new map grid: `_rev`; new figures
        # on a new frame: _new_frame); new values then go straight to its Bokeh models.
        self._layers = {view: {name: Layer() for name in ("background", "map", "vline",
                                                           "hline", "marker")}
                        for view in VIEWS}
        self._drawn_cmap = None
        for view in VIEWS:
            background = hv.DynamicMap(pn.bind(self._background_layer, view=view,
                                               rev=self.param._rev))
            overlay = hv.DynamicMap(pn.bind(self._map_layer, view=view, rev=self.param._rev))
            cross = hv.DynamicMap(pn.bind(self._crosshair_layer, view=view,
                                          rev=self.param._rev))
            # the tap stream's source must be a DynamicMap of elements, not of overlays
            tap = hv.streams.SingleTap(source=background, x=None, y=None)
            tap.add_subscriber(lambda x, y, view=view: self._on_tap(view, x, y))
            self._taps[view] = tap
            plot = (background * overlay * cross).opts(hv.opts.Overlay(
                toolbar=None, show_legend=False,
                hooks=[named(f"slice-{view}"), colour_bar_title, readable_ticks]))
            self._panes[view] = LivePane(plot, css_classes=[f"slice-{view}", self.key_id],
                                         linked_axes=False)
        self._info = pn.pane.Markdown(self._info_text, css_classes=["crosshair-info"],
                                      margin=(0, 10))
        if self._frame_grid is not None:
            self._new_frame()   # a one-slice image shows its one view
        self._layout = pn.Column(
            # the title may name the user's labels: shown as text
            pn.pane.Markdown(pn.bind(safe_markdown, self.param.title), margin=(0, 10)),
            pn.Row(*self._panes.values()),
            self._info,
        )

    @param.depends("stat_map", "background", watch=True)
    def _update_extent(self) -> None:
        # the frame follows the background when there is one: it stays put when a map
        # (perhaps on another grid) arrives later, as Bokeh does not grow a drawn canvas
        grid = self._frame_grid
        extent = None if grid is None else tuple(
            (float(grid[d].min()), float(grid[d].max())) for d in DIMS)
        if extent != self._extent:
            self._extent = extent

    @param.depends("plot_height", "_extent", watch=True)
    def _new_frame(self) -> None:
        """A new frame (views' height, grid): Bokeh does not grow a drawn canvas (colour bar
        cut off), so each view is drawn anew; one a voxel thin (a one-slice image) hides."""
        grid = self._frame_grid
        for view, pane in getattr(self, "_panes", {}).items():
            h, v, _ = VIEWS[view]
            pane.visible = grid is None or (grid.sizes[h] > 1 and grid.sizes[v] > 1)
            pane.param.trigger("object")

    @param.depends("stat_map", "background", "threshold", "clim", "symmetric", "cmap",
                   "opacity", "map_label", "crosshair_mm", "marker_mm", "_extent", "atlas",
                   "in_mni", watch=True)
    def _redraw(self) -> None:
        """Show the current state: in place when the frames stay, else through HoloViews."""
        self._update_hover()
        if not self._update_in_place():
            self._rev += 1
        grid, xyz = grid_args(self.grid), [float(c) for c in self.crosshair_mm]
        title = quantity_title(self.map_label)
        for layers in self._layers.values():   # the hover's voxel: the grid, the slices
            layers["map"].hover_args(grid=grid, xyz=xyz)
            # a new quantity (Fisher z): HoloViews keeps a drawn colour bar's first title
            layers["map"].colour_bar_title(title)

    def _hover_options(self, h: str, v: str) -> dict:
        """The drawn map's hover: the voxel under the mouse (centre in mm, index), the
        map's value and the region (:class:`dashboard.clusters.RegionNames`)."""
        opts = super()._hover_options(h, v)
        view = next(name for name, axes in VIEWS.items() if axes[:2] == (h, v))
        opts["hover_tooltips"] = VOXEL_TOOLTIPS + [
            row for row in opts["hover_tooltips"] if not row[1].startswith("$")]
        opts["hover_formatters"] = {**opts["hover_formatters"],
                                    **voxel_hover(view, self.grid, self.crosshair_mm)}
        return opts

    def colours(self, crange=None) -> list:
        """The colours the map is shown with (its colour mapper's palette, from the low to
        the high end of the colour range ``crange``, default the current one): the colour
        map without its part too dark (or, diverging, too pale) to show, and grey where
        the values are below the threshold (:func:`dashboard.slice_options.shown_palette`)."""
        if crange is None:
            crange = self.colour_range()
        return shown_palette(self.cmap, crange[0], crange[1], self.threshold)

    def colour_range(self) -> tuple:
        """The map's colour range: ``clim``, else from the data."""
        if self.clim is not None:
            return tuple(self.clim)
        if self.stat_map is None:
            return (0.0, 1.0)
        return colour_range(np.asarray(self.stat_map.values, dtype=float), self.symmetric)

    def _update_in_place(self) -> bool:
        if not self._layers or (self._drawn_cmap, self._drawn_extent) != (
                (self.cmap, self.map_label), self._extent):
            return False
        if not all(layer.drawn() for layers in self._layers.values()
                   for layer in layers.values()):
            return False
        updates = []
        crange = None
        for view, layers in self._layers.items():
            position = self._position(view)
            if self.background is not None:
                background = Layer.grid_data(*slice_arrays(self.background, view, position))
            else:
                background = Layer.image_data(self._background_element(
                    view, None, self._extent, position))
            if self.stat_map is not None:
                crange = crange or self.colour_range()
                xs, ys, values = slice_arrays(self.stat_map, view, position)
                image = Layer.grid_data(xs, ys, threshold_map(values, self.threshold))
            else:
                element, crange = self._map_element(view, position)
                image = Layer.image_data(element)
            regions = self.regions()   # the hover's column, with the values
            image[REGION_DIM] = [np.zeros(image["image"][0].shape, np.uint16) if regions is None
                                 else slice_arrays(regions[0], view, position)[2]]
            updates.append((view, layers, background, image, crange, position))
        # each update checks that the drawn image has the same shape and frame
        colours = None
        for view, layers, background, image, crange, position in updates:
            if not layers["background"].image(data=background):
                return False
            if not layers["map"].image(data=image, clim=crange):
                return False
            colours = colours if colours is not None else self.colours(crange)
            if not set_colours(layers["map"], colours, self.opacity):
                return False
        for view, layers, background, image, crange, position in updates:
            h, v, s = VIEWS[view]
            layers["background"].title(view_title(view, position))
            pos = dict(zip(DIMS, self.crosshair_mm))
            layers["vline"].location(pos[h])
            layers["hline"].location(pos[v])
            marker = self._marker_points(view)
            layers["marker"].xy(marker[:, 0], marker[:, 1])
        return True

    # ---- what is drawn --------------------------------------------------------
    @property
    def rev(self) -> int:
        """How many times the views were drawn anew by HoloViews (a new frame, grid or
        colour map), as :attr:`dashboard.render.live.LivePlot.rev`: other changes update
        the drawn Bokeh models in place and leave it as it is."""
        return self._rev

    @property
    def layers(self) -> Mapping[str, dict]:
        """The in-place layers of each view: view -> layer name ("background", "map",
        "vline", "hline", "marker") -> :class:`dashboard.render.live.Layer`, whose
        ``plots`` are the drawings of that layer in the live documents."""
        return MappingProxyType(self._layers)

    # ---- grids and values -------------------------------------------------
    @property
    def grid(self) -> xr.DataArray | None:
        """The volume whose grid defines voxels: the map, else the background."""
        return self.stat_map if self.stat_map is not None else self.background

    def voxel_index(self) -> tuple | None:
        """``(i, j, k)`` of the crosshair in the image's own voxel grid (a one-slice image
        padded for display: its index without the padding; None there)."""
        grid = self.grid
        if grid is None:
            return None
        return image_index(grid, self._grid_index())

    def _grid_index(self) -> tuple:
        return tuple(int(v) for v in mm_to_voxel(affine_of(self.grid), self.crosshair_mm))

    def value_at_crosshair(self) -> float | None:
        """The value the readout reports at the crosshair: ``readout_map``'s when it is
        set (and on the map's grid), else the map's."""
        if self.stat_map is None:
            return None
        ijk = self._grid_index()
        shape = self.stat_map.shape
        if not all(0 <= i < n for i, n in zip(ijk, shape)):
            return None
        values = self.stat_map
        if self.readout_map is not None and self.readout_map.shape == shape:
            values = self.readout_map
        return float(values.values[ijk])

    def set_crosshair(self, xyz) -> None:
        """Move the crosshair to ``xyz`` (mm), snapped to the nearest voxel centre."""
        grid = self.grid
        self.crosshair_mm = snap(grid, xyz) if grid is not None else tuple(map(float, xyz))

    # ---- clicks -------------------------------------------------------------
    def _on_tap(self, view: str, x, y) -> None:
        if x is None or y is None:
            return
        h, v, s = VIEWS[view]
        xyz = dict(zip(DIMS, self.crosshair_mm))
        xyz[h], xyz[v] = float(x), float(y)
        grid = self.grid
        clicked = snap(grid, [xyz[d] for d in DIMS]) if grid is not None else tuple(
            xyz[d] for d in DIMS)
        with batched():  # the click's cascade (views, the tab's reaction) in one message
            if self.follow_clicks:
                self.crosshair_mm = clicked
            if self.click_mm == clicked:
                self.param.trigger("click_mm")
            else:
                self.click_mm = clicked

    def tap(self, view: str, x: float, y: float) -> None:
        """Act as a click at data coordinates ``(x, y)`` on ``view`` (tests, scripts)."""
        self._taps[view].event(x=x, y=y)

    # ---- drawing ------------------------------------------------------------
    @staticmethod
    def _background_element(view, background, extent, position) -> hv.Image:
        """The background slice (or an empty image over the frame when there is none)."""
        h, v, s = VIEWS[view]
        if extent is None:
            return hv.Image(np.full((2, 2), np.nan), kdims=[h, v], vdims=["background"])
        if background is not None:
            return slice_image(background, view, position, "background")
        ext = dict(zip(DIMS, extent))
        return hv.Image((np.array(ext[h]), np.array(ext[v]), np.full((2, 2), np.nan)),
                        kdims=[h, v], vdims=["background"])

    def _background_image(self, view, background, extent, position, plot_height):
        """The background slice; it also fixes the frame (extent, size, labels)."""
        h, v, s = VIEWS[view]
        image = self._background_element(view, background, extent, position)
        if extent is None:
            return image
        frame_height = plot_height - 40
        xlim, ylim, _, frame_width = view_frame(view, extent, self._frame_grid, frame_height)
        extra = 90 if view == "axial" else 0  # the colour bar's room, map or not yet
        return image.opts(
            cmap=palette("gray"), colorbar=False, clipping_colors={"NaN": FRAME_COLOUR},
            title=view_title(view, position), xlabel=f"{h} (mm)", ylabel=f"{v} (mm)",
            frame_height=frame_height, frame_width=frame_width, xlim=xlim, ylim=ylim,
            min_width=frame_width + 60 + extra, framewise=True,
            hooks=[black_frame])

    @property
    def _frame_grid(self):   # the volume whose grid sets the views' frames
        return self.background if self.background is not None else self.stat_map

    def _map_element(self, view, position, stat_map=None, threshold=None, clim=None,
                     symmetric=None, hover=False) -> tuple:
        """The thresholded map slice (NaN transparent) and its colour range; with
        ``hover``, the region indices as a second value (the drawn views' hover)."""
        h, v, s = VIEWS[view]
        stat_map = self.stat_map if stat_map is None else stat_map
        threshold = self.threshold if threshold is None else threshold
        clim = self.clim if clim is None else clim
        symmetric = self.symmetric if symmetric is None else symmetric
        if stat_map is None:  # same layout as with a map (colour bar included): the
            # figure must not change size later, Bokeh does not grow a drawn pane; and
            # with the hover, the same columns (the region's)
            vdims = [self.map_label] + ([REGION_DIM] if hover else [])
            empty = np.dstack([np.full((2, 2), np.nan), np.zeros((2, 2))][:len(vdims)])
            return hv.Image(empty, kdims=[h, v], vdims=vdims), (0.0, 1.0)
        crange = tuple(clim) if clim is not None else colour_range(
            np.asarray(stat_map.values, dtype=float), symmetric)
        regions = self.regions() if hover and stat_map is self.stat_map else None
        image = slice_image(stat_map, view, position, self.map_label,
                            values=lambda vals: threshold_map(vals, threshold),
                            regions=None if regions is None else regions[0])
        return image, crange

    def _map_image(self, view, stat_map, threshold, clim, symmetric, cmap, position,
                   hover=False):
        image, crange = self._map_element(view, position, stat_map, threshold, clim,
                                          symmetric, hover=hover)
        colours = shown_palette(cmap, crange[0], crange[1], threshold if threshold is not None
                                else self.threshold)
        opts = dict(cmap=colours, clim=crange, clipping_colors={"NaN": "transparent"},
                    colorbar=(view == "axial"), clabel=quantity_title(self.map_label),
                    alpha=self.opacity, framewise=True)
        if hover:   # the drawn views: made with the hover tool, whose formatters stay
            opts.update(self._hover_options(*VIEWS[view][:2]))
        elif stat_map is not None:
            opts["tools"] = ["hover"]
        return image.opts(**opts)

    def _marker_points(self, view) -> np.ndarray:
        h, v, s = VIEWS[view]
        if self.marker_mm is None:
            return np.zeros((0, 2))
        mk = dict(zip(DIMS, self.marker_mm))
        return np.array([[mk[h], mk[v]]], dtype=float)

    def _crosshair(self, view, crosshair_mm, marker_mm, hooks=None, plot_height=None):
        h, v, s = VIEWS[view]
        pos = dict(zip(DIMS, crosshair_mm))
        points = []
        if marker_mm is not None:
            mk = dict(zip(DIMS, marker_mm))
            points = [(mk[h], mk[v])]
        hooks = hooks or {}
        return hv.Overlay([
            hv.VLine(pos[h]).opts(color="lime", line_width=1, alpha=0.8,
                                  hooks=hooks.get("vline", [])),
            hv.HLine(pos[v]).opts(color="lime", line_width=1, alpha=0.8,
                                  hooks=hooks.get("hline", [])),
            hv.Points(points, kdims=[h, v]).opts(
                marker="circle_cross", size=14, fill_color=None, line_color="yellow",
                line_width=2, hooks=hooks.get("marker", [])),
        ] + orientation_letters(view, self._extent, self._frame_grid,
                                (plot_height or self.plot_height) - 40))

    # The DynamicMaps' callbacks: the current state, drawn by HoloViews.
    def _position(self, view) -> float:
        return float(dict(zip(DIMS, self.crosshair_mm))[VIEWS[view][2]])

    def _background_layer(self, view, rev, plot_height=None):
        plot_height = plot_height or self.plot_height
        self._drawn_extent = self._extent
        image = self._background_image(view, self.background, self._extent,
                                       self._position(view), plot_height)
        return image.opts(hooks=[self._layers[view]["background"].hook, black_frame])

    def _map_layer(self, view, rev):
        self._drawn_cmap = (self.cmap, self.map_label)
        image = self._map_image(view, self.stat_map, self.threshold, self.clim,
                                self.symmetric, self.cmap, self._position(view), hover=True)
        return image.opts(hooks=[self._layers[view]["map"].hook])

    def _crosshair_layer(self, view, rev, plot_height=None):
        plot_height = plot_height or self.plot_height
        layers = self._layers[view]
        return self._crosshair(view, self.crosshair_mm, self.marker_mm, hooks={
            name: [layers[name].hook] for name in ("vline", "hline", "marker")},
            plot_height=plot_height)

    def view_element(self, view: str) -> hv.Overlay:
        """What ``view`` ("sagittal", "coronal" or "axial") shows now, as one static
        overlay (background, thresholded map, crosshair lines, marker) in the drawn
        frame: for exports, notebooks and tests, without a drawing (the map's value only:
        the drawn views also carry each pixel's region, :meth:`regions`)."""
        position = self._position(view)
        return (self._background_image(view, self.background, self._extent, position,
                                       self.plot_height)
                * self._map_image(view, self.stat_map, self.threshold, self.clim,
                                  self.symmetric, self.cmap, position)
                * self._crosshair(view, self.crosshair_mm, self.marker_mm))

    @param.depends("crosshair_mm", "stat_map", "background", "readout_map", "atlas", "in_mni",
                    "map_label")
    def _info_text(self) -> str:
        grid = self.grid
        if grid is None:
            return ""
        x, y, z = self.crosshair_mm
        ijk = self.voxel_index()
        value = self.value_at_crosshair()
        where = "outside the image" if ijk is None else f"voxel {ijk}"
        text = f"crosshair ({x:.1f}, {y:.1f}, {z:.1f}) mm, {where}"
        if value is not None and np.isfinite(value):
            text += f", {self.map_label} {value:.3g}"
        text += self.region_readout()
        note = grid.attrs.get("note")
        if note:
            text += f"  \n*{safe_markdown(note)}*"
        return text

    def readout(self) -> str:
        """The readout under the views (Markdown): crosshair, voxel, value, region."""
        return self._info_text()

    def __panel__(self):
        return self._layout
