"""The decoding's array arithmetic, pure numpy: accuracy, Haufe patterns, p-values.

Small functions on arrays (``X (n_samples, n_voxels)``, labels ``(n_samples,)``)
that the scikit-learn fits (:mod:`.reference`) and the permutation test
(:mod:`.permutation`) share: :func:`accuracy` (``accuracy_score`` without its
checks), :func:`haufe_pattern` (activation patterns from a decoder's weights),
:func:`shuffled_labels` (``permutation_test_score``'s draws), :func:`p_value`,
and the :class:`Cancelled` exception a cancelled computation raises.
"""

from __future__ import annotations

import numpy as np


def accuracy(y_true, y_pred) -> float:
    """``sklearn.metrics.accuracy_score`` (the mean of correct predictions), without its
    input checks (a millisecond each, 26 calls per change of C)."""
    return float(np.average(np.asarray(y_true) == np.asarray(y_pred)))



def haufe_pattern(X, coef) -> np.ndarray:
    """Activation patterns ``A = cov(X) W cov(s)^-1`` with ``s = X W`` (Haufe et al. 2014).

    ``X (n_samples, n_voxels)``, ``coef (n_rows, n_voxels)`` -> ``(n_rows, n_voxels)``;
    computed row by row (each decoder separately), without forming ``cov(X)`` or a
    centred copy of ``X``: ``cov(X) w = X^T (s - mean(s)) / (n - 1)`` with the source
    ``s`` centred (the same value as centring ``X``; two products with ``X``).
    """
    X = np.asarray(X, dtype=np.float64)
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    s = X @ coef.T
    s -= s.mean(axis=0)                               # the centred source (n_samples, n_rows)
    cov_w = X.T @ s / (len(X) - 1)                    # cov(X) @ w, (n_voxels, n_rows)
    var_s = s.var(axis=0, ddof=1)
    var_s[var_s == 0] = 1.0
    return (cov_w / var_s).T


def shuffled_labels(y, groups, n_permutations: int, random_state=0) -> list[np.ndarray]:
    """The permuted labels ``permutation_test_score`` draws (within groups when given).

    The same draws as scikit-learn's ``_shuffle`` (one ``permutation`` per group, groups
    in sorted order, from one generator), without its per-call ``np.unique`` and masks:
    about 5x less time holding the GIL, which a served page's event loop shares.
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    y = np.asarray(y)
    if groups is None:
        return [y[rng.permutation(len(y))] for _ in range(n_permutations)]
    groups = np.asarray(groups)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    out = []
    for _ in range(n_permutations):
        indices = np.arange(len(groups))
        for m in members:
            indices[m] = rng.permutation(m)
        out.append(y[indices])
    return out



def p_value(score: float, null: np.ndarray) -> float:
    """``(#{null >= score} + 1) / (n_permutations + 1)``, as ``permutation_test_score``."""
    return float((np.sum(null >= score) + 1.0) / (len(null) + 1.0))


def p_text(p: float, n_permutations: int) -> str:
    """``p=0.0342``, or ``p<=0.0099`` when no permutation reached the score: the
    smallest p ``n_permutations`` can report is ``1/(n+1)``, not 0."""
    floor = 1.0 / (int(n_permutations) + 1.0)
    if p <= floor * (1 + 1e-9):
        return f"p<={floor:.3g}"
    return f"p={p:.3g}"


class Cancelled(RuntimeError):
    """A background computation was cancelled."""

