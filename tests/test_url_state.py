"""Every parameter of every tab survives a shared link (issue 14).

Session A sets every parameter the link carries to a value other than its default; the
URL its page would show is opened in session B (a new Bokeh document, as a new visitor
gets); B's parameters and summary must equal A's. The parameter lists are derived from
the Param classes (:func:`dashboard.share.url_mapping`), so a parameter added to a model
without a value here fails :func:`_values_for`.
"""

from __future__ import annotations

import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc, state

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _values_for(mapping: dict, values: dict) -> dict:
    missing = sorted(set(mapping) - set(values))
    assert not missing, f"no non-default test value for {missing}: add one here"
    return {k: values[k] for k in mapping}


def _open(build, search: str | None = None):
    """A new session (its own document and URL) building a tab; returns (tab, URL)."""
    doc = Document()
    with set_curdoc(doc):
        if search is not None:
            state.location.search = search
        tab = build()
        return tab, doc


def _search(doc) -> str:
    with set_curdoc(doc):
        return state.location.search


def _set(doc, obj, values: dict) -> None:
    with set_curdoc(doc):
        for name, value in values.items():   # one at a time, as a user does
            setattr(obj, name, value)


def _same_view(a, b, values: dict, tab_values: dict) -> None:
    """Session B (opened from A's link) has A's analysis and tab parameters and summary."""
    for name in values:
        assert getattr(b.analysis, name) == getattr(a.analysis, name), name
    for name in tab_values:
        assert getattr(b, name) == getattr(a, name), name
    assert b.analysis.summary() == a.analysis.summary()
    assert b.summary.object == a.summary.object


def _differs(obj, values):
    for name, value in values.items():
        default = obj.param[name].default
        assert value != default, f"{name}: {value!r} is the default"


def test_connectivity_link_carries_every_parameter(connectivity_dir):
    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity import URL_KEYS, ConnectivityTab

    def build():
        return ConnectivityTab(model=SeedConnectivity(data_dir=str(connectivity_dir)))

    a, doc_a = _open(build)
    m = a.model
    columns = list(m.param.confound_columns.objects)
    assert len(columns) >= 2
    values = _values_for(URL_KEYS, {
        "subject": 1, "smoothing_fwhm": 4.0, "detrend": False, "high_pass": 0.02,
        "low_pass": 0.08, "t_r": 2.5, "standardize": "zscore", "standardize_confounds": False,
        "high_variance_confounds": True, "regress_confounds": True,
        "confound_columns": columns[1:],   # one column unticked
        "seed_mm": (6.0, -52.0, 18.0), "radius_mm": 6.0, "threshold": 0.3, "fisher_z": True,
        "clim": (-0.7, 0.7), "n_peaks": 5, "p_method": "naive", "fdr_q": 0.01})
    # the confounds stay regressed (their columns are what differs); off is the next test
    _differs(m, {k: v for k, v in values.items()
                 if k not in ("confound_columns", "regress_confounds")})
    _set(doc_a, m, values)
    summary_a = m.summary()
    search = _search(doc_a)
    for key in URL_KEYS.values():
        assert f"{key}=" in search
    b, _ = _open(build, search)
    for name, value in values.items():
        assert getattr(b.model, name) == getattr(m, name), name
    assert b.model.summary() == summary_a
    assert b.summary.object == a.summary.object
    assert b.w_cmax.value == pytest.approx(0.7)   # the widget shows the link's colour range


def test_connectivity_link_without_confounds(connectivity_dir):
    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity import ConnectivityTab

    def build():
        return ConnectivityTab(model=SeedConnectivity(data_dir=str(connectivity_dir)))

    a, doc_a = _open(build)
    _set(doc_a, a.model, {"regress_confounds": False})
    b, _ = _open(build, _search(doc_a))
    assert b.model.regress_confounds is False
    assert b.model.summary() == a.model.summary()


def test_encoding_link_carries_every_parameter(encoding_dir):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import TAB_URL_KEYS, URL_KEYS, EncodingTab

    def build():
        return EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))

    a, doc_a = _open(build)
    values = _values_for(URL_KEYS, {
        "alpha": 10.0, "threshold": 0.1, "cv": "run", "n_folds": 5, "lag": 1,
        "dtype": "float32", "voxel": 3, "alpha_range": (-2.0, 4.0), "n_alphas": 10})
    tab_values = _values_for(TAB_URL_KEYS, {"sample": 5, "run": 2})
    _differs(a.analysis, {k: v for k, v in values.items() if k != "voxel"})
    _set(doc_a, a.analysis, values)
    _set(doc_a, a, tab_values)
    search = _search(doc_a)
    b, _ = _open(build, search)
    _same_view(a, b, values, tab_values)
    assert b.w_sample.value == 5 and b.w_run.value == 2


def test_decoding_link_carries_every_parameter(decoding_dir, haxby_slice):
    from dashboard.decoding import REAL_SLICE, TAB_URL_KEYS, URL_KEYS, DecodingTab

    a, doc_a = _open(DecodingTab)
    assert REAL_SLICE in a.param.source.objects
    _set(doc_a, a, {"source": REAL_SLICE})
    conditions = list(a.analysis.param.conditions.objects)
    pair = [c for c in conditions if c != "rest"][-2:]
    values = _values_for(URL_KEYS, {
        "conditions": pair, "mask": a.analysis.param.mask.objects[-1], "standardize": False,
        "classifier": "logistic", "C": 0.1, "cv": "kfold", "n_folds": 4,
        "n_permutations": 50, "random_state": 3, "contrast": 0})
    tab_values = _values_for(TAB_URL_KEYS, {"source": REAL_SLICE, "map_kind": "pattern",
                                            "threshold": 0.01})
    _set(doc_a, a.analysis, values)
    _set(doc_a, a, {k: v for k, v in tab_values.items() if k != "source"})
    search = _search(doc_a)
    b, _ = _open(DecodingTab, search)
    _same_view(a, b, values, tab_values)


def test_a_link_cannot_open_a_sessions_upload_and_keeps_its_other_values(decoding_dir):
    from urllib.parse import urlencode

    from dashboard.decoding import SYNTHETIC, USER_FILES, DecodingTab

    b, _ = _open(DecodingTab, "?" + urlencode({"dec_source": USER_FILES, "dec_C": "0.1"}))
    assert b.source == SYNTHETIC
    assert b.analysis.C == pytest.approx(0.1)


def test_mapping_is_derived_from_the_param_class():
    import param

    from dashboard.share import url_mapping

    class Model(param.Parameterized):
        a = param.Number(1.0, bounds=(0, 2))
        b = param.Selector(default="x", objects=["x", "y"])
        path = param.String("data")               # free text: never in a link
        hidden = param.Integer(0, precedence=-1)  # internal
        fixed = param.Integer(0, constant=True)
        threads = param.Integer(2)

    assert url_mapping(Model, "m_", aliases={"a": "m_alpha"}, exclude=("threads",)) == {
        "a": "m_alpha", "b": "m_b"}
