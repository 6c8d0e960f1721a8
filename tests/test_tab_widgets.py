"""The Encoding and Decoding tabs' controls come from their Parameters (issue 14): the
label, the tooltip (the widget's own description, or a tooltip icon beside it in the
tab's layout), the choices and the slider's range are the Parameter's, written once."""

from __future__ import annotations

import math

import panel as pn
import pytest


def _tooltips(layout) -> set[str]:
    """Every tooltip text of a layout: tooltip icons' values and widgets' descriptions."""
    found = set()
    for obj in layout.select(pn.widgets.Widget):
        if isinstance(obj, pn.widgets.TooltipIcon):
            found.add(" ".join(str(obj.value).split()))
        elif "description" in obj.param and obj.description:
            found.add(" ".join(str(obj.description).split()))
    return found


def _doc(p) -> str:
    return " ".join(p.doc.split())


def _check(widget, p, layout, slider=None):
    assert widget.name == p.label and p.label != p.name, (p.name, widget.name)
    assert _doc(p) in _tooltips(layout), f"{p.name}: no tooltip with its doc"
    if slider is not None:
        assert (widget.start, widget.end) == slider, (p.name, widget.start, widget.end)


@pytest.fixture
def encoding(encoding_dir):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import EncodingTab

    analysis = EncodingAnalysis(data_dir=str(encoding_dir))
    tab = EncodingTab(analysis=analysis)
    return tab, analysis, pn.panel(tab)


def test_encoding_controls_are_their_parameters(encoding):
    tab, a, layout = encoding
    p = a.param
    alpha_lo, alpha_hi = (math.log10(v) for v in p.alpha.softbounds)
    _check(tab.w_alpha, tab.param.log10_alpha, layout, slider=(alpha_lo, alpha_hi))
    _check(tab.w_threshold, p.threshold, layout, slider=p.threshold.softbounds)
    _check(tab.w_folds, p.n_folds, layout, slider=p.n_folds.softbounds)
    _check(tab.w_lag, p.lag, layout, slider=p.lag.softbounds)
    for widget, param_ in ((tab.w_cv, p.cv), (tab.w_dtype, p.dtype)):
        _check(widget, param_, layout)
        assert list(widget.options.values()) == list(param_.objects)   # values: contracts
        assert all(label != value for label, value in widget.options.items())  # human labels
    # one range for the slider and the alpha path (issue 15 item 8)
    assert tuple(a.alpha_range) == (alpha_lo, alpha_hi)


def test_encoding_tab_takes_its_analysis_as_a_parameter(encoding):
    from analysis.encoding import EncodingAnalysis

    tab, analysis, _ = encoding
    assert tab.analysis is analysis
    assert tab.param.analysis.class_ is EncodingAnalysis and tab.param.analysis.constant


def test_a_slider_move_sets_the_parameter(encoding):
    tab, a, _ = encoding
    tab.w_lag.value = 3
    assert a.lag == 3
    tab.w_dtype.value = "float32"
    assert a.dtype == "float32"


@pytest.fixture
def decoding(decoding_dir):
    from dashboard.decoding import DecodingTab

    tab = DecodingTab()
    return tab, tab.analysis, pn.panel(tab)


def test_decoding_controls_are_their_parameters(decoding):
    tab, a, layout = decoding
    p = a.param
    _check(tab.w_folds, p.n_folds, layout, slider=p.n_folds.softbounds)
    _check(tab.w_C, p.C, layout)
    for widget, param_ in ((tab.w_mask, p.mask), (tab.w_classifier, p.classifier),
                           (tab.w_cv, p.cv), (tab.w_conditions, p.conditions),
                           (tab.w_standardize, p.standardize), (tab.w_perms, p.n_permutations),
                           (tab.w_source, tab.param.source), (tab.w_map, tab.param.map_kind),
                           (tab.w_threshold, tab.param.threshold)):
        _check(widget, param_, layout)
    assert list(tab.w_cv.options.values()) == list(p.cv.objects)
    assert tab.w_perms.end == p.n_permutations.bounds[1]   # the app's cap, from the Parameter


def test_decoding_tab_parameters_follow_their_widgets(decoding):
    tab, a, _ = decoding
    tab.w_map.value = "pattern"
    assert tab.map_kind == "pattern"
    tab.map_kind = "weights"
    assert tab.w_map.value == "weights"
    tab.w_folds.value = 4
    assert a.n_folds == 4
