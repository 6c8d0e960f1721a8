"""Group statistics (issue 17): sign-flip FWE next to nilearn's ``permuted_ols``.

Timed from the subjects' Fisher z maps (the seed maps exist: the Dask step that
makes them is ``bench_group``'s seed move), on the synthetic development data's
brain mask (``full``: MNI 4 mm grid, ~29k voxels), with smooth random subject
maps and a planted effect:

* ours: :func:`analysis.group.stats.group_inference`, 1,000 sign-flipping
  permutations of 20 subjects (the t-test, FDR and the max-|t| null; then also the
  cluster-size null at p < 0.001), and the permutation null alone (the
  ``(1,000 x 20) @ (20 x n_voxels)`` product and a max per row); target under 0.5 s;
* the reference, ``nilearn.mass_univariate.permuted_ols`` (intercept-only,
  ``two_sided_test=True``, ``n_jobs=1``), run with fewer permutations and scaled
  linearly to 1,000 (it does one permutation after the other: its time is
  proportional), with the ratio (target >= 20x); with the same ``random_state``
  both draw the same flips: the largest difference between the two nulls is printed;
* 100 synthetic subjects' uncorrected group t map (one-sample t and p), beside AFNI
  3dGroupInCorr's published 0.3 s per uncorrected map for 100 subjects on 8 cores
  (which includes its seed correlations: ours are the Dask step, so the time of one
  subject's seed map on cleaned data is printed too, x 100 for a serial estimate).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

N_SUBJECTS = 20
N_PERMUTATIONS = 1000
#: permutations of the reference actually run (scaled to N_PERMUTATIONS)
N_REFERENCE = 100
N_REFERENCE_CLUSTER = 20
N_AFNI = 100
AFNI_S = 0.3


def _subject_maps(mask: np.ndarray, n_subjects: int, seed: int = 0) -> np.ndarray:
    """Smooth random Fisher z maps ``(n_subjects, n_voxels)`` with a planted effect."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = mask.shape
    effect = np.zeros(shape)
    centre = np.array(shape) // 2
    effect[tuple(slice(c - 4, c + 4) for c in centre)] = 0.15
    maps = np.empty((n_subjects, int(mask.sum())))
    for i in range(n_subjects):
        vol = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
        maps[i] = (0.2 * vol / vol.std() + effect)[mask]
    return maps


