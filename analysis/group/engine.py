"""The Dask engine: a client plus every subject's cleaned data, held on the workers.

:class:`GroupEngine` submits one cleaning task per subject and preprocessing
setting and keeps its future, so the cleaned data stays in worker memory; a new
seed is one cheap :func:`~analysis.group.tasks.subject_seed_map` task per
subject. Task failures become clear :class:`~analysis.errors.DataError`s, and a
run can be cancelled (its unfinished futures are cancelled and released).
"""

from __future__ import annotations

import hashlib
import threading
import time

import nibabel as nib
import numpy as np

from ..connectivity import RADIUS_MM, CleaningSettings
from ..errors import DataError
from ..progress import null_progress, scaled
from .cluster import (CONNECT_TIMEOUT, Cancelled, _n_workers, connect, require_workers,
                      scheduler_address)
from .stats import N_PERMUTATIONS, RANDOM_STATE
from .subjects import SubjectSpec
from .tasks import clean_subject, group_statistics, subject_seed_map, warm_up

#: Seconds (plus 2 per subject) the cluster may take to return the seed maps.
SEED_MAP_TIMEOUT = 120.0


def _key(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:20]


def _mask_key(mask: nib.Nifti1Image) -> str:
    data = np.ascontiguousarray(np.asarray(mask.dataobj).astype(bool))
    return hashlib.sha1(data.tobytes() + np.asarray(mask.affine).tobytes()).hexdigest()[:16]


def _task_error(exc: BaseException, spec: SubjectSpec | None) -> Exception:
    """A task failure as a clear :class:`DataError` (DataErrors pass through)."""
    if isinstance(exc, DataError):
        return exc
    who = f" for subject {spec.name}" if spec is not None else ""
    if type(exc).__name__ == "KilledWorker":
        return DataError(f"Dask workers kept dying while computing{who} (KilledWorker: "
                         "out of memory or killed); nothing was written")
    if type(exc).__name__ in ("CancelledError", "FutureCancelledError"):
        return DataError(f"the computation{who} was cancelled (the cluster shut down or "
                         "lost its workers); nothing was written")
    return DataError(f"a task failed{who}: {type(exc).__name__}: {exc}")


def _waits(futures, return_when: str, cancel=None, timeout=None):
    """Wait on ``futures`` (``distributed.wait``, ``return_when``) in steps of at most
    0.2 s, checking ``cancel`` (:class:`Cancelled`) and ``timeout`` (``TimeoutError``)
    between them; yields the done set after each step that ended with one."""
    from distributed.client import _wait

    deadline = None if timeout is None else time.monotonic() + float(timeout)
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled("group run cancelled")
        step = 0.2
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{sum(f.status == 'pending' for f in futures)} "
                                   "futures unfinished")
            step = min(step, left)
        try:
            # this engine's client (not a default one: the app never sets one)
            done, _ = futures[0].client.sync(_wait, futures, timeout=step,
                                             return_when=return_when)
        except TimeoutError:
            continue
        yield done


def _completed(futures, cancel=None, timeout=None):
    """Yield ``futures`` as they finish (as ``distributed.as_completed``), checking
    ``cancel`` every 0.2 s (:class:`Cancelled`) and ``timeout`` (``TimeoutError``)."""
    remaining = list(futures)
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    while remaining:
        left = None if deadline is None else deadline - time.monotonic()
        done = next(_waits(remaining, "FIRST_COMPLETED", cancel,
                           None if left is None else max(left, 0.0)))
        for fut in remaining:
            if fut in done:
                yield fut
        remaining = [f for f in remaining if f not in done]


def _wait_all(futures, cancel=None, timeout=None) -> None:
    """Wait until every future is done (finished or failed), checking ``cancel`` every
    0.2 s (:class:`Cancelled`) and ``timeout`` (``TimeoutError``): one round trip to the
    client's loop per 0.2 s, not one per future."""
    if futures:
        next(_waits(list(futures), "ALL_COMPLETED", cancel, timeout))


