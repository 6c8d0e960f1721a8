"""The Encoding tab on the user's own files (issue 16 item 3), headless: runs, a mask and
one feature table per run uploaded into the tab's upload panel give the R^2 map of a
few lines of nilearn and scikit-learn on the same files (1e-8), on the files' own grid;
the best alpha of each voxel, beside it, is himalaya's ``RidgeCV``'s; the receptive
field is an image when the features form a grid, else weights per feature and delay;
hostile uploads are refused in one line naming the user's file."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_blas_thread")   # conftest.py

N_RUNS, N_VOLUMES, SHAPE = 3, 48, (6, 5, 4)
AFFINE = np.diag([3.0, 3.0, 3.5, 1.0])
AFFINE[:3, 3] = (-9.0, -6.0, 4.0)
GRID = 3                      # 3 x 3 = 9 features: a square image
#: feature names a user could give, shown as text (never markup) in the page
HOSTILE = ["<b>bold</b>", "[x](javascript:alert(1))", "speed", "a_b_c", "`tick`",
           "<img src=x onerror=alert(1)>", "contrast"]


def _delayed(x, delays):
    """The issue's rule, written here independently: rows shifted down, zeros first."""
    out = []
    for d in delays:
        shifted = np.zeros_like(x)
        shifted[d:] = x[:len(x) - d]
        out.append(shifted)
    return np.hstack(out)


def _write_runs(root, n_features, seed):
    """Three runs whose voxels in the mask respond to one feature each, 2 volumes late
    (half of them), and their feature tables."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, bool)
    mask[1:5, 1:4, :] = True
    n_vox = int(mask.sum())
    tuned = rng.integers(0, n_features, n_vox)
    responsive = np.arange(n_vox) % 2 == 0
    funcs, tables = [], []
    for run in range(N_RUNS):
        x = rng.integers(0, 2, (N_VOLUMES, n_features)).astype(float)
        drive = _delayed(x, [2])[:, tuned] * responsive
        signal = 3.0 * drive + rng.normal(0, 1.0, (N_VOLUMES, n_vox))
        data = rng.normal(0, 1.0, SHAPE + (N_VOLUMES,))
        data[mask] = signal.T
        img = nib.Nifti1Image((100 + 10 * data).astype(np.float32), AFFINE)
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = 2.0
        funcs.append(img)
        tables.append(x)
    return funcs, tables, nib.Nifti1Image(mask.astype(np.uint8), AFFINE)


@pytest.fixture(scope="module")
def grid_files(tmp_path_factory):
    """A user's files with 9 features (a 3 x 3 grid), in the three table formats."""
    root = tmp_path_factory.mktemp("grid_files")
    funcs, tables, mask = _write_runs(root, GRID * GRID, seed=3)
    paths = {"runs": [], "features": [], "mask": root / "my_mask.nii.gz"}
    nib.save(mask, paths["mask"])
    for i, (img, x) in enumerate(zip(funcs, tables)):
        run = root / f"sub-01_run{i + 1}_bold.nii.gz"
        nib.save(img, run)
        paths["runs"].append(run)
        if i == 0:
            table = root / "run1_features.npy"
            np.save(table, x)
        elif i == 1:
            table = root / "run2_features.csv"
            np.savetxt(table, x, delimiter=",", fmt="%g",
                       header=",".join(f"px{j}" for j in range(x.shape[1])), comments="")
        else:
            table = root / "run3_features.tsv"
            np.savetxt(table, x, delimiter="\t", fmt="%g")
        paths["features"].append(table)
    return paths


@pytest.fixture(scope="module")
def named_files(tmp_path_factory):
    """A user's files with 7 named features (no grid), the names hostile."""
    root = tmp_path_factory.mktemp("named_files")
    funcs, tables, mask = _write_runs(root, len(HOSTILE), seed=5)
    paths = {"runs": [], "features": [], "mask": root / "mask.nii"}
    nib.save(mask, paths["mask"])
    for i, (img, x) in enumerate(zip(funcs, tables)):
        run = root / f"run{i + 1}.nii.gz"
        nib.save(img, run)
        table = root / f"run{i + 1}.tsv"
        with open(table, "w") as f:
            f.write("\t".join(HOSTILE) + "\n")
            np.savetxt(f, x, delimiter="\t", fmt="%g")
        paths["runs"].append(run)
        paths["features"].append(table)
    return paths


