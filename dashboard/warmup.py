"""Warm the process-level caches when the server starts (in a background thread).

``fmri-explorer serve`` passes this file to ``panel serve --setup``; the app
also calls :func:`start` when its first session opens (for a plain
``panel serve dashboard/app.py``). Either way it runs once per process (with
``--num-procs N``, once in each process: every process has its own caches).

The thread fills the same caches a session fills on first use, in the order a
first page needs them: the Encoding tab's data, decomposition (read from the cache
folder when an earlier process saved it) and R² map (the default tab), then its
modules; then, a few seconds after the first page has loaded (or after
``LATER_AFTER`` seconds), the alpha path and the first voxel's LassoLarsCV fit
(the voxel's views follow the first page) and the Decoding and Connectivity tabs'
datasets, masked and cleaned data, so that
a first visitor arriving as the server starts does not share the CPU with them.
A page asked for before the first step is done goes out at once, with the tab's
spinner; the app builds its tab when :data:`FIRST_PAGE_READY` is set.
It computes nothing a session would not: a session that arrives while it runs
waits for the same cache entry (per-key locks) instead of computing it twice. Into the
cache folder only (not kept in memory), it also prepares what a first structural change
would otherwise compute: the Decoding data's other masks (the whole brain) and the next
:data:`CONNECTIVITY_PREFETCH` Connectivity subjects cleaned with the default settings.
A failure is logged and left to the tab, which reports it in its session.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # `panel serve --setup dashboard/warmup.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("fmri_explorer.warmup")

_STARTED = threading.Event()
DONE = threading.Event()
#: set when a session's first page has loaded (the app calls :func:`page_loaded`)
PAGE_LOADED = threading.Event()
#: seconds to wait for a first page before warming the other tabs anyway
LATER_AFTER = 20.0
#: seconds after the first page has loaded before warming the other tabs (the page is
#: still drawing, and its first moves should not share the CPU with the warm-up)
AFTER_PAGE = 5.0
#: set when what the Encoding tab's first message needs is loaded (its data,
#: decomposition, R² map and modules), or has failed (the tab then reports it)
FIRST_PAGE_READY = threading.Event()
#: step name -> seconds (or the error), for the log and the benchmark
TIMINGS: dict = {}


def _real(kind: str) -> str | None:
    """The server's nilearn folder when it holds ``kind``'s dataset (``serve --data``):
    the tabs start on it, so the warm-up loads it rather than the synthetic data."""
    from analysis.datasets.found import nilearn_sources

    sources = nilearn_sources(kind)
    return next(iter(sources.values())) if sources else None


def _encoding(size: str) -> None:
    from analysis.encoding import EncodingAnalysis

    a = EncodingAnalysis(size=size, data_dir=_real("encoding"))  # the tab's defaults
    a.data()
    a.background()
    a.engine()
    a.mean_r2()
    import dashboard.encoding  # noqa: F401 - the first page imports it too (HoloViews...)


def _encoding_voxel(size: str) -> None:
    import numpy as np

    from analysis.encoding import EncodingAnalysis

    a = EncodingAnalysis(size=size, data_dir=_real("encoding"))
    # the tab starts on the best voxel; its views and the alpha path come after the first
    # page (and with them scikit-learn, for the LassoLarsCV receptive field)
    a.alpha_path()
    a.lasso_receptive_field(int(np.argmax(a.mean_r2().values)))


def _decoding(size: str) -> None:
    from analysis.decoding import DecodingAnalysis
    from dashboard import decoding

    from analysis.datasets.found import nilearn_sources

    source = next(iter(nilearn_sources("decoding")), decoding.SYNTHETIC)
    data = decoding._dataset(source)
    decoding._background(source)
    analysis = DecodingAnalysis(data)
    analysis.masked()
    # the other masks (the whole brain) into the cache folder, not into memory: a
    # visitor's change of mask then reads them instead of masking for seconds
    from analysis.datasets.haxby_masked import ensure_on_disk

    for name in data.masks:
        if name != analysis.mask:
            analysis.mask = name
            ensure_on_disk(data.func, analysis.mask_img(), analysis.standardize)


def _connectivity(size: str) -> None:
    from analysis.connectivity import SeedConnectivity
    from analysis.volumes import mni_background

    m = SeedConnectivity(size=size, data_dir=_real("connectivity"))
    m.cleaned_data()
    mni_background(int(round(abs(float(m.subject_data().img.affine[0, 0])))))
    # the next subjects a session may switch to: read and cleaned (default settings) into
    # the cache folder, not kept in memory; a switch then loads them (issue 15)
    from analysis.connectivity.cleaning import prefetch

    for subject in range(1, min(m.n_subjects, 1 + CONNECTIVITY_PREFETCH)):
        prefetch(*m.planned(subject=subject))


#: how many subjects after the first the warm-up cleans into the cache folder
CONNECTIVITY_PREFETCH = 3


#: (name, step, after the first page)
def _modules(size: str) -> None:
    """What a session loads on first use besides the tabs' data: the group section's
    Dask client and scheduler code, the exports' matplotlib and nilearn plotting, the
    permutation and Lasso estimators, the default atlas (a first Run, export, receptive
    field or region name is then quicker; the server's memory at rest includes them from
    the start)."""
    import dask.distributed  # noqa: F401
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot  # noqa: F401
    import nilearn.plotting  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.svm  # noqa: F401
    from analysis.reporting.atlas import DEFAULT_ATLAS, label_image

    label_image(DEFAULT_ATLAS)   # the readouts' region names (3 s the first time)


STEPS = [("encoding", _encoding, False), ("encoding voxel", _encoding_voxel, True),
         ("decoding", _decoding, True), ("connectivity", _connectivity, True),
         ("modules", _modules, True)]


def first_page_pending() -> bool:
    """The warm-up thread runs and has not yet loaded what a first page needs."""
    return _STARTED.is_set() and not FIRST_PAGE_READY.is_set()


def page_loaded() -> None:
    """A session's page has loaded: the other tabs may be warmed now."""
    PAGE_LOADED.set()


