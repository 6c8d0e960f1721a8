"""``fmri-explorer encoding``: voxel-wise ridge R^2 (the Miyawaki seed) from the command line.

The pipeline is the seed's, step for step: ``MultiNiftiMasker(mask_img=mask,
detrend=True, standardize="zscore_sample")`` on the 20 random-image runs, the
first ``lag`` volumes of each run and the last ``lag`` images dropped, stimuli
reshaped in Fortran order, ``Ridge(alpha)`` scored with ``r2_score`` per fold
of an unshuffled ``KFold(n_folds)`` (or leave-one-run-out), averaged over
folds (negatives kept).

``--n-permutations N`` adds a permutation test of every voxel's R^2
(:mod:`analysis.encoding.permutation`): each run's responses circularly shifted in time
(``--permutation-scheme runs``: whole runs exchanged), the same ridge refitted with the
fast engine, ``p = (#{null >= R^2} + 1) / (N + 1)`` per voxel, and
Benjamini-Hochberg across voxels at ``--fdr-q``; ``--json`` then has
``n_permutations``, ``permutation_scheme``, ``fdr_q``, ``fdr_r2_threshold`` (the
smallest R^2 kept; null when none is), ``n_voxels_fdr``, ``smallest_p`` and
``p_per_voxel`` (mask order).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import jobs
from ..config import SIZES
from ..encoding.engine import CV_SCHEMES, check_alpha
from ..errors import DataError
from ..progress import console_progress
from ..reporting import cli as reporting
from . import print_json
from .validate import check_outputs, float_range, int_range

#: The option ranges (the analysis' own parameter bounds).
MAX_FOLDS = 10000
MAX_LAG = 20


def add_parser(sub):
    p = sub.add_parser(
        "encoding", help="cross-validated ridge R^2 per voxel (Miyawaki 2008)",
        description="Voxel-wise ridge regression from the 10x10 images to every voxel, "
                    "as in nilearn's Miyawaki encoding example; prints the fold-mean R^2.")
    p.add_argument("--data", type=Path, metavar="DIR", default=None,
                   help="nilearn data_dir holding miyawaki2008/ (written by "
                        "'fmri-explorer data encoding' or the real download); "
                        "default: the synthetic dataset of --size")
    p.add_argument("--size", choices=SIZES, default=None,
                   help="synthetic size when --data is not given (default $FMRI_EXPLORER_SIZE or full)")
    p.add_argument("--alpha", type=float_range(0.0, None, lo_open=True,
                                               message="alpha must be a positive number"),
                   default=100.0, metavar="A",
                   help="ridge alpha (default 100, the seed's)")
    p.add_argument("--n-folds", type=int_range(
                       2, MAX_FOLDS, message="n_folds must be between 2 and the number of "
                                             f"samples (at most {MAX_FOLDS})"),
                   default=10, metavar="K",
                   help="KFold folds (default 10, the seed's)")
    p.add_argument("--cv", choices=CV_SCHEMES, default="kfold",
                   help="kfold (unshuffled, as the seed) or run (leave one run out)")
    p.add_argument("--lag", type=int_range(
                       0, MAX_LAG, message=f"lag must be a whole number from 0 to {MAX_LAG}"),
                   default=2, metavar="L",
                   help="volumes between image and response (default 2, the seed's)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--threshold", type=float_range(-1.0, 1.0), default=0.05,
                   help="R^2 threshold for the count of voxels above it (default 0.05)")
    own = p.add_argument_group(
        "your own files", "runs, a mask and one feature table per run (.npy, .csv or .tsv, "
        "header optional: one row per volume, one column per feature); each run masked with "
        "MultiNiftiMasker(detrend=True, standardize='zscore_sample'), its features delayed by "
        "each of --delays volumes (zeros at the run's start, copies side by side)")
    own.add_argument("--func", nargs="+", type=Path, metavar="RUN", default=None,
                     help="4D NIfTI runs (instead of --data)")
    own.add_argument("--mask", type=Path, metavar="MASK", default=None, help="brain mask NIfTI")
    own.add_argument("--stimuli", nargs="+", type=Path, metavar="FEATURES", default=None,
                     help="one feature table per run, in the runs' order")
    own.add_argument("--delays", nargs="+", metavar="D", default=None,
                     type=int_range(0, MAX_LAG, message=f"delays must be whole numbers of "
                                                        f"volumes from 0 to {MAX_LAG}"),
                     help="feature delays in volumes (default 2, the Miyawaki example's lag)")
    own.add_argument("--alphas", nargs="+", metavar="A", default=None,
                     type=float_range(0.0, None, lo_open=True,
                                      message="alphas must be positive numbers"),
                     help="also find each voxel's best alpha among these (best_alpha_per_voxel)")
    from ..encoding.permutation import FDR_Q, MAX_PERMUTATIONS, MIN_SHIFT, SCHEMES

    perm = p.add_argument_group(
        "permutation test", "each voxel's R^2 against a null that keeps the responses' "
        "autocorrelation: the responses shifted in time within each run (or whole runs "
        "exchanged), the same ridge refitted; p per voxel, FDR across voxels")
    perm.add_argument("--n-permutations", type=int_range(0, MAX_PERMUTATIONS), default=0,
                      metavar="N", help=f"permutations, 0 to {MAX_PERMUTATIONS:,} "
                                        f"(default 0: no test); the smallest p is 1/(N+1)")
    perm.add_argument("--permutation-scheme", choices=SCHEMES, default=SCHEMES[0],
                      help=f"shift (default): each run's responses rotated by its own random "
                           f"offset of at least {MIN_SHIFT} samples; runs: whole runs of the "
                           f"same length exchanged")
    perm.add_argument("--random-state", type=int_range(0, 2 ** 32 - 1), default=0,
                      metavar="S", help="seed of the permutations (default 0)")
    perm.add_argument("--fdr-q", type=float_range(0.0, 1.0, lo_open=True, hi_open=True),
                      default=FDR_Q, metavar="Q",
                      help=f"Benjamini-Hochberg false discovery rate across voxels "
                           f"(default {FDR_Q:g})")
    reporting.add_options(p, "native: Miyawaki's subject space and your own files; clusters: "
                             "R^2 above --threshold, one-sided")
    p.add_argument("--json", action="store_true", help="print JSON (r2_per_voxel in mask order)")
    p.add_argument("--out", type=Path, metavar="r2_map.nii.gz", default=None,
                   help="write the fold-mean R^2 map (zero outside the mask)")
    return p


def run(args) -> int:
    from ..encoding import EncodingAnalysis
    from ..volumes import unmask

    check_outputs(("--out", args.out))  # a bad --out fails before any computation
    reporting.check_options(args, args.threshold)
    alpha = check_alpha(args.alpha)
    if args.func is not None or args.stimuli is not None or args.mask is not None:
        return run_own_files(args, alpha)
    for flag in ("delays", "alphas"):
        if getattr(args, flag) is not None:
            raise DataError(f"--{flag} goes with your own files (--func, --mask, --stimuli)")
    if args.data is not None and not Path(args.data).exists():
        raise DataError("folder not found", args.data)
    if args.lag < 0:
        raise DataError(f"lag must be 0 or more, not {args.lag}")
    if args.cv == "kfold" and args.n_folds < 2:
        raise DataError(f"n_folds must be between 2 and the number of samples, not {args.n_folds}")
    params = dict(alpha=alpha, cv=args.cv, lag=args.lag, dtype=args.dtype,
                  threshold=args.threshold)
    if args.cv == "kfold":
        params["n_folds"] = args.n_folds
    if args.size:
        params["size"] = args.size
    if args.data is not None:
        params["data_dir"] = str(args.data)
    try:
        enc = EncodingAnalysis(**params)
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(str(exc)) from None
    bar = None if args.json or not sys.stderr.isatty() else console_progress("decomposing")
    # the heavy step as a job (analysis/jobs.py): the bar shows it, Ctrl-C cancels it
    n_folds = jobs.run(lambda job: enc.engine(progress=job.progress), name="decomposing",
                       progress=bar).n_folds
    r2 = enc.mean_r2().values.astype(np.float64)
    test = None
    if args.n_permutations:
        from ..encoding.permutation import analysis_permutation_test

        test = jobs.run(lambda job: analysis_permutation_test(
            enc, args.n_permutations, args.permutation_scheme, args.random_state, args.fdr_q,
            progress=job.progress, cancel=job.cancel_event), name="permutations",
            progress=None if args.json or not sys.stderr.isatty()
            else console_progress("permutations"))
    if args.out is not None:
        from ..atomic import save_nifti

        save_nifti(unmask(r2, enc.data().mask_img,   # on the data's own grid
                          dtype=np.float32 if args.dtype == "float32" else np.float64),
                   args.out)
    mni, clusters = _clusters(args, r2, enc.data().mask_img)
    if args.json:
        print_json({
            "alpha": alpha, "n_folds": n_folds, "cv": args.cv, "lag": args.lag,
            "n_samples": enc.engine().n_samples, "n_voxels": int(r2.size),
            "mean_r2": float(r2.mean()), "threshold": args.threshold,
            "n_above_threshold": int((r2 > args.threshold).sum()),
            "data": enc.data().source, "out": None if args.out is None else str(args.out),
            "r2_per_voxel": r2.tolist(), **reporting.payload(args, clusters, mni),
            **_permutation_payload(test),
        })
    else:
        print(enc.summary())
        _print_permutations(test)
        reporting.print_clusters(clusters)
        if args.out is not None:
            print(f"wrote {args.out}")
    return 0


def run_own_files(args, alpha: float) -> int:
    """``encoding --func RUN... --mask MASK --stimuli FEATURES...`` (see the argument group)."""
    from ..encoding.user import DEFAULT_DELAYS, best_alphas, engine, load_user_encoding
    from ..volumes import unmask

    missing = [flag for flag, value in (("--func", args.func), ("--mask", args.mask),
                                        ("--stimuli", args.stimuli)) if value is None]
    if missing:
        raise DataError(f"your own files need --func, --mask and --stimuli: {', '.join(missing)} "
                        f"missing")
    if args.data is not None:
        raise DataError("--data and --func are alternatives: give one")
    delays = tuple(args.delays) if args.delays is not None else DEFAULT_DELAYS
    bar = None if args.json or not sys.stderr.isatty() else console_progress("encoding")
    dtype = np.float32 if args.dtype == "float32" else np.float64

    def work(job):
        data = load_user_encoding(args.func, args.mask, args.stimuli, delays,
                                  progress=lambda f, m="": job.progress(0.5 * f, m))
        ridge = engine(data, cv=args.cv, n_folds=args.n_folds, dtype=dtype,
                       progress=lambda f, m="": job.progress(0.5 + 0.5 * f, m))
        return data, ridge

    data, ridge = jobs.run(work, name="encoding", progress=bar)
    r2 = ridge.mean_r2(alpha).astype(np.float64)
    test = None
    if args.n_permutations:
        from ..encoding.permutation import permutation_test

        test = jobs.run(lambda job: permutation_test(
            ridge, data.x, data.y, data.runs, alpha, args.n_permutations,
            args.permutation_scheme, random_state=args.random_state, fdr_q=args.fdr_q,
            progress=job.progress, cancel=job.cancel_event), name="permutations",
            progress=None if args.json or not sys.stderr.isatty()
            else console_progress("permutations"))
    if args.out is not None:
        from ..atomic import save_nifti

        save_nifti(unmask(r2, data.mask_img, dtype=dtype), args.out)
    payload = {
        "alpha": alpha, "n_folds": ridge.n_folds, "cv": args.cv, "delays": list(data.delays),
        "n_runs": len(args.func), "n_samples": data.n_samples, "n_voxels": data.n_voxels,
        "n_features": data.n_features, "mean_r2": float(r2.mean()),
        "threshold": args.threshold, "n_above_threshold": int((r2 > args.threshold).sum()),
        "out": None if args.out is None else str(args.out), "r2_per_voxel": r2.tolist(),
        **_permutation_payload(test)}
    mni, clusters = _clusters(args, r2, data.mask_img)
    payload.update(reporting.payload(args, clusters, mni))
    if args.alphas is not None:
        best, best_r2 = best_alphas(ridge, args.alphas)
        payload.update(alphas=[float(a) for a in args.alphas],
                       best_alpha_per_voxel=best.tolist(), best_r2_per_voxel=best_r2.tolist())
    if args.json:
        print_json(payload)
    else:
        print(f"alpha={alpha:g} folds={ridge.n_folds} delays={list(data.delays)} "
              f"features={data.n_features} mean R2={r2.mean():.3f} voxels above "
              f"{args.threshold:g}: {payload['n_above_threshold']}")
        _print_permutations(test)
        reporting.print_clusters(clusters)
        if args.out is not None:
            print(f"wrote {args.out}")
    return 0


def _clusters(args, r2, mask_img):
    """``(in MNI space, cluster table or None)`` of the R^2 map: one-sided, above
    ``--threshold``; Miyawaki's data and the user's files are native unless ``--space mni``."""
    from ..volumes import unmask

    mni = reporting.in_mni(args, False)
    if not args.clusters:
        return mni, None
    img = unmask(r2, mask_img, dtype=np.float64)   # 0 outside the mask, on the data's grid
    return mni, reporting.clusters(args, np.asarray(img.dataobj), img.affine, args.threshold,
                                   False, mni)


def _permutation_payload(test) -> dict:
    """The JSON keys of a permutation test (none without one)."""
    if test is None:
        return {"n_permutations": 0}
    return {**test.summary(), "p_per_voxel": test.p.tolist()}


def _print_permutations(test) -> None:
    if test is None:
        return
    kept = (f"{test.n_significant:,} voxels, R2 >= {test.r2_threshold:.4f}"
            if test.r2_threshold is not None else "no voxel")
    print(f"permutation test ({test.n_permutations:,} permutations, {test.scheme}): "
          f"FDR q < {test.fdr_q:g}: {kept}; smallest p {test.smallest_p:.3g}")
