"""``fmri-explorer connectivity``: the seed example's correlation map from the command line.

    fmri-explorer connectivity [--data DIR [--subject N] | --func F [--confounds C]
        [--mask M] [--t-r T]] --seed X Y Z [--radius 8] [--smoothing 6]
        [--high-pass 0.01] [--low-pass 0.1] [--no-confounds] [preprocessing ...]
        [--fisher-z] [--p-method {effective-dof,naive}] [--fdr-q Q] [--json]
        [--out map.nii.gz] [--out-p logp.nii.gz]

Defaults are the seed's: an 8 mm unsmoothed sphere, a brain masker with a
computed background mask (``compute_background_mask``, as ``NiftiMasker``),
the preprocessing of :class:`analysis.preprocessing.Preprocessing` (6 mm
smoothing, detrend, ``zscore_sample``, standardised confounds, band 0.01-0.1 Hz),
``t_r`` from the data; on the same files the map equals the seed's code. The
preprocessing options are made from that parameter group (defaults, bounds and
help written there: ``--help`` lists them). Without ``--data`` or ``--func``:
the synthetic dataset.

Statistics (:mod:`analysis.connectivity.stats`): a two-sided p per voxel for r, by
default with the effective degrees of freedom of the cleaned series (Dutilleul's
modified t-test; ``--p-method naive``: ``n - 2``, the volumes taken as independent),
Benjamini-Hochberg FDR across voxels at ``--fdr-q`` (0.05); ``--json`` adds
``p_method``, ``fdr_q``, ``n_eff`` (median over voxels), ``n_eff_range``,
``fdr_p_threshold``, ``fdr_r_threshold`` (smallest surviving ``|r|``, null when none
survives) and ``n_voxels_fdr``; ``--out-p`` writes ``-log10 p``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import jobs
from ..errors import DataError
from ..preprocessing import CLI_FLAGS, SETTINGS, Preprocessing
from ..reporting import cli as reporting
from . import print_json
from .options import add_param_options, param_values
from .validate import (check_band, check_outputs, finite_float, float_range, int_range,
                       non_negative_int, positive_float)


def add_parser(sub):
    p = sub.add_parser(
        "connectivity", help="seed-to-voxel correlation map (the seed example's)",
        description="Seed-to-voxel correlation as nilearn's seed example: a sphere seed, "
                    "detrend, band-pass, confound regression, smoothing; r (or Fisher z) map, "
                    "peaks; optional NIfTI output.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, metavar="DIR",
                     help="nilearn data_dir with development_fmri (fetch_development_fmri layout; "
                          "default: the synthetic dataset)")
    src.add_argument("--func", type=Path, metavar="F", help="your own 4D NIfTI")
    p.add_argument("--subject", type=non_negative_int, default=0, metavar="N",
                   help="subject of --data (0 = first adult; default 0)")
    p.add_argument("--confounds", type=Path, metavar="C",
                   help="confounds TSV for --func (fMRIPrep style; n/a allowed)")
    p.add_argument("--mask", type=Path, metavar="M",
                   help="brain mask (default: computed as the seed's NiftiMasker does)")
    p.add_argument("--t-r", type=positive_float, metavar="T",
                   help="repetition time in s, above 0 (default: header)")
    p.add_argument("--seed", type=finite_float, nargs=3, required=True, metavar=("X", "Y", "Z"),
                   help="seed centre in MNI mm, e.g. 0 -52 18 (the PCC)")
    p.add_argument("--radius", type=positive_float, default=8.0,
                   help="sphere radius in mm, above 0 (default 8)")
    add_param_options(p.add_argument_group("preprocessing (as the Connectivity tab)"),
                      Preprocessing, flags=CLI_FLAGS)
    p.add_argument("--fisher-z", action="store_true", help="Fisher z = arctanh(r) for --out")
    p.add_argument("--threshold", type=finite_float, default=0.5,
                   help="peaks above this r (default 0.5)")
    p.add_argument("--n-peaks", type=int_range(0, 10000), default=10,
                   help="peaks listed (default 10)")
    from ..connectivity.stats import FDR_Q, P_METHODS

    stats = p.add_argument_group("statistics", "p of each voxel's r and FDR across voxels")
    stats.add_argument("--p-method", choices=P_METHODS, default=P_METHODS[0],
                       help="effective-dof (default): Dutilleul's modified t-test with the "
                            "degrees of freedom the band-passed, cleaned series have; naive: "
                            "n - 2, the volumes taken as independent (too many false "
                            "positives; for comparison)")
    stats.add_argument("--fdr-q", type=float_range(0.0, 1.0, lo_open=True, hi_open=True),
                       default=FDR_Q, metavar="Q",
                       help=f"Benjamini-Hochberg false discovery rate across voxels "
                            f"(default {FDR_Q:g})")
    stats.add_argument("--out-p", type=Path, metavar="LOGP.nii.gz",
                       help="write -log10 p on the data's grid (0 outside the brain)")
    reporting.add_options(p, "mni for --data and the synthetic data, native for --func; "
                             "clusters: |r| above --threshold")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--out", type=Path, metavar="MAP.nii.gz", help="write the r (or z) map")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _subject(args):
    from .. import connectivity as conn

    if args.func is not None:
        if args.subject:
            raise DataError("--subject goes with --data, not --func")
        return conn.load_subject(args.func, confounds=args.confounds, mask=args.mask,
                                 t_r=args.t_r), None
    if args.confounds is not None:
        raise DataError("--confounds goes with --func (a dataset has its own)")
    from ..datasets import development, ensure_synthetic

    data_dir = args.data if args.data is not None else ensure_synthetic("connectivity")
    files = development.subject_files(data_dir, subject=args.subject)
    subject = conn.load_subject(files["func"], confounds=files["confounds"], mask=args.mask,
                                t_r=args.t_r or files["t_r"], name=files["participant_id"])
    return subject, files


def run(args) -> int:
    from .. import connectivity as conn
    from ..progress import console_progress

    # a bad --out or --out-p fails before any computation
    check_outputs(("--out", args.out), ("--out-p", args.out_p))
    reporting.check_options(args, args.threshold)
    preprocessing = Preprocessing(**param_values(args, conn.PREPROCESSING))
    band = preprocessing.cleaning_settings()
    check_band(band.high_pass, band.low_pass, args.t_r)
    subject, files = _subject(args)
    check_band(band.high_pass, band.low_pass, subject.t_r)  # the header's t_r too
    settings = preprocessing.cleaning_settings(subject.t_r, subject.confound_names).check()
    progress = None if args.quiet or not sys.stderr.isatty() else console_progress("cleaning")
    # a job (analysis/jobs.py): the bar shows its progress, Ctrl-C cancels it
    data = jobs.run(lambda job: conn.clean_data(subject, settings, progress=job.progress),
                    name="cleaning", progress=progress)
    result = conn.seed_correlation(data, args.seed, args.radius)
    r_map = conn.to_volume(data, result.r, "r")
    peaks = conn.find_peaks(r_map, args.threshold, args.n_peaks).rename(columns={"value": "r"})
    peaks["fisher_z"] = np.arctanh(peaks["r"].to_numpy())
    peaks = conn.label_peaks(peaks, files["truth"] if files else None)
    mni = reporting.in_mni(args, args.func is None)   # the development data: MNI152
    peaks["region"] = reporting.regions(args, peaks[["x", "y", "z"]].to_numpy(), mni)
    r_volume = np.full(data.mask.shape, np.nan)
    r_volume[data.mask] = result.r                     # the clusters of r, on the data's grid
    clusters = reporting.clusters(args, r_volume, data.affine, args.threshold, True, mni)
    from ..connectivity.stats import seed_statistics, voxel_spectra, cleaning_operator

    spectra = (voxel_spectra(cleaning_operator(subject, settings, data.n_volumes), data.brain)
               if args.p_method == "effective-dof" else None)
    stats = seed_statistics(result.r, result.seed_signal, spectra, args.p_method, args.fdr_q,
                            n_volumes=data.n_volumes)
    out = out_p = None
    if args.out_p is not None:
        from ..atomic import save_nifti
        from ..volumes import unmask

        out_p = save_nifti(unmask(stats.log10_p, (data.mask, data.affine)), args.out_p)
    if args.out is not None:
        from ..atomic import save_nifti
        from ..volumes import unmask

        values = result.z if args.fisher_z else result.r   # on the data's own grid
        out = save_nifti(unmask(values, (data.mask, data.affine)), args.out)
    payload = {
        "seed": list(result.seed_mm), "radius_mm": result.radius_mm,
        "n_seed_voxels": result.n_seed_voxels, "n_voxels": int(result.r.size),
        "r_min": float(result.r.min()), "r_max": float(result.r.max()),
        "z_min": float(np.arctanh(result.r.min())), "z_max": float(np.arctanh(result.r.max())),
        "threshold": args.threshold, "n_above": int((np.abs(result.r) >= args.threshold).sum()),
        "peaks": peaks.to_dict(orient="records"),
        "func": str(subject.func) if subject.func else None,
        "subject": files["participant_id"] if files else None,
        "t_r": subject.t_r, **{name: getattr(settings, name) for name in SETTINGS},
        "confounds": list(settings.confound_columns or []),
        "out": str(out) if out else None, "map": "z" if args.fisher_z else "r",
        **stats.summary(), "out_p": str(out_p) if out_p else None,
        **reporting.payload(args, clusters, mni),
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"seed ({', '.join(f'{v:g}' for v in result.seed_mm)}) r={result.radius_mm:g} mm: "
          f"{result.n_seed_voxels:,} voxels; r in [{payload['r_min']:.2f}, {payload['r_max']:.2f}]; "
          f"{payload['n_above']:,} voxels above {args.threshold:g}")
    kept = (f"{stats.n_significant:,} voxels, |r| >= {stats.r_threshold:.3f}"
            if stats.r_threshold is not None else "no voxel")
    dof = (f"median effective sample size {payload['n_eff']:.1f} of {data.n_volumes} volumes "
           f"(Dutilleul)" if args.p_method == "effective-dof"
           else f"naive: {data.n_volumes - 2} dof")
    print(f"FDR q < {args.fdr_q:g}: {kept}; {dof}")
    if len(peaks):
        print(peaks.round(3).to_string(index=False))
    reporting.print_clusters(clusters)
    for path in (out, out_p):
        if path:
            print(f"wrote {path}")
    return 0
