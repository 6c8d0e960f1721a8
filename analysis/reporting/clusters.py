"""Cluster tables of a thresholded map, as ``nilearn.reporting.get_clusters_table``, fast
(issue 17).

:func:`cluster_table` gives the same clusters, peaks and sub-peaks (coordinates and
values), sizes and order as ``get_clusters_table(img, threshold, cluster_threshold=
min_cluster_size, two_sided=..., min_distance=8)`` (tests/test_clusters.py checks it),
plus each cluster's centre of mass, its size in voxels and the region of every peak.
nilearn works cluster by cluster on the whole volume (a maximum filter, a minimum
filter and a labelling per cluster); here each tail is labelled once
(``scipy.ndimage.label``) and the local maxima of every cluster are found together
from the 26 neighbours of its voxels, so a table takes milliseconds on a full-size map.

What nilearn does, and so what is done here:

* non-finite values count as 0; a tail's clusters are its voxels beyond the threshold
  (``value > threshold``, and ``-value > threshold`` for the negative tail when
  ``two_sided``), face-connected (6-connectivity);
* ``min_cluster_size`` (nilearn's ``cluster_threshold``, in voxels): clusters of the
  voxels at or beyond the threshold smaller than this are dropped first;
* clusters sorted by their peak, the positive tail's first;
* a cluster's (sub-)peaks: its local maxima over the 26 neighbours (out-of-cluster
  neighbours count as 0; in a cluster that is not constant a voxel whose neighbours all
  equal it is not one), each plateau of maxima reduced to its value-weighted centre of
  mass rounded to a voxel (the nearest plateau voxel when that falls outside it); sorted
  by value, a peak kept when more than ``min_distance`` mm from the last kept one; the
  peak and at most 3 sub-peaks reported.

The cluster numbers here run 1, 2, 3... over both tails (nilearn numbers the negative
tail's clusters after its row count); ``subpeak`` is nilearn's letter (``""`` for the
peak). The centre of mass is weighted by the magnitude of the values.
"""

from __future__ import annotations

from string import ascii_lowercase

import numpy as np
import pandas as pd
from nibabel.affines import apply_affine
from scipy import ndimage

from ..errors import DataError
from .atlas import DEFAULT_ATLAS, regions_at

#: the columns of :func:`cluster_table`, in order
COLUMNS = ["cluster", "subpeak", "peak_x", "peak_y", "peak_z", "peak_value", "com_x", "com_y",
           "com_z", "size_voxels", "size_mm3", "region"]
#: nilearn's minimum distance between sub-peaks, mm
MIN_DISTANCE_MM = 8.0
#: sub-peaks listed per cluster besides its peak (nilearn's)
MAX_SUBPEAKS = 3

_FACES = ndimage.generate_binary_structure(3, 1)
_OFFSETS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                     if (a, b, c) != (0, 0, 0)])


def _empty() -> pd.DataFrame:
    types = {"cluster": "int64", "subpeak": "object", "size_voxels": "int64", "region": "object"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "float64")) for c in COLUMNS})


def _check(values_3d, affine, threshold, min_cluster_size):
    data = np.asarray(values_3d)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"a cluster table needs a 3D map, not shape {data.shape}")
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    finite = np.isfinite(data)
    data = data.copy() if finite.all() else np.where(finite, data, 0).astype(data.dtype)
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise DataError("a cluster table needs the map's 4x4 affine")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not np.isfinite(threshold) or threshold < 0:
        raise DataError(f"cluster threshold must be a number of at least 0, not {threshold:g}")
    if isinstance(min_cluster_size, bool) or int(min_cluster_size) != min_cluster_size \
            or min_cluster_size < 0:
        raise DataError(f"minimum cluster size must be a whole number of voxels of at least "
                        f"0, not {min_cluster_size!r}")
    return data, affine, threshold, int(min_cluster_size)


