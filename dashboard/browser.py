"""What the page needs from the browser side: a cheaper repaint, local stylesheets.

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

``local_stylesheets`` points a session's stylesheets at this server, not the
CDN (the app works with no internet).
"""

from __future__ import annotations

import panel as pn
import param
from panel.custom import JSComponent
from panel.io.resources import LOCAL_DIST


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


def local_stylesheets(doc=None) -> None:
    """Point the session's stylesheets at this server, not the CDN.

    Panel does it when it renders a session's HTML page. With ``--num-procs N``
    a page's websocket may reach another process than its HTML did; that
    process makes the session anew from the token, renders no HTML, and its
    models asked the CDN for their stylesheets (unstyled page, no internet).
    Models made in an ``onload`` callback (the Encoding tab's voxel views) asked
    the CDN for the design's stylesheets too: call it again after making them.
    """
    from panel.io.resources import patch_model_css, use_cdn

    doc = doc if doc is not None else pn.state.curdoc
    if doc is None or doc.session_context is None or use_cdn():
        return
    dist_url = f"{pn.state.rel_path}/{LOCAL_DIST}" if pn.state.rel_path else LOCAL_DIST
    doc._template_variables.setdefault("dist_url", dist_url)  # models made later use it
    for root in doc.roots:
        patch_model_css(root, dist_url=doc._template_variables["dist_url"])
