"""``fmri-explorer serve --data DIR`` (``$FMRI_EXPLORER_NILEARN_DATA``), headless (issue 16
item 2): the tabs offer a nilearn data folder's datasets beside the synthetic ones and
start on them.

The folder is laid out by ``fmri-explorer data ... --out DIR`` (the fetchers' layout)
with another seed than the default synthetic data (5, not 0), so every number differs
from the synthetic set's; each tab must show the folder's numbers, equal to the
analysis classes' on that folder, and go back to the synthetic data. A folder of the
real development dataset's 155 participants (only two of them readable) checks that
the subject selector and the Group section list them without loading them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc, state

from analysis.config import NILEARN_DATA_ENV, nilearn_data_dir
from analysis.datasets.found import development_participants, found_datasets
from tests.browser.conftest import NILEARN_SEED, write_nilearn_folder
from tests.browser.conftest import NILEARN_SUBJECTS as N_SUBJECTS


ENCODING_LABEL = "nilearn data: miyawaki2008"
CONNECTIVITY_LABEL = "nilearn data: development_fmri"


pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.usefixtures("one_blas_thread")]   # conftest.py


@pytest.fixture(scope="module")
def nilearn_data(data_home) -> Path:
    """The folder, as the browser tests' (written once a session)."""
    return write_nilearn_folder(data_home / f"nilearn-seed{NILEARN_SEED}")


@pytest.fixture
def served_data(nilearn_data, monkeypatch) -> Path:
    """The server's nilearn data folder, as ``serve --data`` passes it to the app."""
    monkeypatch.setenv(NILEARN_DATA_ENV, str(nilearn_data))
    return nilearn_data


def _session(build, search: str | None = None):
    """A new session (its own document and URL) building a tab."""
    with set_curdoc(Document()):
        if search is not None:
            state.location.search = search
        return build()


# --------------------------------------------------------------------------- the folder

def test_found_datasets_reads_the_fetchers_layout(nilearn_data, tmp_path):
    found = found_datasets(nilearn_data)
    assert set(found) == {"encoding", "connectivity"}     # no haxby2001/ written
    assert found["encoding"]["label"] == ENCODING_LABEL
    assert found["connectivity"]["n_subjects"] == N_SUBJECTS
    assert found["connectivity"]["label"] == CONNECTIVITY_LABEL
    assert str(nilearn_data) not in found["encoding"]["label"]
    assert found_datasets(tmp_path) == {} and found_datasets(None) == {}
    assert found_datasets(tmp_path / "missing") == {}
    # Haxby: any complete subjN/ (files only checked to exist), subject 2 preferred
    haxby = tmp_path / "haxby2001"
    for name in ("mask.nii.gz", "MD5SUMS", "subj3/bold.nii.gz", "subj3/labels.txt",
                 "subj3/mask4_vt.nii.gz", "subj4/bold.nii.gz"):
        (haxby / name).parent.mkdir(parents=True, exist_ok=True)
        (haxby / name).write_bytes(b"")
    assert found_datasets(tmp_path)["decoding"]["subjects"] == [3]
    assert found_datasets(tmp_path)["decoding"]["label"] == "nilearn data: haxby2001 subj3"
    for name in ("bold.nii.gz", "labels.txt", "mask4_vt.nii.gz"):
        (haxby / "subj2").mkdir(exist_ok=True)
        (haxby / "subj2" / name).write_bytes(b"")
    assert found_datasets(tmp_path)["decoding"]["subject"] == 2


def test_the_file_names_are_the_fetchers(connectivity_dir):
    from analysis.datasets import development
    from analysis.datasets import found

    assert (found.DEV_FUNC, found.DEV_CONFOUNDS, found.DEV_REDUCED) == (
        development.FUNC, development.CONFOUNDS, development.REDUCED)
    # the subjects in the loader's order (subject i is row i)
    listed = development_participants(connectivity_dir)
    bunch = development.load(connectivity_dir)
    assert list(listed["participant_id"]) == list(bunch.phenotypic["participant_id"])
    assert list(listed["func"]) == [str(f) for f in bunch.func]


def test_the_environment_names_the_folder(nilearn_data, monkeypatch, tmp_path):
    monkeypatch.delenv(NILEARN_DATA_ENV, raising=False)
    assert nilearn_data_dir() is None
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(NILEARN_DATA_ENV, str(tmp_path / "file"))
    assert nilearn_data_dir() is None
    monkeypatch.setenv(NILEARN_DATA_ENV, str(nilearn_data))
    assert nilearn_data_dir() == nilearn_data


