"""The Connectivity tab's and the Group section's controls are made from the models'
Parameters (issues 14 and 15): each shows its Parameter's human label, its doc as the
tooltip (the widget's ``description``, or a tooltip icon beside it in the layout), its
choices by label and its range (softbounds, else bounds); the values (CLI choices, URL
values) stay the Parameters' own."""

from __future__ import annotations

import panel as pn
import param
import pytest

from analysis.connectivity import SeedConnectivity
from analysis.group import AGE_GROUPS, GroupConnectivity
from analysis.preprocessing import PARAMETERS, STANDARDIZE, Preprocessing

#: Widgets that are actions or files, not settings of a Parameter.
NOT_SETTINGS = (pn.widgets.Button, pn.widgets.FileDownload, pn.widgets.FileInput,
                pn.widgets.TooltipIcon)


def doc_of(p: param.Parameter) -> str:
    return " ".join((p.doc or "").split())


def icons_beside(layout) -> dict:
    """id(widget) -> the text of the tooltip icon beside it (a Row of the two)."""
    out = {}
    for row in layout.select(pn.Row):
        items = list(row)
        for widget, icon in zip(items, items[1:]):
            if isinstance(icon, pn.widgets.TooltipIcon):
                out[id(widget)] = icon.value
    return out


def tooltip_shown(widget, layout_icons: dict):
    """The widget's tooltip: its description, else the icon beside it in the layout."""
    return getattr(widget, "description", None) or layout_icons.get(id(widget))


def check_control(widget, p: param.Parameter, icons: dict, data_range=False):
    """``widget`` shows Parameter ``p``: label, tooltip, choices and range. A seed input's
    label is its axis, ``x (mm)``: the Parameter's label is their heading (checked apart)."""
    where = p.name
    assert widget.label and widget.label != p.name, where
    assert "_" not in widget.label, where             # no raw identifier
    if p.name != "seed_mm":
        assert widget.label.startswith(p.label), where     # the Parameter's (maybe extended)
    assert tooltip_shown(widget, icons) == doc_of(p), where
    names = getattr(p, "names", None)
    if isinstance(widget, pn.widgets.Select) and names:
        assert widget.options == dict(names), where
        assert list(widget.options.values()) == list(p.objects), where
        assert all(label != value for label, value in names.items()), where
    if isinstance(widget, (pn.widgets.FloatSlider, pn.widgets.IntSlider)):
        lo, hi = p.bounds
        soft_lo, soft_hi = getattr(p, "softbounds", None) or (None, None)
        lo = soft_lo if soft_lo is not None else lo
        hi = soft_hi if soft_hi is not None else hi
        if data_range:    # the data's range, within the Parameter's
            assert widget.start == lo and widget.end <= hi, where
        else:
            assert (widget.start, widget.end) == (lo, hi), where
        if p.step is not None:
            assert widget.step == p.step, where


@pytest.fixture(scope="module")
def tab(connectivity_dir):
    from dashboard.connectivity import ConnectivityTab

    return ConnectivityTab(SeedConnectivity(data_dir=str(connectivity_dir)))


def connectivity_controls(tab) -> list:
    p = tab.model.param
    return [(tab.w_subject, p.subject), (tab.w_x, p.seed_mm), (tab.w_y, p.seed_mm),
            (tab.w_z, p.seed_mm), (tab.w_radius, p.radius_mm),
            (tab.w_threshold, p.threshold), (tab.w_fisher, p.fisher_z),
            (tab.w_cmax, p.clim), (tab.w_columns, p.confound_columns),
            (tab.w_upload_tr, p.t_r), (tab.w_files_mni, tab.param.files_in_mni),
            (tab.w_p_method, p.p_method), (tab.w_fdr_q, p.fdr_q)] + [
            (tab.w_prep[n], p[n]) for n in PARAMETERS]


def test_connectivity_controls_show_their_parameters(tab):
    p = tab.model.param
    layout = tab.__panel__()
    icons = icons_beside(layout)
    controls = connectivity_controls(tab)
    for widget, q in controls:
        check_control(widget, q, icons)
    # the classes the tests and benchmarks find them by, and the types they rely on
    assert isinstance(tab.w_subject, pn.widgets.Select) and \
        "subject-select" in tab.w_subject.css_classes
    assert isinstance(tab.w_radius, pn.widgets.FloatSlider) and \
        "radius-slider" in tab.w_radius.css_classes
    assert isinstance(tab.w_threshold, pn.widgets.FloatSlider) and \
        "threshold-slider" in tab.w_threshold.css_classes
    assert "fisher-z" in tab.w_fisher.css_classes and "clim-max" in tab.w_cmax.css_classes
    assert "confound-columns" in tab.w_columns.css_classes
    assert tab.seed_input.title == p.seed_mm.label and tab.seed_input.title in [
        getattr(item, "object", item) for item in layout[0]]
    # the subjects offered are the data's
    assert list(tab.w_subject.options.values()) == list(range(tab.model.n_subjects))
    # every setting in the controls column has a tooltip
    shown = {id(w) for w, _ in controls}
    # the Display group (the viewer's colour map and opacity): tests/test_display_controls.py
    shown |= {id(w) for w in tab.display.select(pn.widgets.Widget)}
    settings = [w for w in layout[0].select(pn.widgets.Widget)
                if not isinstance(w, NOT_SETTINGS) and not isinstance(w, pn.indicators.Indicator)]
    assert settings and all(id(w) in shown for w in settings), \
        [w.label for w in settings if id(w) not in shown]


