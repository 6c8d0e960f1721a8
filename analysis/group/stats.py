"""Group statistics on the subjects' seed maps (numpy and scipy, no Dask).

Fisher z = ``arctanh(r)`` per subject, then per voxel:

* a one-sample t-test against 0 (``scipy.stats.ttest_1samp``): the t map, its
  degrees of freedom ``n_subjects - 1`` and the uncorrected two-sided p;
* **FDR** (Benjamini-Hochberg at ``q``) on those p values: the voxels it
  declares, and the smallest ``|t|`` among them (``fdr_t_threshold``);
* **FWE** by sign-flipping permutations (a one-sample test: under the null,
  each subject's map is symmetric about 0): the two-sided max-|t| null, its
  ``1 - alpha`` quantile (``fwe_t_threshold``), and the FWE-corrected p of
  each voxel as nilearn's ``permuted_ols(two_sided_test=True)`` computes it,
  ``(1 + #{null max-|t| >= |t|}) / (n_permutations + 1)``;
* **cluster-size FWE**: clusters of ``|t|`` above a cluster-forming threshold
  (positive and negative ones apart, face connectivity: nilearn's
  ``generate_binary_structure(3, 1)``), against the null of the largest
  cluster of each permutation.

The permutations are fast because a sign flip leaves each voxel's sum of
squares unchanged: with the maps normalised per voxel (``z / ||z||``), the
permuted sums of all permutations are one matrix product, ``flips @ z_n``
(``(n_permutations, n_subjects) @ (n_subjects, n_voxels)``), and
``t = sqrt(n - 1) * s / sqrt(1 - s**2)`` where ``s = sum / sqrt(n)`` is
monotone in ``|sum|``, so each permutation's max-|t| is one max and one min of
a row. Rows are processed in chunks of bounded memory.

:func:`sign_flips` draws the flips exactly as ``permuted_ols`` does with
``n_jobs=1`` and the same ``random_state``, so both give the same null (which,
as nilearn's, holds the ``n_permutations`` random flips only: the identity is
counted by the ``+ 1`` of the p value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

#: Family-wise error rate of the FWE thresholds (voxel and cluster size).
ALPHA = 0.05
#: False discovery rate of the FDR threshold.
FDR_Q = 0.05
#: Sign-flipping permutations by default.
N_PERMUTATIONS = 1000
#: Most permutations asked for.
MAX_PERMUTATIONS = 100_000
#: Uncorrected two-sided p forming the clusters of the cluster-size test.
CLUSTER_FORMING_P = 0.001
#: Seed of the sign flips (results are reproducible run to run).
RANDOM_STATE = 0
#: Bytes of permuted sums held at once.
CHUNK_BYTES = 32 * 2 ** 20
#: A permutation's statistic within this relative distance of a voxel's counts as a
#: tie (``>=``): the same sums added in another order may differ in the last bits.
TIE_RTOL = 1e-9


def fisher_z(r: np.ndarray) -> np.ndarray:
    """``arctanh(r)``, r clipped just inside (-1, 1) so that z stays finite."""
    lim = 1.0 - 1e-12
    return np.arctanh(np.clip(r, -lim, lim))


def _check_subjects(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise DataError(f"a group t-test needs at least 2 subjects, got "
                        f"{z.shape[0] if z.ndim == 2 else 0}")
    return z


def one_sample_t(z: np.ndarray) -> dict:
    """One-sample t-test against 0 across subjects (axis 0 of ``z``, ``(n_subjects,
    n_voxels)``): ``t``, ``p`` (uncorrected, two-sided), each ``(n_voxels,)``, and the
    degrees of freedom ``df = n_subjects - 1`` (``scipy.stats.ttest_1samp``)."""
    from scipy.stats import ttest_1samp

    z = _check_subjects(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = ttest_1samp(z, 0.0, axis=0)
    return {"t": np.asarray(res.statistic, dtype=np.float64),
            "p": np.asarray(res.pvalue, dtype=np.float64), "df": int(z.shape[0] - 1)}


def group_stats(r: np.ndarray) -> dict:
    """One-sample t-test on Fisher z across subjects (axis 0).

    Returns ``t``, ``p`` (two-sided, uncorrected) and ``mean_z``, each ``(n_voxels,)``,
    and ``df``.
    """
    z = fisher_z(_check_subjects(r))
    out = one_sample_t(z)
    out["mean_z"] = z.mean(axis=0)
    return out


def fdr_mask(p: np.ndarray, q: float = FDR_Q) -> np.ndarray:
    """Benjamini-Hochberg at ``q``: the voxels declared (``(n_voxels,)`` bool).

    The largest ``k`` with ``p_(k) <= k q / m`` (``m`` finite p values), then every
    ``p <= p_(k)``; non-finite p values are never declared."""
    from ..connectivity.stats import fdr_select   # one Benjamini-Hochberg for every map

    return fdr_select(p, q)


def fdr_threshold(t: np.ndarray, p: np.ndarray, q: float = FDR_Q) -> tuple:
    """``(fdr_t_threshold, n_voxels_fdr)``: the smallest ``|t|`` that Benjamini-Hochberg
    at ``q`` declares (None if it declares none) and how many voxels it declares."""
    mask = fdr_mask(p, q)
    if not mask.any():
        return None, 0
    return float(np.abs(np.asarray(t, dtype=np.float64)[mask]).min()), int(mask.sum())


def sign_flips(n_subjects: int, n_permutations: int,
               random_state=RANDOM_STATE) -> np.ndarray:
    """``(n_permutations, n_subjects)`` of +/-1 (int8): the sign flips that
    ``nilearn.mass_univariate.permuted_ols(..., n_jobs=1, random_state=random_state)``
    applies in an intercept-only (one-sample) test.

    nilearn draws one integer seed from ``random_state`` for its single job, then per
    permutation multiplies the *previous* permutation's data by new random signs
    (``randint(2, size=(n_subjects, 1)) * 2 - 1``): permutation ``k``'s flip is the
    product of the first ``k`` draws.
    """
    from sklearn.utils import check_random_state

    n_subjects, n_permutations = int(n_subjects), int(n_permutations)
    if n_permutations <= 0:
        return np.zeros((0, n_subjects), dtype=np.int8)
    rng = check_random_state(random_state)
    job = check_random_state(rng.randint(1, np.iinfo(np.int32).max - 1))
    draws = (job.randint(2, size=(n_permutations, n_subjects)) * 2 - 1).astype(np.int8)
    return np.cumprod(draws, axis=0, dtype=np.int8)


def t_from_s2(s2, n: int) -> np.ndarray:
    """``|t|`` of a one-sample test from ``s2 = sum(z)**2 / sum(z**2)`` (in [0, n])."""
    s2 = np.asarray(s2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((n - 1) * s2 / np.maximum(n - s2, 0.0))


def s2_from_t(t, n: int) -> float:
    """The inverse of :func:`t_from_s2`: ``n t**2 / (n - 1 + t**2)``."""
    t2 = float(t) ** 2
    return n * t2 / (n - 1 + t2)


def cluster_forming_t(p: float, df: int) -> float:
    """The ``|t|`` of a two-sided uncorrected ``p`` (as ``permuted_ols``' ``threshold``)."""
    from scipy.stats import t as t_dist

    return float(t_dist.isf(float(p) / 2.0, df))


def quantile_threshold(null: np.ndarray, alpha: float = ALPHA):
    """The value ``h`` of a permutation null such that a statistic strictly above it has
    ``(1 + #{null >= statistic}) / (n + 1) < alpha``: the ``(k+1)``-th largest null value,
    ``k = ceil(alpha (n + 1)) - 2`` (about the ``1 - alpha`` quantile). None when no
    statistic can reach ``alpha`` with this many permutations (``n < 1/alpha - 1``)."""
    null = np.sort(np.asarray(null, dtype=np.float64))[::-1]
    k = int(np.ceil(alpha * (null.size + 1) - 1e-9)) - 2
    if k < 0 or null.size == 0:
        return None
    return float(null[k])


def face_neighbours(mask: np.ndarray) -> np.ndarray:
    """``(3, n_voxels)``: each mask voxel's next voxel along i, j and k in the mask
    (its index in mask order, ``np.argwhere`` order), or -1: the forward half of the
    6-connectivity (``scipy.ndimage.generate_binary_structure(3, 1)``)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise DataError(f"the group mask must be 3D, got {mask.ndim}D")
    index = np.full(tuple(s + 1 for s in mask.shape), -1, dtype=np.int64)
    index[:mask.shape[0], :mask.shape[1], :mask.shape[2]][mask] = np.arange(int(mask.sum()))
    ijk = np.argwhere(mask)
    out = np.empty((3, len(ijk)), dtype=np.int64)
    for axis in range(3):
        step = ijk.copy()
        step[:, axis] += 1
        out[axis] = index[tuple(step.T)]
    return out


def cluster_sizes(values: np.ndarray, threshold: float, neighbours: np.ndarray,
                  per_voxel: bool = False):
    """Clusters of each row of ``values`` (``(n_rows, n_voxels)``): voxels above
    ``threshold`` and voxels below ``-threshold``, apart (two-sided, as ``permuted_ols``),
    joined through faces (``neighbours`` from :func:`face_neighbours`).

    Returns each row's largest cluster (``(n_rows,)``, 0 if none); with ``per_voxel``,
    ``(max_size, size, ids)``: also each voxel's cluster size and cluster id (1, 2, ...
    across rows), both ``(n_rows, n_voxels)`` and 0 outside clusters."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    values = np.asarray(values, dtype=np.float64)
    n_rows, n_vox = values.shape
    flat_values = values.ravel()
    flat = np.flatnonzero((flat_values > threshold) | (flat_values < -threshold))
    max_size = np.zeros(n_rows, dtype=np.int64)
    size = ids = None
    if per_voxel:
        size = np.zeros(n_rows * n_vox, dtype=np.int64)
        ids = np.zeros(n_rows * n_vox, dtype=np.int64)
    if flat.size:
        rows, vox = np.divmod(flat, n_vox)    # sorted: flatnonzero is in C order
        sign = np.sign(flat_values[flat])
        src, dst = [], []
        for axis in range(3):
            nb = neighbours[axis][vox]
            ok = nb >= 0
            target = rows[ok] * n_vox + nb[ok]
            same = flat_values[target] * sign[ok] > threshold
            src.append(np.nonzero(ok)[0][same])
            dst.append(np.searchsorted(flat, target[same]))
        src, dst = np.concatenate(src), np.concatenate(dst)
        graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)),
                           shape=(flat.size, flat.size))
        _, component = connected_components(graph, directed=False)
        counts = np.bincount(component)[component]
        np.maximum.at(max_size, rows, counts)
        if per_voxel:
            size[flat] = counts
            ids[flat] = component + 1
    if per_voxel:
        return max_size, size.reshape(n_rows, n_vox), ids.reshape(n_rows, n_vox)
    return max_size


