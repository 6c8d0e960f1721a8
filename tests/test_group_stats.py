"""Group statistics (issue 17, corrected thresholds): the t map with its df and p, FDR,
and FWE by sign-flipping permutations (max |t| and cluster size), equal to scipy and to
nilearn's ``permuted_ols`` / ``non_parametric_inference`` on the same subject maps; the
``fmri-explorer group`` options and files that carry them."""

from __future__ import annotations

import json
import threading
import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import false_discovery_control, ttest_1samp

from analysis import group as G
from analysis.errors import DataError
from analysis.group import stats as S


def _maps(n_subjects, shape=(11, 13, 9), effect=0.25, smooth=1.0, seed=0):
    """Smooth random subject maps in a box mask with a hole, an effect in one corner."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    mask[1:-1, 1:-1, 1:-1] = True
    mask[4, 5, 3] = mask[6, 2, 5] = False
    vol = ndimage.gaussian_filter(rng.standard_normal((n_subjects, *shape)),
                                  (0, smooth, smooth, smooth))
    vol /= vol.std()
    vol[:, 1:5, 1:6, 1:5] += effect * 4
    vol[:, 6:9, 7:11, 4:7] -= effect * 3
    return vol[:, mask], mask


def _permuted_ols(z, n_perm, random_state, mask=None, threshold=None):
    from nilearn.maskers import NiftiMasker
    from nilearn.mass_univariate import permuted_ols

    masker = None
    if mask is not None:
        masker = NiftiMasker(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4))).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return permuted_ols(np.ones((z.shape[0], 1)), z, model_intercept=False, n_perm=n_perm,
                            two_sided_test=True, random_state=random_state, n_jobs=1,
                            masker=masker, threshold=threshold)


# --------------------------------------------------------------------------- t, p, FDR

def test_t_p_df_are_scipys_one_sample_t_test():
    z, _ = _maps(7)
    out = S.one_sample_t(z)
    ref = ttest_1samp(z, 0.0, axis=0)
    np.testing.assert_allclose(out["t"], ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(out["p"], ref.pvalue, rtol=1e-10)
    assert out["df"] == 6
    with pytest.raises(DataError, match="at least 2 subjects"):
        S.one_sample_t(z[:1])


def _bh_loop(p, q):
    """Benjamini-Hochberg the textbook way: the largest k with p_(k) <= k q / m."""
    order = np.argsort(p)
    m = len(p)
    k = 0
    for i, j in enumerate(order, start=1):
        if p[j] <= i * q / m:
            k = i
    declared = np.zeros(m, dtype=bool)
    declared[order[:k]] = True
    return declared


@pytest.mark.parametrize("effect", [0.0, 0.05, 0.25])
def test_fdr_is_benjamini_hochberg(effect):
    z, _ = _maps(9, effect=effect, seed=3)
    base = S.one_sample_t(z)
    declared = S.fdr_mask(base["p"], 0.05)
    np.testing.assert_array_equal(declared, false_discovery_control(base["p"]) <= 0.05)
    np.testing.assert_array_equal(declared, _bh_loop(base["p"], 0.05))
    threshold, n = S.fdr_threshold(base["t"], base["p"], 0.05)
    assert n == declared.sum()
    if effect >= 0.25:
        assert 0 < n < z.shape[1]
        # the threshold is the smallest |t| declared: every voxel at or above it is declared
        np.testing.assert_array_equal(np.abs(base["t"]) >= threshold, declared)
    if n == 0:
        assert threshold is None


# --------------------------------------------------------------------------- sign flips

@pytest.mark.parametrize("n_subjects, random_state", [(16, 0), (12, 7), (5, 3)])
def test_same_flips_give_permuted_ols_null_and_fwe_p(n_subjects, random_state):
    """The flips of sign_flips are permuted_ols' (n_jobs=1, same random_state): the same
    max-|t| null, permutation by permutation, and the same -log10 FWE p per voxel
    (5 subjects: 32 sign patterns, so permutations tie with the data's own: counted)."""
    z, _ = _maps(n_subjects, seed=n_subjects)
    ref = _permuted_ols(z, 300, random_state)
    ours = S.group_inference(z, n_permutations=300, random_state=random_state)
    np.testing.assert_allclose(ours.t, ref["t"][0], rtol=1e-10)
    np.testing.assert_allclose(ours.h0_max_t, ref["h0_max_t"][0], rtol=1e-10)
    np.testing.assert_array_equal(ours.logp_fwe, ref["logp_max_t"][0])
    assert ours.n_permutations == 300 and ours.df == n_subjects - 1
    if n_subjects == 5:  # the smallest FWE p of 5 subjects is 2/32: nothing passes 0.05
        assert ours.logp_fwe.max() < -np.log10(0.05) and ours.n_voxels_fwe == 0


def test_flips_are_cumulative_sign_products():
    flips = S.sign_flips(6, 50, random_state=1)
    assert flips.shape == (50, 6) and set(np.unique(flips)) == {-1, 1}
    assert not np.array_equal(flips, S.sign_flips(6, 50, random_state=2))
    np.testing.assert_array_equal(flips, S.sign_flips(6, 50, random_state=1))
    assert S.sign_flips(6, 0).shape == (0, 6)


def test_fwe_threshold_with_other_flips_within_monte_carlo_error():
    """Other random flips: our 95th-percentile FWE threshold lies within the Monte Carlo
    error of nilearn's null (its order statistics around rank 951 of 1,000, +/- 3 sd
    of two independent estimates)."""
    z, _ = _maps(14, seed=5)
    ref = np.sort(_permuted_ols(z, 1000, random_state=11)["h0_max_t"][0])
    ours = S.group_inference(z, n_permutations=1000, random_state=12)
    assert not np.allclose(np.sort(ours.h0_max_t), ref)   # really other flips
    sd = np.sqrt(1000 * 0.95 * 0.05) * np.sqrt(2)
    lo, hi = ref[int(950 - 3 * sd)], ref[int(950 + 3 * sd)]
    assert lo <= ours.fwe_t_threshold <= hi
    assert ours.fwe_t_threshold == np.sort(ours.h0_max_t)[950]   # the 50th largest


def test_fwe_threshold_and_p_agree():
    """|t| above fwe_t_threshold <=> FWE p < 0.05, and n_voxels_fwe counts them."""
    z, _ = _maps(12, effect=0.3, seed=8)
    out = S.group_inference(z, n_permutations=500)
    p = 10 ** -out.logp_fwe
    assert 0 < out.n_voxels_fwe < z.shape[1]
    np.testing.assert_array_equal(np.abs(out.t) > out.fwe_t_threshold, p < 0.05)
    np.testing.assert_array_equal(out.fwe, p < 0.05)
    assert out.n_voxels_fwe == int((p < 0.05).sum())
    null = np.sort(out.h0_max_t)
    count = (null[None, :] >= np.abs(out.t)[:, None]).sum(axis=1)   # the plain count
    np.testing.assert_allclose(p, (1 + count) / 501, rtol=1e-12)
    # too few permutations for p < 0.05: (1 + 0) / 20 is not below it
    few = S.group_inference(z, n_permutations=19)
    assert few.fwe_t_threshold is None and few.n_voxels_fwe == 0
    twenty = S.group_inference(z, n_permutations=20)   # (1 + 0) / 21 is below it
    assert twenty.fwe_t_threshold == twenty.h0_max_t.max()
    np.testing.assert_allclose(twenty.h0_max_t[:19], few.h0_max_t, rtol=1e-12)
    none = S.group_inference(z, n_permutations=0)
    assert none.logp_fwe is None and none.n_permutations == 0 and none.n_voxels_fdr > 0


# --------------------------------------------------------------------------- cluster size

def _label_loop(values, threshold, mask):
    """Each row's clusters with scipy.ndimage.label (face connectivity), two-sided."""
    max_size = []
    sizes = []
    for row in values:
        vol = np.zeros(mask.shape)
        vol[mask] = row
        size = np.zeros(mask.shape, dtype=int)
        for part in (vol > threshold, vol < -threshold):
            labels, n = ndimage.label(part)
            counts = np.bincount(labels.ravel())
            counts[0] = 0
            size[part] = counts[labels[part]]
        sizes.append(size[mask])
        max_size.append(size.max())
    return np.array(max_size), np.array(sizes)


def test_cluster_sizes_are_scipy_labels():
    rng = np.random.default_rng(2)
    _, mask = _maps(2)
    values = ndimage.gaussian_filter(rng.standard_normal((6, *mask.shape)), (0, 1, 1, 1))
    values = values[:, mask] / values.std()
    neighbours = S.face_neighbours(mask)
    max_size, size, ids = S.cluster_sizes(values, 1.0, neighbours, per_voxel=True)
    ref_max, ref_size = _label_loop(values, 1.0, mask)
    np.testing.assert_array_equal(max_size, ref_max)
    np.testing.assert_array_equal(size, ref_size)
    np.testing.assert_array_equal(S.cluster_sizes(values, 1.0, neighbours), ref_max)
    assert ids.max() > 6 and (ids > 0).sum() == (size > 0).sum()


def test_cluster_size_null_is_permuted_ols():
    """With a masker and a cluster-forming p, the same largest-cluster null as
    permuted_ols, the same cluster size per voxel, and the p of each cluster is the
    plain count (1 + #{null >= size}) / (n + 1)."""
    z, mask = _maps(12, seed=4)
    ref = _permuted_ols(z, 200, random_state=5, mask=mask, threshold=0.01)
    ours = S.group_inference(z, mask, n_permutations=200, random_state=5,
                             cluster_forming_p=0.01)
    np.testing.assert_array_equal(ours.h0_max_size, ref["h0_max_size"][0])
    np.testing.assert_array_equal(ours.cluster_size, ref["size"][0])
    assert ours.cluster_t == pytest.approx(S.cluster_forming_t(0.01, 11))
    assert ours.cluster_size.max() > 0
    _, sizes = _label_loop(ours.t[None], ours.cluster_t, mask)
    np.testing.assert_array_equal(ours.cluster_size, sizes[0])
    count = (ours.h0_max_size[None, :] >= ours.cluster_size[:, None]).sum(axis=1)
    p = np.where(ours.cluster_size > 0, (1 + count) / 201, 1.0)
    np.testing.assert_allclose(ours.logp_cluster_fwe, -np.log10(p))
    big = ours.cluster_size >= ours.cluster_size_fwe_threshold
    np.testing.assert_array_equal(big & (ours.cluster_size > 0), p < 0.05)


def test_same_as_non_parametric_inference_on_images():
    """The image-level reference: nilearn's second-level non_parametric_inference on
    the subjects' maps as images (intercept-only design)."""
    import pandas as pd
    from nilearn.glm.second_level import non_parametric_inference

    z, mask = _maps(10, seed=9)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    images = []
    for row in z:
        vol = np.zeros(mask.shape)
        vol[mask] = row
        images.append(nib.Nifti1Image(vol, affine))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = non_parametric_inference(
            images, design_matrix=pd.DataFrame({"intercept": np.ones(len(images))}),
            mask=nib.Nifti1Image(mask.astype(np.uint8), affine), n_perm=150,
            two_sided_test=True, random_state=4, n_jobs=1, threshold=0.005)
    ours = S.group_inference(z, mask, n_permutations=150, random_state=4,
                             cluster_forming_p=0.005)
    np.testing.assert_allclose(ours.t, ref["t"].get_fdata()[mask], rtol=1e-9)
    np.testing.assert_allclose(ours.logp_fwe, ref["logp_max_t"].get_fdata()[mask], rtol=1e-12)
    np.testing.assert_array_equal(ours.cluster_size, ref["size"].get_fdata()[mask])


# --------------------------------------------------------------------------- progress, cancel

def test_progress_and_cancel():
    z, _ = _maps(8)
    seen = []
    S.permutation_null(z, S.sign_flips(8, 300), chunk_bytes=8 * z.shape[1] * 100,
                       progress=lambda f, m: seen.append((f, m)))
    assert [f for f, _ in seen] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert seen[-1][1] == "permutations 300/300"
    stop = threading.Event()
    stop.set()
    with pytest.raises(G.Cancelled):
        S.group_inference(z, n_permutations=100, cancel=stop)
    with pytest.raises(DataError, match="n_permutations"):
        S.group_inference(z, n_permutations=-1)


# --------------------------------------------------------------------------- model and CLI

@pytest.fixture(scope="module")
def analysis(group_dir):
    g = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=5, processes=False,
                            n_workers=1, n_permutations=200)
    g.run()
    yield g
    g.close()


