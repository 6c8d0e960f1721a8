"""The Display group of every tab (issue 15, item 17): the slice viewer's colour map and
opacity in the tab's controls column, fitting it; Encoding's fixed colour range."""

from __future__ import annotations

import numpy as np
import panel as pn
import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc, state

from dashboard.param_widgets import tooltip

pytestmark = [pytest.mark.usefixtures("one_blas_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

FIXED_DOC = "Keep the colour range when alpha, lag or folds change, so maps compare by eye."


def _encoding(encoding_dir):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import EncodingTab

    return EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))


def _decoding(decoding_dir):
    from dashboard.decoding import DecodingTab

    return DecodingTab()


def _connectivity(connectivity_dir):
    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity import ConnectivityTab

    return ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))


def _drawn(tab):
    """The tab's layout, drawn in a Bokeh document as a served session draws it."""
    doc = Document()
    with set_curdoc(doc):
        layout = pn.panel(tab)
        doc.add_root(layout.get_root(doc))
    return layout


def _display_card(layout) -> pn.Card:
    controls = layout[0]   # the controls column, left of the views
    (card,) = [c for c in controls.select(pn.Card) if c.title == "Display"]
    return card


def _widget(card, css: str):
    (widget,) = [w for w in card.select(pn.widgets.Widget) if css in w.css_classes]
    return widget


def _tooltips(layout) -> dict:
    """id(widget) -> its tooltip: its description, else the tooltip icon beside it."""
    out = {id(w): w.description for w in layout.select(pn.widgets.Widget)
           if getattr(w, "description", None)}
    for row in layout.select(pn.Row):
        items = list(row)
        for widget, icon in zip(items, items[1:]):
            if isinstance(icon, pn.widgets.TooltipIcon):
                out[id(widget)] = icon.value
    return out


def _mapper(viewer, view="axial"):
    (plot,) = viewer.layers[view]["map"].plots
    return plot.handles["color_mapper"]


@pytest.mark.parametrize("build, data, default_cmap", [
    (_encoding, "encoding_dir", "fire"),
    (_decoding, "decoding_dir", "RdBu_r"),
    (_connectivity, "connectivity_dir", "RdBu_r"),
])
def test_each_tab_shows_its_viewers_colour_map_and_opacity(build, data, default_cmap,
                                                           request):
    tab = build(request.getfixturevalue(data))
    layout = _drawn(tab)
    card = _display_card(layout)
    cmap, opacity = _widget(card, "slice-cmap"), _widget(card, "slice-opacity")
    assert cmap.label == "Colour map" and opacity.label == "Map opacity"
    # tooltips from the viewer's Parameters
    tips = _tooltips(card)
    assert tips[id(cmap)] == tooltip(tab.viewer.param.cmap)
    assert tips[id(opacity)] == tooltip(tab.viewer.param.opacity)
    assert cmap.value == default_cmap == tab.viewer.cmap   # the tab's own colour map
    # the widgets fit the controls column (a wider one clips its handles)
    column = layout[0].width
    assert card.width <= column
    assert all(w.width <= card.width - 20 for w in (cmap, opacity))
    before = list(_mapper(tab.viewer).palette)
    assert before == tab.viewer.colours()

    cmap.value = "viridis"                       # the user picks another colour map
    assert tab.viewer.cmap == "viridis"
    mapper = _mapper(tab.viewer)
    assert list(mapper.palette) == tab.viewer.colours() != before   # the views recoloured
    element = tab.viewer.view_element("axial")
    assert element.get(1).opts.get().kwargs["cmap"] == tab.viewer.colours()
    opacity.value = 0.5
    assert tab.viewer.opacity == 0.5
    tab.viewer.cmap = default_cmap               # and the other way
    assert cmap.value == default_cmap


@pytest.fixture
def encoding(encoding_dir):
    return _encoding(encoding_dir)


def _auto_top(tab) -> float:
    r2 = tab.analysis.mean_r2().values
    return max(float(np.nanmax(r2)), 1e-3)


