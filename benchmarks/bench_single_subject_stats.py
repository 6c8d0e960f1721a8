"""Single-subject statistics (issue 17): the connectivity p map per new seed, and the
encoding permutation test per permutation, each beside its reference in one run.

Connectivity (``full``: 168 volumes, ~29k brain voxels), on one cleaned subject:

* once per cleaning: the cleaning operator (nilearn's ``signal.clean`` of the identity)
  and every voxel's band spectrum (one FFT of the brain matrix);
* per new seed: the effective-dof p map and Benjamini-Hochberg FDR on the cached
  spectra, alone and with the seed map (the sphere mean and the product), and the naive
  p map for comparison; through ``SeedConnectivity`` (seed move -> p volume);
* the reference: Dutilleul's formula with explicit ``n_volumes x n_volumes`` covariance
  matrices, a loop over voxels (timed on a few hundred, scaled to the brain), and the
  largest difference of the fast n_eff from it.

Encoding (Miyawaki-like, ``full``: 2,860 samples), at alpha 100, 10 folds:

* one permutation refitted with the fast engine (one pass over the responses, the
  stimuli's small decompositions) vs the seed's scikit-learn loop (``Ridge`` per fold,
  ``r2_score``) on the same permuted responses; their ratio and largest difference;
  100 permutations with p and FDR.

BLAS runs on one thread for every path (fair, and on 2 shared cores OpenBLAS threads
mostly contend).
"""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np


def run(bench) -> None:
    from threadpoolctl import threadpool_limits

    import analysis.encoding.engine  # noqa: F401 - load every BLAS library before limiting them

    warnings.filterwarnings("ignore")
    with threadpool_limits(1):
        connectivity(bench)
        encoding(bench)