@dataclass
class PermutationNull:
    """The permutation nulls, ``(n_permutations,)`` each in permutation order: ``max_t``,
    each permutation's largest ``|t|`` (nilearn's ``h0_max_t``, which is not sorted
    either); ``max_s2``, the same as ``sum(z)**2 / sum(z**2)`` (:func:`t_from_s2` maps
    it to ``max_t``; compared with each voxel's for its FWE p); ``max_size``, the largest
    cluster in voxels (None without a cluster-forming threshold)."""

    max_t: np.ndarray
    max_s2: np.ndarray
    max_size: np.ndarray | None = None


def permutation_null(z: np.ndarray, flips: np.ndarray, neighbours: np.ndarray | None = None,
                     cluster_t: float | None = None, chunk_bytes: int = CHUNK_BYTES,
                     progress=None, cancel=None) -> PermutationNull:
    """The max-|t| (and max cluster size) null of sign-flipping permutations.

    ``z``: ``(n_subjects, n_voxels)``; ``flips``: ``(n_permutations, n_subjects)`` of
    +/-1 (:func:`sign_flips`). With ``neighbours`` (:func:`face_neighbours`) and
    ``cluster_t``, also each permutation's largest cluster of ``|t| > cluster_t``.
    ``progress(fraction, message)`` after each chunk; ``cancel`` (a
    ``threading.Event``) checked between chunks (:class:`~analysis.group.cluster.Cancelled`).
    """
    from .cluster import Cancelled

    z = _check_subjects(z)
    n, n_vox = z.shape
    flips = np.asarray(flips)
    if flips.ndim != 2 or flips.shape[1] != n:
        raise DataError(f"sign flips must be (n_permutations, {n}), got {flips.shape}")
    zn = _normalised(z)
    n_perm = flips.shape[0]
    max_s2 = np.empty(n_perm)
    max_size = np.empty(n_perm, dtype=np.int64) if cluster_t is not None else None
    if cluster_t is not None and neighbours is None:
        raise DataError("cluster sizes need the mask's neighbours")
    # |t| > cluster_t  <=>  |sum of z_n| > s_c  (|t| is monotone in |sum of z_n|)
    s_c = np.sqrt(s2_from_t(cluster_t, n)) if cluster_t is not None else None
    step = max(1, min(n_perm, int(chunk_bytes // (8 * max(n_vox, 1)))))
    flips_f = flips.astype(np.float64)
    for start in range(0, n_perm, step):
        if cancel is not None and cancel.is_set():
            raise Cancelled("group statistics cancelled")
        sums = flips_f[start:start + step] @ zn          # (chunk, n_voxels)
        top = np.maximum(sums.max(axis=1), -sums.min(axis=1))
        max_s2[start:start + step] = top ** 2
        if s_c is not None:
            max_size[start:start + step] = cluster_sizes(sums, s_c, neighbours)
        if progress is not None:
            done = min(start + step, n_perm)
            progress(done / n_perm, f"permutations {done:,}/{n_perm:,}")
    return PermutationNull(max_t=t_from_s2(max_s2, n), max_s2=max_s2, max_size=max_size)


def _normalised(z: np.ndarray) -> np.ndarray:
    """``z / ||z||`` per voxel (column), all-zero columns left 0; non-finite -> 0."""
    z = np.where(np.isfinite(z), z, 0.0)
    norm = np.sqrt((z * z).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, z / np.where(norm > 0, norm, 1.0), 0.0)


def fwe_p(z: np.ndarray, max_s2: np.ndarray) -> np.ndarray:
    """FWE-corrected p of each voxel from the max null (``(n_voxels,)``):
    ``(1 + #{max_s2 >= s2_voxel}) / (n_permutations + 1)``, as ``permuted_ols``; a null
    value within :data:`TIE_RTOL` below the voxel's counts (a flip of all subjects, or of
    none, gives the data's own statistic: the same sums in another order)."""
    zn = _normalised(_check_subjects(z))
    s2 = zn.sum(axis=0) ** 2
    null = np.sort(np.asarray(max_s2, dtype=np.float64))
    below = np.searchsorted(null, s2 * (1.0 - TIE_RTOL), side="left")
    return (1.0 + null.size - below) / (null.size + 1.0)


def cluster_p(size: np.ndarray, max_size: np.ndarray) -> np.ndarray:
    """Cluster-size FWE p of each voxel: ``(1 + #{max_size >= size}) / (n + 1)`` for
    voxels in a cluster, 1 outside clusters."""
    null = np.sort(np.asarray(max_size))
    size = np.asarray(size)
    p = (1.0 + null.size - np.searchsorted(null, size, side="left")) / (null.size + 1.0)
    return np.where(size > 0, p, 1.0)


@dataclass
class GroupInference:
    """The group statistics of :func:`group_inference` (arrays ``(n_voxels,)``).

    Attributes
    ----------
    t, p : one-sample t on Fisher z; uncorrected two-sided p. ``df = n_subjects - 1``.
    fdr_t_threshold, n_voxels_fdr : Benjamini-Hochberg at ``q``: the smallest ``|t|``
        declared (None: none) and the voxels declared (``fdr``, bool).
    fwe_t_threshold, n_voxels_fwe : max-|t| null's ``1 - alpha`` quantile (voxels with
        ``|t|`` above it have FWE p < alpha; None: too few permutations); the voxels
        with FWE p < alpha (``fwe``, bool).
    logp_fwe : -log10 of the FWE-corrected p (``permuted_ols``' ``logp_max_t``).
    h0_max_t : the permutation null of max |t| (permutation order).
    cluster_t : the cluster-forming ``|t|`` (``cluster_forming_p`` two-sided).
    cluster_size : each voxel's cluster size at ``cluster_t`` (0 outside clusters).
    h0_max_size : the null of the largest cluster.
    cluster_size_fwe_threshold : clusters of at least this many voxels have cluster-size
        FWE p < alpha (None: too few permutations).
    logp_cluster_fwe : -log10 of each voxel's cluster-size FWE p (0 outside clusters).
    """

    t: np.ndarray
    p: np.ndarray
    df: int
    n_permutations: int
    alpha: float
    q: float
    fdr: np.ndarray
    fdr_t_threshold: float | None
    n_voxels_fdr: int
    fwe: np.ndarray | None = None
    logp_fwe: np.ndarray | None = None
    h0_max_t: np.ndarray | None = None
    fwe_t_threshold: float | None = None
    n_voxels_fwe: int | None = None
    cluster_forming_p: float | None = None
    cluster_t: float | None = None
    cluster_size: np.ndarray | None = None
    h0_max_size: np.ndarray | None = None
    logp_cluster_fwe: np.ndarray | None = None
    cluster_size_fwe_threshold: int | None = None
    n_clusters_fwe: int | None = None
    random_state: int | None = None

    def significant(self, correction: str, threshold: float | None = None) -> np.ndarray:
        """Voxels shown at ``correction``: ``"uncorrected"`` (``|t| >= threshold``),
        ``"fdr"`` or ``"fwe"`` (``(n_voxels,)`` bool)."""
        if correction == "fdr":
            return self.fdr
        if correction == "fwe":
            return self.fwe if self.fwe is not None else np.zeros(self.t.shape, dtype=bool)
        if correction == "uncorrected":
            return np.abs(self.t) >= float(threshold or 0.0)
        raise DataError(f"unknown correction {correction!r}: uncorrected, fdr or fwe")


def group_inference(z: np.ndarray, mask: np.ndarray | None = None,
                    n_permutations: int = N_PERMUTATIONS, alpha: float = ALPHA,
                    q: float = FDR_Q, cluster_forming_p: float | None = CLUSTER_FORMING_P,
                    random_state=RANDOM_STATE, flips: np.ndarray | None = None,
                    progress=None, cancel=None) -> GroupInference:
    """t map, FDR and permutation FWE (voxel and cluster size) on the subjects' Fisher z.

    ``z``: ``(n_subjects, n_voxels)`` in mask order; ``mask``: the 3D group mask (needed
    for cluster sizes; None skips them). ``n_permutations`` sign flips
    (:func:`sign_flips` with ``random_state``, or ``flips`` as given; 0: no FWE).
    """
    z = _check_subjects(z)
    n = z.shape[0]
    if not 0 <= int(n_permutations) <= MAX_PERMUTATIONS:
        raise DataError(f"n_permutations must be from 0 to {MAX_PERMUTATIONS:,}, got "
                        f"{n_permutations}")
    if not 0 < alpha < 1 or not 0 < q < 1:
        raise DataError("alpha and q must be between 0 and 1")
    base = one_sample_t(z)
    t, p, df = base["t"], base["p"], base["df"]
    fdr = fdr_mask(p, q)
    fdr_t, n_fdr = fdr_threshold(t, p, q)
    out = GroupInference(t=t, p=p, df=df, n_permutations=0, alpha=float(alpha), q=float(q),
                         fdr=fdr, fdr_t_threshold=fdr_t, n_voxels_fdr=n_fdr)
    if flips is None:
        if int(n_permutations) == 0:
            return out
        flips = sign_flips(n, n_permutations, random_state)
        out.random_state = random_state if isinstance(random_state, (int, np.integer)) else None
    flips = np.asarray(flips)
    if flips.shape[0] == 0:
        return out
    neighbours = cluster_t = None
    if mask is not None and cluster_forming_p is not None:
        mask = np.asarray(mask, dtype=bool)
        if int(mask.sum()) != z.shape[1]:
            raise DataError(f"the mask has {int(mask.sum())} voxels, the maps {z.shape[1]}")
        neighbours = face_neighbours(mask)
        cluster_t = cluster_forming_t(cluster_forming_p, df)
    null = permutation_null(z, flips, neighbours, cluster_t, progress=progress, cancel=cancel)
    p_fwe = fwe_p(z, null.max_s2)
    p_fwe[~np.isfinite(t)] = np.nan
    out.n_permutations = int(flips.shape[0])
    out.h0_max_t = null.max_t
    out.logp_fwe = -np.log10(p_fwe)
    out.fwe = np.nan_to_num(p_fwe, nan=1.0) < alpha
    out.n_voxels_fwe = int(out.fwe.sum())
    out.fwe_t_threshold = quantile_threshold(null.max_t, alpha)
    if cluster_t is not None:
        # the observed clusters: the same labelling as the permutations'
        zn = _normalised(z)
        sums = zn.sum(axis=0)[None]
        s_c = np.sqrt(s2_from_t(cluster_t, n))
        _, size, ids = cluster_sizes(sums, s_c, neighbours, per_voxel=True)
        size, ids = size[0], ids[0]
        p_cluster = cluster_p(size, null.max_size)
        h = quantile_threshold(null.max_size, alpha)
        out.cluster_forming_p = float(cluster_forming_p)
        out.cluster_t = cluster_t
        out.cluster_size = size
        out.h0_max_size = null.max_size
        out.logp_cluster_fwe = -np.log10(p_cluster)
        out.cluster_size_fwe_threshold = None if h is None else int(h) + 1
        out.n_clusters_fwe = int(np.unique(ids[(size > 0) & (p_cluster < alpha)]).size)
    return out

