"""Multi-class decoding: the map of each class is its one-vs-rest decoder's (issue 15
item 12). A one-vs-one SVC's ``coef_`` rows are pairs of classes; the map shown for
class k is the weights of a binary decoder "k vs the other selected conditions", the
same classifier and C on the same samples, checked here against plain scikit-learn.
The tab offers it as a "Map of class" selector (more than two conditions only), and
``contrast`` (an integer: the class's position in the conditions) stays the contract
of links, notebooks and scripts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from analysis.decoding import DecodingAnalysis
from analysis.volumes import to_masked

THREE = ["face", "cat", "house"]


@pytest.fixture(scope="module")
def analysis(decoding_dir):
    return DecodingAnalysis.from_dataset(decoding_dir, conditions=THREE, cv="run")


def _haufe(X, w):
    Xc = X.astype(np.float64) - X.mean(axis=0)
    s = Xc @ w
    return Xc.T @ s / (len(X) - 1) / s.var(ddof=1)


@pytest.mark.parametrize("classifier, make", [
    ("svc", lambda C: SVC(kernel="linear", C=C)),
    ("logistic", lambda C: LogisticRegression(C=C, max_iter=2000)),
], ids=["svc", "logistic"])
def test_the_map_of_each_class_is_its_one_vs_rest_decoder(analysis, classifier, make):
    analysis.param.update(conditions=THREE, classifier=classifier, C=0.5, contrast=0)
    X, y, _ = analysis.samples()
    mask = analysis.mask_img()
    assert analysis.map_classes() == THREE
    assert analysis.contrasts() == [f"{c} (+) vs others (-)" for c in THREE]
    maps = []
    for k, target in enumerate(THREE):
        analysis.contrast = k
        expected = make(0.5).fit(X, y == target).coef_[0]   # plain scikit-learn
        weights = analysis.weight_map()
        assert weights.attrs["contrast"] == f"{target} (+) vs others (-)"
        np.testing.assert_allclose(to_masked(weights, mask), expected, rtol=1e-6,
                                   atol=1e-9 * np.abs(expected).max())
        np.testing.assert_allclose(to_masked(analysis.pattern_map(), mask),
                                   _haufe(X, expected), rtol=1e-6,
                                   atol=1e-9 * np.abs(_haufe(X, expected)).max())
        maps.append(to_masked(weights, mask))
    # three different maps, each the class's own (not one pair's)
    assert not np.allclose(maps[0], maps[1]) and not np.allclose(maps[1], maps[2])
    # the scores and the training accuracy stay the multi-class decoder's
    full = make(0.5).fit(X, y)
    assert float(analysis.scores().train_score) == pytest.approx(full.score(X, y))
    analysis.contrast = 0


def test_two_conditions_have_one_map_and_no_class_to_choose(analysis):
    analysis.param.update(conditions=["face", "cat"], classifier="svc", C=1.0, contrast=2)
    X, y, _ = analysis.samples()
    assert analysis.map_classes() == []
    expected = SVC(kernel="linear", C=1.0).fit(X, y).coef_[0]
    weights = analysis.weight_map()   # the one decoder, whatever contrast says
    assert weights.attrs["contrast"] == "face (+) vs cat (-)"
    np.testing.assert_allclose(to_masked(weights, analysis.mask_img()), expected, rtol=1e-6,
                               atol=1e-9 * np.abs(expected).max())
    analysis.param.update(contrast=0, conditions=THREE)


def test_a_contrast_beyond_the_classes_shows_the_last(analysis):
    analysis.param.update(conditions=THREE, classifier="svc", C=1.0, contrast=7)
    assert analysis.weight_map().attrs["contrast"] == "house (+) vs others (-)"
    analysis.contrast = 0


@pytest.fixture
def tab(decoding_dir):
    from dashboard.decoding import DecodingTab

    return DecodingTab()


def test_the_tab_offers_the_map_of_each_class(tab):
    import panel as pn

    from dashboard.param_widgets import tooltip

    a = tab.analysis
    layout = pn.panel(tab)
    select = tab.w_map_class
    p = a.param.contrast
    assert select.name == p.label == "Map of class"
    tips = {" ".join(str(w.description).split()) for w in layout.select(pn.widgets.Select)
            if w.description}
    assert tooltip(p) in tips
    assert not select.visible                     # two conditions: one map, no choice
    tab.w_conditions.value = THREE
    assert select.visible and list(select.options) == THREE
    select.value = select.options["house"]
    assert a.contrast == 2
    assert tab.viewer.title == "weights: house (+) vs others (-)"
    np.testing.assert_allclose(tab.viewer.stat_map.values, a.weight_map().values)
    tab.map_kind = "pattern"
    assert tab.viewer.title == "pattern: house (+) vs others (-)"
    # a link or a notebook sets the class: the selector follows
    a.contrast = 1
    assert select.value == 1 and tab.viewer.title == "pattern: cat (+) vs others (-)"
    tab.w_conditions.value = ["face", "cat"]
    assert not select.visible


def test_the_shown_code_maps_the_chosen_class(tab, tmp_path):
    """The exported script fits the same one-vs-rest decoder: the same map peak."""
    import subprocess
    import sys

    tab.w_conditions.value = THREE
    tab.w_map_class.value = 1
    a = tab.analysis
    code = tab.export_code()
    assert "CONTRAST = 1" in code
    script = tmp_path / "decoding.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "contrast: cat (+) vs others (-)" in lines
    peak = float(np.nanmax(np.abs(a.weight_map().values)))
    shown = next(float(line.split(": ", 1)[1]) for line in lines if line.startswith("map_peak"))
    assert shown == pytest.approx(peak, rel=1e-5)
    assert f"summary: {a.summary()}" in lines


def test_the_cli_writes_the_map_of_the_class_asked(decoding_dir, capsys, tmp_path):
    import json

    import nibabel as nib

    from analysis.cli import main

    out = tmp_path / "house.nii.gz"
    assert main(["decoding", "--data", str(decoding_dir), "--conditions", *THREE,
                 "--map-class", "house", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["contrast"] == "house (+) vs others (-)"
    a = DecodingAnalysis.from_dataset(decoding_dir, conditions=THREE, contrast=2)
    np.testing.assert_allclose(np.asarray(nib.load(str(out)).dataobj),
                               np.nan_to_num(a.weight_map().values), rtol=1e-5, atol=1e-12)
    assert main(["decoding", "--data", str(decoding_dir), "--conditions", "face", "cat",
                 "--map-class", "house", "--out", str(out)]) == 2
    assert "--map-class" in capsys.readouterr().err
