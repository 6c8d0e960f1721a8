"""Switch a served page between Panel's light and dark themes without reloading it.

Panel picks a theme once, when the page is made (``?theme=dark``), and has no way
to change it afterwards: its own theme toggles reload the page, which loses a
session's widgets, uploads and results. The theme lives in three places, each
switched here:

* every Panel component's stylesheets: Panel gives each component's Bokeh model
  the theme's ``bundled/theme/{name}.css`` and ``bundled/theme/bootstrap_{name}.css``
  (CSS variables for its shadow root), as ``ImportedStyleSheet`` models shared
  through a per-document cache (``pn.state._stylesheets[doc]``, url -> sheet).
  :func:`switch_theme` points each of those sheets at the other theme's file
  (BokehJS re-applies a view's stylesheets when one of them changes), so every
  drawn component, and every one drawn later from the cache, follows; and sets
  ``pn.config.theme`` (this session only) for the components made later;
* the figures: ``doc.theme``, the Bokeh theme Panel's dark design gives the
  document (the light one: HoloViews' own), which Bokeh re-applies to every
  model, and which Panel hands to HoloViews for the plots drawn later;
* the page around them (the template's HTML): ``<html data-bs-theme>``, the
  head's two theme stylesheets, the header's ``navbar-light``/``navbar-dark``
  class and the dark page's ``html`` background: :class:`PageTheme` switches
  those in the browser when its ``theme`` changes.

``tests/test_render_hooks.py`` checks these Panel names and that a switched
figure has the values a figure drawn in that theme has.
"""

from __future__ import annotations

import re

import panel as pn
import param
from bokeh.models import ImportedStyleSheet
from panel.custom import JSComponent

#: The app's theme names (Panel's).
THEMES = ("default", "dark")
#: A Panel theme stylesheet's URL: ``.../bundled/theme/[bootstrap_]{default,dark}.css``.
THEME_CSS = re.compile(r"(/bundled/theme/(?:bootstrap_)?)(default|dark)(\.css)")
#: The page background Panel's template gives a dark page (``html { background-color }``).
DARK_PAGE_BACKGROUND = "#121212"


def themed_url(url: str, name: str) -> str:
    """``url`` pointing at theme ``name``'s file if it is a Panel theme stylesheet."""
    return THEME_CSS.sub(lambda m: f"{m.group(1)}{name}{m.group(3)}", url)


#: The figures' text in the presentation layout, readable on a projector (Bokeh's own
#: sizes, 11-13 px, are about 10 px on a 1920 px wide projected page): a theme's values,
#: so every figure that does not set its own follows, those drawn later too.
PRESENT_FONTS = {
    "Title": {"text_font_size": "19px"},
    "Axis": {"axis_label_text_font_size": "17px", "major_label_text_font_size": "15px"},
    "ColorBar": {"major_label_text_font_size": "15px", "title_text_font_size": "17px"},
    "Legend": {"label_text_font_size": "15px"},
}


#: The figures' text in the normal layout, the same in both colour themes: the light
#: page's sizes (HoloViews' 12 pt titles, Bokeh's 13 / 11 px axis labels and ticks). The
#: dark design's own (1.15 / 1.25 / 1.025 em: 18 / 20 / 16 px) widened the axes enough to
#: push the Encoding tab's axial colour bar off its frame at 1600 px.
NORMAL_FONTS = {
    "Title": {"text_font_size": "16px"},
    "Axis": {"axis_label_text_font_size": "13px", "major_label_text_font_size": "11px"},
    "ColorBar": {"title_text_font_size": "13px"},
}


