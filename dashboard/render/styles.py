"""Stylesheets and colours: where Panel's and HoloViews' own handling falls short.

* :func:`fix_divider_stylesheet`: Panel 1.9's ``Divider`` skips the stylesheet
  rewriting other components get (its class attribute ``_stylesheets`` names
  the CDN's ``divider.css``), so a Divider made after the page loaded (every tab
  is built then) asked the CDN for it: point it at this server's copy.
* :func:`local_stylesheets`: a session's models ask this server, not the CDN,
  for their stylesheets (``panel.io.resources.patch_model_css``, and the
  document's ``_template_variables["dist_url"]`` for the models made later).
* :func:`colormap`: a colour map's colours as HoloViews makes them from its name
  (``holoviews.plotting.util.process_cmap``), looked up once per name.

``tests/test_render_hooks.py`` checks these names.
"""

from __future__ import annotations

import functools


def fix_divider_stylesheet() -> None:
    """Every Divider (made from now on) links this server's ``divider.css``, relative to
    the page, as Panel's own local links."""
    import panel as pn
    from panel.io.resources import LOCAL_DIST

    pn.layout.Divider._stylesheets = [f"{LOCAL_DIST}css/divider.css"]


def local_stylesheets(doc=None) -> None:
    """Point the session's stylesheets at this server, not the CDN.

    Panel does it when it renders a session's HTML page. With ``--num-procs N``
    a page's websocket may reach another process than its HTML did; that
    process makes the session anew from the token, renders no HTML, and its
    models asked the CDN for their stylesheets (unstyled page, no internet).
    """
    import panel as pn
    from panel.io.resources import LOCAL_DIST, patch_model_css, use_cdn

    doc = doc if doc is not None else pn.state.curdoc
    if doc is None or doc.session_context is None or use_cdn():
        return
    dist_url = f"{pn.state.rel_path}/{LOCAL_DIST}" if pn.state.rel_path else LOCAL_DIST
    doc._template_variables.setdefault("dist_url", dist_url)  # models made later use it
    for root in doc.roots:
        patch_model_css(root, dist_url=doc._template_variables["dist_url"])


@functools.lru_cache(maxsize=64)
def colormap(name: str) -> tuple:
    """The colours HoloViews makes of the colour map ``name`` (searching the colour-map
    lists of matplotlib, Bokeh and colorcet: done once per name here)."""
    from holoviews.plotting.util import process_cmap

    return tuple(process_cmap(name))
