"""Fixes made in the browser, for costs that Bokeh's own code puts on every repaint.

``StyleSheetGuard`` stops Bokeh 3 from rewriting an unchanged stylesheet. Every
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
"""

from __future__ import annotations

import param
from panel.custom import JSComponent


class StyleSheetGuard(JSComponent):
    """Nothing to see: when drawn, it makes Bokeh skip writes of unchanged stylesheets.

    Installed once per page (a flag on the patched method); a Bokeh without
    ``core/dom``'s ``InlineStyleSheet._update`` is left alone.
    """

    installed = param.Boolean(default=False, doc="""
        Set by the browser once the guard is in place (for tests and diagnostics).""")

    _esm = """
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
      return document.createElement("span")
    }
    """