def warm(size: str | None = None, wait_for_page: bool = False) -> dict:
    """Fill the caches (blocking); return the seconds each step took.

    With ``wait_for_page``, the other tabs' steps wait for a first page to load
    (at most ``LATER_AFTER`` seconds).
    """
    from analysis.config import default_size

    size = size or default_size()
    waited = False
    for name, step, later in STEPS:
        if later and wait_for_page and not waited:
            if PAGE_LOADED.wait(LATER_AFTER):
                time.sleep(AFTER_PAGE)
            waited = True
        t0 = time.perf_counter()
        try:
            step(size)
            TIMINGS[name] = round(time.perf_counter() - t0, 3)
        except Exception as exc:  # noqa: BLE001 - the tab will report it in its session
            TIMINGS[name] = f"{type(exc).__name__}: {exc}"
            log.warning("warm-up of %s failed: %s", name, exc)
        if not later:
            FIRST_PAGE_READY.set()
    from analysis import store

    store.mark_warm()   # what the server keeps when no session is left (store.trim)
    DONE.set()
    print("fmri-explorer: caches warm (seconds per tab): "
          + ", ".join(f"{k} {v}" for k, v in TIMINGS.items()), flush=True)
    return dict(TIMINGS)


def start(size: str | None = None) -> threading.Thread | None:
    """Start :func:`warm` in a daemon thread, once per process (None if already started)."""
    if _STARTED.is_set():
        return None
    _STARTED.set()
    thread = threading.Thread(target=warm, args=(size, True), name="fmri-explorer-warmup",
                              daemon=True)
    thread.start()
    return thread


if __name__ in ("__main__", "panel_setup_module"):  # run as a script: use the package's
    # module, so that the app's own start() finds the thread already started
    from dashboard import security
    from dashboard import warmup as _module

    from dashboard import diagnostics

    security.install()  # headers, login throttle, cookie flags, shutdown (dashboard/security.py)
    diagnostics.start()  # only with $FMRI_EXPLORER_MEMORY_REPORT (dashboard/diagnostics.py)
    _module.start()
