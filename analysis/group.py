"""Group seed connectivity on Dask: one seed map per subject, then a t map.

Each subject is cleaned once per preprocessing setting as a task on a
``dask.distributed`` cluster (a :class:`~distributed.LocalCluster` by default,
or an existing cluster given by its scheduler address). The cleaned matrices
stay **on the workers**, held as futures by a process-level
:class:`GroupEngine`; a new seed is one cheap task per subject
(:func:`subject_seed_map`: a sphere mean and one matrix-vector product) that
runs where that subject's cleaned data lives and moves only the seed map
(``n_voxels`` float64 values) back. The single-subject functions of
:mod:`analysis.connectivity` (:func:`~analysis.connectivity.load_subject`,
:func:`~analysis.connectivity.clean_data`,
:func:`~analysis.connectivity.seed_correlation`) do the work; this module only
distributes them.

Group statistics: Fisher z = ``arctanh(r)`` per subject, a one-sample t-test
against 0 per voxel (``scipy.stats.ttest_1samp``) and the mean z.

Data: the synthetic development-like subjects (default), the real ones under a
``fetch_development_fmri`` ``data_dir``, or lists of the user's files
(:func:`file_subjects`). All subjects are masked with one group mask on a
common grid (MNI space), so that the maps stack into a ``(subject, voxel)``
array.

Workers of a remote cluster need this package installed and the data files
at the same paths (a shared file system): the tasks carry file paths, not
images.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import param
import xarray as xr

from .connectivity import (PCC_MM, RADIUS_MM, MAX_RADIUS_MM, CleanedData, CleaningSettings,
                           clean_data, find_peaks, label_peaks, load_subject, seed_correlation)
from .errors import DataError
from .preprocessing import PARAMETERS as PREPROCESSING
from .preprocessing import T_R, Preprocessing
from .progress import null_progress, scaled
from .volumes import to_xarray

#: Environment variable naming an existing Dask scheduler (``tcp://host:8786``).
SCHEDULER_ENV = "FMRI_EXPLORER_SCHEDULER"
#: Seconds to wait for a scheduler to answer before a clear error.
CONNECT_TIMEOUT = 5.0
AGE_GROUPS = ("both", "adult", "child")

log = logging.getLogger("fmri_explorer.group")


# --------------------------------------------------------------------------- subjects

@dataclass(frozen=True)
class SubjectSpec:
    """One subject as a task sees it: file paths only (cheap to send to a worker).

    Attributes
    ----------
    func : str
        4D functional image (on the group mask's grid).
    confounds : str or None
        Confounds TSV (fMRIPrep-style or nilearn's reduced set).
    name : str
        Participant id or file name.
    age_group : str or None
        ``adult`` / ``child`` when the participants table says so.
    t_r : float or None
        Repetition time (None: from the header).
    """

    func: str
    confounds: str | None = None
    name: str = ""
    age_group: str | None = None
    t_r: float | None = None

    def key(self) -> str:
        """Identifies the subject's data (paths, sizes and modification times)."""
        parts = []
        for path in (self.func, self.confounds):
            if path is None:
                parts.append("-")
                continue
            try:
                st = Path(path).stat()
                parts.append(f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append(str(path))
        return "|".join(parts) + f"|t_r={self.t_r}"


@dataclass
class SubjectList:
    """The subjects of a group analysis and what they share.

    Attributes
    ----------
    subjects : list of SubjectSpec
    mask : Nifti1Image
        The group mask (every subject is masked with it).
    truth : dict or None
        The synthetic dataset's planted truth (None for other data).
    source : str
        ``synthetic``, ``development_fmri`` or ``files``.
    data_dir : str or None
    """

    subjects: list
    mask: nib.Nifti1Image
    truth: dict | None = None
    source: str = "files"
    data_dir: str | None = None
    n_available: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.subjects]


def _mni_mask_for(func) -> nib.Nifti1Image:
    """The MNI152 brain mask on ``func``'s grid (nearest neighbour)."""
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_to_img

    from .io import load_func

    img = load_func(func)
    ref = nib.Nifti1Image(np.zeros(img.shape[:3], np.uint8), img.affine)
    mask = resample_to_img(load_mni152_brain_mask(resolution=2), ref, interpolation="nearest",
                           force_resample=True, copy_header=True)
    return nib.Nifti1Image((np.asarray(mask.dataobj) > 0).astype(np.uint8), img.affine)


def dataset_subjects(data_dir=None, n_subjects: int | None = None, age_group: str = "both",
                     size: str | None = None, mask=None) -> SubjectList:
    """Subjects of a ``fetch_development_fmri`` folder (default: the synthetic one).

    ``age_group`` (``both``, ``adult``, ``child``) filters on the participants'
    ``Child_Adult``; with ``both`` the subjects are the fetcher's choice for
    ``n_subjects`` (as ``fetch_development_fmri(n_subjects=N)``). Only
    subjects whose files are on disk are used: nothing is downloaded.
    """
    from .datasets import development as dev

    if age_group not in AGE_GROUPS:
        raise DataError(f"age group must be one of {', '.join(AGE_GROUPS)}, not {age_group!r}")
    if data_dir is None:
        from .datasets import ensure_synthetic

        data_dir = ensure_synthetic("connectivity", size=size)
    data_dir = Path(data_dir)
    root = dev.dataset_dir(data_dir)
    table = root / "participants.tsv"
    if not table.is_file():
        raise DataError("no development_fmri dataset here (expected development_fmri/"
                        "participants.tsv and the subjects' files)", data_dir)
    participants = pd.read_table(table)
    on_disk = participants[[
        (root / dev.FUNC.format(pid)).is_file()
        and ((root / dev.REDUCED.format(pid)).is_file() or (root / dev.CONFOUNDS.format(pid)).is_file())
        for pid in participants["participant_id"]]]
    available = {g: int((on_disk["Child_Adult"] == g).sum()) for g in ("adult", "child")}
    available["both"] = len(on_disk)
    n_max = available[age_group]
    if n_max == 0:
        raise DataError(f"no {age_group if age_group != 'both' else ''} subject's files "
                        f"in this dataset".replace("  ", " "), root)
    n = n_max if n_subjects is None else int(n_subjects)
    if not 1 <= n <= n_max:
        who = "subjects" if age_group == "both" else f"{age_group} subjects"
        raise DataError(f"n_subjects must be between 1 and {n_max} ({n_max} {who} on disk), "
                        f"not {n}", root)
    if age_group == "both":
        bunch = dev.load(data_dir, n_subjects=n)
        pheno = bunch.phenotypic
        rows = range(len(bunch.func))
    else:
        bunch = dev.load(data_dir, n_subjects=available["both"])
        pheno = bunch.phenotypic
        rows = [i for i in range(len(bunch.func)) if pheno["Child_Adult"][i] == age_group][:n]
    subjects = [SubjectSpec(func=str(bunch.func[i]), confounds=str(bunch.confounds[i]),
                            name=str(pheno["participant_id"][i]),
                            age_group=str(pheno["Child_Adult"][i]), t_r=float(bunch.t_r))
                for i in rows]
    truth = bunch.truth
    if mask is None:
        mask_path = root / dev.MASK
        mask = mask_path if mask_path.is_file() else _mni_mask_for(subjects[0].func)
    from .io import load_mask

    return SubjectList(subjects=subjects, mask=load_mask(mask),
                       truth=truth, source="synthetic" if truth else "development_fmri",
                       data_dir=str(data_dir), n_available=available)


def file_subjects(funcs, confounds=None, mask=None, t_r=None, names=None) -> SubjectList:
    """The user's own subjects: one 4D image (and confounds TSV) each, one grid.

    ``mask`` defaults to the MNI152 brain mask on the first image's grid (data
    in MNI space, as the development dataset).
    """
    funcs = [str(f) for f in funcs]
    if not funcs:
        raise DataError("no subject: give at least one 4D image")
    if confounds is None:
        confounds = [None] * len(funcs)
    confounds = [None if c in (None, "") else str(c) for c in confounds]
    if len(confounds) != len(funcs):
        raise DataError(f"{len(confounds)} confounds files for {len(funcs)} images "
                        "(one per subject, in the same order)")
    for path in funcs + [c for c in confounds if c]:
        if not Path(path).is_file():
            raise DataError("file not found", path)
    names = list(names) if names else [Path(f).name.split(".")[0] for f in funcs]
    from .io import load_mask

    mask_img = load_mask(mask) if mask is not None else _mni_mask_for(funcs[0])
    return SubjectList(subjects=[SubjectSpec(func=f, confounds=c, name=n, t_r=t_r)
                                 for f, c, n in zip(funcs, confounds, names)],
                       mask=mask_img, source="files")


def confound_names(spec: SubjectSpec) -> list[str]:
    """The confound columns of a subject's TSV (empty without one)."""
    if not spec.confounds:
        return []
    from .io import load_confounds

    return [str(c) for c in load_confounds(spec.confounds).columns]


# --------------------------------------------------------------------------- tasks

#: Cleanings run in this process (worker side): tests count them.
CLEAN_CALLS = {"n": 0}


def clean_subject(spec: SubjectSpec, settings: CleaningSettings, mask) -> CleanedData:
    """Task: load and clean one subject (runs on a worker; the result stays there)."""
    subject = load_subject(spec.func, confounds=spec.confounds, mask=mask, t_r=spec.t_r,
                           name=spec.name)
    if settings.confound_columns and subject.confounds is None:
        settings = replace(settings, confound_columns=None)
    CLEAN_CALLS["n"] += 1
    return clean_data(subject, settings)


def warm_up() -> int:
    """Task: import what the cleaning needs (a fresh worker process pays it once)."""
    import nilearn.image  # noqa: F401
    import nilearn.masking  # noqa: F401
    import nilearn.signal  # noqa: F401

    return os.getpid()


def subject_seed_map(data: CleanedData, seed_mm, radius_mm: float) -> tuple:
    """Task: one subject's seed map ``(r (n_voxels,) float64, n_seed_voxels)``."""
    res = seed_correlation(data, seed_mm, radius_mm)
    return res.r, res.n_seed_voxels


def serial_seed_maps(subjects, settings: CleaningSettings, mask, seed_mm,
                     radius_mm: float = RADIUS_MM, progress=None) -> np.ndarray:
    """The plain loop over subjects (no Dask): ``(n_subjects, n_voxels)`` r maps.

    The reference the distributed result is tested against.
    """
    progress = progress or null_progress
    maps = []
    for i, spec in enumerate(subjects):
        progress(i / len(subjects), f"{spec.name}: cleaning")
        maps.append(subject_seed_map(clean_subject(spec, settings, mask), seed_mm, radius_mm)[0])
    progress(1.0, "done")
    return np.stack(maps)


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


# --------------------------------------------------------------------------- cluster

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


#: Seconds (plus 2 per subject) the cluster may take to return the seed maps.
SEED_MAP_TIMEOUT = 120.0


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


class Cancelled(RuntimeError):
    """A group run was cancelled (its futures were cancelled and released)."""


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


def _completed(futures, cancel=None, timeout=None):
    """Yield ``futures`` as they finish (as ``distributed.as_completed``), checking
    ``cancel`` every 0.2 s (:class:`Cancelled`) and ``timeout`` (``TimeoutError``)."""
    from distributed.client import _wait

    remaining = list(futures)
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    while remaining:
        if cancel is not None and cancel.is_set():
            raise Cancelled("group run cancelled")
        step = 0.2
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(remaining)} futures unfinished")
            step = min(step, left)
        try:
            # this engine's client (not a default one: the app never sets one)
            done, not_done = remaining[0].client.sync(_wait, remaining, timeout=step,
                                                      return_when="FIRST_COMPLETED")
        except TimeoutError:
            continue
        for fut in remaining:
            if fut in done:
                yield fut
        remaining = [f for f in remaining if f not in done]


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
        self.n_submitted_cleanings = 0

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
                    self.n_submitted_cleanings += 1
                futures.append(fut)
            # keep the cleaned data of the last few settings only (worker memory)
            self._settings_order = [k for k in self._settings_order if k != (settings, mkey)]
            self._settings_order.append((settings, mkey))
            for old in self._settings_order[:-self.max_settings]:
                for k in [k for k in self._cleaned if (k[1], k[2]) == old]:
                    self._cleaned.pop(k).release()
            self._settings_order = self._settings_order[-self.max_settings:]
        return futures

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
        progress = progress or null_progress
        n = len(subjects)
        t0 = time.perf_counter()
        if self.cluster is None:   # an existing cluster: it may have lost its workers
            require_workers(self.client, self.address, self.timeout, cancel)
        cleaned = self.cleaned_futures(subjects, settings, mask)
        try:
            return self._seed_maps(subjects, cleaned, seed_mm, radius_mm, progress, cancel,
                                   n, t0)
        except Cancelled:
            for fut in cleaned:   # cleanings this run started and nobody has yet
                if fut.status not in ("finished",):
                    self._drop(fut)
                    fut.cancel()
            raise

    def _seed_maps(self, subjects, cleaned, seed_mm, radius_mm, progress, cancel, n, t0):
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
        index = {f.key: i for i, f in enumerate(maps)}
        r = [None] * n
        n_seed = np.zeros(n, dtype=int)
        done = 0
        try:
            # seed maps take milliseconds each: a cluster that stops answering is an
            # error here, not a hang
            for fut in as_completed(maps, loop=self.client.loop,
                                    timeout=SEED_MAP_TIMEOUT + 2.0 * n):
                i = index[fut.key]
                if fut.status == "error":
                    exc = fut.exception()
                    if not isinstance(exc, DataError):
                        self._drop(cleaned[i])
                    raise _task_error(exc, subjects[i]) from None
                r[i], n_seed[i] = fut.result()
                done += 1
                report(done / n, f"seed maps {done}/{n}")
        except Cancelled:
            for fut in maps:
                fut.cancel()
            raise
        except TimeoutError:
            for fut in maps:
                fut.cancel()
            raise DataError(f"the cluster returned {done} of {n} seed maps within "
                            f"{SEED_MAP_TIMEOUT + 2.0 * n:.0f} s; a worker may have died "
                            "(see the Dask dashboard)") from None
        except Exception as exc:
            for fut in maps:
                fut.cancel()
            if isinstance(exc, DataError):
                raise
            raise _task_error(exc, None) from None
        t2 = time.perf_counter()
        return np.stack(r), n_seed, {"clean_s": t1 - t0, "seed_s": t2 - t1,
                                     "cleaned_now": len(pending)}

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


# --------------------------------------------------------------------------- results

@dataclass
class GroupResult:
    """A group analysis' numbers.

    Attributes
    ----------
    r : xr.DataArray, dims (subject, voxel)
        Each subject's seed map (r) in group-mask order.
    t, p, mean_z : ndarray, shape (n_voxels,)
        One-sample t-test on Fisher z; its p values; mean z.
    n_seed_voxels : ndarray, shape (n_subjects,)
    """

    r: xr.DataArray
    t: np.ndarray
    p: np.ndarray
    mean_z: np.ndarray
    n_seed_voxels: np.ndarray
    seed_mm: tuple
    radius_mm: float
    timings: dict = field(default_factory=dict)

    @property
    def n_subjects(self) -> int:
        return int(self.r.sizes["subject"])


def subject_array(r: np.ndarray, names, age_groups=None) -> xr.DataArray:
    """Subject maps as one ``(subject, voxel)`` DataArray."""
    coords = {"subject": list(names), "voxel": np.arange(r.shape[1])}
    if age_groups is not None:
        coords["age_group"] = ("subject", [g or "" for g in age_groups])
    return xr.DataArray(np.asarray(r), dims=("subject", "voxel"), coords=coords, name="r")


def compute_group(subject_list: SubjectList, settings: CleaningSettings, seed_mm,
                  radius_mm: float = RADIUS_MM, engine: GroupEngine | None = None,
                  progress=None, cancel=None) -> GroupResult:
    """Seed maps on the cluster and the group t-test (the whole pipeline, no Param).
    ``cancel``: see :meth:`GroupEngine.seed_maps`."""
    engine = engine or get_engine()
    r, n_seed, timings = engine.seed_maps(subject_list.subjects, settings, subject_list.mask,
                                          seed_mm, radius_mm, progress=progress, cancel=cancel)
    stats = group_stats(r)
    da = subject_array(r, subject_list.names, [s.age_group for s in subject_list.subjects])
    return GroupResult(r=da, t=stats["t"], p=stats["p"], mean_z=stats["mean_z"],
                       n_seed_voxels=n_seed, seed_mm=tuple(float(v) for v in seed_mm),
                       radius_mm=float(radius_mm), timings=timings)


# --------------------------------------------------------------------------- Param class

class GroupConnectivity(Preprocessing):
    """Group seed-to-voxel connectivity on Dask: per-subject maps and a t map.

    *Structural* parameters (``data_dir``, ``n_subjects``, ``age_group``, the
    cleaning ones, inherited from :class:`~analysis.preprocessing.Preprocessing` as
    single-subject connectivity's) choose the subjects and key their cleaned data,
    which stays on the cluster's workers. ``seed_mm`` / ``radius_mm`` only re-run the
    cheap per-subject step there. ``threshold`` and ``n_peaks`` only change
    the display. ``scheduler`` picks the cluster (empty: a local one, or
    ``$FMRI_EXPLORER_SCHEDULER``).

    Nothing is computed on construction; :meth:`run` computes (the dashboard
    runs it in a thread) and reports progress to ``progress`` /
    ``progress_message`` and to an optional callable.
    """

    data_dir = param.String(default=None, allow_None=True,
                            doc="nilearn data_dir holding development_fmri (None: synthetic)")
    n_subjects = param.Integer(default=None, allow_None=True, bounds=(2, 155),
                               doc="Number of subjects (None: every subject on disk)")
    age_group = param.Selector(default="both", objects=list(AGE_GROUPS),
                               doc="Participants' Child_Adult group")
    seed_mm = param.NumericTuple(default=PCC_MM, length=3, doc="Seed centre (x, y, z) in MNI mm")
    radius_mm = param.Number(default=RADIUS_MM, bounds=(1.0, MAX_RADIUS_MM), step=1.0,
                             doc="Seed sphere radius in mm")
    threshold = param.Number(default=3.0, bounds=(0.0, None), softbounds=(0.0, 20.0), step=0.5,
                             doc="Threshold on |t| of the group map")
    n_peaks = param.Integer(default=10, bounds=(1, 100), doc="Peaks listed")
    scheduler = param.String(default="", doc="Dask scheduler address (empty: local cluster "
                                             f"or ${SCHEDULER_ENV})")
    n_workers = param.Integer(default=2, bounds=(1, 64), doc="Workers of the local cluster")
    processes = param.Boolean(default=True, doc="Local cluster workers as processes (not threads)")
    timeout = param.Number(default=CONNECT_TIMEOUT, bounds=(0.5, 120.0),
                           doc="Seconds to wait for a scheduler")

    progress = param.Number(default=0.0, bounds=(0.0, 1.0), precedence=-1,
                            doc="Fraction of the current run done")
    progress_message = param.String(default="", precedence=-1, doc="What the cluster is doing")
    running = param.Boolean(default=False, precedence=-1, doc="A run is under way")
    result = param.ClassSelector(class_=GroupResult, default=None, precedence=-1,
                                 doc="The last group result")
    error = param.String(default="", precedence=-1, doc="Last error message")

    STRUCTURAL = ("data_dir", "n_subjects", "age_group", *PREPROCESSING)

    def __init__(self, subject_list: SubjectList | None = None, size: str | None = None,
                 **params):
        super().__init__(**params)
        self._size = size
        self._fixed = subject_list
        self._subjects: SubjectList | None = None
        self._subjects_key = None
        self._engine: GroupEngine | None = None
        self._run_lock = threading.Lock()

    @classmethod
    def from_files(cls, funcs, confounds=None, mask=None, t_r=None, **params):
        """On the user's own files (see :func:`file_subjects`)."""
        return cls(subject_list=file_subjects(funcs, confounds=confounds, mask=mask, t_r=t_r),
                   **params)

    # ---- inputs
    def subject_list(self) -> SubjectList:
        """The chosen subjects (cached per structural choice)."""
        if self._fixed is not None:
            subjects = self._fixed
            if self.n_subjects is not None:
                if not 2 <= self.n_subjects <= len(subjects.subjects):
                    raise DataError(f"n_subjects must be between 2 and "
                                    f"{len(subjects.subjects)} for these files")
                subjects = SubjectList(subjects.subjects[:self.n_subjects], subjects.mask,
                                       subjects.truth, subjects.source, subjects.data_dir)
            return subjects
        key = (self.data_dir, self.n_subjects, self.age_group, self._size)
        if self._subjects is None or self._subjects_key != key:
            self._subjects = dataset_subjects(self.data_dir, self.n_subjects, self.age_group,
                                              size=self._size)
            self._subjects_key = key
        return self._subjects

    @property
    def truth(self) -> dict | None:
        return self.subject_list().truth

    def settings(self, subjects: SubjectList | None = None) -> CleaningSettings:
        """The cleaning settings (the preprocessing group's; every confound column of the
        first subject's table when ``regress_confounds``)."""
        subjects = subjects or self.subject_list()
        return self.cleaning_settings(self.repetition_time(subjects),
                                      confound_names(subjects.subjects[0])).check()

    def repetition_time(self, subjects: SubjectList | None = None) -> float:
        """The subjects' repetition time (s): given, else the first image's header."""
        subjects = subjects or self.subject_list()
        t_r = subjects.subjects[0].t_r
        if t_r is None:
            from .io import load_func, t_r_of

            t_r = t_r_of(load_func(subjects.subjects[0].func)) or T_R
        return float(t_r)

    def engine(self) -> GroupEngine:
        """The Dask engine for ``scheduler`` (process-level, shared)."""
        address = scheduler_address(self.scheduler)
        if self._engine is None or self._engine.address != address \
                or self._engine.client.status not in ("running", "connecting"):
            old, self._engine = self._engine, None
            if old is not None:
                release_engine(old, wait=idle_seconds())
            self._engine, created = _get_engine(address, self.n_workers, self.processes,
                                                self.timeout)
        return self._engine

    @property
    def dashboard_link(self) -> str:
        """The Dask dashboard of the current cluster ('' before the first run)."""
        return self._engine.dashboard_link if self._engine is not None else ""

    # ---- computing
    def run(self, progress=None, cancel=None) -> GroupResult:
        """Compute the group map for the current parameters (blocking); returns it.

        ``cancel`` (a ``threading.Event``): once set, the run stops within about 0.2 s
        of waiting on the cluster, its unfinished futures are cancelled and released,
        and :class:`Cancelled` is raised."""
        extra = progress or null_progress

        def report(fraction, message=""):
            self.param.update(progress=float(min(max(fraction, 0.0), 1.0)),
                              progress_message=message)
            extra(fraction, message)

        with self._run_lock:
            self.param.update(running=True, error="", progress=0.0,
                              progress_message="starting")
            try:
                subjects = self.subject_list()
                if len(subjects.subjects) < 2:
                    raise DataError("a group t-test needs at least 2 subjects")
                settings = self.settings(subjects)
                report(0.0, "connecting to the cluster")
                engine = self.engine()
                if cancel is not None and cancel.is_set():
                    raise Cancelled("group run cancelled")
                result = compute_group(subjects, settings, self.seed_mm, self.radius_mm,
                                       engine=engine, progress=report,
                                       **({"cancel": cancel} if cancel is not None else {}))
            except Exception as exc:
                self.param.update(running=False, error=str(exc), progress=0.0,
                                  progress_message=f"failed: {exc}")
                raise
            report(1.0, f"done: {result.n_subjects} subjects")
            self.param.update(running=False, result=result)
            return result

    def ensure(self) -> GroupResult:
        if self.result is None:
            raise DataError("no group result yet: run the analysis first")
        return self.result

    def close(self, wait: float = 0.0) -> None:
        """Stop using the cluster (idempotent). A shared engine stays up while another
        object uses it; the last user's close shuts it down ``wait`` seconds later
        (the app waits :func:`idle_seconds`, for a visitor coming back; the CLI none)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            release_engine(engine, wait=wait)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- derived results
    def _volume(self, values, name) -> xr.DataArray:
        return to_xarray(np.asarray(values, dtype=np.float64), mask=self.subject_list().mask,
                         name=name)

    @param.depends("result")
    def t_map(self) -> xr.DataArray:
        """The group t map, ``(x, y, z)`` in mm, NaN outside the mask."""
        return self._volume(self.ensure().t, "t")

    @param.depends("result")
    def mean_z_map(self) -> xr.DataArray:
        """The mean Fisher z map."""
        return self._volume(self.ensure().mean_z, "mean_z")

    @param.depends("result")
    def subject_maps(self) -> xr.DataArray:
        """Every subject's r map: ``(subject, voxel)``."""
        return self.ensure().r

    def subject_volume(self, subject) -> xr.DataArray:
        """One subject's r map as a volume (by index or name)."""
        r = self.ensure().r
        row = r.isel(subject=subject) if isinstance(subject, (int, np.integer)) \
            else r.sel(subject=subject)
        return self._volume(row.values, f"r {row.subject.item()}")

    def axial_strip(self, z_mm: float | None = None) -> xr.DataArray:
        """Per-subject axial slices at ``z_mm`` (default the seed's z): ``(subject, y, x)``."""
        res = self.ensure()
        z_mm = res.seed_mm[2] if z_mm is None else z_mm
        slices = []
        for i in range(res.n_subjects):
            vol = self._volume(res.r.values[i], "r")
            slices.append(vol.sel(z=z_mm, method="nearest").transpose("y", "x"))
        out = xr.concat(slices, dim=xr.DataArray(list(res.r.subject.values), dims="subject",
                                                 name="subject"))
        out.name = "r"
        out.attrs["z_mm"] = float(slices[0].z.values) if slices else float(z_mm)
        return out

    @param.depends("result", "threshold")
    def n_above(self) -> int:
        """Voxels with ``|t| >= threshold``."""
        return int((np.abs(self.ensure().t) >= self.threshold).sum())

    @param.depends("result", "threshold", "n_peaks")
    def peaks(self) -> pd.DataFrame:
        """Top local maxima of t above the threshold: MNI ``x, y, z``, ``t``, nearest node."""
        table = find_peaks(self.t_map(), self.threshold, self.n_peaks).rename(columns={"value": "t"})
        return label_peaks(table, self.truth)

    @param.depends("result", "threshold")
    def summary(self) -> str:
        """One line: ``5 subjects, seed (0, -52, 18) r=8 mm: peak t 41.2; 1,204 voxels |t| >= 3``."""
        res = self.ensure()
        seed = "(" + ", ".join(f"{v:g}" for v in res.seed_mm) + ")"
        finite = res.t[np.isfinite(res.t)]
        peak = float(finite.max()) if finite.size else float("nan")
        return (f"{res.n_subjects} subjects, seed {seed} r={res.radius_mm:g} mm: "
                f"peak t {peak:.2f}; {self.n_above():,} voxels |t| >= {self.threshold:g}")

    def to_nifti(self, which: str = "t") -> nib.Nifti1Image:
        """The ``t`` (or ``mean_z``) map as a float32 NIfTI image (0 outside the mask)."""
        from .volumes import to_nifti

        da = self.t_map() if which == "t" else self.mean_z_map()
        return to_nifti(da.fillna(0.0), dtype=np.float32)

    def report(self) -> dict:
        """JSON-able result: seed, subjects, peak t, peaks with MNI coordinates, timings."""
        res = self.ensure()
        subjects = self.subject_list()
        peaks = self.peaks()
        finite = res.t[np.isfinite(res.t)]
        return {
            "seed": list(res.seed_mm), "radius_mm": res.radius_mm,
            "n_subjects": res.n_subjects, "subjects": subjects.names,
            "age_group": self.age_group, "source": subjects.source,
            "n_voxels": int(res.t.size), "threshold": self.threshold,
            "preprocessing": {name: getattr(self, name) for name in PREPROCESSING},
            "peak_t": float(finite.max()) if finite.size else None,
            "n_above": self.n_above(),
            "mean_z_max": float(np.nanmax(res.mean_z)),
            "n_seed_voxels": [int(v) for v in res.n_seed_voxels],
            "peaks": peaks.to_dict(orient="records"),
            "scheduler": self._engine.address if self._engine and self._engine.address
            else "local", "n_workers": self._engine.n_workers if self._engine else None,
            "dashboard_link": self.dashboard_link,
            "timings_s": {k: (round(v, 3) if isinstance(v, float) else v)
                          for k, v in res.timings.items()},
        }