def _reference(paths, alpha, delays=(2,), cv="kfold", n_folds=10):
    """The few lines of nilearn and scikit-learn of the issue, on the files."""
    import pandas as pd
    from nilearn.maskers import MultiNiftiMasker
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, LeaveOneGroupOut

    masker = MultiNiftiMasker(mask_img=str(paths["mask"]), detrend=True,
                              standardize="zscore_sample")
    y = np.vstack(masker.fit_transform([str(f) for f in paths["runs"]]))
    tables = []
    for f in paths["features"]:
        if f.suffix == ".npy":
            tables.append(np.load(f))
        else:
            sep = "\t" if f.suffix == ".tsv" else ","
            table = pd.read_csv(f, sep=sep, header=None, dtype=str)
            if pd.to_numeric(table.iloc[0], errors="coerce").isna().any():
                table = table.iloc[1:]
            tables.append(table.astype(float).to_numpy())
    x = np.vstack([_delayed(t, delays) for t in tables])
    runs = np.repeat(np.arange(len(tables)), [len(t) for t in tables])
    splits = (KFold(n_folds).split(x) if cv == "kfold"
              else LeaveOneGroupOut().split(x, y, runs))
    scores = [r2_score(y[te], Ridge(alpha=alpha).fit(x[tr], y[tr]).predict(x[te]),
                       multioutput="raw_values") for tr, te in splits]
    full = Ridge(alpha=alpha).fit(x, y)
    return {"r2": np.mean(scores, axis=0), "x": x, "y": y, "coef": full.coef_,
            "mask": masker.mask_img_}


# --------------------------------------------------------------------------- driving the tab
def upload(tab, role, files):
    """What the browser's file input does: the file names, then their bytes (several at
    once for the runs and the feature tables)."""
    widget = tab.upload.inputs[role]
    if isinstance(files, (list, tuple)):
        widget.filename = [f.name for f in files]
        widget.value = [f.read_bytes() for f in files]
    else:
        widget.filename = files.name
        widget.value = files.read_bytes()


def analyse(tab, paths, delays="2", grid=None):
    """Upload ``paths`` (runs in a shuffled order: they are paired by name), set the
    delays, click "Analyse" and wait for the job."""
    upload(tab, "runs", paths["runs"][::-1])
    upload(tab, "mask", paths["mask"])
    upload(tab, "features", paths["features"])
    tab.w_delays.value = delays
    if grid is not None:
        tab.w_grid.value = grid
    assert not tab.w_analyse.disabled
    tab.w_analyse.clicks += 1
    assert tab.upload_job.wait(120)


@pytest.fixture
def tab(encoding_dir):
    from analysis.encoding import EncodingAnalysis
    from dashboard.encoding import EncodingTab

    tab = EncodingTab(analysis=EncodingAnalysis(data_dir=str(encoding_dir)))
    yield tab
    tab.upload.uploads.cleanup()


def _masked(volume, mask_img):
    from analysis.volumes import to_masked

    return to_masked(volume, mask_img)