def run(bench) -> None:
    from nilearn.maskers import NiftiMasker
    from nilearn.mass_univariate import permuted_ols

    from analysis import group as G
    from analysis.group import stats as S

    warnings.filterwarnings("ignore")
    bench.row("load average (1 min) at start", round(os.getloadavg()[0], 2), "",
              "2 cores, shared: timings and ratios need an idle machine")
    data_dir = bench.data_dir("connectivity")
    subjects = G.dataset_subjects(data_dir)
    mask_img = subjects.mask
    mask = np.asarray(mask_img.dataobj).astype(bool)
    n_vox = int(mask.sum())
    bench.row("brain mask voxels", n_vox, "", f"grid {'x'.join(map(str, mask.shape))}")
    z = _subject_maps(mask, N_SUBJECTS)
    S.group_inference(z[:, :100], n_permutations=10)          # imports out of the timings
    label = f"{N_SUBJECTS} subjects x {n_vox // 1000}k voxels"

    # ---- ours --------------------------------------------------------------------------
    flips = S.sign_flips(N_SUBJECTS, N_PERMUTATIONS)
    bench.time(f"ours: permutation null, {N_PERMUTATIONS:,} sign flips, {label}",
               lambda: S.permutation_null(z, flips), repeat=5)
    ours = f"ours: t, FDR, FWE ({N_PERMUTATIONS:,} sign flips), {label}"
    result = {}

    def inference():
        result["max_t"] = S.group_inference(z, n_permutations=N_PERMUTATIONS,
                                            cluster_forming_p=None)

    t_ours = bench.time(ours, inference, repeat=5)
    bench.row("  target: under 0.5 s", "met" if t_ours < 0.5 else "NOT met", "")
    ours_cluster = f"ours: ... and cluster-size FWE (p < 0.001), {label}"

    def with_clusters():
        result["cluster"] = S.group_inference(z, mask, n_permutations=N_PERMUTATIONS)

    bench.time(ours_cluster, with_clusters, repeat=3)
    inf = result["cluster"]
    bench.row("  df / FDR |t| / FWE |t| / cluster-size FWE (voxels)",
              f"{inf.df} / {inf.fdr_t_threshold:.2f} / {inf.fwe_t_threshold:.2f} / "
              f"{inf.cluster_size_fwe_threshold}", "",
              f"{inf.n_voxels_fdr:,} FDR voxels, {inf.n_voxels_fwe:,} FWE voxels, "
              f"{inf.n_clusters_fwe} FWE clusters")

    # ---- the reference: nilearn's permuted_ols -------------------------------------------
    design = np.ones((N_SUBJECTS, 1))
    ref = {}

    def reference():
        ref["out"] = permuted_ols(design, z, model_intercept=False, n_perm=N_REFERENCE,
                                  two_sided_test=True, random_state=S.RANDOM_STATE, n_jobs=1)

    t_ref = bench.time(f"permuted_ols, {N_REFERENCE} permutations (timed)", reference,
                       repeat=1)
    scaled_name = f"permuted_ols, {N_PERMUTATIONS:,} permutations (x{N_PERMUTATIONS // N_REFERENCE})"
    bench.row(scaled_name, t_ref * N_PERMUTATIONS / N_REFERENCE, "s",
              f"scaled linearly from {N_REFERENCE} permutations")
    bench.ratio("permuted_ols / ours (max |t| FWE)", scaled_name, ours, target=20)
    same = S.group_inference(z, n_permutations=N_REFERENCE, cluster_forming_p=None)
    bench.row(f"max |null ours - null permuted_ols|, same {N_REFERENCE} flips",
              float(np.abs(same.h0_max_t - ref["out"]["h0_max_t"][0]).max()), "",
              "same max-|t| null")
    bench.row("max |-log10 p FWE ours - permuted_ols|",
              float(np.abs(same.logp_fwe - ref["out"]["logp_max_t"][0]).max()), "")

    masker = NiftiMasker(mask_img).fit()

    def reference_cluster():
        ref["cluster"] = permuted_ols(design, z, model_intercept=False,
                                      n_perm=N_REFERENCE_CLUSTER, two_sided_test=True,
                                      random_state=S.RANDOM_STATE, n_jobs=1, masker=masker,
                                      threshold=S.CLUSTER_FORMING_P)

    t_ref_c = bench.time(f"permuted_ols + cluster size, {N_REFERENCE_CLUSTER} permutations "
                         "(timed)", reference_cluster, repeat=1)
    scaled_c = (f"permuted_ols + cluster size, {N_PERMUTATIONS:,} permutations "
                f"(x{N_PERMUTATIONS // N_REFERENCE_CLUSTER})")
    bench.row(scaled_c, t_ref_c * N_PERMUTATIONS / N_REFERENCE_CLUSTER, "s",
              f"scaled linearly from {N_REFERENCE_CLUSTER} permutations")
    bench.ratio("permuted_ols / ours (with cluster size)", scaled_c, ours_cluster, target=20)
    same_c = S.group_inference(z, mask, n_permutations=N_REFERENCE_CLUSTER)
    bench.row(f"same largest-cluster null, same {N_REFERENCE_CLUSTER} flips",
              bool(np.array_equal(same_c.h0_max_size, ref["cluster"]["h0_max_size"][0])), "")

    # ---- 100 subjects: the uncorrected group map, beside AFNI 3dGroupInCorr ------------
    many = _subject_maps(mask, N_AFNI, seed=1)
    name = f"ours: uncorrected t map (t, p), {N_AFNI} subjects x {n_vox // 1000}k voxels"
    bench.time(name, lambda: S.one_sample_t(many), repeat=5)
    bench.row(f"AFNI 3dGroupInCorr, {N_AFNI} subjects, 8 cores (published)", AFNI_S, "s",
              "its seed correlations included; not measured here")
    bench.ratio(f"AFNI (published) / ours, uncorrected map of {N_AFNI}",
                f"AFNI 3dGroupInCorr, {N_AFNI} subjects, 8 cores (published)", name)
    if not bench.quick:
        from analysis.connectivity import seed_correlation

        model = G.GroupConnectivity(data_dir=str(data_dir))
        start = time.perf_counter()
        cleaned = G.clean_subject(subjects.subjects[0], model.settings(subjects), mask_img)
        bench.row("one subject: load + clean (once per subject)", time.perf_counter() - start,
                  "s")
        one = bench.time("one subject: seed map on cleaned data",
                         lambda: seed_correlation(cleaned, (-40.0, -70.0, 36.0)), repeat=5)
        bench.row(f"{N_AFNI} seed maps, serial estimate (x{N_AFNI})", one * N_AFNI, "s",
                  "the Dask step, spread over the workers: see bench_group")
