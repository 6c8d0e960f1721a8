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


def test_a_real_download_without_ground_truth_loads(nilearn_dir, tmp_path, no_network):
    """A real fetch_haxby folder has no synthetic ground truth: it loads from its files
    (nothing downloaded) as the fetcher's data, not as synthetic."""
    import shutil

    from analysis.datasets import haxby

    real = tmp_path / "nilearn_data"
    shutil.copytree(nilearn_dir / "haxby2001", real / "haxby2001")
    for truth in (real / "haxby2001").rglob("ground_truth.*"):
        truth.unlink()
    data = haxby.load(real)
    assert data.source == "nilearn fetch_haxby" and data.n_volumes > 0
    with pytest.raises(Exception, match="subj3"):
        haxby.load(real, subject=3)      # not on disk: refused, never downloaded
