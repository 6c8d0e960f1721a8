"""Serving many sessions from one process: shared heavy state, a warm-up at start."""

import numpy as np

from analysis import encoding
from analysis.encoding import EncodingAnalysis


def test_sessions_share_the_encoding_samples(encoding_dir):
    """Each session's analysis reads the same (read-only) responses: no per-session copy."""
    a = EncodingAnalysis(data_dir=str(encoding_dir))
    b = EncodingAnalysis(data_dir=str(encoding_dir), alpha=10.0)
    ya, xa, runs_a, vol_a = a.samples()
    yb = b.samples()[0]
    assert ya is yb
    assert not ya.flags.writeable
    y, x, runs, volumes = a.data().lagged(a.lag)
    np.testing.assert_array_equal(ya, y)
    np.testing.assert_array_equal(xa, x)
    np.testing.assert_array_equal(runs_a, runs)
    np.testing.assert_array_equal(vol_a, volumes)
    # another lag is another entry, and each instance follows its own lag
    b.lag = 1
    assert b.samples()[0].shape[0] > ya.shape[0]
    assert a.samples()[0] is ya


def test_warm_up_fills_what_a_first_session_needs(encoding_dir, decoding_dir, connectivity_dir,
                                                  ridge_builds):
    from analysis.connectivity import CACHE, SeedConnectivity
    from analysis.encoding.engine import RidgeCV
    from dashboard import warmup

    encoding.clear_caches()
    CACHE.clear()
    timings = warmup.warm("small")
    assert all(isinstance(t, float) for t in timings.values()), timings
    assert set(timings) == {"encoding", "encoding voxel", "decoding", "connectivity",
                            "modules"}
    import sys
    assert {"dask.distributed", "matplotlib.pyplot", "nilearn.plotting"} <= set(sys.modules)
    decompositions, cleanings = ridge_builds["built"], CACHE.stats()["misses"]
    lasso_fits = encoding.LASSO.stats()["misses"]
    # what the tabs do first, with their default parameters: nothing is computed again
    a = EncodingAnalysis(size="small")
    a.r2_map()
    a.alpha_path()
    a.lasso_receptive_field(int(np.argmax(a.mean_r2().values)))  # the tab's first voxel
    SeedConnectivity(size="small").compute()
    assert ridge_builds["built"] == decompositions
    assert CACHE.stats()["misses"] == cleanings
    assert encoding.LASSO.stats()["misses"] == lasso_fits
