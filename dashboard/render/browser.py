"""BokehJS internals used in the page: a fix for a cost Bokeh's own code puts on every
repaint, and the lookup of the model behind an ``<input type="file">``.

``StyleSheetGuard`` stops Bokeh 3 from rewriting an unchanged stylesheet (and stops
Panel's table from freezing the page or failing to draw: :data:`TABULATOR_GUARD_JS`). Every
renderer of a plot (each axis, grid, title, span and glyph) rewrites its own
``<style>`` element at every repaint to give its DOM element its position
(``RendererView.update_position``), and then reads a colour through
``getComputedStyle`` (``VisualProperties._get_css_value``). Writing the
element makes the browser parse it again, and the next read then recomputes
the page's styles: once per renderer, some 55 times per slider move in the
Encoding tab, each time over the whole page. Measured in headless Chromium at
full size: 1.8 s of style work over 10 slider moves with the rewrites, 0.2 s
without them, and the page's process CPU for those moves from 3.5 s to 1.8 s.
Skipping a write that would store the same text changes nothing on screen
(the element already holds that text), which the browser tests check.

:data:`FILE_INPUT_MODEL_JS` finds the Bokeh model of a ``FileInput`` from its
``<input>`` element (BokehJS keeps its views in ``Bokeh.index``; a file input's
view holds the element as ``input_el``).

``tests/test_render_hooks.py`` checks, in BokehJS's type declarations, that the
names used here are still there.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent


#: JavaScript defining ``guardTabulator()``: Panel 1.9's table view waits, in a loop, for
#: its stylesheets to load before redrawing after a resize; a view whose element has
#: left the page (a layout drawn anew) never gets them, and its loop then keeps the
#: page's main thread busy for ever (the page froze after the first change of the
#: Decoding tab's CV, whose cluster table was drawn anew). The guarded loop stops when
#: the element is not in the page (a later resize asks again) and waits a frame, not a
#: message, between checks. Returns true once installed.
#:
#: ``guardTableColumns()``: a Tabulator table builds its header in a later task than the
#: one that made it, and Panel's view sets new columns when they change (a column title
#: follows the map's name) without waiting: a change arriving in between threw "Cannot
#: read properties of null (reading 'firstChild')" and the table was left unfinished
#: (seen on the Decoding tab's first visit, whose peak column's title changed). Guarded,
#: the latest columns asked for before the table is built are set once it is.
TABULATOR_GUARD_JS = """
function guardTabulator() {
  const Model = window.Bokeh.Models.get("panel.models.tabulator.DataTabulator")
  const View = Model && Model.prototype.default_view
  const proto = View && View.prototype
  if (!proto || typeof proto._flush_resize_when_root_ready !== "function") return false
  if (proto._flush_resize_when_root_ready.__detached_stops) return true
  const frame = () => new Promise((resolve) => setTimeout(resolve, 16))
  const flush = async function () {
    while (this._resize_pending) {
      await this.root.ready
      if (!this._resize_pending) return
      if (!this.el.isConnected) { this._resize_pending = false; return }
      const stylesLoaded = [...this._initialized_stylesheets.values()].every((v) => v)
      if (this._is_scrolling || this._initializing || this.container === null ||
          this.is_drawing || this._has_active_editor() || !stylesLoaded) {
        await frame()
        continue
      }
      this._resize_pending = false
      this._resize_redraw()
      return
    }
  }
  flush.__detached_stops = true
  proto._flush_resize_when_root_ready = flush
  return true
}

function guardTableColumns() {
  const Table = window.Tabulator
  const proto = Table && Table.prototype
  if (!proto || typeof proto.setColumns !== "function") return false
  if (proto.setColumns.__until_built) return true
  const setColumns = proto.setColumns
  const guarded = function (...args) {
    if (this.initialized || this.destroyed) return setColumns.apply(this, args)
    const first = this.__pendingColumns === undefined
    this.__pendingColumns = args   // the latest columns asked for
    if (first) {
      this.on("tableBuilt", () => {
        const pending = this.__pendingColumns
        this.__pendingColumns = undefined
        if (!this.destroyed) setColumns.apply(this, pending)
      })
    }
  }
  guarded.__until_built = true
  proto.setColumns = guarded
  return true
}
"""


class StyleSheetGuard(JSComponent):
    """Nothing to see: when drawn, it makes Bokeh skip writes of unchanged stylesheets.

    Installed once per page (a flag on the patched method); a Bokeh without
    ``core/dom``'s ``InlineStyleSheet._update`` is left alone.
    """

    installed = param.Boolean(default=False, doc="""
        Set by the browser once the guard is in place (for tests and diagnostics).""")

    tabulator_guarded = param.Boolean(default=False, doc="""
        Set by the browser once the table guards (resize, columns) are in place.""")

    _esm = TABULATOR_GUARD_JS + """
    export function render({ model }) {
      try {
        const dom = window.Bokeh.require("core/dom")
        const proto = dom.InlineStyleSheet.prototype
        const update = proto._update
        if (typeof update === "function" && !update.__unchanged_skipped) {
          const guarded = function (css) {
            if (this.el.textContent !== css) update.call(this, css)
          }
          guarded.__unchanged_skipped = true
          proto._update = guarded
        }
        model.installed = proto._update.__unchanged_skipped === true
      } catch (err) {
        console.warn("fmri-explorer: stylesheet guard not installed", err)
      }
      try {
        model.tabulator_guarded = guardTabulator() && guardTableColumns()
      } catch (err) {
        console.warn("fmri-explorer: table resize guard not installed", err)
      }
      return document.createElement("span")
    }
    """



#: JavaScript defining ``fileInputModel(input)``: the Bokeh model whose view drew the
#: ``<input type="file">`` element ``input`` (null if none), found by walking every view
#: of the page (``Bokeh.index``'s roots and their ``child_views``) when called.
FILE_INPUT_MODEL_JS = """
  const fileInputModel = (input) => {
    const roots = Bokeh.index.all_views ? [...Bokeh.index.all_views()] : Object.values(Bokeh.index);
    const seen = new Set(); const all = [];
    const walk = (v) => {
      if (!v || seen.has(v)) return; seen.add(v); all.push(v);
      for (const c of (v.child_views ? [...v.child_views] : [])) walk(c);
    };
    roots.forEach(walk);
    const view = all.find((v) => v.input_el === input);
    return view ? view.model : null;
  };
"""
