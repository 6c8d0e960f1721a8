"""Seed connectivity: a new seed on cached cleaned data vs the seed's whole pipeline.

Rows (``full``: 168 volumes, ~29k brain voxels on the MNI 4 mm grid):

* the development-like dataset: generation (default subjects, and 20 subjects
  for the group benchmark), loading through ``fetch_development_fmri``, reading
  one subject;
* the seed's pipeline (``NiftiSpheresMasker`` + ``NiftiMasker``, smoothing,
  band-pass, confounds; the file as it is, as the seed runs it);
* cleaning for one preprocessing setting: the engine (``clean_data``, both
  matrices) next to nilearn's ``NiftiMasker`` on the same data;
* a new seed on the cached cleaned data (sphere mean + one product), and the
  same through ``SeedConnectivity`` with the volume and peaks the app draws;
* ratios (target: a new seed >= 2,000x faster than the pipeline) and the
  largest difference from the seed's numbers.
"""

from __future__ import annotations

import itertools
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def run(bench) -> None:
    from analysis import connectivity as C
    from analysis.connectivity_reference import reference_seed_map
    from analysis.datasets import development as dev

    warnings.filterwarnings("ignore")
    size = bench.size
    repeat_slow = 1 if bench.quick else 2

    # ---- dataset ----------------------------------------------------------------------
    with tempfile.TemporaryDirectory(prefix="fmri-explorer-bench-conn-") as tmp:
        start = time.perf_counter()
        dev.generate(Path(tmp) / "default", size=size)
        bench.row(f"generate development-like ({size}, "
                  f"{dev.SIZES[size]['n_subjects']} subjects)", time.perf_counter() - start, "s",
                  "target < 15 s (full)")
        if not bench.quick:
            start = time.perf_counter()
            dev.generate(Path(tmp) / "twenty", size=size, n_subjects=20)
            bench.row(f"generate 20 subjects ({size})", time.perf_counter() - start, "s",
                      "for the group benchmark")
    data_dir = bench.data_dir("connectivity")
    bench.time("load: fetch_development_fmri (all subjects, no network)",
               lambda: dev.load(data_dir), repeat=3)
    files = dev.subject_files(data_dir, subject=0)
    import nibabel as nib

    bench.time("load: read one subject's 4D image", lambda: nib.load(files["func"]).get_fdata(),
               repeat=3)

    # ---- the seed's pipeline --------------------------------------------------------------
    seed, radius = C.PCC_MM, C.RADIUS_MM
    bench.time("seed pipeline: spheres + brain masker (float32 file)",
               lambda: reference_seed_map(files["func"], seed, radius,
                                          confounds=files["confounds"], dtype=None),
               repeat=repeat_slow)
    r32, _ = reference_seed_map(files["func"], seed, radius, confounds=files["confounds"],
                                dtype=None)
    r64, masker = reference_seed_map(files["func"], seed, radius, confounds=files["confounds"])

    # ---- cleaning once per setting ----------------------------------------------------------
    subject = C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])
    settings = C.CleaningSettings(confound_columns=tuple(subject.confound_names))
    bench.time("clean: engine (brain + seed domain, float64)",
               lambda: C.clean_data(subject, settings), repeat=repeat_slow)
    from nilearn.maskers import NiftiMasker

    img = nib.load(files["func"])
    conf = subject.confounds.to_numpy()

    def nilearn_masker():
        NiftiMasker(mask_img=subject.mask_img, smoothing_fwhm=6, detrend=True,
                    standardize="zscore_sample", low_pass=0.1, high_pass=0.01,
                    t_r=subject.t_r).fit_transform(img, confounds=conf)

    bench.time("clean: nilearn NiftiMasker (brain only, same settings)", nilearn_masker,
               repeat=repeat_slow)
    bench.ratio("cleaning: nilearn brain masker / engine (both matrices)",
                "clean: nilearn NiftiMasker (brain only, same settings)",
                "clean: engine (brain + seed domain, float64)")

    # ---- a new seed ---------------------------------------------------------------------
    data = C.clean_data(subject, settings)
    fast = C.seed_correlation(data, seed, radius)
    bench.row("max |r_engine - r_seed| (seed on float64 image)", float(np.abs(fast.r - r64).max()),
              "", "test bound 1e-5")
    bench.row("max |r_engine - r_seed| (seed on the float32 file)",
              float(np.abs(fast.r - r32).max()), "", "nilearn's own f32 vs f64 differ as much")
    brain = data.mask
    ijk = np.argwhere(brain)[:: max(1, int(brain.sum()) // 200)]
    seeds = itertools.cycle([tuple(v) for v in nib.affines.apply_affine(data.affine, ijk)])
    bench.time("new seed: sphere mean + one product (cached data)",
               lambda: C.seed_correlation(data, next(seeds), radius), repeat=31, number=5)
    bench.ratio("new seed vs the seed's whole pipeline",
                "seed pipeline: spheres + brain masker (float32 file)",
                "new seed: sphere mean + one product (cached data)", target=2000)
    sc = C.SeedConnectivity(data_dir=str(data_dir))
    sc.ensure()

    def param_move():
        sc.seed_mm = next(seeds)
        sc.r_map(), sc.peaks(), sc.summary()

    bench.time("new seed via SeedConnectivity (+ r volume, peaks, summary)", param_move,
               repeat=21, number=3)
    bench.row("brain voxels x volumes", f"{data.n_voxels} x {data.n_volumes}", "")
