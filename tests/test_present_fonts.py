"""The presentation layout's figure text (dashboard/render/theme.py): the theme's sizes,
so every figure without sizes of its own follows, in both colour themes."""

import numpy as np
import pytest


def _px(size: str) -> float:
    return float(size[:-2]) * (4 / 3 if size.endswith("pt") else 1)


@pytest.mark.parametrize("name", ["default", "dark"])
def test_present_theme_enlarges_figure_text(name):
    import holoviews as hv
    from bokeh.document import Document

    from dashboard.render.theme import PRESENT_FONTS, figure_theme

    hv.extension("bokeh")
    normal, present = figure_theme(name), figure_theme(name, present=True)
    fig = hv.render(hv.Image(np.eye(4)).opts(colorbar=True, title="t", xlabel="x (mm)"))
    doc = Document()
    doc.add_root(fig)
    doc.theme = normal
    small = {"title": _px(fig.title.text_font_size),
             "ticks": _px(fig.xaxis[0].major_label_text_font_size),
             "labels": _px(fig.xaxis[0].axis_label_text_font_size)}
    colour = fig.xaxis[0].major_label_text_color
    doc.theme = present
    big = {"title": _px(fig.title.text_font_size),
           "ticks": _px(fig.xaxis[0].major_label_text_font_size),
           "labels": _px(fig.xaxis[0].axis_label_text_font_size)}
    colorbar = next(r for r in fig.right if type(r).__name__ == "ColorBar")
    assert big["ticks"] >= 15 and big["labels"] >= 17 and big["title"] >= 19, big
    assert all(big[k] > small[k] for k in big), (small, big)
    assert _px(colorbar.major_label_text_font_size) >= 15
    assert _px(PRESENT_FONTS["Axis"]["major_label_text_font_size"]) == big["ticks"]
    # the colour theme's own values stay (e.g. the dark design's axis colours)
    assert fig.xaxis[0].major_label_text_color == colour
    doc.theme = normal   # and back
    assert _px(fig.title.text_font_size) == small["title"]


def test_both_colour_themes_draw_figures_with_the_same_text_sizes():
    """The dark design's own sizes (1.25 em axis labels...) widened the axes enough to push
    the Encoding tab's axial colour bar off its frame at 1600 px: normal figures get the
    light page's sizes in both themes."""
    import holoviews as hv
    from bokeh.document import Document

    from dashboard.render.theme import figure_theme

    hv.extension("bokeh")
    sizes = {}
    for name in ("default", "dark"):
        fig = hv.render(hv.Image(np.eye(4)).opts(colorbar=True, title="t", xlabel="x"))
        doc = Document()
        doc.add_root(fig)
        doc.theme = figure_theme(name)
        sizes[name] = (_px(fig.title.text_font_size),
                       _px(fig.xaxis[0].major_label_text_font_size),
                       _px(fig.xaxis[0].axis_label_text_font_size))
    assert sizes["dark"] == sizes["default"] == (16, 11, 13)


def test_resend_text_sizes_sends_the_themed_sizes_the_page_may_lack():
    """Setting the same theme again sends nothing (Bokeh sends only changed values), so a
    figure the page got before the theme keeps Bokeh's sizes there; resend_text_sizes sends
    each themed size as a change of its property."""
    import holoviews as hv
    from bokeh.document import Document

    from dashboard.render.theme import PRESENT_FONTS, figure_theme, resend_text_sizes

    hv.extension("bokeh")
    fig = hv.render(hv.Image(np.eye(4)).opts(colorbar=True, title="t", xlabel="x (mm)"))
    doc = Document()
    doc.add_root(fig)
    doc.theme = figure_theme("default", present=True)
    events = []
    doc.on_change(lambda event: events.append(event))
    doc.theme = figure_theme("default", present=True)
    assert not [e for e in events if getattr(e, "attr", "").endswith("font_size")]
    sent = resend_text_sizes(doc, present=True)
    fonts = [e for e in events if getattr(e, "attr", "").endswith("font_size")]
    changed = {(type(e.model).__name__, e.attr): e.new for e in fonts}
    assert sent == len(fonts) > 0
    assert changed[("Title", "text_font_size")] == PRESENT_FONTS["Title"]["text_font_size"]
    axis = [v for (name, attr), v in changed.items()
            if name.endswith("Axis") and attr == "major_label_text_font_size"]
    assert axis and set(axis) == {PRESENT_FONTS["Axis"]["major_label_text_font_size"]}


def _small_figures():
    """The small figures (receptive field, stimulus, best-alpha map, a group subject's
    slice), each as a HoloViews object."""
    import xarray as xr

    from dashboard.encoding.views import receptive_field_image, stimulus_image
    from dashboard.group_views import subject_strip

    rng = np.random.default_rng(0)
    strip = xr.DataArray(rng.normal(size=(2, 5, 6)), dims=("subject", "y", "x"),
                         coords={"subject": ["sub-01", "sub-02"], "y": np.arange(5) * 4.0,
                                 "x": np.arange(6) * 4.0})
    return {"receptive field": receptive_field_image(rng.normal(size=(10, 10)), "voxel 3"),
            "stimulus": stimulus_image(rng.integers(0, 2, (10, 10)), 4),
            "group subject": subject_strip(strip)}