def _tail_labels(s: np.ndarray, threshold: float, min_size: int):
    """Clusters of the tail ``s`` (the map, or minus it): labels and count, as nilearn's
    ``threshold_img`` (at or beyond, then small clusters dropped) then ``> threshold``."""
    beyond = (s >= threshold) & (s > 0)
    if not beyond.any():
        return None, 0
    labels, n = ndimage.label(beyond, _FACES)
    final = beyond & (s > threshold)
    changed = final.sum() != beyond.sum()
    if min_size > 0:
        small = np.bincount(labels.ravel(), minlength=n + 1) < min_size
        small[0] = False
        if small.any():
            final &= ~small[labels]
            changed = True
    if changed:
        labels, n = ndimage.label(final, _FACES)
    return labels, n


def _local_maxima(s: np.ndarray, labels: np.ndarray, voxels: np.ndarray, cluster: np.ndarray,
                  constant: np.ndarray) -> np.ndarray:
    """Which ``voxels`` (flat indices, in clusters ``cluster``) are local maxima of their
    own cluster's map (nilearn's ``_identify_subpeaks`` on each cluster alone)."""
    shape = np.array(s.shape)
    padded = tuple(shape + 2)
    lab = np.pad(labels, 1, constant_values=-1).ravel()       # -1: outside the volume
    val = np.pad(np.where(labels > 0, s, 0), 1).ravel()
    ijk = np.column_stack(np.unravel_index(voxels, s.shape)) + 1
    p = np.ravel_multi_index(ijk.T, padded)
    steps = _OFFSETS @ np.array([padded[1] * padded[2], padded[2], 1])
    own = s.ravel()[voxels]
    top = own.copy()
    for step in steps:   # the largest same-cluster neighbour (others count as 0 < own)
        q = p + step
        np.maximum(top, np.where(lab[q] == cluster, val[q], 0), out=top)
    is_max = own == top
    # a voxel whose neighbours all equal it is no maximum, unless its cluster is constant
    check = np.flatnonzero(is_max & ~constant[cluster])
    if check.size:
        pc, cc, oc = p[check], cluster[check], own[check]
        low = oc.copy()
        for step in steps:   # out of the volume: ignored (nilearn's 'reflect' mode)
            q = pc + step
            nl = lab[q]
            np.minimum(low, np.where(nl == cc, val[q], np.where(nl == -1, oc, 0)), out=low)
        is_max[check] = (top[check] - low) > 0
    return is_max


def _touching(mask: np.ndarray, flat: np.ndarray) -> bool:
    """Whether any two voxels of ``mask`` (its flat indices ``flat``) share a face."""
    ijk = np.unravel_index(flat, mask.shape)
    for axis in range(3):
        ok = ijk[axis] + 1 < mask.shape[axis]
        nb = [a[ok] for a in ijk]
        nb[axis] = nb[axis] + 1
        if mask[tuple(nb)].any():
            return True
    return False


def _plateau_peaks(s: np.ndarray, maxima: np.ndarray):
    """Each plateau (face-connected maxima) as one voxel: its value-weighted centre of mass
    rounded (nilearn's ``center_of_mass`` then ``np.round``), or its voxel nearest to that
    when the centre falls outside it. Returns ``(plateau labels, n, ijk (n, 3))``."""
    flat = np.flatnonzero(maxima)                         # raster order, as bincount sums
    if _touching(maxima, flat):
        plateaus, n = ndimage.label(maxima)
        which = plateaus.ravel()[flat]
    else:                                                 # single voxels: no labelling
        n = len(flat)
        which = np.arange(1, n + 1)
        plateaus = np.zeros(maxima.shape, dtype=np.int32)
        plateaus.ravel()[flat] = which
    ijk = np.column_stack(np.unravel_index(flat, s.shape))
    count = np.bincount(which, minlength=n + 1)
    first = np.full(n + 1, -1)
    first[which[::-1]] = np.arange(len(which))[::-1]
    out = ijk[first[1:]].copy()                            # single voxels: themselves
    multi = np.flatnonzero(count[1:] > 1) + 1
    if multi.size:
        in_multi = np.isin(which, multi)
        w = s.ravel()[flat[in_multi]].astype(np.float64)
        lab = which[in_multi]
        norm = np.bincount(lab, weights=w, minlength=n + 1)
        for axis in range(3):
            sums = np.bincount(lab, weights=w * ijk[in_multi, axis].astype(np.float64),
                               minlength=n + 1)
            out[multi - 1, axis] = np.round(sums[multi] / norm[multi]).astype(int)
        for m in multi:
            point = out[m - 1]
            if plateaus[tuple(point)] != m:
                members = ijk[which == m]
                out[m - 1] = members[np.argmin(np.linalg.norm(members - point, axis=1))]
    return plateaus, n, out


