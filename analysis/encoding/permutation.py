"""A permutation test of each voxel's cross-validated R^2 that respects autocorrelation,
refitted with the fast ridge engine, and FDR across voxels.

The null: no relation between the stimuli and the responses. Each permutation moves
whole stretches of the responses ``Y`` in time, the same way for every voxel, while the
stimuli ``X``, the folds and ``alpha`` stay; so each voxel's own autocorrelation (its
haemodynamics, drifts) and the stimuli's block structure are kept, only their alignment
is broken (scheme ``"shift"``, the default, as the circular-shift tests of e.g. Kriegeskorte
et al.; ``"runs"`` exchanges whole runs, as a permutation of exchangeable blocks):

* ``"shift"``: each run's responses rotated circularly by its own random offset of at
  least ``min_shift`` samples (10 by default: 20 s at ``t_r = 2`` s, beyond the
  haemodynamic response) from both ends;
* ``"runs"``: the runs' response blocks shuffled among runs of the same length.

Every permutation refits the same ridge (same ``alpha``, same folds) and scores the
fold-mean R^2 of every voxel: the null ``(n_permutations, n_voxels)``. Per voxel
``p = (#{null >= observed} + 1) / (n_permutations + 1)`` (as
``sklearn.model_selection.permutation_test_score``; the smallest p is ``1/(n + 1)``), and
Benjamini-Hochberg across voxels at ``q`` gives the voxels kept and the R^2 threshold
"FDR q < 0.05" (the smallest observed R^2 among them).

How a permutation is refitted: permuting the *rows of Y* (not X) leaves each fold's
training stimuli the same set of rows, so their decomposition is the same; the engine
(:class:`analysis.encoding.engine.RidgeCV`) is rebuilt on ``X[inverse]`` with the folds
relabelled (:func:`permuted_engine`), which pairs each fold's stimuli with the permuted
responses without copying ``Y``: one pass over ``Y`` (the test folds' products) and the
stimuli's small decompositions per permutation, then ``alpha`` scored as the engine
does. Equal to a plain scikit-learn ``Ridge`` loop on ``Y[rows]`` (:func:`reference_null`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..progress import null_progress
from ..store import Store
from .engine import RidgeCV, check_alpha

#: The schemes: ``"shift"`` (circular shifts within runs, default) and ``"runs"``
#: (whole runs exchanged).
SCHEMES = ("shift", "runs")
#: The smallest circular shift, in samples, from either end of a run.
MIN_SHIFT = 10
#: The most permutations an analysis runs (the CLI's bound).
MAX_PERMUTATIONS = 100_000
FDR_Q = 0.05
#: Finished tests per (analysis, alpha, permutations, scheme, seed, q), for every session.
TESTS = Store("encoding.permutation_tests", max_entries=8)


def permuted_rows(runs, n_permutations: int, scheme: str = "shift",
                  min_shift: int = MIN_SHIFT, random_state=0) -> np.ndarray:
    """The row order of ``Y`` for each permutation: ``(n_permutations, n_samples)``
    (``Y[rows[i]]`` is permutation ``i``'s responses).

    ``runs`` ``(n_samples,)`` labels each sample's run; a run's samples need not be
    contiguous (their order within the run is kept).
    """
    if scheme not in SCHEMES:
        raise DataError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    n_permutations = int(n_permutations)
    if not 0 <= n_permutations <= MAX_PERMUTATIONS:
        raise DataError(f"n_permutations must be from 0 to {MAX_PERMUTATIONS}, "
                        f"not {n_permutations}")
    runs = np.asarray(runs)
    if runs.ndim != 1 or runs.size < 2:
        raise DataError("a permutation test needs each sample's run")
    labels = np.unique(runs)
    members = [np.flatnonzero(runs == r) for r in labels]
    rng = np.random.default_rng(random_state)
    out = np.empty((n_permutations, runs.size), dtype=np.int64)
    if scheme == "shift":
        min_shift = int(min_shift)
        lengths = np.array([m.size for m in members])
        if min_shift < 1 or (lengths - 2 * min_shift < 0).all():
            raise DataError(f"circular shifts of at least {min_shift} samples need a run of "
                            f"at least {2 * max(min_shift, 1)} samples; the longest has "
                            f"{lengths.max()}")
        for i in range(n_permutations):
            for m in members:
                n = m.size
                # a run too short to shift that far keeps its place (it adds no signal:
                # the other runs are shifted)
                shift = rng.integers(min_shift, n - min_shift + 1) if n >= 2 * min_shift else 0
                out[i, m] = m[(np.arange(n) + shift) % n]
        return out
    groups = {}
    for m in members:
        groups.setdefault(m.size, []).append(m)
    if all(len(g) < 2 for g in groups.values()):
        raise DataError("exchanging runs needs at least two runs of the same length")
    for i in range(n_permutations):
        for g in groups.values():
            order = rng.permutation(len(g))
            for dst, src in zip(g, order):
                out[i, dst] = g[src]
    return out


def permuted_engine(eng: RidgeCV, x, y, rows) -> RidgeCV:
    """``eng`` refitted on the responses ``y[rows]`` (same stimuli, folds and dtype; no
    full-data fit): cross-validated R^2 only. ``x`` and ``y`` are the stimuli and
    responses ``eng`` was built on.

    Built as ``RidgeCV(x[inverse], y, [(rows[train], rows[test]) ...])``: the samples
    relabelled so that the responses stay where they are (no copy of ``y``, read one
    test fold at a time as for the engine itself); each fold pairs the same stimuli
    with the same responses as ``(x, y[rows])`` on the original folds, so every fold's
    R^2 is the same.
    """
    x = np.asarray(x, dtype=np.float64)
    n = eng.n_samples
    if x.shape != (n, eng.n_features) or tuple(np.shape(y)) != (n, eng.n_voxels):
        raise DataError(f"stimuli {x.shape} and responses {np.shape(y)} are not the "
                        f"engine's ({n} x {eng.n_features}, {n} x {eng.n_voxels})")
    rows = np.asarray(rows)
    if rows.shape != (n,) or not np.array_equal(np.sort(rows), np.arange(n)):
        raise DataError(f"rows must be a permutation of the {n} samples")
    inverse = np.empty_like(rows)
    inverse[rows] = np.arange(n)
    return RidgeCV(x[inverse], y, [(rows[tr], rows[te]) for tr, te in eng.folds],
                   dtype=eng.dtype, full_fit=False)


def permutation_null(eng: RidgeCV, x, y, alpha, rows, progress=None, cancel=None) -> np.ndarray:
    """Fold-mean R^2 of every voxel for each permutation's responses ``y[rows[i]]``:
    ``(n_permutations, n_voxels)`` (float64). ``cancel``: a ``threading.Event``; when it
    is set the rows computed so far are returned (NaN after them)."""
    alpha = check_alpha(alpha)
    progress = progress or null_progress
    rows = np.atleast_2d(np.asarray(rows))
    out = np.full((rows.shape[0], eng.n_voxels), np.nan)
    from threadpoolctl import threadpool_limits

    # one BLAS thread, as the engine's own products (on a few busy cores threads wait)
    with threadpool_limits(1, user_api="blas"):
        for i, order in enumerate(rows):
            if cancel is not None and cancel.is_set():
                break
            out[i] = permuted_engine(eng, x, y, order).mean_r2(alpha)
            progress((i + 1) / len(rows), f"permutation {i + 1}/{len(rows)}")
    return out


def reference_null(x, y, folds, alpha, rows) -> np.ndarray:
    """The same null with the seed's scikit-learn loop (``Ridge`` per fold,
    ``r2_score``) on each ``y[rows[i]]``: the reference of :func:`permutation_null`."""
    from .reference import reference_r2

    return np.array([reference_r2(x, np.asarray(y)[order], folds, alpha).mean(axis=0)
                     for order in np.atleast_2d(rows)])


def permutation_p(observed, null) -> np.ndarray:
    """``(#{null >= observed} + 1) / (n + 1)`` per voxel (``n`` the finished
    permutations: rows of ``null`` without NaN)."""
    observed = np.asarray(observed, dtype=np.float64)
    null = np.atleast_2d(np.asarray(null, dtype=np.float64))
    null = null[np.isfinite(null).all(axis=1)]
    count = (null >= observed[None, :]).sum(axis=0)
    return (count + 1.0) / (null.shape[0] + 1.0)


@dataclass
class PermutationTest:
    """A finished permutation test of every voxel's R^2.

    Attributes
    ----------
    observed : ndarray, shape (n_voxels,)
        Fold-mean R^2 at ``alpha``.
    null : ndarray, shape (n_permutations, n_voxels)
    p : ndarray, shape (n_voxels,)
    significant : ndarray of bool, shape (n_voxels,)
        Benjamini-Hochberg at ``fdr_q``.
    r2_threshold : float or None
        The smallest observed R^2 among the significant voxels (None: none).
    """

    observed: np.ndarray
    null: np.ndarray
    p: np.ndarray
    significant: np.ndarray
    alpha: float
    scheme: str
    fdr_q: float
    r2_threshold: float | None

    @property
    def n_permutations(self) -> int:
        return int(np.isfinite(self.null).all(axis=1).sum())

    @property
    def n_significant(self) -> int:
        return int(self.significant.sum())

    @property
    def smallest_p(self) -> float:
        """``1 / (n_permutations + 1)``: no p can be smaller ("p <= 1/(n+1)")."""
        return 1.0 / (self.n_permutations + 1)

    @property
    def nbytes(self) -> int:
        return int(self.null.nbytes + self.observed.nbytes + self.p.nbytes)

    def summary(self) -> dict:
        """JSON-able figures: ``n_permutations``, ``permutation_scheme``, ``fdr_q``,
        ``fdr_r2_threshold``, ``n_voxels_fdr``, ``smallest_p``."""
        return {"n_permutations": self.n_permutations, "permutation_scheme": self.scheme,
                "fdr_q": self.fdr_q, "fdr_r2_threshold": self.r2_threshold,
                "n_voxels_fdr": self.n_significant, "smallest_p": self.smallest_p}


def fdr_result(observed, null, alpha, scheme, fdr_q=FDR_Q) -> PermutationTest:
    """p per voxel and Benjamini-Hochberg across voxels at ``fdr_q``."""
    from ..connectivity.stats import check_q, fdr_select

    fdr_q = check_q(fdr_q)
    observed = np.asarray(observed, dtype=np.float64)
    p = permutation_p(observed, null)
    significant = fdr_select(p, fdr_q)
    r2_cut = float(observed[significant].min()) if significant.any() else None
    return PermutationTest(observed=observed, null=np.asarray(null, dtype=np.float64), p=p,
                           significant=significant, alpha=float(alpha), scheme=scheme,
                           fdr_q=fdr_q, r2_threshold=r2_cut)


def permutation_test(eng: RidgeCV, x, y, runs, alpha, n_permutations: int = 100,
                     scheme: str = "shift", min_shift: int = MIN_SHIFT, random_state=0,
                     fdr_q: float = FDR_Q, progress=None, cancel=None) -> PermutationTest:
    """The whole test on one engine (built on stimuli ``x`` and responses ``y``, samples
    labelled by ``runs``): :func:`permuted_rows`, :func:`permutation_null`, p and FDR."""
    alpha = check_alpha(alpha)
    if int(n_permutations) < 1:
        raise DataError(f"a permutation test needs at least 1 permutation, not {n_permutations}")
    rows = permuted_rows(runs, n_permutations, scheme, min_shift, random_state)
    observed = eng.mean_r2(alpha).astype(np.float64)
    null = permutation_null(eng, x, y, alpha, rows, progress=progress, cancel=cancel)
    return fdr_result(observed, null, alpha, scheme, fdr_q)


def analysis_permutation_test(enc, n_permutations: int = 100, scheme: str = "shift",
                              random_state=0, fdr_q: float = FDR_Q, progress=None,
                              cancel=None) -> PermutationTest:
    """:func:`permutation_test` of an :class:`~analysis.encoding.EncodingAnalysis` at its
    current structural parameters and ``alpha`` (its cached engine and samples), kept
    for every session once finished (a cancelled test is returned, not kept)."""
    eng = enc.engine()
    y, x, runs, _ = enc.samples()
    key = (enc.structural_key(), float(enc.alpha), int(n_permutations), scheme,
           random_state, float(fdr_q))
    done = TESTS.get(key)
    if done is not None:
        return done
    result = permutation_test(eng, x, y, runs, enc.alpha, n_permutations, scheme,
                              random_state=random_state, fdr_q=fdr_q, progress=progress,
                              cancel=cancel)
    if result.n_permutations == int(n_permutations):
        TESTS.put(key, result)
    return result


def p_volume(enc, test: PermutationTest):
    """``-log10 p`` of a test of ``enc`` as a volume, ``(x, y, z)`` in mm, NaN outside
    the mask (attrs: ``n_permutations``, ``fdr_q``, ``fdr_r2_threshold``, ``smallest_p``)."""
    from ..volumes import to_xarray

    da = to_xarray(-np.log10(test.p), mask=enc.data().mask_img, name="neg_log10_p")
    da.attrs.update(n_permutations=test.n_permutations, fdr_q=test.fdr_q,
                    fdr_r2_threshold=test.r2_threshold, smallest_p=test.smallest_p,
                    alpha=test.alpha)
    return da
