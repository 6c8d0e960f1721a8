"""``fmri-explorer decoding``: the seed's decoding from the command line.

``fmri-explorer decoding [--data DIR | --func F --mask M --labels L [--label-names FILE]]
[--conditions A B ...] [--classifier svc|logistic] [--C 1.0] [--cv kfold|run] [--n-folds K]
[--n-permutations N] [--json] [--out weights.nii.gz [--map-class A]]``
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import jobs
from ..errors import DataError
from ..progress import console_progress
from ..reporting import cli as reporting
from . import print_json
from .validate import check_outputs, float_range, int_range, max_jobs

#: The option ranges (the analysis' own parameter bounds).
C_MAX = 1e5
MAX_FOLDS = 10000
MAX_PERMUTATIONS = 100000


def add_parser(sub):
    p = sub.add_parser(
        "decoding", help="decode conditions from fMRI with a linear classifier (Haxby 2001)",
        description="Linear SVC (or logistic regression) decoding as in nilearn's Haxby "
                    "tutorial: NiftiMasker(mask, standardize=True) on all volumes, the "
                    "conditions selected, cross-validated with unshuffled KFold or "
                    "leave-one-run-out. Without --data or --func, the synthetic dataset.")
    src = p.add_argument_group("data (one of)")
    src.add_argument("--data", type=Path, metavar="DIR",
                     help="nilearn data_dir holding haxby2001/ (synthetic or real); "
                          "uses its ventral-temporal mask")
    src.add_argument("--func", type=Path, metavar="F", help="your 4D NIfTI")
    src.add_argument("--mask", type=Path, metavar="M", help="your mask (same grid as --func)")
    src.add_argument("--labels", type=Path, metavar="L",
                     help="labels: 'labels chunks' header file, or numeric 'label run' columns")
    src.add_argument("--label-names", type=Path, metavar="FILE",
                     help="code-to-name table for numeric labels (lines 'code name' or JSON); "
                          "without one, numeric labels stay their numbers")
    p.add_argument("--conditions", nargs="+", default=None, metavar="A",
                   help="conditions to discriminate, names or numeric codes (default: face "
                        "cat when present, else two non-rest conditions of similar size)")
    p.add_argument("--map-class", metavar="A",
                   help="with more than two conditions: the condition whose map --out "
                        "writes (its decoder against the others; default: the first)")
    p.add_argument("--classifier", choices=["svc", "logistic"], default="svc")
    p.add_argument("--C", type=float_range(0.0, C_MAX, lo_open=True,
                                           message=f"--C must be positive and at most {C_MAX:g}"),
                   default=1.0,
                   help=f"inverse regularisation, above 0 and at most {C_MAX:g} (default 1.0)")
    p.add_argument("--cv", choices=["kfold", "run"], default="run",
                   help="unshuffled KFold or leave-one-run-out (default: run)")
    p.add_argument("--n-folds", type=int_range(2, MAX_FOLDS), default=5, metavar="K",
                   help="KFold folds, 2 to the number of samples (default 5)")
    p.add_argument("--n-permutations", type=int_range(0, MAX_PERMUTATIONS), default=0,
                   metavar="N", help="permutation test with N permutations, at most "
                                     f"{MAX_PERMUTATIONS} (default: none)")
    p.add_argument("--n-jobs", type=int_range(1, max_jobs()), default=min(2, max_jobs()),
                   help=f"threads for permutations, 1 to {max_jobs()} (default 2)")
    p.add_argument("--random-state", type=int_range(0, 2 ** 32 - 1), default=0,
                   help="permutation seed (default 0)")
    p.add_argument("--no-standardize", action="store_true",
                   help="do not z-score voxels (the seed standardises)")
    p.add_argument("--whole-brain", action="store_true",
                   help="with --data: use the whole-brain mask instead of ventral-temporal")
    reporting.add_options(p, "native: Haxby's subject space and your own files",
                          cluster_threshold="with --clusters: |weight| above which the weight "
                                            "map's voxels form clusters (required)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--out", type=Path, metavar="weights.nii.gz",
                   help="write the weight map (train on all samples) as NIfTI")
    return p


def build_analysis(args):
    from ..decoding import DecodingAnalysis

    user = [args.func, args.mask, args.labels]
    if args.data is not None and any(x is not None for x in user):
        raise DataError("give either --data or --func/--mask/--labels, not both")
    params = dict(classifier=args.classifier, C=args.C, cv=args.cv, n_folds=args.n_folds,
                  n_permutations=args.n_permutations, n_jobs=args.n_jobs,
                  random_state=args.random_state, standardize=not args.no_standardize)
    if any(x is not None for x in user):
        missing = [n for n, x in zip(("--func", "--mask", "--labels"), user) if x is None]
        if missing:
            raise DataError(f"user files need {', '.join(missing)} too")
        analysis = DecodingAnalysis.from_files(args.func, args.mask, args.labels,
                                               label_names=args.label_names,
                                               conditions=args.conditions, **params)
    else:
        if args.label_names is not None:
            raise DataError("--label-names goes with --labels")
        analysis = DecodingAnalysis.from_dataset(args.data, conditions=args.conditions,
                                                 **params)
        if args.whole_brain:
            analysis.mask = "whole brain"
    if args.map_class is not None:
        from ..decoding import resolve_conditions

        target = resolve_conditions(analysis.data.labels, [args.map_class])[0]
        if target not in analysis.conditions or len(analysis.conditions) < 3:
            raise DataError(f"--map-class: {args.map_class!r} is not one of more than two "
                            f"--conditions ({' '.join(map(str, analysis.conditions))})")
        analysis.contrast = list(analysis.conditions).index(target)
    return analysis


def check_samples(args, analysis) -> None:
    """``--n-folds`` against the number of samples of the chosen conditions."""
    from ..decoding import select_samples

    if args.cv != "kfold":
        return
    index, _, _ = select_samples(analysis.data.labels, analysis.conditions)
    if args.n_folds > len(index):
        raise DataError(f"--n-folds: {args.n_folds} folds for only {len(index)} samples "
                        f"({' vs '.join(map(str, analysis.conditions))}): use 2 to "
                        f"{len(index)} folds")


def run(args) -> int:
    from ..atomic import save_nifti

    check_outputs(("--out", args.out))  # a bad --out fails before any computation
    reporting.check_options(args)
    analysis = build_analysis(args)
    check_samples(args, analysis)
    if args.func is not None:
        from ..io import check_finite

        check_finite(analysis.data.func, analysis.mask_img())
    scores = analysis.scores()
    payload = {
        "conditions": list(analysis.conditions),
        "cv": analysis.cv,
        "fold_scores": [float(v) for v in scores.fold_score.values],
        "mean_score": float(scores.mean_score),
        "train_score": float(scores.train_score),
        "chance": float(scores.chance),
        "at_chance": bool(scores.mean_score <= scores.chance_limit),
        "classifier": analysis.classifier,
        "C": analysis.C,
        "n_folds": int(scores.sizes["fold"]),
        "test_runs": [str(v) for v in scores.test_runs.values],
        "mask": analysis.mask,
        "standardize": analysis.standardize,
        "n_samples": scores.attrs["n_samples"],
        "n_voxels": scores.attrs["n_voxels"],
        "confusion": {"labels": [str(v) for v in scores.true.values],
                      "counts": scores.confusion.values.tolist()},
        "source": analysis.data.source,
        "func": str(analysis.data.func),
    }
    if args.n_permutations > 0:
        progress = None if args.json or not sys.stderr.isatty() else console_progress("permutations")
        perm = jobs.run(lambda job: analysis.permutation_test(progress=job.progress),
                        name="permutations", progress=progress)
        payload.update(p_value=float(perm.p_value), n_permutations=int(perm.sizes["permutation"]),
                       null_mean=float(perm.null.mean()), null_max=float(perm.null.max()))
    if args.out is not None:
        weights = analysis.weight_map()
        save_nifti(analysis.to_nifti("weights"), args.out)   # on the data's own grid
        payload.update(out=str(args.out), contrast=weights.attrs["contrast"])
    mni = reporting.in_mni(args, False)   # Haxby and the user's files: subject space
    clusters = reporting.clusters(args, *reporting.volume_of(analysis.weight_map()),
                                  args.cluster_threshold, True, mni) if args.clusters else None
    payload.update(reporting.payload(args, clusters, mni))
    if args.json:
        print_json(payload)
    else:
        out = sys.stdout
        print(analysis.summary(), file=out)  # with p when permutations ran
        print("fold scores: " + " ".join(f"{v:.3f}" for v in payload["fold_scores"]), file=out)
        if args.out is not None:
            print(f"weights written to {args.out}", file=out)
        reporting.print_clusters(clusters, out)
    return 0