@pytest.mark.parametrize("name", ["default", "dark"])
def test_small_figures_titles_and_ticks_grow_when_presenting(name):
    """Issue 15 #15: the small figures set their own 9-10 pt titles and 8 pt ticks, which
    stayed so in the presentation layout (about 10 px on a projector). Their titles are now
    a share of the layout's (smaller than a view's, larger presenting), ticks the layout's,
    also when the layout changes on a drawn figure (set_figure_theme)."""
    import holoviews as hv
    from bokeh.document import Document
    from bokeh.models import Plot

    from dashboard.render.theme import (NORMAL_FONTS, PRESENT_FONTS, figure_theme,
                                        set_figure_theme)

    hv.extension("bokeh")
    for label, obj in _small_figures().items():
        sizes = {}
        for present in (False, True):
            doc = Document()
            doc.theme = figure_theme(name, present=present)
            root = hv.renderer("bokeh").instance(theme=doc.theme).get_plot(obj, doc=doc).state
            doc.add_root(root)
            figs = [m for m in root.select({"type": Plot}) if m.title is not None
                    and not isinstance(m.title, str) and m.title.text]
            assert figs, label
            fig = figs[0]
            axes = [a for a in fig.xaxis if a.visible] if fig.xaxis else []
            sizes[present] = (_px(fig.title.text_font_size),
                              _px(axes[0].major_label_text_font_size) if axes else None)
            layout = PRESENT_FONTS if present else NORMAL_FONTS
            assert sizes[present][0] < _px(layout["Title"]["text_font_size"]), (label, sizes)
            if axes:
                assert sizes[present][1] == _px(layout["Axis"]["major_label_text_font_size"])
            if present:   # toggled back on the drawn figure, and presenting again
                set_figure_theme(doc, name, present=False)
                assert _px(fig.title.text_font_size) == sizes[False][0], label
                set_figure_theme(doc, name, present=True)
                assert _px(fig.title.text_font_size) == sizes[True][0], label
        assert sizes[True][0] >= 15 > 13.4 >= sizes[False][0] >= 12, (label, sizes)


@pytest.mark.parametrize("name", [None, "default", "dark"])
def test_colour_bar_names_its_quantity_upright_at_axis_label_size(name):
    """Issue 15: the colour bar's quantity ("r") was a lone 13 px italic letter at the bar's
    foot, easily missed: it is upright, at the axis labels' size, larger presenting, on a
    page without a theme of its own (the light page: None) too, and after a live toggle."""
    import holoviews as hv
    from bokeh.document import Document

    from dashboard.render.theme import colour_bar_title, figure_theme, set_figure_theme

    hv.extension("bokeh")
    sizes = {}
    for present in (False, True):
        doc = Document()
        if name is not None:
            doc.theme = figure_theme(name, present=present)
        elif present:
            continue
        obj = hv.Image(np.eye(4), vdims=["r"]).opts(colorbar=True, xlabel="x (mm)",
                                                     hooks=[colour_bar_title])
        fig = hv.renderer("bokeh").instance(theme=doc.theme).get_plot(obj, doc=doc).state
        doc.add_root(fig)
        bar = next(r for r in fig.right if type(r).__name__ == "ColorBar")
        assert bar.title == "r"
        assert bar.title_text_font_style == "normal", present
        sizes[present] = _px(bar.title_text_font_size)
        assert sizes[present] == _px(fig.xaxis[0].axis_label_text_font_size) >= 13, present
        if present:
            set_figure_theme(doc, name, present=False)
            assert _px(bar.title_text_font_size) == sizes[False]
            assert bar.title_text_font_style == "normal"
    if name is not None:
        assert sizes[True] > sizes[False]


def test_narrow_views_ask_for_as_many_ticks_as_fit_their_labels():
    """Issue 15 #3/#15: presenting, a 170 px wide slice view's 15 px tick labels ran into
    each other ("-80-60-40-20 0 20"): Bokeh asks for 6 ticks whatever the width. The kit's
    hook asks for as many as fit at the layout's tick size (fewer presenting), 6 at most."""
    import holoviews as hv
    from bokeh.document import Document

    from dashboard.render.theme import figure_theme, readable_ticks

    hv.extension("bokeh")
    wanted = {}
    for width in (170, 600):
        for present in (False, True):
            doc = Document()
            doc.theme = figure_theme("default", present=present)
            obj = hv.Image(np.eye(4), bounds=(-80, -80, 80, 80)).opts(
                frame_width=width, frame_height=200, hooks=[readable_ticks])
            fig = hv.renderer("bokeh").instance(theme=doc.theme).get_plot(obj, doc=doc).state
            doc.add_root(fig)
            wanted[width, present] = fig.xaxis[0].ticker.desired_num_ticks
    assert wanted[170, True] <= 3 and wanted[170, True] < wanted[170, False] <= 5, wanted
    assert wanted[600, False] == wanted[600, True] == 6, wanted
    # a label like "-80" (3 characters, 15 px) and a gap fit between two ticks
    assert 170 / wanted[170, True] >= 3 * 15, wanted
