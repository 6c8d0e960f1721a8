"""Live updates: change what a drawn HoloViews plot shows without redrawing it.

HoloViews redraws an element by running its whole plotting machinery again
(options, ranges, axes, hooks: 20-50 ms a plot here) and freezes the Bokeh
document while it does, so the document walks its whole model graph afterwards
(30-70 ms on a full tab). Most of what a slider or a click changes is new
values in the same frame: an image on the same grid, a line moved, new bar
heights. For those, the Bokeh models HoloViews drew are updated directly, in
well under a millisecond each, and the browser gets only the changed columns.

:class:`Layer` collects, through a HoloViews hook, the plots one element is
drawn in (one per session root), and updates their models; every method
returns False when it cannot (nothing drawn yet, or the frame would have to
change), and the owner then lets HoloViews redraw as usual. Its methods take
values or HoloViews elements: the names HoloViews gives the Bokeh columns
(``zvalues``, a histogram's ``top``/``left``/``right``, the hover tool's
sanitized copies) are known here only.

:class:`LivePane` is the ``pn.pane.HoloViews`` for such plots: when it draws
anew (a tab shown again), it first forgets the DynamicMaps' cached elements,
which the direct updates have made stale, so the new drawing shows the
current state.
"""

from __future__ import annotations

import logging
import weakref

import holoviews as hv
import numpy as np
import panel as pn
import param
from holoviews.core.util import dimension_sanitizer


def _alive(plot) -> bool:
    figure = plot.handles.get("plot")
    return figure is not None and figure.document is not None