def test_model_statistics_follow_the_seed(analysis):
    """The statistics are the subjects' Fisher z maps' (the same flips, from the seed
    maps), in report(), and recomputed when the seed moves."""
    res = analysis.result
    ref = S.group_inference(G.fisher_z(res.r.values),
                            np.asarray(analysis.subject_list().mask.dataobj).astype(bool),
                            n_permutations=200)
    np.testing.assert_array_equal(res.inference.logp_fwe, ref.logp_fwe)
    assert res.inference.fwe_t_threshold == ref.fwe_t_threshold
    report = analysis.report()
    assert report["df"] == 4 and report["n_permutations"] == 200
    assert report["fdr_t_threshold"] == ref.fdr_t_threshold
    assert report["n_voxels_fdr"] == ref.n_voxels_fdr
    assert report["n_voxels_fwe"] == ref.n_voxels_fwe == 0  # 5 subjects: 2/32 at best
    assert report["fwe_t_threshold"] == pytest.approx(ref.fwe_t_threshold)
    assert "df 4" in analysis.summary() and "FDR q < 0.05" in analysis.summary()
    json.dumps(report, default=str)
    # the display correction: no new run, other voxels shown
    before = analysis.result
    analysis.correction = "fdr"
    shown = analysis.shown_t_map().values
    assert np.isfinite(shown).sum() == ref.n_voxels_fdr and analysis.result is before
    analysis.correction = "uncorrected"
    # the seed moves: new maps, new statistics
    old = res.inference.h0_max_t
    analysis.seed_mm = (-40.0, -70.0, 36.0)
    new = analysis.run()
    assert new.seed_mm == (-40.0, -70.0, 36.0)
    again = S.group_inference(G.fisher_z(new.r.values), n_permutations=200,
                              cluster_forming_p=None)
    np.testing.assert_array_equal(new.inference.h0_max_t, again.h0_max_t)
    assert not np.array_equal(new.inference.h0_max_t, old)
    analysis.seed_mm = G.PCC_MM
    analysis.run()


