"""The Decoding tab on the server's nilearn data folder (``serve --data``, issue 16 item 2):
offered beside the synthetic data, and the tab starts on it."""

from __future__ import annotations

import pytest

from analysis.cli import main


@pytest.fixture(scope="module")
def nilearn_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("nilearn_data")
    # another seed than the built-in synthetic data: different numbers
    assert main(["data", "decoding", "--size", "small", "--seed", "5", "--out", str(root),
                 "--quiet"]) == 0
    return root


def test_the_decoding_tab_starts_on_the_folders_haxby_data(nilearn_dir, decoding_dir,
                                                           monkeypatch, capsys):
    from analysis.config import NILEARN_DATA_ENV
    from analysis.decoding import DecodingAnalysis
    from dashboard.decoding import SYNTHETIC, DecodingTab

    capsys.readouterr()
    monkeypatch.setenv(NILEARN_DATA_ENV, str(nilearn_dir))
    tab = DecodingTab()
    assert tab.source == "nilearn data: haxby2001 subj2"
    assert list(tab.param.source.objects)[:2] == [tab.source, SYNTHETIC]
    expected = DecodingAnalysis.from_dataset(str(nilearn_dir)).summary()
    assert tab.summary.object == expected
    tab.source = SYNTHETIC
    assert tab.summary.object == DecodingAnalysis.from_dataset(str(decoding_dir)).summary()
    assert tab.summary.object != expected
    assert str(nilearn_dir) not in " ".join(map(str, tab.param.source.objects))  # no paths


def test_without_the_folder_the_tab_starts_on_synthetic(monkeypatch):
    from analysis.config import NILEARN_DATA_ENV
    from dashboard.decoding import SYNTHETIC, DecodingTab

    monkeypatch.delenv(NILEARN_DATA_ENV, raising=False)
    tab = DecodingTab()
    assert tab.source == SYNTHETIC
    assert not any(str(s).startswith("nilearn data") for s in tab.param.source.objects)
