"""DecodingTab headless: HoloViews elements by their data, display vs structural params."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tab(decoding_dir):
    from dashboard.decoding import DecodingTab

    return DecodingTab()


def test_bars_and_lines_show_the_scores(tab):
    tab.w_cv.value = "run"
    scores = tab.analysis.scores()
    overlay = tab.elements["bars"]
    bars = overlay.Bars.I
    np.testing.assert_array_equal(bars.dimension_values("accuracy"), scores.fold_score.values)
    assert list(bars.dimension_values("fold")) == [f"run {r}" for r in range(12)]
    hlines = [el.data for el in overlay if type(el).__name__ == "HLine"]
    assert hlines == [float(scores.mean_score), float(scores.chance), float(scores.train_score)]
    tab.w_cv.value = "kfold"
    assert len(tab.elements["bars"].Bars.I) == 5
    assert "KFold(5)" in tab.summary.object
    tab.w_cv.value = "run"


def test_confusion_matrix_counts(tab):
    scores = tab.analysis.scores()
    heat = tab.elements["confusion"].HeatMap.I
    for t in scores.true.values:
        for p in scores.predicted.values:
            row = heat.data[(heat.data.true == t) & (heat.data.predicted == p)]
            assert int(row["count"].iloc[0]) == int(scores.confusion.sel(true=t, predicted=p))


def test_confusion_matrix_diagonal_runs_top_left_to_bottom_right(tab):
    """Drawn, the true classes (down) and the predicted ones (across) come in the same
    order from the top left corner, so correct predictions are on the main diagonal
    (issue 15 item 5); the counts are black on colours no darker than mid-blue."""
    import holoviews as hv
    from matplotlib.colors import to_rgb

    fig = hv.render(tab.elements["confusion"], backend="bokeh")
    across = list(fig.x_range.factors)
    bottom_up = list(fig.y_range.factors)
    assert len(across) == 2 and bottom_up[::-1] == across
    mapper = fig.renderers[0].glyph.fill_color["transform"]
    darkest = min(sum(to_rgb(c)) / 3 for c in mapper.palette)
    assert darkest > 0.45    # black text stays readable on the darkest cell
    assert fig.renderers[1].glyph.text_color == "black"


def test_threshold_and_map_kind_do_not_refit(tab, monkeypatch):
    import analysis.decoding.model as dec

    calls = []
    real = dec.cross_validate
    monkeypatch.setattr(dec, "cross_validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    real_masked_of = dec.masked_of
    maskings = []  # a spy on the fetch of the heavy masked data
    monkeypatch.setattr(dec, "masked_of",
                        lambda *a, **k: maskings.append(1) or real_masked_of(*a, **k))
    tab.w_threshold.value = tab.w_threshold.end / 2
    assert tab.viewer.threshold == tab.w_threshold.value
    tab.map_kind = "pattern"
    assert tab.viewer.stat_map.name == "pattern"
    tab.map_kind = "weights"
    assert calls == [] and maskings == []
    tab.w_C.value = 0.1  # a classifier parameter refits, but never re-masks
    assert calls and maskings == []
    tab.w_C.value = 1.0


def test_bad_input_keeps_the_last_good_view(tab):
    before = tab.summary.object
    tab.w_cv.value = "kfold"
    good = tab.summary.object
    tab.w_folds.value = 20
    tab.analysis.n_folds = 5000  # more folds than samples: a notification, no crash
    assert tab.summary.object.startswith("face vs cat")
    tab.analysis.n_folds = 5
    assert tab.summary.object == good
    tab.w_cv.value = "run"
    assert tab.summary.object == before


def test_permutations_in_background_update_the_null(tab):
    tab.w_perms.value = 15
    tab.start_permutations()  # a job of dashboard/jobs.py; outside a server its updates
    assert tab.permutation_job.wait(120)  # show from the job's thread as they come
    null = tab.elements["null"].Histogram.I
    assert null.dimension_values("permutations").sum() == 15
    assert re.match(r"p(=|<=)[0-9.e-]+ ", tab.perm_status.object)
    # the p is beside the summary, in its own pane (dashboard/decoding/auto_p.py)
    assert re.match(r"p (=|<=) [0-9.e-]+ \(.*15 permutations\)$",
                    html.unescape(tab.p_line.object))
    assert ", p" not in tab.summary.object


def test_analysis_changes_show_in_the_widgets(tab):
    # a shared link or a notebook sets the analysis; the widgets follow
    tab.analysis.param.update(cv="kfold", n_folds=4, C=0.5)
    assert tab.w_cv.value == "kfold" and tab.w_folds.value == 4
    assert tab.w_C.value == 0.3 and "now 0.5" in tab.w_C.label  # nearest slider stop
    assert tab.analysis.C == 0.5  # not overwritten by the slider
    assert tab.summary.object.startswith("face vs cat, SVC C=0.5, KFold(4)")
    tab.analysis.param.update(cv="run", n_folds=5, C=1.0)
    assert tab.w_C.label == "C (log scale)"


def test_switch_to_the_real_slice_and_back(tab):
    from dashboard.decoding import REAL_SLICE, SYNTHETIC, real_slice_dir

    if real_slice_dir() is None:
        pytest.fail("the real Haxby slice is missing")
    tab.source = REAL_SLICE
    assert tab.summary.object.startswith("face vs cat, SVC C=1, leave-one-run-out: 0.741")
    assert tab.w_mask.value == "user mask" and tab.w_mask.options == ["user mask"]
    assert int(np.isfinite(tab.viewer.stat_map.values).sum()) == 530
    assert tab.viewer.crosshair_mm[2] == 0.0  # on the slice
    tab.source = SYNTHETIC
    assert tab.w_mask.value == "ventral-temporal"
    assert tab.summary.object.startswith("face vs cat, SVC C=1, leave-one-run-out")


def test_exports(tab, tmp_path):
    import gzip

    import nibabel as nib

    from dashboard.export import ExportBar

    bar = ExportBar(source=tab, stem="decoding")
    path = tmp_path / "weights.nii.gz"
    path.write_bytes(bar.content("nii.gz"))
    img = nib.load(str(path))
    weights = tab.analysis.weight_map()
    np.testing.assert_allclose(np.asarray(img.dataobj), np.nan_to_num(weights.values), rtol=1e-6)
    assert gzip.decompress(path.read_bytes())[:4]  # a real gzip stream
    csv = bar.content("csv").decode()
    assert csv.splitlines()[0].startswith("fold,test_runs,n_test,accuracy")
    assert len(csv.strip().splitlines()) == 1 + tab.analysis.scores().sizes["fold"]
    # the shown code: a plain nilearn / scikit-learn script that reproduces the summary
    import subprocess
    import sys

    code = tab.export_code()
    assert "import analysis" not in code and "from analysis" not in code
    script = tmp_path / "decoding.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"summary: {tab.analysis.summary()}" in out.stdout.splitlines()
    assert bar.content("png")[:4] == b"\x89PNG"


HAXBY_TABLE = "".join(f"{c} {n}\n" for c, n in enumerate(
    ["rest", "face", "house", "shoe", "cat", "scissors", "scrambledpix", "bottle", "chair"]))


def _upload(tab, haxby_slice, table: str | None = None):
    up = tab.upload
    files = [("func", "bold.nii.gz", None), ("mask", "mask.nii.gz", None)]
    if table is not None:
        files.append(("label_names", "names.txt", table.encode()))
    files.append(("labels", "attributes.txt", None))
    for role, name, content in files:
        up.uploads.accept(role, name, content or (haxby_slice / name).read_bytes())
        up.paths = {**up.paths, role: up.uploads.files[role]}
    assert tab.upload_job.wait(120)  # read and masked in the background


def test_uploaded_numeric_labels_without_a_table_stay_numbers(decoding_dir, haxby_slice):
    """Issue 15 item 13: no Haxby names given to a user's codes; the default pair is
    two codes of equal size (not 0, the dominant rest)."""
    from dashboard.decoding import USER_FILES, DecodingTab

    tab = DecodingTab()
    _upload(tab, haxby_slice)
    assert tab.source == USER_FILES
    assert list(tab.w_conditions.options.values()) == [str(c) for c in range(9)]
    assert tab.w_conditions.value == ["1", "2"]
    assert tab.summary.object.startswith("1 vs 2, SVC C=1, leave-one-run-out: ")
    assert "at chance" not in tab.summary.object
    assert "code-to-name table" in tab.upload_status.object
    tab.analysis.param.update(conditions=["0", "7"], C=1e-4)   # rest vs bottle: the majority
    assert ", at chance (chance 0.845" in tab.summary.object


def test_uploaded_files_become_a_source(decoding_dir, haxby_slice):
    from dashboard.decoding import USER_FILES, DecodingTab

    tab = DecodingTab()
    up = tab.upload
    _upload(tab, haxby_slice, HAXBY_TABLE)
    assert tab.source == USER_FILES
    assert tab.summary.object.startswith("face vs cat, SVC C=1, leave-one-run-out: 0.741")
    assert tab.upload_status.object == ""
    code = tab.export_code()  # the user's files by their names, beside the script
    assert 'FUNC = "bold.nii.gz"' in code and 'LABELS = "attributes.txt"' in code
    assert str(up.uploads.folder) not in code
    # a labels file of the wrong length: a notification, the tab keeps its data
    bad = "\n".join((haxby_slice / "attributes.txt").read_text().splitlines()[:100])
    up.uploads.accept("labels", "short.txt", bad.encode())
    up.paths = {**up.paths, "labels": up.uploads.files["labels"]}
    assert tab.upload_job.wait(120)
    assert tab.upload_status.object.startswith("refused:")
    assert tab.summary.object.startswith("face vs cat, SVC C=1, leave-one-run-out: 0.741")


def test_the_tab_shows_the_analysis_it_is_given(decoding_dir):
    """A notebook hands its own DecodingAnalysis to the tab: the tab shows that object
    (its data and settings), and a widget move changes it."""
    from analysis.datasets import haxby
    from analysis.decoding import DecodingAnalysis
    from dashboard.decoding import GIVEN, SYNTHETIC, DecodingTab

    mine = DecodingAnalysis(haxby.load(decoding_dir), C=0.1, cv="kfold", n_folds=4)
    tab = DecodingTab(analysis=mine)
    assert tab.analysis is mine and tab.source == GIVEN
    assert tab.summary.object == mine.summary()
    assert tab.w_cv.value == "kfold" and tab.w_folds.value == 4
    tab.w_cv.value = "run"
    assert mine.cv == "run"
    tab.source = SYNTHETIC           # the other sources stay offered
    tab.source = GIVEN
    assert tab.analysis.data is mine.data