def test_encoding_fixed_colour_range_holds_across_alpha(encoding):
    tab = encoding
    layout = _drawn(tab)
    card = _display_card(layout)
    fixed = _widget(card, "fixed-clim")
    assert fixed.label == "Fixed colour range" and not tab.fixed_clim
    assert _tooltips(card)[id(fixed)] == FIXED_DOC   # its tooltip: the Parameter's doc

    start = tab.viewer.colour_range()
    assert start == pytest.approx((0.0, _auto_top(tab)))
    fixed.value = True                           # on: the current map's range, held
    assert tab.fixed_clim and tab.clim_range == pytest.approx(start)
    lo, hi = _widget(card, "clim-min"), _widget(card, "clim-max")
    assert (lo.value, hi.value) == pytest.approx(start)
    tips = _tooltips(card)
    assert tips[id(lo)] == tips[id(hi)] == tooltip(tab.param.clim_range)
    for log_alpha in (tab.w_alpha.end, tab.w_alpha.start):   # far apart: other maxima
        tab.w_alpha.value = log_alpha
        assert tab.viewer.clim == pytest.approx(start)
        mapper = _mapper(tab.viewer)
        assert (mapper.low, mapper.high) == pytest.approx(start)
    assert _auto_top(tab) != pytest.approx(start[1])

    hi.value = 0.5                               # a typed range is held too
    assert tab.clim_range == pytest.approx((start[0], 0.5))
    assert tab.viewer.clim == pytest.approx((start[0], 0.5))
    lo.value = 0.9                               # min above max: refused, range kept
    assert tab.viewer.clim == pytest.approx((start[0], 0.5))
    assert lo.value == pytest.approx(start[0])

    fixed.value = False                          # off: it rescales as before
    assert tab.viewer.clim == pytest.approx((0.0, _auto_top(tab)))
    tab.w_alpha.value = tab.w_alpha.end
    assert tab.viewer.clim == pytest.approx((0.0, _auto_top(tab)))
    fixed.value = True                           # on again: the map's range now
    assert tab.clim_range == pytest.approx((0.0, _auto_top(tab)))


def _open(build, search=None):
    doc = Document()
    with set_curdoc(doc):
        if search is not None:
            state.location.search = search
        return build(), doc


def test_encoding_fixed_colour_range_survives_a_shared_link(encoding_dir):
    a, doc_a = _open(lambda: _encoding(encoding_dir))
    with set_curdoc(doc_a):
        a.fixed_clim = True
        a.clim_range = (0.0, 0.2)
        search = state.location.search
    assert "enc_fixed_clim=" in search and "enc_clim=" in search
    b, _ = _open(lambda: _encoding(encoding_dir), search)
    assert b.fixed_clim and b.clim_range == pytest.approx((0.0, 0.2))
    assert b.viewer.clim == pytest.approx((0.0, 0.2))
    assert b.w_fixed_clim.value is True
    assert (b.w_clim_min.value, b.w_clim_max.value) == pytest.approx((0.0, 0.2))
    # the option alone: the map's own range, held
    c, _ = _open(lambda: _encoding(encoding_dir), "?enc_fixed_clim=true")
    assert c.fixed_clim and c.clim_range == pytest.approx((0.0, _auto_top(c)))


@pytest.mark.parametrize("build, data, prefix", [
    (_encoding, "encoding_dir", "enc_"),
    (_decoding, "decoding_dir", "dec_"),
    (_connectivity, "connectivity_dir", "conn_"),
])
def test_colour_map_and_opacity_survive_a_shared_link(build, data, prefix, request):
    folder = request.getfixturevalue(data)
    a, doc_a = _open(lambda: build(folder))
    with set_curdoc(doc_a):
        a.viewer.param.update(cmap="cividis", opacity=0.6)
        search = state.location.search
    assert f"{prefix}cmap=cividis" in search and f"{prefix}opacity=0.6" in search
    b, _ = _open(lambda: build(folder), search)
    assert (b.viewer.cmap, b.viewer.opacity) == ("cividis", 0.6)
    card = _display_card(_drawn(b))
    assert _widget(card, "slice-cmap").value == "cividis"
    assert _widget(card, "slice-opacity").value == 0.6
    c, _ = _open(lambda: build(folder), f"?{prefix}cmap=jet&{prefix}opacity=0")
    assert (c.viewer.cmap, c.viewer.opacity) == (c.viewer.param.cmap.default
                                                 if build is not _encoding else "fire", 1.0)
