"""``fmri-explorer group``: group seed connectivity on Dask from the command line.

``fmri-explorer group --seed X Y Z [--n-subjects N] [--age-group both|adult|child]
[--radius R] [--threshold T] [--scheduler ADDRESS] [--workers N] [--threads]
[--data DIR | --size small|full | --func F1 F2 ... [--confounds C1 C2 ...] [--mask M]]
[--smoothing FWHM] [--no-confounds] [preprocessing ...]
[--n-permutations N] [--cluster-forming-p P]
[--json] [--out t_map.nii.gz] [--out-mean-z mean_z.nii.gz] [--out-dir DIR]``

The preprocessing options are made from :class:`analysis.preprocessing.Preprocessing`
(as ``fmri-explorer connectivity``'s: the same flags, defaults, bounds and help).

The group statistics (:mod:`analysis.group.stats`): the one-sample t map with its
degrees of freedom, FDR (Benjamini-Hochberg, q < 0.05) and FWE by ``--n-permutations``
sign flips (max-|t|, p < 0.05; cluster size for clusters formed at
``--cluster-forming-p``); ``--json`` has ``df``, ``fwe_t_threshold``, ``n_voxels_fwe``,
``fdr_t_threshold`` and ``n_voxels_fdr``. ``--out-dir DIR`` writes each subject's
Fisher z map as ``DIR/subjects/<participant>_fisher_z.nii.gz`` and the group maps as
``DIR/group_t.nii.gz`` and ``DIR/group_logp_fwe.nii.gz`` (-log10 FWE p), on the group
mask's grid.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..config import SIZES
from ..errors import DataError
from ..preprocessing import CLI_FLAGS, PARAMETERS, Preprocessing
from ..progress import console_progress
from ..reporting import cli as reporting
from . import print_json
from .options import add_param_options, param_values
from .validate import (check_band, check_outputs, finite_float, float_range, int_range,
                       max_jobs, positive_float)

#: The option ranges (the analysis' own parameter bounds).
MAX_RADIUS_MM = 20.0
MAX_SUBJECTS = 155
#: The group maps ``--out-dir`` writes (beside ``subjects/<participant>_fisher_z.nii.gz``).
OUT_DIR_MAPS = {"t": "group_t.nii.gz", "logp_fwe": "group_logp_fwe.nii.gz"}
#: The subjects' folder of ``--out-dir``, and their file names' ending.
SUBJECTS_DIR, SUBJECT_SUFFIX = "subjects", "_fisher_z.nii.gz"


def add_parser(sub):
    p = sub.add_parser(
        "group", help="group seed connectivity: one seed map per subject on Dask, a t map",
        description="Clean each subject (the seed example's preprocessing) and compute its "
                    "seed map as tasks on a Dask cluster (a local one by default, or "
                    "--scheduler / $FMRI_EXPLORER_SCHEDULER), then a one-sample t-test on "
                    "Fisher z across subjects. Without --data or --func, the synthetic "
                    "development-like dataset.")
    p.add_argument("--seed", nargs=3, type=finite_float, metavar=("X", "Y", "Z"), required=True,
                   help="seed centre in MNI mm (the seed example: 0 -52 18)")
    p.add_argument("--radius", type=float_range(1.0, MAX_RADIUS_MM), default=8.0,
                   help=f"seed sphere radius in mm, 1 to {MAX_RADIUS_MM:g} (8)")
    p.add_argument("--n-subjects", type=int_range(
                       2, MAX_SUBJECTS, message="must be at least 2 for a group t-test (and at "
                                                f"most {MAX_SUBJECTS})"),
                   default=None, metavar="N",
                   help="number of subjects, at least 2 (default: every subject on disk)")
    p.add_argument("--age-group", choices=["both", "adult", "child"], default="both",
                   help="participants' Child_Adult group (default: both)")
    p.add_argument("--threshold", type=float_range(0.0, None), default=3.0,
                   help="|t| threshold for peaks (3)")
    p.add_argument("--n-peaks", type=int_range(1, 100), default=10, help="peaks listed (10)")
    add_param_options(p.add_argument_group("preprocessing (as the Connectivity tab)"),
                      Preprocessing, flags=CLI_FLAGS)
    src = p.add_argument_group("data (one of)")
    src.add_argument("--data", type=Path, metavar="DIR",
                     help="nilearn data_dir holding development_fmri/ (synthetic or real)")
    src.add_argument("--size", choices=SIZES, default=None,
                     help="synthetic dataset size (default: $FMRI_EXPLORER_SIZE or full)")
    src.add_argument("--func", type=Path, nargs="+", metavar="F",
                     help="your 4D NIfTI images, one per subject (same grid, MNI space)")
    src.add_argument("--confounds", type=Path, nargs="+", metavar="C",
                     help="their confounds TSVs, in the same order")
    src.add_argument("--mask", type=Path, metavar="M",
                     help="group mask on the images' grid (default: MNI152 brain mask)")
    src.add_argument("--t-r", type=positive_float, default=None,
                     help="repetition time of --func (s), above 0")
    clu = p.add_argument_group("cluster")
    clu.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="existing Dask scheduler, e.g. tcp://host:8786 "
                          "(default: $FMRI_EXPLORER_SCHEDULER, else a local cluster)")
    clu.add_argument("--workers", type=int_range(1, max_jobs()), default=min(2, max_jobs()),
                     help=f"workers of the local cluster, 1 to {max_jobs()} (default 2)")
    clu.add_argument("--threads", action="store_true",
                     help="local cluster workers as threads of this process (no processes)")
    clu.add_argument("--timeout", type=float_range(0.5, 120.0), default=5.0,
                     help="seconds to wait for the scheduler, 0.5 to 120 (default 5)")
    from ..group.stats import (CLUSTER_FORMING_P, MAX_PERMUTATIONS, N_PERMUTATIONS)

    st = p.add_argument_group("group statistics", "FDR (Benjamini-Hochberg, q < 0.05) on the "
                              "t-test's uncorrected p; FWE (p < 0.05) by sign-flipping "
                              "permutations, as nilearn's permuted_ols")
    st.add_argument("--n-permutations", type=int_range(0, MAX_PERMUTATIONS),
                    default=N_PERMUTATIONS, metavar="N",
                    help=f"sign-flipping permutations for the FWE thresholds (max |t| and "
                         f"cluster size), 0 to {MAX_PERMUTATIONS:,}; 0: no FWE "
                         f"(default {N_PERMUTATIONS:,})")
    st.add_argument("--cluster-forming-p", type=float_range(1e-8, 0.1),
                    default=CLUSTER_FORMING_P, metavar="P",
                    help="uncorrected two-sided p forming the clusters of the cluster-size "
                         f"FWE test, 1e-08 to 0.1 (default {CLUSTER_FORMING_P:g})")
    reporting.add_options(p, "mni: the development data and --func images are in MNI space; "
                             "clusters: |t| above --threshold")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--out", type=Path, metavar="t_map.nii.gz", help="write the group t map")
    p.add_argument("--out-mean-z", type=Path, metavar="mean_z.nii.gz",
                   help="write the mean Fisher z map")
    p.add_argument("--out-dir", type=Path, metavar="DIR",
                   help="write each subject's Fisher z map as DIR/subjects/<participant>"
                        "_fisher_z.nii.gz, and DIR/group_t.nii.gz and "
                        "DIR/group_logp_fwe.nii.gz (-log10 FWE p); DIR is made if its "
                        "folder exists; only regular files of these names are replaced")
    return p


def build_analysis(args):
    from ..group import GroupConnectivity

    params = dict(seed_mm=tuple(args.seed), radius_mm=args.radius,
                  threshold=args.threshold, n_peaks=args.n_peaks,
                  **param_values(args, PARAMETERS),
                  n_permutations=args.n_permutations,
                  cluster_forming_p=args.cluster_forming_p,
                  scheduler=args.scheduler or "", n_workers=args.workers,
                  processes=not args.threads,
                  timeout=args.timeout, age_group=args.age_group)
    if args.radius <= 0:
        raise DataError(f"--radius must be above 0 mm, got {args.radius:g}")
    if args.n_subjects is not None and args.n_subjects < 2:
        raise DataError(f"--n-subjects must be at least 2 for a group t-test, got {args.n_subjects}")
    if args.workers < 1:
        raise DataError(f"--workers must be at least 1, got {args.workers}")
    try:
        if args.func:
            if args.data is not None:
                raise DataError("give either --data or --func, not both")
            if args.age_group != "both":
                raise DataError("--age-group needs a participants table (--data)")
            return GroupConnectivity.from_files(args.func, confounds=args.confounds,
                                                mask=args.mask, t_r=args.t_r,
                                                n_subjects=args.n_subjects, **params)
        if args.confounds or args.mask:
            raise DataError("--confounds and --mask go with --func")
        return GroupConnectivity(data_dir=None if args.data is None else str(args.data),
                                 n_subjects=args.n_subjects, size=args.size, **params)
    except ValueError as exc:  # param bounds
        if isinstance(exc, DataError):
            raise
        raise DataError(str(exc).splitlines()[0]) from None


def _out_dir_error(problem: str, path) -> DataError:
    return DataError(f"--out-dir {path}: {problem}")


def out_dir_targets(out_dir: Path, names=()) -> list:
    """The files ``--out-dir`` writes, ``[(map, participant, path)]`` (the group maps
    ``t`` and ``logp_fwe`` with participant None, then ``fisher_z`` of each participant in
    ``names``), checked before any computation: ``out_dir`` is a folder
    or does not exist yet in an existing folder; ``subjects`` in it likewise; each file
    is absent or a regular file (never a directory, link, device...). Participant names
    that are not plain file names, or that repeat, are refused."""
    from ..atomic import check_target

    out_dir = Path(out_dir)
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise _out_dir_error("is not a folder (refused: it is not replaced)", out_dir)
    if not out_dir.is_dir() and not out_dir.absolute().parent.is_dir():
        raise _out_dir_error(f"folder {str(out_dir.absolute().parent)!r} does not exist",
                             out_dir)
    sub = out_dir / SUBJECTS_DIR
    if os.path.lexists(sub) and not sub.is_dir():
        raise _out_dir_error("is not a folder (refused: it is not replaced)", sub)
    targets = [(key, None, out_dir / name) for key, name in OUT_DIR_MAPS.items()]
    seen = set()
    for name in names:
        name = str(name)
        if not name or name in (".", "..") or Path(name).name != name or "\\" in name \
                or "\x00" in name:
            raise DataError(f"--out-dir: participant {name!r} is not a plain file name")
        if name in seen:
            raise DataError(f"--out-dir: two subjects are named {name!r} (one file each)")
        seen.add(name)
        targets.append(("fisher_z", name, sub / f"{name}{SUBJECT_SUFFIX}"))
    for _, _, path in targets:
        if path.parent.is_dir():
            try:
                check_target(path)
            except DataError as exc:
                raise _out_dir_error(exc.problem, path) from None
    return targets


def write_out_dir(analysis, out_dir: Path, targets: list) -> list[str]:
    """Write the maps of :func:`out_dir_targets` (each atomically); returns the paths."""
    from ..atomic import save_nifti

    out_dir = Path(out_dir)
    for folder in (out_dir, out_dir / SUBJECTS_DIR):
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise _out_dir_error(f"cannot make the folder ({exc.strerror or exc})",
                                 folder) from None
        if not folder.is_dir():
            raise _out_dir_error("is not a folder (refused: it is not replaced)", folder)
    written = []
    for key, participant, path in targets:
        img = analysis.to_nifti(key) if participant is None \
            else analysis.subject_fisher_z_nifti(participant)
        save_nifti(img, path)
        written.append(str(path))
    return written


def run(args) -> int:
    from ..atomic import save_nifti

    # bad outputs fail before any computation (and before a cluster starts)
    check_outputs(("--out", args.out), ("--out-mean-z", args.out_mean_z))
    if args.out_dir is not None:
        if args.n_permutations == 0:
            raise DataError("--out-dir writes group_logp_fwe.nii.gz: it needs "
                            "--n-permutations of at least 1")
        out_dir_targets(args.out_dir)
        for option, path in (("--out", args.out), ("--out-mean-z", args.out_mean_z)):
            if path is not None and os.path.abspath(path) in {
                    os.path.abspath(args.out_dir / name) for name in OUT_DIR_MAPS.values()}:
                raise DataError(f"{option} and --out-dir name the same file", path)
    reporting.check_options(args, args.threshold)
    analysis = build_analysis(args)
    band = analysis.cleaning_settings()
    check_band(band.high_pass, band.low_pass, args.t_r)
    try:
        subjects = analysis.subject_list()  # bad data: a clear error before starting a cluster
        check_band(band.high_pass, band.low_pass, analysis.repetition_time(subjects))
        targets = None if args.out_dir is None else out_dir_targets(args.out_dir,
                                                                    subjects.names)
        progress = None if args.json or not sys.stderr.isatty() else console_progress("group")
        analysis.run(progress=progress)
        payload = analysis.report()
        mni = reporting.in_mni(args, True)   # development data, and --func "in MNI space"
        reporting.add_regions(payload["peaks"], args, mni)
        clusters = reporting.clusters(args, *reporting.volume_of(analysis.t_map()),
                                      args.threshold, True, mni)
        payload.update(reporting.payload(args, clusters, mni))
        # written only once everything is computed, each atomically
        if args.out is not None:
            save_nifti(analysis.to_nifti("t"), args.out)
            payload["out"] = str(args.out)
        if args.out_mean_z is not None:
            save_nifti(analysis.to_nifti("mean_z"), args.out_mean_z)
            payload["out_mean_z"] = str(args.out_mean_z)
        if targets is not None:
            payload["out_dir_files"] = write_out_dir(analysis, args.out_dir, targets)
            payload["out_dir"] = str(args.out_dir)
    finally:
        analysis.close()
    if args.json:
        print_json(payload)
        return 0
    out = sys.stdout
    print(analysis.summary(), file=out)
    for pk in payload["peaks"]:
        node = f"  {pk['network']} node {pk['node_distance_mm']:g} mm" if "network" in pk else ""
        print(f"  peak ({pk['x']:g}, {pk['y']:g}, {pk['z']:g}) mm  t={pk['t']:.2f}{node}"
              f"{'  ' + pk['region'] if pk['region'] else ''}", file=out)
    reporting.print_clusters(clusters, out)
    for key in ("out", "out_mean_z"):
        if key in payload:
            print(f"written: {payload[key]}", file=out)
    if "out_dir" in payload:
        print(f"written: {len(payload['out_dir_files'])} maps in {payload['out_dir']}",
              file=out)
    if payload["dashboard_link"]:
        print(f"Dask dashboard was at {payload['dashboard_link']}", file=out)
    return 0
