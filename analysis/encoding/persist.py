"""The encoding decompositions' disk cache and the background work around it.

A decomposition (:class:`analysis.encoding.engine.RidgeCV`) is kept in the cache folder
(the :data:`ENGINE_FILES` most recent), written by a timer thread once none has been built
for :data:`SAVE_DELAY` seconds; each run's products at the setting shown are computed in
the background once none has begun for :data:`PREFETCH_DELAY` seconds
(:meth:`analysis.encoding.model.EncodingAnalysis.prefetch_run_blocks`).
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from .. import cache as disk_cache
from ..errors import DataError
from .engine import RidgeCV

log = logging.getLogger("fmri_explorer.encoding")

#: decompositions kept on disk (in the cache folder), the most recently used first
ENGINE_FILES = 3
ENGINE_PREFIX = "ridgecv-"


class _Rows:
    """``a[rows]`` without the copy, for what reads some rows (``[test]``, ``[i:j]``) or a
    column (``[:, j]``) at a time: the engine's responses at a lag."""

    def __init__(self, a: np.ndarray, rows: np.ndarray):
        self.a, self.rows = a, rows
        self.shape = (len(rows), a.shape[1])
        self.dtype = a.dtype

    def __getitem__(self, key):
        if isinstance(key, tuple):
            r, c = key
            return self.a[self.rows[r], c]
        return self.a[self.rows[key]]


def _load_engine(path, x, y, dtype) -> RidgeCV | None:
    """The decomposition saved at ``path``, or None (missing, unreadable, other data)."""
    if path is None or not os.path.lexists(path):
        return None
    try:
        eng = RidgeCV.load(path, x, y, dtype)
    except DataError as exc:
        log.info("ignoring %s: %s", path, exc)
        return None
    disk_cache.touch(path)  # recently used: kept when older ones are removed
    return eng


#: Seconds without a new decomposition before the deferred ones are written to disk
#: (:meth:`EncodingAnalysis.engine`'s ``save_later``): writing 95 MB slows a decomposition
#: running meanwhile 2-4x, so it waits until the user stops changing structural settings.
SAVE_DELAY = 5.0


class _Saver:
    """The decompositions waiting to be written to the disk cache (the ``ENGINE_FILES``
    most recent), written by a timer thread once none has been built for
    :data:`SAVE_DELAY` seconds."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._timer = None

    def add(self, eng: RidgeCV, path) -> None:
        with self._lock:
            self._pending.pop(path, None)
            self._pending[path] = eng
            while len(self._pending) > ENGINE_FILES:
                self._pending.pop(next(iter(self._pending)))
            self._restart()

    def postpone(self) -> None:
        """A decomposition starts: the writes wait for it (and :data:`SAVE_DELAY` more)."""
        with self._lock:
            if self._pending:
                self._restart()

    def _restart(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(SAVE_DELAY, self._write)
        self._timer.daemon = True
        self._timer.start()

    def _write(self) -> None:
        with self._lock:
            pending, self._pending, self._timer = list(self._pending.items()), {}, None
        for path, eng in pending:
            _save_engine(eng, path)


_SAVER = _Saver()


def _save_engine(eng: RidgeCV, path, later: bool = False) -> None:
    """Keep the decomposition on disk (the ``ENGINE_FILES`` most recent ones), so a new
    process (a restarted server, another of ``--num-procs``) reads it instead of
    computing it. A cache folder that cannot be written only makes that slower.
    ``later``: written by a background thread once no decomposition has been built for
    :data:`SAVE_DELAY` seconds."""
    if path is None:
        return
    if later:
        _SAVER.add(eng, path)
        return
    try:
        eng.save(path)
    except (OSError, DataError) as exc:
        log.info("decomposition not saved to %s: %s", path, exc)
        return
    disk_cache.prune(ENGINE_PREFIX, ".npz", ENGINE_FILES, folder=path.parent)


#: Seconds without a new decomposition before the runs' products of the last setting
#: shown are computed in the background (:meth:`EncodingAnalysis.prefetch_run_blocks`).
PREFETCH_DELAY = 0.5


class _Prefetch:
    """One background computation of runs' products at a time, started once no
    decomposition has begun for :data:`PREFETCH_DELAY` seconds and stopped (between two
    runs) when one begins: it never holds up a structural change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._timer = None
        self.generation = 0

    def schedule(self, analysis) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            generation = self.generation
            self._timer = threading.Timer(PREFETCH_DELAY, self._run, (analysis, generation))
            self._timer.daemon = True
            self._timer.start()

    def _run(self, analysis, generation: int) -> None:
        try:
            analysis.run_blocks(cancel=lambda: self.generation != generation)
        except Exception as exc:  # noqa: BLE001 - only a speed-up is lost
            log.info("runs' products not prepared: %s", exc)

    def interrupt(self) -> None:
        """A decomposition begins: a waiting or running computation stops."""
        with self._lock:
            self.generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


_PREFETCH = _Prefetch()