def _pare(xyz: np.ndarray, limit: int, min_distance: float) -> list[int]:
    """nilearn's ``_pare_subpeaks``: a (sorted) peak is kept when farther than
    ``min_distance`` from the last one kept; the first ``limit`` kept."""
    kept = [0]
    for j in range(1, len(xyz)):
        if len(kept) == limit:
            break
        if np.linalg.norm(xyz[kept[-1]] - xyz[j]) > min_distance:
            kept.append(j)
    return kept


def _tail_rows(s, sign, affine, threshold, min_size, min_distance, voxel_mm3, first_cluster):
    """The rows of one tail (``s`` is the map times ``sign``) as columns (a dict)."""
    labels, n = _tail_labels(s, threshold, min_size)
    if n == 0:
        return None
    voxels = np.flatnonzero(labels)
    cluster = labels.ravel()[voxels]
    values = s.ravel()[voxels]
    sizes = np.bincount(cluster, minlength=n + 1)[1:]
    top = np.full(n + 1, -np.inf, dtype=s.dtype)
    np.maximum.at(top, cluster, values)
    bottom = np.full(n + 1, np.inf, dtype=s.dtype)
    np.minimum.at(bottom, cluster, values)
    constant = np.isclose(top, bottom)
    constant[0], top = False, top[1:]
    is_max = _local_maxima(s, labels, voxels, cluster, constant)
    maxima = np.zeros(s.shape, dtype=bool)
    maxima.ravel()[voxels[is_max]] = True
    plateaus, n_peaks, peak_ijk = _plateau_peaks(s, maxima)
    peak_value = s[tuple(peak_ijk.T)] if n_peaks else np.zeros(0, s.dtype)
    peak_xyz = apply_affine(affine, peak_ijk).reshape(-1, 3)   # as nilearn, for the distances
    # each plateau's cluster (a plateau lies in one cluster: face-connected); the peaks
    # of a cluster in plateau order, as nilearn finds them
    plateau_cluster = np.zeros(n_peaks + 1, dtype=np.intp)
    plateau_cluster[plateaus.ravel()[voxels[is_max]]] = cluster[is_max]
    owner = plateau_cluster[1:] - 1
    by_cluster = np.argsort(owner, kind="stable")
    n_of = np.bincount(owner, minlength=n)
    starts = np.concatenate([[0], np.cumsum(n_of)])
    # centre of mass (magnitude-weighted) of each cluster
    ijk = np.column_stack(np.unravel_index(voxels, s.shape)).astype(np.float64)
    w = values.astype(np.float64)
    norm = np.bincount(cluster, weights=w, minlength=n + 1)[1:]
    com = np.column_stack([np.bincount(cluster, weights=w * ijk[:, a], minlength=n + 1)[1:]
                           for a in range(3)]) / norm[:, None]
    com_mm = com @ affine[:3, :3].T + affine[:3, 3]
    peaks, numbers, clusters, subpeaks = [], [], [], []
    for rank, c in enumerate((-top).argsort()):           # nilearn's order (same sort)
        if n_of[c] == 1:                                  # most clusters: one peak
            kept = [by_cluster[starts[c]]]
        elif n_of[c] > 1:
            own = by_cluster[starts[c]:starts[c + 1]]
            own = own[(-peak_value[own]).argsort()]
            kept = own[_pare(peak_xyz[own], MAX_SUBPEAKS + 1, min_distance)]
        else:
            continue
        peaks.extend(kept)
        numbers.extend([first_cluster + rank] * len(kept))
        clusters.extend([c] * len(kept))
        subpeaks.extend(range(len(kept)))
    peaks, clusters = np.asarray(peaks, dtype=np.intp), np.asarray(clusters, dtype=np.intp)
    letters = np.array([""] + list(ascii_lowercase), dtype=object)
    return {"cluster": np.asarray(numbers, dtype=np.int64), "subpeak": letters[subpeaks],
            "peak_x": peak_xyz[peaks, 0], "peak_y": peak_xyz[peaks, 1],
            "peak_z": peak_xyz[peaks, 2],
            "peak_value": peak_value[peaks].astype(np.float64) * sign,
            "com_x": com_mm[clusters, 0], "com_y": com_mm[clusters, 1],
            "com_z": com_mm[clusters, 2], "size_voxels": sizes[clusters].astype(np.int64),
            "size_mm3": sizes[clusters] * voxel_mm3}