# --------------------------------------------------------------------------- the tabs

def test_the_encoding_tab_starts_on_the_folder_and_goes_back(served_data):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import SYNTHETIC, EncodingTab

    tab = EncodingTab()
    assert tab.source == ENCODING_LABEL and tab.w_source.value == ENCODING_LABEL
    assert list(tab.w_source.options) == [SYNTHETIC, ENCODING_LABEL]
    real = EncodingAnalysis(data_dir=str(served_data)).summary()
    synthetic = EncodingAnalysis().summary()
    assert real != synthetic                                  # seed 5, not 0
    assert tab.summary.object == real == tab.analysis.summary()
    tab.w_source.value = SYNTHETIC                            # back to the synthetic data
    assert tab.analysis.data_dir is None and tab.summary.object == synthetic
    a = tab.analysis
    assert a.voxel == int(a.mean_r2().values.argmax())        # the new data's best voxel
    assert f"**voxel {a.voxel}**" in tab.voxel_info.object
    tab.w_source.value = ENCODING_LABEL
    assert tab.summary.object == real


def test_the_connectivity_tab_starts_on_the_folder_and_goes_back(served_data):
    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity import ConnectivityTab
    from dashboard.connectivity.sources import BUILT_IN

    tab = ConnectivityTab()
    assert tab.source == CONNECTIVITY_LABEL and tab.w_source.value == CONNECTIVITY_LABEL
    assert len(tab.w_subject.options) == N_SUBJECTS
    assert list(tab.w_subject.options)[0] == "0: sub-pixar123 (adult)"
    real = SeedConnectivity(data_dir=str(served_data)).summary()
    synthetic = SeedConnectivity().summary()
    assert real != synthetic
    assert tab.summary.object == real
    assert tab.data_source.object == f"**Data:** {CONNECTIVITY_LABEL} ({N_SUBJECTS} subjects)"
    assert str(served_data) not in tab.data_source.object
    tab.w_subject.value = 5                                   # loaded when chosen
    assert tab.summary.object == SeedConnectivity(data_dir=str(served_data),
                                                  subject=5).summary()
    tab.w_source.value = BUILT_IN                             # back to the built-in data
    assert tab.model.data_dir is None and tab.model.subject == 0
    assert tab.summary.object == synthetic
    assert len(tab.w_subject.options) == SeedConnectivity().n_subjects
    assert tab.data_source.object == "**Data:** the built-in dataset"
    group = tab.group_panel()                                 # its subjects follow
    assert group.model.data_dir is None
    tab.w_source.value = CONNECTIVITY_LABEL
    assert tab.summary.object == real and len(tab.w_subject.options) == N_SUBJECTS
    assert group.model.data_dir == str(served_data) and group.w_n.end == N_SUBJECTS


def test_without_the_folder_the_tabs_offer_the_synthetic_data(monkeypatch):
    from dashboard.connectivity import ConnectivityTab
    from dashboard.encoding import SYNTHETIC, EncodingTab

    monkeypatch.delenv(NILEARN_DATA_ENV, raising=False)
    enc = EncodingTab()
    assert enc.source == SYNTHETIC and enc.analysis.data_dir is None
    assert enc.w_source not in enc.__panel__().select(type(enc.w_source))  # no choice shown
    conn = ConnectivityTab()
    assert conn.model.data_dir is None and list(conn.param.source.objects) == [conn.source]


def test_a_link_opens_only_a_source_offered(served_data, monkeypatch):
    from dashboard.connectivity import ConnectivityTab
    from dashboard.encoding import SYNTHETIC, EncodingTab
    from dashboard.connectivity.sources import BUILT_IN

    tab = _session(EncodingTab, "?enc_source=" + SYNTHETIC.replace(" ", "+"))
    assert tab.source == SYNTHETIC and tab.analysis.data_dir is None
    tab = _session(ConnectivityTab, "?conn_source=" + BUILT_IN.replace(" ", "+"))
    assert tab.source == BUILT_IN and tab.model.data_dir is None
    # a folder the server does not offer (here: none) cannot be opened by a link
    monkeypatch.delenv(NILEARN_DATA_ENV)
    tab = _session(EncodingTab, "?enc_source=nilearn+data%3A+miyawaki2008")
    assert tab.source == SYNTHETIC and tab.analysis.data_dir is None


# --------------------------------------------------------------------------- 155 subjects

