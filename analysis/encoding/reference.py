"""The seed example's own code (Miyawaki 2008, nilearn's encoding example): the
reference the fast engine (:mod:`.engine`) is tested and benchmarked against, and the
Lasso receptive fields the app shows as the seed computes them."""

from __future__ import annotations

import numpy as np


def reference_r2(x, y, folds, alpha) -> np.ndarray:
    """The seed's loop: ``Ridge(alpha)`` per fold, ``r2_score(raw_values)``: ``(n_folds, n_voxels)``."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    estimator = Ridge(alpha=alpha)
    scores = []
    for train, test in folds:
        predictions = estimator.fit(x[train], y[train]).predict(x[test])
        scores.append(r2_score(y[test], predictions, multioutput="raw_values"))
    return np.array(scores)


def lasso_receptive_field(x, y) -> np.ndarray:
    """The seed's ``make_pipeline(StandardScaler(), LassoLarsCV(max_iter=10))`` coefficients."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LassoLarsCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lasso = make_pipeline(StandardScaler(), LassoLarsCV(max_iter=10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lasso.fit(x, y)
    return lasso.named_steps["lassolarscv"].coef_.copy()
