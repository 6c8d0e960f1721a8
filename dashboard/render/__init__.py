"""The rendering layer: the only code that touches Bokeh, BokehJS, Panel or HoloViews
internals (private attributes, monkeypatches, their unexported modules, the names
HoloViews gives the columns of the Bokeh models it draws).

The tabs and the app call this small interface; they use the frameworks' public
API for everything else. Each private hook used here is checked by
``tests/test_render_hooks.py``, which fails naming the module to update when an
upgrade removes or changes it; ``pyproject.toml`` bounds these libraries to the
minor versions tested, and ``tests/test_private_use.py`` fails if such a use
appears outside this folder.

:mod:`dashboard.render.live`
    In-place updates of drawn HoloViews plots. ``LivePlot(draw, layers)`` draws
    an element through HoloViews and then updates its Bokeh models in place
    (``show(update)``, a redraw when an update cannot apply); ``Layer`` (one per
    element, added with ``hooks=[layer.hook]``) takes values or elements:
    ``image``, ``xy``, ``curve``, ``bars``, ``heatmap``, ``labels``,
    ``histogram``, ``location``, ``title``, ``clim``, ``ranges``. ``LivePane``
    is the pane for such plots; ``named(name)`` a hook naming the figure;
    ``padded`` an axis range as HoloViews pads one.
:mod:`dashboard.render.batching`
    ``held_and_frozen(doc)``: one browser message and at most one walk of the
    document's model graph for many updates (``dashboard.batch.batched``).
:mod:`dashboard.render.location`
    ``install(apply, max_value_chars)``: Panel's ``Location`` parses a URL
    without failing and hands each change of it to ``apply`` (``dashboard.share``).
:mod:`dashboard.render.styles`
    ``fix_divider_stylesheet()``, ``local_stylesheets(doc)``: stylesheets from
    this server, not the CDN; ``colormap(name)``: a colour map's colours.
:mod:`dashboard.render.browser`
    ``StyleSheetGuard``: BokehJS skips rewriting unchanged stylesheets;
    ``FILE_INPUT_MODEL_JS``: the model behind a page's file input.
:mod:`dashboard.render.theme`
    ``switch_theme(doc, name, roots)``: Panel's light or dark theme for a drawn page
    (components' stylesheets, figures) without a reload; ``PageTheme`` switches the
    template's HTML around them in the browser.
:mod:`dashboard.render.server`
    Hooks into Tornado's, Panel's and Bokeh's server classes for
    ``dashboard.security`` (headers, cookies, logins, shutdown, the log), a
    session's connection count and ``execute_in(doc, fn)``; a pane updated while its
    tab is hidden keeps the page's stylesheets on this server.

Nothing is imported here: each module pulls in only the library it needs.
"""