def cluster_table(values_3d, affine, threshold, min_cluster_size=0, two_sided=True,
                  atlas=DEFAULT_ATLAS, in_mni=True,
                  min_distance: float = MIN_DISTANCE_MM) -> pd.DataFrame:
    """The clusters of a map beyond ``threshold``, as nilearn's ``get_clusters_table``.

    Parameters
    ----------
    values_3d : array (x, y, z)
        The map; NaN and infinities count as 0.
    affine : array (4, 4)
        Voxel to mm.
    threshold : float, at least 0
        Cluster-forming threshold: ``value > threshold`` (and ``value < -threshold``
        when ``two_sided``).
    min_cluster_size : int
        Clusters smaller than this many voxels are dropped (nilearn's
        ``cluster_threshold``); 0 keeps all.
    two_sided : bool
        Both tails (positive clusters first), or only the positive one.
    atlas, in_mni
        The region of each peak (see :func:`analysis.reporting.atlas.regions_at`).
    min_distance : float
        Sub-peaks closer than this (mm) to the last peak kept are skipped.

    Returns
    -------
    pandas.DataFrame
        One row per peak: a cluster's peak then its sub-peaks (at most 3), clusters by
        peak value; columns :data:`COLUMNS`: ``cluster`` (1, 2, ...), ``subpeak``
        (``""``, ``"a"``, ``"b"``, ``"c"``), ``peak_x/y/z`` (mm), ``peak_value``,
        ``com_x/y/z`` (the cluster's centre of mass, mm), ``size_voxels``, ``size_mm3``
        (the cluster's, on every row) and ``region`` (of the row's peak).
    """
    data, affine, threshold, min_size = _check(values_3d, affine, threshold, min_cluster_size)
    if not np.isfinite(min_distance) or min_distance <= 0:
        raise DataError(f"min_distance must be above 0 mm, not {min_distance:g}")
    voxel_mm3 = float(np.prod(np.sqrt((affine[:3, :3] ** 2).sum(axis=0))))
    parts = []
    for sign in ((1, -1) if two_sided else (1,)):
        s = data if sign == 1 else -data
        first = 1 + (int(parts[-1]["cluster"].max()) if parts else 0)
        part = _tail_rows(s, sign, affine, threshold, min_size, float(min_distance),
                          voxel_mm3, first)
        if part is not None and len(part["cluster"]):
            parts.append(part)
    if not parts:
        return _empty()
    table = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in COLUMNS[:-1]})
    table["region"] = regions_at(atlas, table[["peak_x", "peak_y", "peak_z"]].to_numpy(),
                                 in_mni=in_mni)
    return table


def clusters_json(table: pd.DataFrame) -> list[dict]:
    """The clusters of a :func:`cluster_table` as JSON-able dicts, one per cluster:
    ``cluster``, ``peak_mm``, ``peak_value``, ``centre_mm``, ``size_voxels``,
    ``size_mm3``, ``region`` and ``subpeaks`` (each ``peak_mm``, ``peak_value``,
    ``region``)."""
    out = []
    for number, rows in table.groupby("cluster", sort=False):
        peak = rows.iloc[0]
        out.append({
            "cluster": int(number),
            "peak_mm": [float(peak[c]) for c in ("peak_x", "peak_y", "peak_z")],
            "peak_value": float(peak["peak_value"]),
            "centre_mm": [round(float(peak[c]), 3) for c in ("com_x", "com_y", "com_z")],
            "size_voxels": int(peak["size_voxels"]), "size_mm3": float(peak["size_mm3"]),
            "region": str(peak["region"]),
            "subpeaks": [{"peak_mm": [float(r[c]) for c in ("peak_x", "peak_y", "peak_z")],
                          "peak_value": float(r["peak_value"]), "region": str(r["region"])}
                         for _, r in rows.iloc[1:].iterrows()],
        })
    return out