class Layer:
    """The Bokeh models of one HoloViews element, wherever it is drawn.

    Add ``layer.hook`` to the element's ``hooks`` option; after the first
    drawing, the update methods change those models in place.
    """

    def __init__(self):
        self._plots: weakref.WeakSet = weakref.WeakSet()

    def hook(self, plot, element) -> None:
        self._plots.add(plot)

    @property
    def plots(self) -> list:
        """The drawn plots still attached to a live document."""
        return [p for p in list(self._plots) if _alive(p)]

    def drawn(self) -> bool:
        return bool(self.plots)

    # ---- images ---------------------------------------------------------------
    @staticmethod
    def image_data(element: hv.Image) -> dict:
        """The columns HoloViews' raster plot gives an ``hv.Image`` (image and frame)."""
        l, b, r, t = element.bounds.lbrt()
        img = element.dimension_values(2, flat=False)
        if 0 in img.shape:
            img = np.array([[np.nan]])
        return {"image": [img], "x": [l], "y": [b], "dw": [r - l], "dh": [t - b]}

    @staticmethod
    def grid_data(xs, ys, values) -> dict:
        """The same columns for an image given as centres ``xs``, ``ys`` and ``values[y, x]``."""
        def edges(c):
            c = np.asarray(c, dtype=float)
            half = (c[-1] - c[0]) / (len(c) - 1) / 2 if len(c) > 1 else 0.5
            return c[0] - half, c[-1] + half

        (l, r), (b, t) = edges(xs), edges(ys)
        return {"image": [np.asarray(values)], "x": [l], "y": [b], "dw": [r - l],
                "dh": [t - b]}

    def fits(self, data: dict) -> bool:
        """The layer is drawn, as one image with ``data``'s shape and frame (and its other
        columns): :meth:`image` would show ``data`` in place."""
        plots = self.plots
        if not plots:
            return False
        new = data["image"][0]
        extra = {k: v for k, v in data.items() if k not in ("image", "x", "y", "dw", "dh")}
        for p in plots:
            src = p.handles.get("source")
            if src is None or "image" not in src.data or len(src.data["image"]) != 1:
                return False
            if np.shape(src.data["image"][0]) != np.shape(new):
                return False
            for key, value in extra.items():
                if key not in src.data or np.shape(src.data[key][0]) != np.shape(value[0]):
                    return False
            for key in ("x", "y", "dw", "dh"):
                if not np.isclose(float(src.data[key][0]), float(data[key][0])):
                    return False
        return True

    def figures(self) -> list:
        """The Bokeh figures the layer is drawn in (one per drawing)."""
        return [p.handles.get("plot") for p in self.plots]

    def titles(self) -> list:
        """The titles of those figures (None for a figure without one)."""
        return [getattr(getattr(f, "title", None), "text", None) for f in self.figures()]

    def image(self, element: hv.Image | None = None, clim=None, data: dict | None = None) -> bool:
        """Show ``element``'s values (or ``data``, see :meth:`grid_data`) if it has the
        drawn image's shape and frame.

        Other keys of ``data`` are further image columns of the drawing (a second value
        dimension, which HoloViews draws under its sanitized name for the hover tool):
        each must be drawn already, with the same shape."""
        plots = self.plots
        data = data if data is not None else self.image_data(element)
        if not self.fits(data):
            return False
        new = data["image"][0]
        extra = {k: v for k, v in data.items() if k not in ("image", "x", "y", "dw", "dh")}
        for p in plots:
            p.handles["source"].data.update(image=[new], **extra)
            mapper = p.handles.get("color_mapper")
            if clim is not None and mapper is not None:
                mapper.update(low=float(clim[0]), high=float(clim[1]))
        return True

    def hover_args(self, **args) -> bool:
        """Give the drawn hover tool's custom formatters (``CustomJSHover``) new values of
        their arguments ``args`` (e.g. the names a column's indices point to): HoloViews
        makes a hover tool's formatters once, with the first drawing, and keeps them
        through its redraws. False when nothing drawn has such a formatter."""
        from bokeh.models import CustomJSHover

        done = False
        for p in self.plots:
            hover = p.handles.get("hover")
            for formatter in (getattr(hover, "formatters", None) or {}).values():
                if isinstance(formatter, CustomJSHover) and set(args) <= set(formatter.args):
                    if any(formatter.args[k] != v for k, v in args.items()):
                        formatter.args = {**formatter.args, **args}
                    done = True
        return done

    # ---- glyph columns --------------------------------------------------------
    def xy(self, xs, ys) -> bool:
        """New points of a drawn ``Curve``, ``Scatter`` or ``Points``: the columns of its
        first two dimensions (as the drawn element names them)."""
        plots = self.plots
        if not plots:
            return False
        names = set()
        for p in plots:
            dims = _drawn_dimensions(p)
            if len(dims) < 2:
                return False
            names.add((dims[0], dims[1]))
        if len(names) != 1:
            return False
        (x, y), = names
        return self.columns(**{x: xs, y: ys})

    def curve(self, element) -> bool:
        """Show ``element``'s values (the drawn element's kind and dimensions)."""
        return self.columns(**{d.name: element.dimension_values(d)
                               for d in element.dimensions()})

    def bars(self, element) -> bool:
        """New heights for the same categories of a drawn ``hv.Bars``; other categories
        (another number of folds) replace the drawn bars and the axis' categories."""
        if self.keyed(*_cells(element, lambda vdim, v: {vdim.name: float(v)})):
            return True
        return self.categories(element)

    def categories(self, element) -> bool:
        """Show a one-key ``hv.Bars`` with other categories than those drawn: the
        source's columns replaced whole, then the categorical x axis' factors (and its
        labels' rotation, as ``xrotation`` asks).

        In this order on purpose: a redraw by HoloViews sends the new factors first; the
        page then starts drawing the old bars on the new axis and, within that drawing,
        meets the new, shorter columns with the old rows' indices (BokehJS' "Size
        mismatch" error, once per fewer category). Columns first, the page's rows are
        recounted before any drawing starts."""
        plots = self.plots
        if not plots or len(element.kdims) != 1 or len(element.vdims) != 1:
            return False
        key, vdim = element.kdims[0], element.vdims[0]
        names = [str(k) for k in element.dimension_values(key)]
        if len(set(names)) != len(names):
            return False
        values = np.asarray(element.dimension_values(vdim), dtype=float)
        given = {key.name: np.array(names, dtype=object), vdim.name: values}
        for k, v in list(given.items()):
            given.setdefault(dimension_sanitizer(k), v)
        from bokeh.models import FactorRange

        for p in plots:
            src, x_range = p.handles.get("source"), p.handles.get("x_range")
            if src is None or not set(src.data) <= set(given):
                return False
            if not isinstance(x_range, FactorRange) or p.invert_axes:
                return False
        rotation = element.opts.get("plot").kwargs.get("xrotation")
        for p in plots:
            src = p.handles["source"]
            src.data = {k: given[k] for k in src.data}
            if list(p.handles["x_range"].factors) != names:
                p.handles["x_range"].factors = names
            axis = p.handles.get("xaxis")
            if axis is not None:
                angle = np.deg2rad(rotation) if rotation else "horizontal"
                if axis.major_label_orientation != angle:
                    axis.major_label_orientation = angle
        return True

    def heatmap(self, element) -> bool:
        """New values in the same cells of a drawn ``hv.HeatMap`` (the colour range is
        not changed: see :meth:`clim`)."""
        # HoloViews colours the cells by a "zvalues" column; the value's own column holds
        # its text, for the hover tool
        return self.keyed(*_cells(element, lambda vdim, v: {
            "zvalues": v, dimension_sanitizer(vdim.name): _text(vdim, v)}))

    def labels(self, element) -> bool:
        """New texts at the same positions of a drawn ``hv.Labels``."""
        return self.keyed(*_cells(element, lambda vdim, v: {
            dimension_sanitizer(vdim.name): _text(vdim, v)}))

    def columns(self, **columns) -> bool:
        """Replace the source's columns: every drawn one must be given, by its dimension
        name (HoloViews adds a copy under a sanitized name for the hover tool)."""
        plots = self.plots
        if not plots:
            return False
        given = {k: np.asarray(v) for k, v in columns.items()}
        for k, v in list(given.items()):
            given.setdefault(dimension_sanitizer(k), v)
        for p in plots:
            src = p.handles.get("source")
            if src is None or not set(src.data) <= set(given):
                return False
        for p in plots:
            src = p.handles["source"]
            src.data = {k: given[k] for k in src.data}
        return True

    def keyed(self, keys: tuple, table: dict) -> bool:
        """New values for the rows of categorical glyphs (bars, heat map cells, labels).

        ``table`` maps a row's key (its values in the ``keys`` columns, as drawn)
        to ``{column: value}``; the drawn rows must be exactly ``table``'s keys.
        """
        plots = self.plots
        if not plots:
            return False
        updates = []
        for p in plots:
            src = p.handles.get("source")
            if src is None or not all(k in src.data for k in keys):
                return False
            rows = list(zip(*(list(src.data[k]) for k in keys)))
            if len(rows) != len(table) or set(rows) != set(table):
                return False
            columns = {c for row in table.values() for c in row}
            if not columns <= set(src.data):
                return False
            updates.append((src, {c: [table[r][c] for r in rows] for c in columns}))
        for src, data in updates:
            src.data.update(data)
        return True

    def histogram(self, element: hv.Histogram | None = None, *, counts=None, edges=None,
                  names=None) -> bool:
        """Show a histogram's bins (the columns HoloViews gives one) and fit the axes.

        Give the ``element``, or its ``counts`` and ``edges`` (no HoloViews element to
        build: quicker on every slider move); the dimension ``names`` default to the
        drawn histogram's.
        """
        if element is not None:
            edges = np.asarray(element.edges, dtype=float)
            counts = np.asarray(element.dimension_values(1))
            names = (element.kdims[0].name, element.vdims[0].name)
        if names is None:
            drawn = {tuple(_drawn_dimensions(p)[:2]) for p in self.plots}
            if len(drawn) != 1 or len(next(iter(drawn))) != 2:
                return False
            names = next(iter(drawn))
        edges, counts = np.asarray(edges, dtype=float), np.asarray(counts)
        if not self.columns(**{
                "top": counts, "left": edges[:-1], "right": edges[1:],
                names[0]: (edges[:-1] + edges[1:]) / 2, names[1]: counts}):
            return False
        top = float(counts.max()) if counts.size else 1.0
        return self.ranges(x=padded(edges[0], edges[-1]), y=(0.0, 1.075 * top or 1.0))

    def location(self, value: float) -> bool:
        """Move a ``VLine``/``HLine``."""
        plots = self.plots
        if not plots:
            return False
        for p in plots:
            p.handles["glyph"].location = float(value)
        return True

    # ---- the figure -------------------------------------------------------------
    def title(self, text: str) -> bool:
        plots = self.plots
        for p in plots:
            p.handles["plot"].title.text = text
        return bool(plots)

    def colour_bar_title(self, text: str) -> bool:
        """Retitle the layer's colour bar (HoloViews titles it only when it first draws
        it, from the value dimension); False when the layer has none drawn."""
        plots = self.plots
        bars = [p.handles["colorbar"] for p in plots if p.handles.get("colorbar") is not None]
        for bar in bars:
            if bar.title != text:
                bar.title = text
        return bool(bars)

    def clim(self, low: float, high: float) -> bool:
        plots = self.plots
        for p in plots:
            mapper = p.handles.get("color_mapper")
            if mapper is None:
                return False
            mapper.update(low=float(low), high=float(high))
        return bool(plots)

    def ranges(self, x=None, y=None) -> bool:
        """Set the axes' ``(start, end)`` (for framewise plots whose data moved)."""
        plots = self.plots
        for p in plots:
            for name, value in (("x_range", x), ("y_range", y)):
                rng = p.handles.get(name)
                if value is not None and rng is not None and hasattr(rng, "start"):
                    start, end = (float(v) for v in value)
                    if np.isfinite(start) and np.isfinite(end) and end > start:
                        rng.update(start=start, end=end)
        return bool(plots)