# --------------------------------------------------------------------------- numbers
def test_uploaded_files_give_the_r2_of_nilearn_and_sklearn(tab, grid_files):
    from dashboard.encoding import SYNTHETIC, USER_FILES

    dataset_summary = tab.summary.object
    assert tab.w_analyse.disabled and tab.w_source not in tab.source_slot  # nothing yet
    analyse(tab, grid_files)
    a = tab.analysis
    assert tab.source == USER_FILES and a.uses_own_data and tab.w_source in tab.source_slot
    assert list(tab.w_source.options) == [SYNTHETIC, USER_FILES]
    ref = _reference(grid_files, a.alpha)
    # the map the tab shows (its readout: the true R^2) is the reference's, on the
    # files' own grid and affine
    shown = tab.viewer.readout_map
    assert shown.shape == SHAPE
    np.testing.assert_allclose(shown.attrs["affine"], AFFINE)
    np.testing.assert_allclose(_masked(shown, ref["mask"]), ref["r2"], rtol=0, atol=1e-8)
    assert tab.summary.object == a.summary() != dataset_summary
    assert f"mean R2={ref['r2'].mean():.3f}" in tab.summary.object
    # the histogram counts those values
    counts, _ = np.histogram(ref["r2"], bins=60)
    hist = tab.plots["hist"].element().get(0)
    np.testing.assert_array_equal(hist.dimension_values(1), counts)
    # the runs were paired with their tables by name, not in the order given
    assert "sub-01_run1_bold.nii.gz + run1_features.npy" in tab.upload_status.object
    # another alpha: the reference at that alpha (no new decomposition)
    tab.w_alpha.value = 1.0
    ref10 = _reference(grid_files, 10.0)
    np.testing.assert_allclose(_masked(tab.viewer.readout_map, ref["mask"]), ref10["r2"],
                               rtol=0, atol=1e-8)
    # the time course of the selected voxel: its masked, cleaned responses
    v = a.voxel
    tc = tab.plots["timecourse"].element()
    measured = tc.get(0)
    np.testing.assert_allclose(measured.dimension_values(1), ref["y"][:N_VOLUMES, v],
                               atol=1e-10)     # run 1 (the run shown)
    # leave-one-run-out on the files' runs
    tab.w_cv.value = "run"
    np.testing.assert_allclose(a.mean_r2().values, _reference(grid_files, 10.0, cv="run")["r2"],
                               rtol=0, atol=1e-8)
    # back to the dataset, and to the files again (kept for the session)
    tab.source = SYNTHETIC
    assert not a.uses_own_data and tab.viewer.readout_map.shape != SHAPE
    tab.w_cv.value = "kfold"
    tab.w_alpha.value = 2.0
    assert tab.summary.object == dataset_summary
    tab.source = USER_FILES
    np.testing.assert_allclose(_masked(tab.viewer.readout_map, ref["mask"]), ref["r2"],
                               rtol=0, atol=1e-8)
    assert a.engine_path() is None    # the user's decomposition is never written to disk


def test_best_alpha_map_equals_himalaya(tab, grid_files):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import r2_score
    from sklearn.model_selection import KFold

    analyse(tab, grid_files)
    a = tab.analysis
    alphas = a.alphas()
    ref = _reference(grid_files, 1.0)
    set_backend("numpy", on_error="raise")
    model = RidgeCV(alphas=alphas, fit_intercept=True, cv=KFold(a.n_folds),
                    solver_params={"score_func": r2_score}).fit(ref["x"], ref["y"])
    shown = tab.best_alpha_map        # log10 of each voxel's best alpha, on the files' grid
    assert shown.shape == SHAPE
    np.testing.assert_allclose(shown.attrs["affine"], AFFINE)
    np.testing.assert_allclose(10.0 ** _masked(shown, ref["mask"]),
                               np.asarray(model.best_alphas_), rtol=1e-6)
    # the best R^2 the voxel readout reports is himalaya's too
    v = a.voxel
    best_r2 = float(np.asarray(model.cv_scores_).ravel()[v])
    assert f"(R\u00b2={best_r2:.3f})" in tab.voxel_info.object
    # drawn: the axial slice through the R^2 map's crosshair, a log10 alpha colour bar
    # over the alpha path's range; another voxel selected, the slice follows
    from analysis.volumes import voxel_to_mm

    ijk = np.argwhere(np.asarray(ref["mask"].dataobj).astype(bool))
    other = next(i for i in np.argsort(a.mean_r2().values) if ijk[i][2] != ijk[v][2])
    a.voxel = int(other)
    x, y, z = voxel_to_mm(AFFINE, ijk[other])
    overlay = tab.plots["best_alpha"].element()
    image = next(el for el in overlay if el.vdims[0].name == "log10 alpha")
    assert image.opts.get().kwargs["clim"] == pytest.approx((np.log10(alphas[0]),
                                                            np.log10(alphas[-1])))
    assert f"axial z={z:g} mm" in overlay.opts.get().kwargs["title"]
    np.testing.assert_allclose(10.0 ** image[x, y], model.best_alphas_[other], rtol=1e-6)
    lines = [el.data for el in overlay if el.group in ("VLine", "HLine")]
    assert lines == pytest.approx([x, y])


