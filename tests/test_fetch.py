"""``fmri-explorer fetch`` (issue 16 item 1), offline: nilearn's fetchers run for real on a
folder laid out as they write it (``fmri-explorer data ... --out DIR``), where they find
every file in place and download nothing; and with the network unreachable, where the
command says so in one line (exit 2)."""

from __future__ import annotations

import errno
import json
import shutil
import socket
from pathlib import Path

import pytest

from analysis.cli import main


@pytest.fixture(scope="module")
def layout(tmp_path_factory, encoding_dir, decoding_dir, connectivity_dir) -> Path:
    """One nilearn data_dir holding the three small synthetic datasets."""
    root = tmp_path_factory.mktemp("nilearn_data")
    for source, name in ((encoding_dir, "miyawaki2008"), (decoding_dir, "haxby2001"),
                         (connectivity_dir, "development_fmri")):
        shutil.copytree(Path(source) / name, root / name)
    return root


@pytest.fixture
def unreachable(monkeypatch):
    """Every outside connection fails as on a machine without a network."""
    real = socket.create_connection

    def create_connection(address, *args, **kwargs):
        if str(address[0]).startswith("127.") or address[0] == "localhost":
            return real(address, *args, **kwargs)
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    def connect(self, address):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket.socket, "connect", connect)


def test_fetch_all_on_files_in_place_prints_their_paths(layout, no_network, capsys):
    assert main(["fetch", "all", "--data-dir", str(layout), "--n-subjects", "2",
                 "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)        # stdout is the JSON alone
    assert set(out) == {"encoding", "decoding", "connectivity"}
    for name, paths in out.items():
        assert Path(paths["data_dir"]) == layout
        files = [f for v in paths.values() if isinstance(v, list) for f in v]
        assert files and all(Path(f).is_file() and layout in Path(f).parents for f in files)
    assert len(out["connectivity"]["func"]) == 2 == len(out["connectivity"]["confounds"])
    assert out["decoding"]["func"][0].endswith("haxby2001/subj2/bold.nii.gz")
    assert any(f.endswith("data_random_run01.nii.gz") for f in out["encoding"]["func"])


def test_fetch_progress_goes_to_stderr(layout, no_network, capsys):
    assert main(["fetch", "decoding", "--data-dir", str(layout)]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)
    assert "haxby" in captured.err.lower()      # nilearn's messages, kept off stdout


def test_fetch_without_network_is_one_line_saying_what_to_do(tmp_path, unreachable, capsys):
    target = tmp_path / "nilearn_data"
    assert main(["fetch", "encoding", "--data-dir", str(target), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert target.name in err and "cannot be reached" in err
    assert "connect to the internet" in err


@pytest.mark.parametrize("argv, named", [
    (["fetch", "connectivity", "--n-subjects", "0"], "--n-subjects"),
    (["fetch", "connectivity", "--n-subjects", "156"], "--n-subjects"),
    (["fetch", "connectivity", "--n-subjects", "two"], "--n-subjects"),
    (["fetch", "atlases"], "dataset"),
])
def test_fetch_refuses_bad_options(tmp_path, argv, named, capsys):
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err


def test_fetch_refuses_a_file_as_its_folder(tmp_path, capsys):
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("mine")
    assert main(["fetch", "encoding", "--data-dir", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert not_a_folder.name in err and "not a folder" in err
    assert not_a_folder.read_text() == "mine"