def _cells(element, row) -> tuple:
    """``(keys, table)`` for :meth:`Layer.keyed`: a categorical element's rows keyed by
    their (text) categories, ``row(vdim, value)`` giving each one's columns."""
    keys = tuple(dimension_sanitizer(d.name) for d in element.kdims)
    vdim = element.vdims[0]
    values = zip(*(element.dimension_values(d) for d in element.kdims),
                 element.dimension_values(vdim))
    return keys, {tuple(str(k) for k in v[:-1]): row(vdim, v[-1]) for v in values}


def _text(vdim, value) -> str:
    """A value as HoloViews writes it in a column of text (hover, labels)."""
    try:
        missing = bool(np.isnan(value))
    except TypeError:
        missing = False
    return "-" if missing else vdim.pprint_value(value)


def _drawn_dimensions(plot) -> list:
    """The dimension names of the element ``plot`` last drew ([] when unknown)."""
    frame = getattr(plot, "current_frame", None)
    try:
        return [d.name for d in frame.dimensions()] if frame is not None else []
    except Exception:  # noqa: BLE001 - not an element: the caller redraws
        return []


def named(name: str):
    """A HoloViews hook that names the drawn Bokeh figure (browser tests find it by name)."""

    def hook(plot, element):
        plot.state.name = name

    return hook