def test_the_dataset_has_a_best_alpha_map_too(tab):
    """Miyawaki's data: the same map, from the alpha path the tab plots."""
    a = tab.analysis
    path = a.alpha_path()
    np.testing.assert_allclose(10.0 ** _masked(tab.best_alpha_map, a.data().mask_img),
                               path.best_alpha.values, rtol=1e-12)
    # best alpha = argmax over the alphas of the fold-mean R^2 (sklearn's Ridge, one voxel)
    from analysis.encoding import reference_r2

    x, runs, volumes = a.sample_index()
    v = int(np.argmax(a.mean_r2().values))
    y = a.data().fmri[volumes][:, [v]]
    folds = a.engine().folds
    scores = [reference_r2(x, y, folds, alpha).mean() for alpha in path.alpha.values]
    assert path.best_alpha.values[v] == path.alpha.values[int(np.argmax(scores))]


# --------------------------------------------------------------------------- receptive fields
def test_a_grid_of_features_is_an_image(tab, grid_files):
    from dashboard.encoding import rf_kind

    analyse(tab, grid_files)
    a = tab.analysis
    v = a.voxel
    image = tab.plots["ridge"].element().get(0)
    assert [d.name for d in image.kdims] == ["col", "row"]
    ref = _reference(grid_files, a.alpha)
    # column-major, as Miyawaki's label files: pixel (row, col) is feature row + 3 col
    expected = ref["coef"][v].reshape(GRID, GRID, order="F")
    np.testing.assert_allclose(image.dimension_values(2, flat=False), expected, atol=1e-8)
    assert rf_kind(a.ridge_receptive_field()) == "image"
    # the stimulus browser shows the grid of the sample's features (volume 5, no delay)
    np.testing.assert_array_equal(a.stimulus(5).values,
                                  np.load(grid_files["features"][0])[5].reshape(
                                      GRID, GRID, order="F"))
    # row-major when the user says so
    tab.w_grid.value = "C"
    analyse(tab, grid_files)
    image = tab.plots["ridge"].element().get(0)
    np.testing.assert_allclose(image.dimension_values(2, flat=False),
                               ref["coef"][tab.analysis.voxel].reshape(GRID, GRID), atol=1e-8)


def test_a_grid_at_several_delays_is_one_image_per_delay(tab, grid_files):
    analyse(tab, grid_files, delays="1 2")
    a = tab.analysis
    ref = _reference(grid_files, a.alpha, delays=(1, 2))
    np.testing.assert_allclose(a.mean_r2().values, ref["r2"], rtol=0, atol=1e-8)
    values = tab.plots["ridge"].element().get(0).dimension_values(2, flat=False)
    assert values.shape == (GRID, 2 * GRID + 1)               # side by side, a gap between
    assert np.isnan(values[:, GRID]).all()
    coef = ref["coef"][a.voxel]
    np.testing.assert_allclose(values[:, :GRID], coef[:9].reshape(GRID, GRID, order="F"),
                               atol=1e-8)
    np.testing.assert_allclose(values[:, GRID + 1:], coef[9:].reshape(GRID, GRID, order="F"),
                               atol=1e-8)