def figure_theme(name: str, present: bool = False):
    """The Bokeh theme of figures drawn in Panel's Bootstrap theme ``name``: the dark
    design's, or for the light one HoloViews' default (what a light page's plots get),
    with the normal layout's text sizes (:data:`NORMAL_FONTS`), or ``present``, the
    presentation layout's larger ones (:data:`PRESENT_FONTS`)."""
    bokeh_theme = pn.theme.Bootstrap(theme=name).theme.bokeh_theme
    if bokeh_theme is None:
        import holoviews as hv

        bokeh_theme = hv.renderer("bokeh").theme
    from bokeh.themes import Theme

    spec = dict(getattr(bokeh_theme, "_json", None) or {})
    attrs = {model: dict(values) for model, values in (spec.get("attrs") or {}).items()}
    for model, values in (PRESENT_FONTS if present else NORMAL_FONTS).items():
        attrs.setdefault(model, {}).update(values)
    return Theme(json={**spec, "attrs": attrs})


#: A small figure's title (a receptive field, the stimulus, the best-alpha map, a group
#: subject's slice: titles that would not fit at the views' size) is this share of its
#: layout's title size: 12.8 px in the normal layout, 15.2 px presenting (:func:`small_title`).
SMALL_TITLE = 0.8
#: The tag :func:`small_title` gives a figure (found again when the layout changes).
SMALL_TITLE_TAG = "small-title"
#: The tag :func:`colour_bar_title` gives a figure.
COLOUR_BAR_TAG = "colour-bar-title"