def test_the_widgets_and_the_model_stay_in_sync(tab):
    m = tab.model
    tab.w_threshold.value = 0.3                      # widget -> model
    assert m.threshold == 0.3
    m.threshold = 0.5                                # model -> widget
    assert tab.w_threshold.value == 0.5
    tab.w_fisher.value = True
    try:
        assert m.fisher_z is True
    finally:
        m.fisher_z = False
    assert tab.w_fisher.value is False
    tab.w_prep["standardize"].value = "zscore"     # a value, shown by its label
    try:
        assert m.standardize == "zscore"
    finally:
        m.standardize = "zscore_sample"
    assert tab.w_prep["standardize"].value == "zscore_sample"


def test_the_tab_model_is_a_declared_injected_parameter(tab):
    from dashboard.connectivity import ConnectivityTab

    p = ConnectivityTab.param.model
    assert isinstance(p, param.ClassSelector) and p.class_ is SeedConnectivity
    assert p.constant and p.precedence < 0 and p.default is None and p.doc
    m = tab.model
    assert ConnectivityTab(model=m).model is m
    assert ConnectivityTab(m).model is m
    with pytest.raises(TypeError):
        tab.model = SeedConnectivity(data_dir=m.data_dir)
    assert tab.model is m


@pytest.mark.parametrize("editable", [False, True])
def test_group_controls_show_their_parameters(connectivity_dir, monkeypatch, editable):
    from dashboard.group import ALLOW_SCHEDULER_EDIT_ENV, GroupPanel

    monkeypatch.setenv(ALLOW_SCHEDULER_EDIT_ENV, "1" if editable else "0")
    model = GroupConnectivity(data_dir=str(connectivity_dir), n_subjects=2)
    panel = GroupPanel(model=model)
    p = model.param
    icons = icons_beside(panel.__panel__())
    check_control(panel.w_n, p.n_subjects, icons, data_range=True)
    for widget, q in [(panel.w_age, p.age_group), (panel.w_x, p.seed_mm),
                      (panel.w_y, p.seed_mm), (panel.w_z, p.seed_mm),
                      (panel.w_radius, p.radius_mm), (panel.w_threshold, p.threshold),
                      (panel.w_scheduler, p.scheduler)] + [
            (panel.prep.widgets[n], p[n]) for n in PARAMETERS]:
        check_control(widget, q, icons)
    assert panel.seed_input.title == p.seed_mm.label
    assert isinstance(panel.w_n, pn.widgets.IntSlider)
    assert isinstance(panel.w_scheduler, pn.widgets.TextInput if editable
                      else pn.widgets.StaticText)
    for widget, css in [(panel.w_n, "group-n-subjects"), (panel.w_age, "group-age"),
                        (panel.w_radius, "group-radius"),
                        (panel.w_threshold, "group-threshold"),
                        (panel.w_scheduler, "group-scheduler")]:
        assert css in widget.css_classes
    panel.w_age.value = "adult"                       # a value, shown by its label
    assert model.age_group == "adult"


def test_labelled_choices_keep_their_values():
    """The choices' values (CLI choices, URL values) are the same; only labels were added."""
    from analysis.cli import build_parser

    assert list(Preprocessing.param.standardize.objects) == list(STANDARDIZE) == [
        "zscore_sample", "zscore"]
    assert list(GroupConnectivity.param.age_group.objects) == list(AGE_GROUPS)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "connectivity" in a.choices)
    for command in ("connectivity", "group"):
        option = next(a for a in sub.choices[command]._actions if a.dest == "standardize")
        assert list(option.choices) == ["zscore_sample", "zscore"]


def test_shown_parameters_have_human_labels_and_docs():
    for cls in (SeedConnectivity, GroupConnectivity):
        for name, p in cls.param.objects("existing").items():
            if name == "name" or (p.precedence is not None and p.precedence < 0):
                continue
            assert p.doc and p.label and "_" not in p.label, f"{cls.__name__}.{name}"
