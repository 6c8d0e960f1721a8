"""The slice views from the keyboard (issue 15, item 19), and the viewer's display widgets.

Each view of a :class:`dashboard.slice_viewer.SliceViewer` can take the keyboard's
focus (Tab, or a click on it):

* **Arrow keys** move the crosshair one voxel in the view's plane (left/right along
  its horizontal axis, up/down along its vertical one);
* **Page Up / Page Down** move it one voxel through the slices (the next slice up,
  forward or to the right; the previous one);
* **Enter** acts as a click at the crosshair: Connectivity puts the seed there,
  Encoding selects the voxel.

:class:`ViewKeys` (a hidden element, once per page) makes them focusable, labels them
for screen readers, outlines the focused one, and sends each key to Python
(``pressed``, with the viewer's ``key_id``); :func:`route_keys` hands it to that viewer,
whose :meth:`ViewInput.key` applies it, so scripts and tests can press keys as a click
is made with ``tap``.
"""

from __future__ import annotations

import itertools

import numpy as np
import param
from panel.custom import JSComponent

from analysis.volumes import DIMS
from dashboard.param_widgets import widget_for
from dashboard.slice_data import VIEWS

#: the keys a view takes -> (axis: "h", "v" or "s" of the view, step in voxels)
KEY_MOVES = {"ArrowLeft": ("h", -1), "ArrowRight": ("h", 1), "ArrowDown": ("v", -1),
             "ArrowUp": ("v", 1), "PageDown": ("s", -1), "PageUp": ("s", 1)}
KEYS = tuple(KEY_MOVES) + ("Enter",)

#: what a screen reader says of a focused view
VIEW_LABEL = ("{view} view: arrow keys move the crosshair one voxel, Page Up and Page Down "
              "change the slice, Enter selects the voxel")


def moved(grid, xyz, view: str, key: str) -> tuple:
    """The crosshair ``xyz`` (mm) moved by ``key`` on ``view`` over ``grid``'s voxel centres
    (one voxel, staying in the grid); unchanged for other keys."""
    if key not in KEY_MOVES or grid is None:
        return tuple(float(c) for c in xyz)
    axis, step = KEY_MOVES[key]
    dim = dict(zip("hvs", VIEWS[view]))[axis]
    out = dict(zip(DIMS, (float(c) for c in xyz)))
    centres = np.sort(np.asarray(grid[dim].values, dtype=float))
    i = int(np.abs(centres - out[dim]).argmin())
    out[dim] = float(centres[min(max(i + step, 0), centres.size - 1)])
    return tuple(out[d] for d in DIMS)


class ViewKeys(JSComponent):
    """Hidden, once per page (in the header, as the app's other page helpers): makes every
    slice view focusable and sends its keys to ``pressed``; :func:`route_keys` gives them
    to the view's viewer. (One per viewer, inside the tabs, delayed the tabs' drawing:
    its module loads before the layout around it is drawn, and a progress bar updated
    meanwhile raised an error in the page.)"""

    pressed = param.Dict(default={}, doc="""
        The latest key pressed on a focused view: {"viewer", "view", "key", "n"} (n counts
        presses, so that the same key twice is two changes).""")
    label = param.String(default=VIEW_LABEL, doc="Screen-reader label of a view.")

    _esm = """
    const KEYS = %s
    const VIEW = /^slice-(axial|coronal|sagittal)$/
    const VIEWER = /^viewer-\\d+$/

    function deepAll(root, out) {   // every element under root, through shadow roots
      for (const el of root.querySelectorAll("*")) {
        out.push(el)
        if (el.shadowRoot) deepAll(el.shadowRoot, out)
      }
      return out
    }

    const classOf = (el, re) => el.classList ? [...el.classList].find((c) => re.test(c)) : null

    export function render({ model }) {
      let n = 0
      const label = () => {
        for (const host of deepAll(document, [])) {
          const view = classOf(host, VIEW)
          const viewer = classOf(host, VIEWER)
          if (!view || !viewer || host.getAttribute("tabindex") === "0") continue
          const name = view.slice(6)
          host.setAttribute("tabindex", "0")
          host.setAttribute("role", "application")
          host.setAttribute("aria-label", model.label.replace("{view}", name))
          host.addEventListener("focus", () => {
            host.style.outline = "3px solid #1f77b4"; host.style.outlineOffset = "-3px" })
          host.addEventListener("blur", () => { host.style.outline = "" })
          host.addEventListener("pointerdown", () => host.focus({preventScroll: true}))
          host.addEventListener("keydown", (e) => {
            if (!KEYS.includes(e.key) || e.altKey || e.ctrlKey || e.metaKey) return
            e.preventDefault()
            e.stopPropagation()
            n += 1
            model.pressed = {viewer, view: name, key: e.key, n}
          })
        }
      }
      label()
      const timer = setInterval(() => { if (!document.hidden) label() }, 1500)
      model.on("remove", () => clearInterval(timer))
      return document.createElement("span")
    }
    """ % (list(KEYS),)


def route_keys(keys: ViewKeys, viewers) -> None:
    """Give each key ``keys`` reports to its viewer: one of ``viewers()`` (a callable
    giving the session's :class:`ViewInput` viewers), found by its ``key_id``."""
    def pressed(event):
        got = event.new or {}
        for viewer in viewers():
            if viewer.key_id == got.get("viewer"):
                viewer.key(got.get("view"), got.get("key"))
                return

    keys.param.watch(pressed, "pressed")


_IDS = itertools.count(1)


class ViewInput(param.Parameterized):
    """A mixin of :class:`dashboard.slice_viewer.SliceViewer`: its keys and its display
    widgets."""

    @property
    def key_id(self) -> str:
        """The css class marking this viewer's views (``viewer-N``), whose keys
        :func:`route_keys` brings here."""
        if "_key_id" not in self.__dict__:
            self.__dict__["_key_id"] = f"viewer-{next(_IDS)}"
        return self.__dict__["_key_id"]

    def key(self, view: str, key: str) -> None:
        """Act as ``key`` pressed on the focused ``view`` (:data:`KEYS`; others do
        nothing): move the crosshair, or (Enter) click where it is."""
        if view not in VIEWS or key not in KEYS:
            return
        if key == "Enter":
            h, v, _ = VIEWS[view]
            xyz = dict(zip(DIMS, self.crosshair_mm))
            self.tap(view, xyz[h], xyz[v])
        else:
            self.crosshair_mm = moved(self.grid, self.crosshair_mm, view, key)

    def controls(self) -> list:
        """Widgets of the display options (colour map, opacity), labelled and explained
        by their Parameters and linked both ways to the viewer, for a tab's controls."""
        widgets = []
        for name in ("cmap", "opacity"):
            widget = widget_for(self.param[name], getattr(self, name), f"slice-{name}")
            widget.param.watch(lambda e, n=name: setattr(self, n, e.new), "value")
            self.param.watch(lambda e, w=widget: setattr(w, "value", e.new), name)
            widgets.append(widget)
        return widgets