def _px(size: str) -> float:
    """A Bokeh font size (``16px``, ``12pt``) in px (other units: the normal title's)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(px|pt)\s*", str(size))
    if not match:
        return _px(NORMAL_FONTS["Title"]["text_font_size"])
    return float(match.group(1)) * (4 / 3 if match.group(2) == "pt" else 1)


def small_title_size(theme) -> str:
    """The title size of a small figure under Bokeh theme ``theme`` (a :func:`figure_theme`:
    :data:`SMALL_TITLE` of its title size; another theme: of the normal layout's)."""
    title = (_theme_attrs(theme).get("Title") or {}).get("text_font_size",
                                           NORMAL_FONTS["Title"]["text_font_size"])
    # unrounded (12.8 / 15.2 px): Bokeh ignores a value equal to the current one, so a set
    # 13px, Title's default, would not stay when the figure joins a themed document
    return f"{_px(title) * SMALL_TITLE:g}px"


def _theme_attrs(theme) -> dict:
    return (getattr(theme, "_json", None) or {}).get("attrs") or {}


def colour_bar_title_style(theme) -> dict:
    """The title of a colour bar (its quantity: "r", "R2") under Bokeh theme ``theme``:
    upright, at the theme's axis label size (13 px; 17 px presenting). Bokeh's own, a
    13 px italic letter at the bar's foot, was easily missed."""
    size = (_theme_attrs(theme).get("Axis") or {}).get(
        "axis_label_text_font_size", NORMAL_FONTS["Axis"]["axis_label_text_font_size"])
    return {"title_text_font_size": size, "title_text_font_style": "normal"}


def _plot_theme(plot):
    fig = plot.state
    doc = fig.document
    return doc.theme if doc is not None else getattr(plot.renderer, "theme", None)


def _tag(fig, tag: str) -> None:
    if tag not in fig.tags:
        fig.tags = [*fig.tags, tag]


def _set(model, values: dict) -> None:
    for attr, value in values.items():
        if getattr(model, attr) != value:
            setattr(model, attr, value)


def _size_colour_bars(fig, theme) -> None:
    from bokeh.models import ColorBar

    for side in ("right", "left", "above", "below", "center"):
        for renderer in getattr(fig, side, None) or ():
            if isinstance(renderer, ColorBar):
                _set(renderer, colour_bar_title_style(theme))


def colour_bar_title(plot, element) -> None:
    """HoloViews hook of a figure with a colour bar: its title in
    :func:`colour_bar_title_style` of the figure's layout (its document's theme, not yet
    in one: its renderer's), also after the layout changes (:func:`set_figure_theme`).
    Set on the figure: a light page's figures get no theme of their own."""
    _tag(plot.state, COLOUR_BAR_TAG)
    _size_colour_bars(plot.state, _plot_theme(plot))


#: a horizontal axis gets a tick per this many characters of its tick labels' size
TICK_SPACING_EM = 3.6


def readable_ticks(plot, element) -> None:
    """HoloViews hook of a narrow figure (the slice views): as many ticks on its
    horizontal axis as labels like "-80" fit at the layout's tick size (Bokeh asks for 6
    whatever the width: presenting, 15 px labels on a 170 px wide view ran into each other,
    "-80-60-40-20 0 20"). The layout's views are drawn anew when it changes."""
    fig = plot.state
    width = fig.frame_width or fig.width
    if not width:
        return
    size = (_theme_attrs(_plot_theme(plot)).get("Axis") or {}).get(
        "major_label_text_font_size", NORMAL_FONTS["Axis"]["major_label_text_font_size"])
    wanted = max(2, min(6, int(width / (_px(size) * TICK_SPACING_EM))))
    for axis in fig.xaxis:
        ticker = getattr(axis, "ticker", None)
        if ticker is not None and hasattr(ticker, "desired_num_ticks"):
            _set(ticker, {"desired_num_ticks": wanted})


def small_title(plot, element) -> None:
    """HoloViews hook of a small figure: its title at :func:`small_title_size` of its
    document's theme (not yet in one: its renderer's), the normal layout's or the
    presentation's; :func:`set_figure_theme` resizes it when the layout changes. (A
    figure's own HoloViews ``fontsize`` would stay the same size in both layouts.) Its
    colour bar's title as :func:`colour_bar_title`'s."""
    fig = plot.state
    _tag(fig, SMALL_TITLE_TAG)
    theme = _plot_theme(plot)
    if fig.title is not None:
        _set(fig.title, {"text_font_size": small_title_size(theme)})
    colour_bar_title(plot, element)


def _resize_layout_text(doc) -> None:
    """The titles of ``doc``'s small figures (:func:`small_title`) and of its colour bars
    (:func:`colour_bar_title`) in its theme's sizes."""
    size = small_title_size(doc.theme)
    for model in list(doc.models):
        tags = getattr(model, "tags", None) or ()
        if SMALL_TITLE_TAG in tags and getattr(model, "title", None) is not None and \
                not isinstance(model.title, str):
            _set(model.title, {"text_font_size": size})
        if COLOUR_BAR_TAG in tags:
            _size_colour_bars(model, doc.theme)


def _theme_sheets(doc) -> list:
    """The document's Panel theme stylesheets: in Panel's cache and on its models."""
    sheets = {id(s): s for s in pn.state._stylesheets.get(doc, {}).values()
              if isinstance(s, ImportedStyleSheet)}
    for model in doc.models:
        for sheet in getattr(model, "stylesheets", None) or ():
            if isinstance(sheet, ImportedStyleSheet):
                sheets.setdefault(id(sheet), sheet)
    return [s for s in sheets.values() if THEME_CSS.search(s.url or "")]


def _unbake(doc) -> None:
    """Forget the values HoloViews copied from the document's theme into its models
    (a dark theme's axis colours): set values outrank a theme's, so they would stay."""
    for model in doc.models:
        themed = model.themed_values() or {}
        for prop, value in themed.items():
            if prop in model._property_values and model._property_values[prop] == value:
                del model._property_values[prop]


def _rethemed_plots(roots, bokeh_theme) -> None:
    """HoloViews plots drawn in ``roots`` copy the new theme on their next update."""
    for root in roots:
        for pane in root.select(pn.pane.HoloViews):
            for plot, _ in list(pane._plots.values()):
                for sub in plot.traverse(lambda p: p):
                    renderer = getattr(sub, "renderer", None)
                    if renderer is not None and renderer.backend == "bokeh":
                        sub.renderer = renderer.instance(theme=bokeh_theme)


def switch_theme(doc, name: str, roots=(), present: bool = False) -> None:
    """Give the served document ``doc`` theme ``name`` (``default`` or ``dark``): its
    components' stylesheets, its figures (those of HoloViews panes in ``roots`` also on
    later updates; with the presentation layout's text sizes if ``present``) and the
    components made later (call it with ``doc`` as the current document, e.g. from a
    callback of its session). The page around them follows :class:`PageTheme`."""
    if name not in THEMES:
        raise ValueError(f"unknown theme {name!r}")
    pn.config.theme = name  # this session's components made from now on
    for sheet in _theme_sheets(doc):
        url = themed_url(sheet.url, name)
        if url != sheet.url:
            sheet.url = url
    set_figure_theme(doc, name, roots, present)


def set_figure_theme(doc, name: str, roots=(), present: bool = False) -> None:
    """Only the figures' part of :func:`switch_theme`: ``doc``'s figures (and those HoloViews
    draws later in ``roots``) get :func:`figure_theme` ``(name, present)``; the components'
    stylesheets stay (the presentation layout changes the text sizes only)."""
    bokeh_theme = figure_theme(name, present=present)
    _rethemed_plots(roots, bokeh_theme)
    _unbake(doc)
    doc.theme = bokeh_theme
    _resize_layout_text(doc)


def resend_text_sizes(doc, present: bool = False) -> int:
    """Send the page the text sizes the document's theme gives its figures (the titles,
    axes, colour bars and legends of :data:`PRESENT_FONTS` or :data:`NORMAL_FONTS`), each
    as a change of that one property. Returns the properties sent.

    A figure serialized before its document's theme reached it keeps Bokeh's own sizes in
    the page (presenting, the slice titles stayed at 13 px), and Bokeh sends a theme's
    values only where they change on the server's side, so setting the theme again sends
    nothing. Call it once the page has the figures (a tab built after the page loaded: on
    the next tick; the first tab: on load). Only these properties of models the page
    already holds are sent: switching the whole theme twice, tried first, made the page
    refuse a message now and then ("reference ... isn't known")."""
    import bokeh.models as bm

    fonts = PRESENT_FONTS if present else NORMAL_FONTS
    classes = [(getattr(bm, name), attrs) for name, attrs in fonts.items()
               if isinstance(getattr(bm, name, None), type)]
    sent = 0
    for model in list(doc.models):
        for cls, attrs in classes:
            if isinstance(model, cls):
                for attr in attrs:
                    model.trigger(attr, None, getattr(model, attr))
                    sent += 1
    return sent


class PageTheme(JSComponent):
    """Nothing to see: when its ``theme`` changes, it switches the page around the
    components (Panel's template HTML) to that theme."""

    theme = param.Selector(default="default", objects=list(THEMES), doc="""
        The page's theme.""")

    _esm = """
    const THEME_CSS = /(\\/bundled\\/theme\\/(?:bootstrap_)?)(default|dark)(\\.css)/

    function swap(link, href) {
      // the new stylesheet is in place before the old one goes: no unstyled frame
      const next = link.cloneNode()
      next.setAttribute("href", href)
      const drop = () => link.remove()
      next.addEventListener("load", drop, { once: true })
      next.addEventListener("error", drop, { once: true })
      link.after(next)
    }

    function apply(name) {
      const dark = name === "dark"
      const root = document.documentElement
      root.setAttribute("data-bs-theme", dark ? "dark" : "light")
      root.style.backgroundColor = dark ? "DARK_PAGE_BACKGROUND" : "transparent"
      const header = document.getElementById("header")
      if (header) {
        header.classList.toggle("navbar-dark", dark)
        header.classList.toggle("navbar-light", !dark)
      }
      for (const link of document.head.querySelectorAll('link[rel="stylesheet"]')) {
        const href = link.getAttribute("href") || ""
        const match = href.match(THEME_CSS)
        if (match && match[2] !== name) {
          swap(link, href.replace(THEME_CSS, (_, a, _b, c) => a + name + c))
        }
      }
      root.dataset.fmriTheme = name
    }

    export function render({ model }) {
      model.on("theme", () => apply(model.theme))
      return document.createElement("span")
    }
    """.replace("DARK_PAGE_BACKGROUND", DARK_PAGE_BACKGROUND)
