"""The Group section's preprocessing: widgets made from the same Parameters as the single
subject's (one declaration, analysis/preprocessing.py), synced to GroupConnectivity."""

from __future__ import annotations


def test_group_section_has_every_preprocessing_widget(connectivity_dir):
    from analysis.group import GroupConnectivity
    from analysis.preprocessing import PARAMETERS
    from dashboard.group import GroupPanel

    model = GroupConnectivity(data_dir=str(connectivity_dir), n_subjects=2)
    panel = GroupPanel(model=model)
    assert set(panel.prep.widgets) == set(PARAMETERS)
    assert "high_variance_confounds" in panel.prep.widgets
    w = panel.prep.widgets["high_variance_confounds"]
    w.value = not w.value
    assert model.high_variance_confounds == w.value
    smoothing = panel.prep.widgets["smoothing_fwhm"]
    smoothing.value = 4.0
    assert model.smoothing_fwhm == 4.0


def test_a_refused_group_preprocessing_value_is_undone(connectivity_dir, monkeypatch):
    from analysis.group import GroupConnectivity
    from dashboard import group as group_module
    from dashboard.group import GroupPanel

    errors = []
    monkeypatch.setattr(group_module, "report_error", lambda exc: errors.append(str(exc)))
    model = GroupConnectivity(data_dir=str(connectivity_dir), n_subjects=2)
    panel = GroupPanel(model=model)
    before = model.high_pass
    panel.prep.widgets["high_pass"].value = -3.0          # below the Parameter's bounds
    assert errors and model.high_pass == before
    assert panel.prep.widgets["high_pass"].value == before