@pytest.fixture(scope="module")
def big_dir(nilearn_data, tmp_path_factory) -> Path:
    """The real development dataset's 155 participants: the first two (adults first,
    then by id, as the loader orders them) readable copies of the folder's subjects, the
    others empty files (never to be read unless chosen)."""
    from analysis.datasets import development as dev

    src = nilearn_data / dev.DATASET
    out = tmp_path_factory.mktemp("nilearn-155")
    root = out / dev.DATASET
    root.mkdir()
    adults, children = dev.participant_ids(155)
    groups = ["adult"] * len(adults) + ["child"] * len(children)
    table = pd.DataFrame({"participant_id": adults + children,    # the real table's columns
                          "Age": [25.0 if g == "adult" else 8.0 for g in groups],
                          "AgeGroup": ["Adult" if g == "adult" else "8yo" for g in groups],
                          "Child_Adult": groups, "Gender": "F", "Handedness": "R"})
    table.to_csv(root / "participants.tsv", sep="\t", index=False)
    shutil.copy(src / dev.MASK, root / dev.MASK)
    order = table.sort_values(["Child_Adult", "participant_id"])["participant_id"]
    readable = dict(zip(order[:2], ["sub-pixar123", "sub-pixar001"]))
    for pid in table["participant_id"]:
        for pattern in (dev.FUNC, dev.CONFOUNDS, dev.REDUCED):
            if pid in readable:
                shutil.copy(src / pattern.format(readable[pid]), root / pattern.format(pid))
            else:
                (root / pattern.format(pid)).write_bytes(b"")
    return out


def test_155_subjects_are_listed_not_loaded(big_dir, monkeypatch):
    from analysis.connectivity import SeedConnectivity
    from dashboard.connectivity import ConnectivityTab

    assert found_datasets(big_dir)["connectivity"]["n_subjects"] == 155
    monkeypatch.setenv(NILEARN_DATA_ENV, str(big_dir))
    start = time.perf_counter()
    tab = ConnectivityTab()                   # only subject 0 is read
    assert time.perf_counter() - start < 60
    assert tab.source == CONNECTIVITY_LABEL and len(tab.w_subject.options) == 155
    assert tab.model.n_subjects == 155 and tab.model.param.subject.bounds == (0, 154)
    tab.w_subject.value = 1                   # a readable one, loaded when chosen
    assert tab.model.subject == 1
    assert tab.summary.object == SeedConnectivity(data_dir=str(big_dir), subject=1).summary()
    tab.w_subject.value = 100                 # an empty file: read only now, refused
    assert tab.model.subject == 1 and tab.w_subject.value == 1
    # the Group section takes N of the folder's subjects (its slider up to all of them)
    group = tab.group_panel()
    assert group.model.data_dir == str(big_dir)
    assert group.w_n.end == 155 and group.w_n.value == group.model.n_subjects == 10


# --------------------------------------------------------------------------- the command

def test_serve_passes_the_folder_to_the_server(nilearn_data, monkeypatch, capsys):
    from analysis.cli import build_parser
    from analysis.commands.serve import data_message, panel_command

    monkeypatch.delenv(NILEARN_DATA_ENV, raising=False)
    args = build_parser().parse_args(["serve", "--data", str(nilearn_data)])
    _, env = panel_command(args, "small")
    assert env[NILEARN_DATA_ENV] == str(nilearn_data.resolve())
    line = data_message(args)
    assert "miyawaki2008" in line and f"{N_SUBJECTS} subjects" in line and "\n" not in line
    # the environment variable given directly works too
    monkeypatch.setenv(NILEARN_DATA_ENV, str(nilearn_data))
    args = build_parser().parse_args(["serve"])
    assert panel_command(args, "small")[1][NILEARN_DATA_ENV] == str(nilearn_data.resolve())
    assert data_message(args) == line
    monkeypatch.delenv(NILEARN_DATA_ENV)
    assert NILEARN_DATA_ENV not in panel_command(args, "small")[1]
    assert data_message(args) is None


def test_serve_data_refuses_a_file_in_one_line(tmp_path):
    from tests.test_cli_contract import assert_one_line_error, run_cli

    (tmp_path / "notes.txt").write_text("not a folder")
    line = assert_one_line_error(run_cli("serve", "--data", tmp_path / "notes.txt"), "--data")
    assert "not a folder" in line
    assert_one_line_error(run_cli("serve", "--data", tmp_path / "missing"), "--data")
