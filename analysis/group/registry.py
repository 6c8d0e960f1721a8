"""The process-level engines, shared by sessions: one per scheduler, closed when idle.

:func:`get_engine` hands out the engine for a scheduler address (starting it the
first time) and counts its users; :func:`release_engine` closes it once the last
user leaves, after an optional grace period (:func:`idle_seconds`), and
:func:`close_engines` closes them all at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

import numpy as np

from .cluster import CONNECT_TIMEOUT, scheduler_address
from .engine import GroupEngine

log = logging.getLogger("fmri_explorer.group")

_ENGINES: dict = {}
_ENGINES_LOCK = threading.Lock()
#: engine -> number of GroupConnectivity objects using it (closed when it falls to 0)
_USERS: dict = {}
#: engine -> the timer that will close it, idle (cancelled when it is used again)
_IDLE_TIMERS: dict = {}
#: Environment variable: seconds an engine nobody uses stays up in the app (default 10).
IDLE_ENV = "FMRI_EXPLORER_CLUSTER_IDLE_S"
DEFAULT_IDLE_S = 10.0


def idle_seconds() -> float:
    """How long the app keeps a cluster nobody uses (``$FMRI_EXPLORER_CLUSTER_IDLE_S``):
    its workers' memory (each subject's cleaned data) goes back to the system after that."""
    try:
        value = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S))
    except ValueError:
        return DEFAULT_IDLE_S
    return value if np.isfinite(value) and value >= 0 else DEFAULT_IDLE_S


def _acquire(engine) -> None:
    """One more user of ``engine`` (called under ``_ENGINES_LOCK``)."""
    _USERS[engine] = _USERS.get(engine, 0) + 1
    timer = _IDLE_TIMERS.pop(engine, None)
    if timer is not None:
        timer.cancel()


def release_engine(engine, wait: float = 0.0) -> None:
    """One user fewer; once nobody uses ``engine``, close it after ``wait`` seconds (if
    nobody took it up again meanwhile). Closing a local cluster ends its workers."""
    with _ENGINES_LOCK:
        users = _USERS.get(engine, 0) - 1
        if users > 0:
            _USERS[engine] = users
            return
        _USERS.pop(engine, None)
        if wait <= 0:
            _forget(engine)
        else:
            timer = threading.Timer(wait, _close_if_idle, args=(engine,))
            timer.daemon = True
            old = _IDLE_TIMERS.pop(engine, None)
            if old is not None:
                old.cancel()
            _IDLE_TIMERS[engine] = timer
            timer.start()
            return
    _close_quietly(engine)


def _forget(engine) -> None:
    """Drop ``engine`` from the shared table (called under ``_ENGINES_LOCK``)."""
    for key, e in list(_ENGINES.items()):
        if e is engine:
            _ENGINES.pop(key)
    timer = _IDLE_TIMERS.pop(engine, None)
    if timer is not None:
        timer.cancel()


def _close_if_idle(engine) -> None:
    with _ENGINES_LOCK:
        if _USERS.get(engine, 0) > 0 or _IDLE_TIMERS.get(engine) is None:
            return  # taken up again
        _IDLE_TIMERS.pop(engine, None)
        _forget(engine)
    _close_quietly(engine)


def _close_quietly(engine) -> None:
    try:
        engine.close()
    except Exception:  # noqa: BLE001 - best effort: the engine is gone either way
        log.debug("closing a group engine failed", exc_info=True)


def get_engine(address: str | None = None, n_workers: int = 2, processes: bool = True,
               timeout: float = CONNECT_TIMEOUT) -> GroupEngine:
    """The process-level engine for a scheduler (shared by sessions; closed at exit)."""
    return _get_engine(address, n_workers, processes, timeout)[0]


def _get_engine(address, n_workers, processes, timeout) -> tuple:
    """``(engine, created)``: the shared engine, and whether this call started it."""
    address = scheduler_address(address)
    key = (address, None if address else int(n_workers), None if address else bool(processes))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None and engine.client.status not in ("running", "connecting"):
            _ENGINES.pop(key, None)
            engine = None
        if engine is not None:
            _acquire(engine)
            return engine, False
        engine = GroupEngine(address, n_workers=n_workers, processes=processes,
                             timeout=timeout)
        _ENGINES[key] = engine
        _acquire(engine)
        return engine, True


def close_engines() -> None:
    """Close every engine this process started (clean shutdown)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
        _USERS.clear()
        for timer in _IDLE_TIMERS.values():
            timer.cancel()
        _IDLE_TIMERS.clear()
    for engine in engines:
        _close_quietly(engine)


atexit.register(close_engines)