def test_features_without_a_grid_are_weights_per_feature_and_delay(tab, named_files):
    from dashboard.encoding import rf_kind

    analyse(tab, named_files, delays="1, 2")
    a = tab.analysis
    ref = _reference(named_files, a.alpha, delays=(1, 2))
    np.testing.assert_allclose(a.mean_r2().values, ref["r2"], rtol=0, atol=1e-8)
    overlay = tab.plots["ridge"].element()
    image = overlay.get(0)
    assert [d.name for d in image.kdims] == ["feature", "delay"]
    values = image.dimension_values(2, flat=False)           # one row per delay
    np.testing.assert_allclose(values, ref["coef"][a.voxel].reshape(2, len(HOSTILE)),
                               atol=1e-8)
    opts = image.opts.get().kwargs
    assert [label for _, label in opts["yticks"]] == ["1", "2"]
    # the features' names tick the axis, as canvas text (shortened, never markup)
    labels = [label for _, label in opts["xticks"]]
    assert labels[2] == "speed" and labels[0] == "<b>bold</b>"
    assert all(len(label) <= 16 for label in labels)
    rf = a.ridge_receptive_field()
    assert rf_kind(rf) == "weights" and list(rf["name"].values) == HOSTILE
    # the readout names the largest weight's feature, escaped
    info = tab.voxel_info.object
    assert "largest ridge weight: feature" in info
    assert "<b>" not in info and "<img" not in info and "](" not in info
    # the Lasso field and the stimulus have the same kind
    assert rf_kind(a.lasso_receptive_field()) == "weights"
    assert a.stimulus(3).dims == ("feature",)


def test_no_grid_by_choice(tab, grid_files):
    analyse(tab, grid_files, grid="none")
    image = tab.plots["ridge"].element().get(0)
    assert [d.name for d in image.kdims] == ["feature", "delay"]
    assert image.dimension_values(2, flat=False).shape == (1, GRID * GRID)


# --------------------------------------------------------------------------- hostile uploads
def _refused(tab, before):
    """The last upload was refused in one line; the tab kept its data."""
    text = tab.upload_status.object
    assert text.startswith("**refused:**") and "\n" not in text, text
    assert str(tab.upload.uploads.folder) not in text
    assert tab.summary.object == before
    return text


def test_hostile_uploads_are_refused_in_one_line(tab, grid_files, tmp_path):
    before = tab.summary.object
    up = tab.upload
    # not 4D: refused by the upload panel, naming the file
    flat = tmp_path / "<img src=x onerror=alert(1)>anat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINE), flat)
    upload(tab, "runs", [flat])
    assert up.status.object.startswith("**refused:**") and "<img" not in up.status.object
    assert "anat" in up.status.object and "4D" in up.status.object
    assert "runs" not in up.paths
    # a table of words: refused on arrival
    words = tmp_path / "words.csv"
    words.write_text("a,b\nc,d\n")
    upload(tab, "features", [words])
    assert "words.csv: non-numeric" in up.status.object and "features" not in up.paths
    # fewer tables than runs
    upload(tab, "runs", grid_files["runs"])
    upload(tab, "mask", grid_files["mask"])
    upload(tab, "features", grid_files["features"][:2])
    tab.w_analyse.clicks += 1
    assert tab.upload_job.wait(60)
    assert "3 runs but 2 feature files" in _refused(tab, before)
    # a table one row short: named by the user's names of the run and the table
    short = tmp_path / "run1_short.csv"           # paired by name: with run 1
    np.savetxt(short, np.ones((N_VOLUMES - 1, GRID * GRID)), delimiter=",")
    upload(tab, "features", [*grid_files["features"][1:], short])
    tab.w_analyse.clicks += 1
    assert tab.upload_job.wait(60)
    text = _refused(tab, before)
    assert text == (f"**refused:** sub-01_run1_bold.nii.gz: {N_VOLUMES} volumes but "
                    f"{N_VOLUMES - 1} feature rows in run1_short.csv")
    # a mask on another grid
    upload(tab, "features", grid_files["features"])
    other = tmp_path / "other_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((7, 5, 4), np.uint8), AFFINE), other)
    upload(tab, "mask", other)
    tab.w_analyse.clicks += 1
    assert tab.upload_job.wait(60)
    assert "other_mask.nii.gz: mask shape (7, 5, 4) does not match" in _refused(tab, before)
    # a run on another grid than the first
    upload(tab, "mask", grid_files["mask"])
    img = nib.load(grid_files["runs"][2])
    moved = tmp_path / "sub-01_run3_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), AFFINE @ np.diag([2.0, 1, 1, 1])), moved)
    upload(tab, "runs", [*grid_files["runs"][:2], moved])
    tab.w_analyse.clicks += 1
    assert tab.upload_job.wait(60)
    assert "not on the first run's grid" in _refused(tab, before)
    # delays that are not whole numbers: said at once, nothing runs
    tab.w_delays.value = "2; import os"
    tab.w_analyse.clicks += 1
    assert "delays: give whole numbers" in _refused(tab, before)
    assert not tab.analysis.uses_own_data
    # the files accepted are still there: right delays, right runs, and it works
    upload(tab, "runs", grid_files["runs"])
    tab.w_delays.value = "2"
    tab.w_analyse.clicks += 1
    assert tab.upload_job.wait(120)
    assert tab.analysis.uses_own_data and tab.summary.object != before


