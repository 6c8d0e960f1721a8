"""``fmri-explorer data connectivity --n-subjects N`` (issue 15): any number of synthetic
subjects, in the fetcher's layout (nilearn's own fetcher finds them offline)."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.cli import main


def test_data_connectivity_makes_any_number_of_subjects(tmp_path, no_network, capsys):
    assert main(["data", "connectivity", "--size", "small", "--n-subjects", "5",
                 "--out", str(tmp_path), "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_subjects"] == 5 and len(info["func"]) == 5
    assert all(Path(f).is_file() for f in info["func"] + info["confounds"])
    from nilearn.datasets import fetch_development_fmri

    fetched = fetch_development_fmri(n_subjects=5, data_dir=str(tmp_path), verbose=0)
    assert sorted(map(str, fetched.func)) == sorted(info["func"])
    assert list(fetched.phenotypic["Child_Adult"]).count("adult") >= 1


def test_n_subjects_is_checked(tmp_path, capsys):
    for argv, message in (
            (["data", "connectivity", "--n-subjects", "0"], "--n-subjects"),
            (["data", "encoding", "--n-subjects", "3"], "--n-subjects is for the connectivity"),
    ):
        assert main([*argv, "--size", "small", "--out", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "d").exists()
