"""Connecting to a Dask cluster: a new LocalCluster, or an existing scheduler by address.

:func:`connect` returns a client (and the local cluster it started, if any);
an address that does not answer as a Dask scheduler, or a scheduler without
workers, is a clear :class:`~analysis.errors.DataError` within a bounded wait.
:class:`Cancelled` is what a cancelled group run raises.
"""

from __future__ import annotations

import logging
import os
import time

from ..errors import DataError

#: Environment variable naming an existing Dask scheduler (``tcp://host:8786``).
SCHEDULER_ENV = "FMRI_EXPLORER_SCHEDULER"
#: Seconds to wait for a scheduler to answer before a clear error.
CONNECT_TIMEOUT = 5.0


class Cancelled(RuntimeError):
    """A group run was cancelled (its futures were cancelled and released)."""


def scheduler_address(address: str | None = None) -> str | None:
    """The scheduler to use: ``address``, else ``$FMRI_EXPLORER_SCHEDULER``, else None (local)."""
    address = (address or "").strip() or os.environ.get(SCHEDULER_ENV, "").strip()
    return address or None


def connect(address: str | None = None, n_workers: int = 2, processes: bool = True,
            timeout: float = CONNECT_TIMEOUT):
    """A ``distributed.Client``: to ``address`` (bounded wait), or a new LocalCluster.

    Returns ``(client, cluster)``; ``cluster`` is None for an existing cluster.
    Raises :class:`DataError` when the scheduler does not answer in ``timeout`` s.
    """
    from distributed import Client, LocalCluster

    address = scheduler_address(address)
    if address is None:
        # processes: tcp on the loopback (the dashboard link is local); threads: inproc
        where = {"host": "127.0.0.1"} if processes else {}
        cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1,
                               processes=bool(processes), dashboard_address="127.0.0.1:0",
                               silence_logs=logging.CRITICAL, **where)
        try:
            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        return client, cluster
    if "://" not in address:
        address = f"tcp://{address}"
    logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    logging.getLogger("distributed.comm").setLevel(logging.CRITICAL)
    _probe(address, timeout)
    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - it answered the probe, then failed
        raise DataError(f"could not connect to the Dask scheduler at {address}: "
                        f"{type(exc).__name__}: {exc}") from None
    try:
        require_workers(client, address, timeout)
    except BaseException:
        client.close()
        raise
    return client, None


def _n_workers(client) -> int:
    try:
        return len(client.scheduler_info(n_workers=-1)["workers"])
    except TypeError:
        return len(client.scheduler_info()["workers"])


def require_workers(client, address, timeout: float = CONNECT_TIMEOUT, cancel=None) -> int:
    """The scheduler's number of workers, after waiting up to ``timeout`` s for one: a
    scheduler with no worker would queue the tasks forever. A clear DataError then."""
    deadline = time.monotonic() + float(timeout)
    while True:
        n = _n_workers(client)
        if n > 0:
            return n
        if cancel is not None and cancel.is_set():
            raise Cancelled("group run cancelled")
        if time.monotonic() >= deadline:
            raise DataError(f"the Dask scheduler at {address} has no workers (waited "
                            f"{timeout:g} s): start workers with 'dask worker {address}'")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())) or 0.01)


def _probe(address: str, timeout: float) -> dict:
    """Ask ``address`` for its identity within ``timeout`` s; a clear DataError if it
    does not answer as a Dask scheduler (refused, silent, or another service)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.core import rpc

    async def identity():
        async with rpc(address, timeout=timeout) as remote:
            return await remote.identity()

    async def bounded():
        return await asyncio.wait_for(identity(), timeout)

    start = time.monotonic()
    pool = ThreadPoolExecutor(1)  # its own event loop, even when called from one
    try:
        try:
            info = pool.submit(asyncio.run, bounded()).result(timeout=timeout + 2)
        except Exception as exc:  # noqa: BLE001 - refused, timed out, or garbage
            waited = time.monotonic() - start
            how = (f"within {timeout:g} s" if waited >= timeout - 0.5
                   else f"({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else 'no answer'})")
            raise DataError(f"the Dask scheduler at {address} did not answer {how}; check the "
                            f"address (--scheduler / ${SCHEDULER_ENV}) or leave it empty for "
                            "a local cluster") from None
    finally:
        pool.shutdown(wait=False)
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        raise DataError(f"{address} answered, but it is not a Dask scheduler")
    return info