def test_delays_are_parsed_strictly():
    from analysis.encoding.user import parse_delays
    from analysis.errors import DataError

    assert parse_delays("2") == (2,) and parse_delays(" 1, 2 ;3 ") == (1, 2, 3)
    for text, message in (("", "whole numbers"), ("-1", "whole numbers"),
                          ("1.5", "whole numbers"), ("<b>2</b>", "whole numbers"),
                          ("21", "at most 20"), ("2 2", "each delay once"),
                          (" ".join(map(str, range(11))), "at most 10")):
        with pytest.raises(DataError, match=message) as info:
            parse_delays(text)
        assert "\n" not in str(info.value) and "<b>" not in str(info.value)


def test_several_files_of_one_role_are_all_or_nothing(tmp_path):
    from analysis.errors import DataError
    from dashboard.upload import UploadPanel

    panel = UploadPanel(roles=["features"])
    good = tmp_path / "a.csv"
    good.write_text("1,2\n3,4\n5,6\n")
    panel.inputs["features"].filename = ["a.csv", "b.npy"]
    panel.inputs["features"].value = [good.read_bytes(), b"not an array"]
    assert "features" not in panel.paths and "b.npy" in panel.status.object
    assert list(panel.uploads.folder.iterdir()) == []          # nothing half-kept
    panel.inputs["features"].filename = ["a.csv", "c.csv"]
    panel.inputs["features"].value = [good.read_bytes(), good.read_bytes()]
    assert [p.name for p in panel.paths["features"]] == ["features-000.csv",
                                                          "features-001.csv"]
    assert panel.uploads.names["features"] == ["a.csv", "c.csv"]
    with pytest.raises(DataError, match="refused file name"):
        panel.uploads.accept_many("features", [("../x.csv", b"1\n")])
    assert [p.name for p in panel.paths["features"]] == ["features-000.csv",
                                                          "features-001.csv"]
    panel.uploads.cleanup()


# --------------------------------------------------------------------------- exports
def test_the_script_reproduces_the_tab_on_the_files(tab, grid_files, tmp_path):
    """The Export bar's script reads the files by the user's names, in their folder, and
    prints the tab's numbers."""
    analyse(tab, grid_files, delays="1 2")
    a = tab.analysis
    code = tab.export_code()
    assert str(tab.upload.uploads.folder) not in code
    assert '"sub-01_run1_bold.nii.gz"' in code and "DELAYS = [1, 2]" in code
    script = grid_files["mask"].parent / "encoding_script.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, script.name], cwd=script.parent, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert float(printed["mean_r2"]) == pytest.approx(float(a.mean_r2().values.mean()),
                                                      abs=1e-8)
    assert printed["summary"] == a.summary()
    params = tab.export_params()
    assert params["delays"] == [1, 2] and params["grid"] == [GRID, GRID]
    assert params["files"]["runs"][0] == "sub-01_run1_bold.nii.gz"
    scores = tab.export_scores()
    np.testing.assert_allclose(scores["best_alpha"], a.alpha_path().best_alpha.values)