def padded(lo: float, hi: float, padding: float = 0.1) -> tuple:
    """An axis range around ``[lo, hi]`` with HoloViews' kind of padding."""
    lo, hi = float(lo), float(hi)
    span = hi - lo
    if not np.isfinite(span) or span <= 0:
        span = abs(hi) or 1.0
        padding = max(padding, 0.5)
    return (lo - padding * span, hi + padding * span)


def forget_cached(obj) -> None:
    """Drop the cached elements of every DynamicMap in ``obj`` (and its inputs)."""
    seen = set()

    def visit(o):
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, hv.DynamicMap):
            o.data.clear()
            callback = o.callback
            memo = getattr(callback, "_memoized", None)
            if isinstance(memo, dict):
                memo.clear()
            for inp in getattr(callback, "inputs", ()):
                visit(inp)
        elif isinstance(o, (hv.Overlay, hv.Layout, hv.NdOverlay, hv.HoloMap)):
            for item in o.values():
                visit(item)

    visit(obj)


class LivePane(pn.pane.HoloViews):
    """A HoloViews pane whose new drawings show the current state.

    Its plots are updated in place (:class:`Layer`), which leaves the
    DynamicMaps' cached elements behind; they are dropped before each drawing.
    """

    def _get_model(self, doc, root=None, parent=None, comm=None):
        if self.object is not None and root is not None:
            forget_cached(self.object)
        return super()._get_model(doc, root, parent, comm)


class LivePlot(param.Parameterized):
    """A HoloViews plot drawn by ``draw`` and then, where it can be, updated in place.

    ``draw(layers, **values)`` returns the element (or overlay) of the current
    state, with ``hooks=[layers[name].hook]`` on the elements to update later;
    it is called again (a HoloViews redraw) when one of ``redraw_on`` (name ->
    a parameter) changes or :meth:`redraw` is called. :meth:`show` applies an
    in-place update, and redraws instead when that update cannot apply.
    """

    rev = param.Integer(default=0, precedence=-1, doc="Bumped to redraw through HoloViews.")

    def __init__(self, draw, layers, redraw_on=None, **pane_params):
        super().__init__()
        self.layers = {name: Layer() for name in layers}
        self._draw = draw
        self._redraw_on = dict(redraw_on or {})
        self.dmap = hv.DynamicMap(pn.bind(self._callback, rev=self.param.rev,
                                          **(redraw_on or {})))
        self.pane = LivePane(self.dmap, **pane_params)

    def _callback(self, rev, **values):
        return self._draw(self.layers, **values)

    def element(self):
        """What a drawing now would show (tests, exports)."""
        values = {name: getattr(p.owner, p.name) for name, p in self._redraw_on.items()}
        return self._draw(self.layers, **values)

    def redraw(self) -> None:
        self.rev += 1

    def show(self, update) -> bool:
        """``update(layers) -> bool`` in place; False (or an error) means redraw instead.

        Returns whether the update was applied in place.
        """
        try:
            done = bool(update(self.layers))
        except Exception:  # noqa: BLE001 - the redraw shows the state (or reports)
            logging.getLogger(__name__).exception("in-place update failed; redrawing")
            done = False
        if not done:
            self.redraw()
        return done


def set_colours(layer, colours: list, opacity: float) -> bool:
    """Give the drawn map images of ``layer`` (:class:`dashboard.render.live.Layer`) new
    colours (the mapper's palette, colour bar included) and opacity."""
    plots = layer.plots
    for p in plots:
        mapper, glyph = p.handles.get("color_mapper"), p.handles.get("glyph")
        if mapper is None or glyph is None:
            return False
    for p in plots:
        mapper, glyph = p.handles["color_mapper"], p.handles["glyph"]
        if list(mapper.palette) != colours:
            mapper.palette = colours
        if glyph.global_alpha != opacity:
            glyph.global_alpha = opacity
    return bool(plots)