def connectivity(bench) -> None:
    import nibabel as nib

    from analysis import connectivity as C
    from analysis.connectivity import stats as S
    from analysis.datasets import development as dev

    data_dir = bench.data_dir("connectivity")
    files = dev.subject_files(data_dir, subject=0)
    subject = C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])
    settings = C.CleaningSettings(confound_columns=tuple(subject.confound_names))
    data = C.clean_data(subject, settings)
    bench.row("brain voxels x volumes", f"{data.n_voxels} x {data.n_volumes}", "")

    op = S.cleaning_operator(subject, settings, data.n_volumes)
    bench.time("once per cleaning: cleaning operator (signal.clean of the identity)",
               lambda: S.cleaning_operator(subject, settings, data.n_volumes), repeat=3)
    bench.time("once per cleaning: voxel band spectra (FFT, band matrices)",
               lambda: S.voxel_spectra(op, data.brain), repeat=3)
    spectra = S.voxel_spectra(op, data.brain)

    ijk = np.argwhere(data.mask)[:: max(1, int(data.mask.sum()) // 200)]
    seeds = [tuple(v) for v in nib.affines.apply_affine(data.affine, ijk)]
    maps = [C.seed_correlation(data, s, C.RADIUS_MM) for s in seeds[:40]]
    cycle = itertools.cycle(maps)

    def p_map():
        m = next(cycle)
        S.seed_statistics(m.r, m.seed_signal, spectra)

    def naive():
        m = next(cycle)
        S.seed_statistics(m.r, m.seed_signal, p_method="naive")

    where = itertools.cycle(seeds)

    def seed_and_p():
        m = C.seed_correlation(data, next(where), C.RADIUS_MM)
        S.seed_statistics(m.r, m.seed_signal, spectra)

    bench.time("new seed: effective-dof p map + FDR (cached spectra)", p_map, repeat=21,
               number=3, warmup=2)
    bench.time("new seed: naive p map + FDR", naive, repeat=21, number=3, warmup=2)
    bench.time("new seed: seed map + effective-dof p map + FDR", seed_and_p, repeat=21,
               number=3, warmup=2)
    bench.row("  target", "< 100 ms per new seed (interactive budget 1 s)", "")

    model = C.SeedConnectivity(data_dir=str(data_dir))
    model.seed_stats()          # cleaning and spectra cached

    def model_move():
        model.seed_mm = next(where)
        model.seed_stats(), model.p_map(), model.stats_summary()

    bench.time("via SeedConnectivity: seed move -> p stats, -log10 p volume, summary",
               model_move, repeat=11, number=3, warmup=1)

    # the reference: Dutilleul's formula, explicit covariance matrices, one voxel at a time
    model_ = spectra.model
    f, _ = S.fourier_basis(model_.n_volumes)
    lc = model_.operator
    m0 = maps[0]
    theta_seed = spectra.seed_spectrum(m0.seed_signal)
    n_ref = 100 if bench.quick else 300

    def cov(theta):
        return lc @ (f * theta[model_.band]) @ f.T @ lc.T

    def loop():
        sy = cov(theta_seed)
        return np.array([1 + np.trace(sx) * np.trace(sy) / np.sum(sx * sy)
                         for sx in (cov(spectra.theta[:, v]) for v in range(n_ref))])

    start = time.perf_counter()
    ref = loop()
    per_voxel = (time.perf_counter() - start) / n_ref
    bench.row(f"reference: Dutilleul loop, explicit covariances, {data.n_voxels} voxels",
              per_voxel * data.n_voxels, "s", f"timed on {n_ref} voxels, scaled")
    fast = model_.effective_n(spectra.theta[:, :n_ref], theta_seed)
    bench.row("max |n_eff fast - loop| / n_eff", float(np.max(np.abs(fast - np.clip(
        ref, 3, model_.n_volumes)) / fast)), "")
    bench.ratio("effective-dof p map vs the Dutilleul loop",
                f"reference: Dutilleul loop, explicit covariances, {data.n_voxels} voxels",
                "new seed: effective-dof p map + FDR (cached spectra)")
    st = S.seed_statistics(m0.r, m0.seed_signal, spectra)
    bench.row("median n_eff (of n_volumes)", f"{np.median(st.n_eff):.1f} of {data.n_volumes}", "")


def encoding(bench) -> None:
    from analysis.datasets import miyawaki
    from analysis.encoding.engine import RidgeCV, make_folds
    from analysis.encoding import permutation as P

    data_dir = bench.data_dir("encoding")
    y, x, runs, _ = miyawaki.load(data_dir).lagged(2)
    y = y.astype(np.float64)
    bench.row("encoding samples x voxels", f"{y.shape[0]}x{y.shape[1]}", "")
    folds = make_folds(len(x), "kfold", 10)
    alpha = 100.0
    eng = RidgeCV(x, y, folds)
    rows = P.permuted_rows(runs, 40, "shift", random_state=0)
    cycle = itertools.cycle(rows)
    bench.time("one permutation, fast engine (10 folds)",
               lambda: P.permuted_engine(eng, x, y, next(cycle)).mean_r2(alpha), repeat=9,
               warmup=1)
    # what depends on the stimuli only (the same for every permutation): the engine on
    # one voxel
    one = y[:, :1]
    bench.time("  of which the stimuli's decompositions (engine on 1 voxel)",
               lambda: P.permuted_engine(RidgeCV(x, one, folds, full_fit=False), x, one,
                                         next(cycle)).mean_r2(alpha), repeat=9)
    ref_rows = iter(rows)
    bench.time("one permutation, seed's sklearn Ridge loop (10 folds)",
               lambda: P.reference_null(x, y, folds, alpha, next(ref_rows)[None]),
               repeat=1 if bench.quick else 3)
    bench.ratio("permutation: sklearn loop / fast engine",
                "one permutation, seed's sklearn Ridge loop (10 folds)",
                "one permutation, fast engine (10 folds)")
    fast = P.permutation_null(eng, x, y, alpha, rows[:2])
    ref = P.reference_null(x, y, folds, alpha, rows[:2])
    bench.row("max |null R2 fast - sklearn| (2 permutations)", float(np.abs(fast - ref).max()),
              "", "test bound 1e-8")
    n = 20 if bench.quick else 100
    start = time.perf_counter()
    res = P.permutation_test(eng, x, y, runs, alpha, n, random_state=1)
    bench.row(f"{n} permutations + p + FDR (fast engine)",
              time.perf_counter() - start, "s", f"{res.n_significant} voxels kept at q 0.05")