def _cli(capsys, *argv):
    from analysis.cli import main

    code = main(list(map(str, argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_and_out_dir(group_dir, tmp_path, capsys, analysis):
    out_dir = tmp_path / "results"
    code, out, err = _cli(capsys, "group", "--seed", 0, -52, 18, "--data", group_dir,
                          "--n-subjects", 5, "--threads", "--workers", 1, "--json",
                          "--n-permutations", 200, "--out-dir", out_dir)
    assert code == 0, err
    payload = json.loads(out)
    res = analysis.result
    inf = res.inference
    assert payload["df"] == 4
    assert payload["fwe_t_threshold"] == pytest.approx(inf.fwe_t_threshold)
    assert payload["n_voxels_fwe"] == inf.n_voxels_fwe
    assert payload["fdr_t_threshold"] == pytest.approx(inf.fdr_t_threshold)
    assert payload["n_voxels_fdr"] == inf.n_voxels_fdr
    assert payload["n_permutations"] == 200
    names = list(res.r.subject.values)
    assert sorted(p.name for p in (out_dir / "subjects").iterdir()) == sorted(
        f"{n}_fisher_z.nii.gz" for n in names)
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "group_logp_fwe.nii.gz", "group_t.nii.gz", "subjects"]
    mask_img = analysis.subject_list().mask
    mask = np.asarray(mask_img.dataobj).astype(bool)
    for i, name in enumerate(names):
        img = nib.load(out_dir / "subjects" / f"{name}_fisher_z.nii.gz")
        np.testing.assert_allclose(img.affine, mask_img.affine)
        np.testing.assert_allclose(np.asarray(img.dataobj)[mask],
                                   np.arctanh(res.r.values[i]).astype(np.float32), rtol=1e-6)
        assert not np.asarray(img.dataobj)[~mask].any()
    t_img = nib.load(out_dir / "group_t.nii.gz")
    np.testing.assert_allclose(np.asarray(t_img.dataobj)[mask], res.t.astype(np.float32),
                               rtol=1e-5)
    # -log10 FWE p: nilearn's permuted_ols with the same flips on the same Fisher z
    ref = _permuted_ols(np.arctanh(res.r.values), 200, S.RANDOM_STATE)
    logp = np.asarray(nib.load(out_dir / "group_logp_fwe.nii.gz").dataobj)[mask]
    np.testing.assert_allclose(logp, ref["logp_max_t"][0].astype(np.float32), rtol=1e-6)
    assert payload["fwe_t_threshold"] == pytest.approx(np.sort(ref["h0_max_t"][0])[189])

    # again into the same folder: the regular files are replaced
    code, out, err = _cli(capsys, "group", "--seed", 0, -52, 18, "--data", group_dir,
                          "--n-subjects", 5, "--threads", "--workers", 1,
                          "--n-permutations", 50, "--out-dir", out_dir)
    assert code == 0, err
    assert "FWE p < 0.05" in out and "written: 7 maps" in out


@pytest.mark.parametrize("value", ["-1", "100001", "nan", "ten"])
def test_cli_refuses_bad_n_permutations(group_dir, capsys, value):
    code, _, err = _cli(capsys, "group", "--seed", 0, -52, 18, "--data", group_dir,
                        "--n-permutations", value)
    assert code == 2 and "--n-permutations" in err and len(err.strip().splitlines()) == 1


def test_cli_out_dir_refuses_what_it_must_not_replace(group_dir, tmp_path, capsys):
    base = ["group", "--seed", 0, -52, 18, "--data", group_dir, "--n-subjects", 3,
            "--threads", "--workers", 1]
    a_file = tmp_path / "results.txt"
    a_file.write_text("the user's file")
    code, _, err = _cli(capsys, *base, "--out-dir", a_file)
    assert code == 2 and "--out-dir" in err and "not a folder" in err
    assert a_file.read_text() == "the user's file"

    code, _, err = _cli(capsys, *base, "--out-dir", tmp_path / "missing" / "out")
    assert code == 2 and "does not exist" in err and not (tmp_path / "missing").exists()

    out_dir = tmp_path / "out"
    (out_dir / "group_t.nii.gz").mkdir(parents=True)
    (out_dir / "group_t.nii.gz" / "keep.txt").write_text("keep")
    code, _, err = _cli(capsys, *base, "--out-dir", out_dir)
    assert code == 2 and "group_t.nii.gz" in err and "directory" in err
    assert (out_dir / "group_t.nii.gz" / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in out_dir.iterdir()) == ["group_t.nii.gz"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "subjects").write_text("a file named subjects")
    code, _, err = _cli(capsys, *base, "--out-dir", other)
    assert code == 2 and "subjects" in err and "not a folder" in err
    assert (other / "subjects").read_text() == "a file named subjects"

    linked = tmp_path / "linked"
    (linked / "subjects").mkdir(parents=True)
    (linked / "group_logp_fwe.nii.gz").symlink_to(a_file)
    code, _, err = _cli(capsys, *base, "--out-dir", linked)
    assert code == 2 and "symbolic link" in err
    assert a_file.read_text() == "the user's file"
    assert list((linked / "subjects").iterdir()) == []

    code, _, err = _cli(capsys, *base, "--out-dir", tmp_path / "x", "--n-permutations", 0)
    assert code == 2 and "--n-permutations" in err and not (tmp_path / "x").exists()

    code, _, err = _cli(capsys, *base, "--out-dir", tmp_path, "--out",
                        tmp_path / "group_t.nii.gz")
    assert code == 2 and "same file" in err


def test_out_dir_refuses_participant_names_that_are_not_file_names(tmp_path):
    from analysis.commands.group import out_dir_targets

    targets = out_dir_targets(tmp_path, ["sub-01", "sub-02"])
    assert [p.name for _, _, p in targets] == [
        "group_t.nii.gz", "group_logp_fwe.nii.gz", "sub-01_fisher_z.nii.gz",
        "sub-02_fisher_z.nii.gz"]
    for bad in ("../evil", "a/b", "..", ""):
        with pytest.raises(DataError, match="not a plain file name"):
            out_dir_targets(tmp_path, [bad])
    with pytest.raises(DataError, match="two subjects are named"):
        out_dir_targets(tmp_path, ["bold", "bold"])