class GroupEngine:
    """A Dask client plus the subjects' cleaned data held on its workers.

    ``cleaned`` futures are kept (keyed by subject data, settings and mask) so
    the data stays in worker memory; a new seed only submits
    :func:`subject_seed_map` tasks. If a worker dies, Dask recomputes the
    cleaned data it held from the task graph. The data of the ``max_settings``
    most recent preprocessing settings is kept; older data is released.
    """

    #: Preprocessing settings whose cleaned data stays on the workers.
    max_settings = 2

    def __init__(self, address: str | None = None, n_workers: int = 2, processes: bool = True,
                 timeout: float = CONNECT_TIMEOUT):
        self.address = scheduler_address(address)
        self.timeout = float(timeout)
        self.client, self.cluster = connect(self.address, n_workers=n_workers,
                                            processes=processes, timeout=timeout)
        self._cleaned: dict = {}
        self._settings_order: list = []
        self._lock = threading.Lock()

    def warm_up(self) -> dict:
        """Import the cleaning's modules on every worker now: ``{worker: pid}``."""
        return self.client.run(warm_up)

    @property
    def dashboard_link(self) -> str:
        try:
            return str(self.client.dashboard_link or "")
        except Exception:  # noqa: BLE001 - no dashboard on this scheduler
            return ""

    @property
    def n_workers(self) -> int:
        return _n_workers(self.client)

    def cleaned_futures(self, subjects, settings: CleaningSettings, mask) -> list:
        """One future of :class:`CleanedData` per subject, submitted once and kept."""
        mkey = _mask_key(mask)
        futures = []
        with self._lock:
            for spec in subjects:
                key = (spec.key(), settings, mkey)
                fut = self._cleaned.get(key)
                if fut is None or fut.status in ("error", "cancelled"):
                    fut = self.client.submit(clean_subject, spec, settings, mask,
                                             key=f"clean-{spec.name}-{_key(*key)}", pure=False)
                    self._cleaned[key] = fut
                futures.append(fut)
            # keep the cleaned data of the last few settings only (worker memory)
            self._settings_order = [k for k in self._settings_order if k != (settings, mkey)]
            self._settings_order.append((settings, mkey))
            for old in self._settings_order[:-self.max_settings]:
                for k in [k for k in self._cleaned if (k[1], k[2]) == old]:
                    self._cleaned.pop(k).release()
            self._settings_order = self._settings_order[-self.max_settings:]
        return futures

    def kept_settings(self) -> list:
        """The preprocessing settings of the cleaned data kept on the workers: one
        :class:`CleaningSettings` per kept subject future."""
        with self._lock:
            return [key[1] for key in self._cleaned]

    def forget(self, keep=()) -> None:
        """Release cleaned data (all but the futures in ``keep``) from the workers."""
        keep = {f.key for f in keep}
        with self._lock:
            for k in [k for k, f in self._cleaned.items() if f.key not in keep]:
                self._cleaned.pop(k).release()

    def seed_maps(self, subjects, settings: CleaningSettings, mask, seed_mm,
                  radius_mm: float = RADIUS_MM, progress=None, cancel=None) -> tuple:
        """Seed maps of every subject on the cluster.

        Returns ``(r (n_subjects, n_voxels), n_seed_voxels (n_subjects,), timings)``.
        Progress: cleaning (the first time) fills [0, 0.8], seed maps the rest.
        ``cancel`` (a ``threading.Event``), checked every 0.2 s: when set, this run's
        unfinished futures are cancelled and released, and :class:`Cancelled` is raised.
        """
        return self._run(subjects, settings, mask, seed_mm, radius_mm, progress, cancel)

    def group_maps(self, subjects, settings: CleaningSettings, mask, seed_mm,
                   radius_mm: float = RADIUS_MM, progress=None, cancel=None,
                   n_permutations: int = N_PERMUTATIONS, cluster_forming_p=None,
                   random_state=RANDOM_STATE) -> tuple:
        """Seed maps of every subject and their group statistics, both on the cluster
        (:func:`~analysis.group.tasks.group_statistics`: the maps go to one worker, not
        through this process).

        Returns ``(r, n_seed_voxels, inference (GroupInference), timings)``; timings
        ``stats_s`` (the statistics, on the worker) and ``seed_s`` (the rest: the maps,
        the messages). ``progress`` and ``cancel`` as :meth:`seed_maps`; a cancel while
        the statistics run releases their result (the worker finishes the task)."""
        stats = {"mask": np.asarray(mask.dataobj).astype(bool),
                 "n_permutations": int(n_permutations),
                 "cluster_forming_p": cluster_forming_p, "random_state": random_state}
        return self._run(subjects, settings, mask, seed_mm, radius_mm, progress, cancel,
                         stats)

    def _run(self, subjects, settings, mask, seed_mm, radius_mm, progress, cancel,
             stats=None) -> tuple:
        progress = progress or null_progress
        n = len(subjects)
        t0 = time.perf_counter()
        if self.cluster is None:   # an existing cluster: it may have lost its workers
            require_workers(self.client, self.address, self.timeout, cancel)
        cleaned = self.cleaned_futures(subjects, settings, mask)
        try:
            return self._seed_maps(subjects, cleaned, seed_mm, radius_mm, progress, cancel,
                                   n, t0, stats)
        except Cancelled:
            for fut in cleaned:   # cleanings this run started and nobody has yet
                if fut.status not in ("finished",):
                    self._drop(fut)
                    fut.cancel()
            raise

    def _seed_maps(self, subjects, cleaned, seed_mm, radius_mm, progress, cancel, n, t0,
                   stats=None):
        def as_completed(futures, loop=None, timeout=None):
            return _completed(futures, cancel, timeout)

        by_key = {f.key: s for f, s in zip(cleaned, subjects)}
        pending = [f for f in cleaned if f.status != "finished"]
        clean_stop = 0.8 if pending else 0.0
        report = scaled(progress, 0.0, clean_stop)
        if pending:
            report(0.0, f"cleaning {len(pending)} subject(s) on {self.n_workers} worker(s)")
            done = 0
            for fut in as_completed(pending, loop=self.client.loop):
                if fut.status == "error":
                    exc = fut.exception()
                    self._drop(fut)
                    raise _task_error(exc, by_key.get(fut.key)) from None
                done += 1
                report(done / len(pending), f"cleaned {done}/{len(pending)} "
                                            f"({by_key[fut.key].name})")
        t1 = time.perf_counter()
        report = scaled(progress, clean_stop, 1.0)
        seed = tuple(float(v) for v in seed_mm)
        maps = [self.client.submit(subject_seed_map, c, seed, float(radius_mm), pure=False)
                for c in cleaned]
        # the statistics start on a worker as soon as the maps exist (no round trip here)
        group = None if stats is None else self.client.submit(
            group_statistics, maps, stats["mask"], stats["n_permutations"],
            stats["cluster_forming_p"], stats["random_state"], pure=False)
        everything = maps + ([group] if group is not None else [])
        limit = SEED_MAP_TIMEOUT + 2.0 * n
        try:
            # seed maps take milliseconds each: wait for all of them, or for the statistics
            # (which fail if a map does), checking ``cancel``; then one fetch (one per map
            # cost ~25 ms each on a busy server); a cluster that stops answering is an
            # error here, not a hang
            _wait_all([group] if group is not None else maps, cancel, timeout=limit)
            if group is not None and group.status == "error":
                try:   # which map failed, if one did (its subject named)
                    _wait_all(maps, cancel, timeout=2.0)
                except TimeoutError:
                    pass
            failed = [i for i, f in enumerate(maps) if f.status == "error"]
            if failed:
                i = failed[0]
                exc = maps[i].exception()
                if not isinstance(exc, DataError):
                    self._drop(cleaned[i])
                raise _task_error(exc, subjects[i]) from None
            if group is None:
                t2 = time.perf_counter()
                results = self.client.gather(maps)
            else:
                if group.status == "error":
                    raise _task_error(group.exception(), None) from None
                r, n_seed, inference, stats_s = group.result()
                t2 = time.perf_counter() - stats_s
                report(1.0, f"seed maps and group statistics of {n} subjects")
        except Cancelled:
            for fut in everything:
                fut.cancel()
            raise
        except TimeoutError:
            done = sum(f.status == "finished" for f in maps)
            for fut in everything:
                fut.cancel()
            what = (f"{done} of {n} seed maps" if done < n
                    else "the seed maps but not their statistics")
            raise DataError(f"the cluster returned {what} within {limit:.0f} s; a worker "
                            "may have died (see the Dask dashboard)") from None
        except Exception as exc:
            for fut in everything:
                fut.cancel()
            if isinstance(exc, DataError):
                raise
            raise _task_error(exc, None) from None
        timings = {"clean_s": t1 - t0, "seed_s": t2 - t1, "cleaned_now": len(pending)}
        if group is not None:
            timings["stats_s"] = stats_s   # on the worker; the way back counted in seed_s
            return r, n_seed, inference, timings
        r = np.stack([res[0] for res in results])
        n_seed = np.array([res[1] for res in results], dtype=int)
        report(1.0, f"seed maps {n}/{n}")
        return r, n_seed, timings

    def _drop(self, fut) -> None:
        with self._lock:
            for k, f in list(self._cleaned.items()):
                if f.key == fut.key:
                    self._cleaned.pop(k)
        fut.release()

    def close(self) -> None:
        """Release the data, close the client and (if ours) the local cluster."""
        with self._lock:
            self._cleaned.clear()
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
