"""Group statistics on the subjects' seed maps (numpy and scipy, no Dask).

Fisher z = ``arctanh(r)`` per subject, a one-sample t-test against 0 per voxel
(``scipy.stats.ttest_1samp``) and the mean z.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def fisher_z(r: np.ndarray) -> np.ndarray:
    """``arctanh(r)``, r clipped just inside (-1, 1) so that z stays finite."""
    lim = 1.0 - 1e-12
    return np.arctanh(np.clip(r, -lim, lim))


def group_stats(r: np.ndarray) -> dict:
    """One-sample t-test on Fisher z across subjects (axis 0).

    Returns ``t``, ``p`` (two-sided) and ``mean_z``, each ``(n_voxels,)``.
    """
    from scipy.stats import ttest_1samp

    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise DataError(f"a group t-test needs at least 2 subjects, got {r.shape[0] if r.ndim == 2 else 0}")
    z = fisher_z(r)
    res = ttest_1samp(z, 0.0, axis=0)
    return {"t": np.asarray(res.statistic, dtype=np.float64),
            "p": np.asarray(res.pvalue, dtype=np.float64), "mean_z": z.mean(axis=0)}
