"""The group result (:class:`GroupResult`) and :func:`compute_group`, the whole pipeline.

:func:`compute_group` gets every subject's seed map from the cluster, runs the
group statistics (:func:`~analysis.group.stats.group_inference`: the t-test, FDR
and the sign-flipping permutations; on a worker for up to
:data:`WORKER_PERMUTATIONS` sign flips, else in this process) and gathers the
numbers in a :class:`GroupResult`, with no Param class involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import time

import numpy as np
import xarray as xr

from ..connectivity import RADIUS_MM, CleaningSettings
from ..progress import scaled
from .engine import GroupEngine
from .registry import get_engine
from .stats import (CLUSTER_FORMING_P, N_PERMUTATIONS, RANDOM_STATE, GroupInference,
                    fisher_z, group_inference)
from .subjects import SubjectList


@dataclass
class GroupResult:
    """A group analysis' numbers.

    Attributes
    ----------
    r : xr.DataArray, dims (subject, voxel)
        Each subject's seed map (r) in group-mask order.
    t, p, mean_z : ndarray, shape (n_voxels,)
        One-sample t-test on Fisher z; its uncorrected two-sided p values; mean z.
    n_seed_voxels : ndarray, shape (n_subjects,)
    inference : GroupInference
        The t-test's ``df``, FDR, and the permutation FWE (voxel and cluster size)
        statistics (:func:`~analysis.group.stats.group_inference`).
    """

    r: xr.DataArray
    t: np.ndarray
    p: np.ndarray
    mean_z: np.ndarray
    n_seed_voxels: np.ndarray
    seed_mm: tuple
    radius_mm: float
    timings: dict = field(default_factory=dict)
    inference: GroupInference | None = None

    @property
    def n_subjects(self) -> int:
        return int(self.r.sizes["subject"])

    @property
    def df(self) -> int:
        """Degrees of freedom of the one-sample t-test: ``n_subjects - 1``."""
        return self.n_subjects - 1

    @property
    def fisher_z(self) -> np.ndarray:
        """Each subject's Fisher z map, ``(n_subjects, n_voxels)``."""
        return fisher_z(self.r.values)


def subject_array(r: np.ndarray, names, age_groups=None) -> xr.DataArray:
    """Subject maps as one ``(subject, voxel)`` DataArray."""
    coords = {"subject": list(names), "voxel": np.arange(r.shape[1])}
    if age_groups is not None:
        coords["age_group"] = ("subject", [g or "" for g in age_groups])
    return xr.DataArray(np.asarray(r), dims=("subject", "voxel"), coords=coords, name="r")


#: At most this many sign flips run on a worker with the seed maps (one task, a fraction
#: of a second at full size, its CPU time taken from no server); more run in this
#: process, in chunks with progress and a cancel between chunks.
WORKER_PERMUTATIONS = 2000


def compute_group(subject_list: SubjectList, settings: CleaningSettings, seed_mm,
                  radius_mm: float = RADIUS_MM, engine: GroupEngine | None = None,
                  progress=None, cancel=None, n_permutations: int = N_PERMUTATIONS,
                  cluster_forming_p: float | None = CLUSTER_FORMING_P,
                  random_state=RANDOM_STATE) -> GroupResult:
    """Seed maps on the cluster, then the group statistics (the whole pipeline, no
    Param): the t-test, FDR and ``n_permutations`` sign flips (FWE; clusters formed at
    ``cluster_forming_p``), on a worker up to :data:`WORKER_PERMUTATIONS` sign flips,
    else here. ``cancel``: see :meth:`GroupEngine.seed_maps` (also checked between
    chunks of permutations)."""
    engine = engine or get_engine()
    if int(n_permutations) <= WORKER_PERMUTATIONS:
        r, n_seed, inference, timings = engine.group_maps(
            subject_list.subjects, settings, subject_list.mask, seed_mm, radius_mm,
            progress=progress, cancel=cancel, n_permutations=n_permutations,
            cluster_forming_p=cluster_forming_p, random_state=random_state)
        return group_result(r, subject_list, seed_mm, radius_mm, n_seed, timings,
                            inference=inference)
    split = 0.9 if n_permutations else 1.0
    r, n_seed, timings = engine.seed_maps(subject_list.subjects, settings, subject_list.mask,
                                          seed_mm, radius_mm, progress=scaled(progress, 0, split),
                                          cancel=cancel)
    return group_result(r, subject_list, seed_mm, radius_mm, n_seed, timings,
                        n_permutations=n_permutations, cluster_forming_p=cluster_forming_p,
                        random_state=random_state, progress=scaled(progress, split, 1.0),
                        cancel=cancel)


def group_result(r: np.ndarray, subject_list: SubjectList, seed_mm, radius_mm: float,
                 n_seed_voxels, timings: dict | None = None,
                 n_permutations: int = N_PERMUTATIONS,
                 cluster_forming_p: float | None = CLUSTER_FORMING_P,
                 random_state=RANDOM_STATE, progress=None, cancel=None,
                 inference: GroupInference | None = None) -> GroupResult:
    """The group statistics of the subjects' seed maps ``r`` (``(n_subjects, n_voxels)``,
    in group-mask order) as a :class:`GroupResult` (timings gain ``stats_s``), or with
    ``inference`` already computed (on a worker: its timings kept) the result around it."""
    start = time.perf_counter()
    r = np.asarray(r, dtype=np.float64)
    z = fisher_z(r)
    if inference is None:
        mask = np.asarray(subject_list.mask.dataobj).astype(bool)
        inference = group_inference(z, mask, n_permutations=n_permutations,
                                    cluster_forming_p=cluster_forming_p,
                                    random_state=random_state, progress=progress,
                                    cancel=cancel)
        timings = dict(timings or {}, stats_s=time.perf_counter() - start)
    da = subject_array(r, subject_list.names, [s.age_group for s in subject_list.subjects])
    return GroupResult(r=da, t=inference.t, p=inference.p, mean_z=z.mean(axis=0),
                       n_seed_voxels=np.asarray(n_seed_voxels),
                       seed_mm=tuple(float(v) for v in seed_mm), radius_mm=float(radius_mm),
                       timings=timings, inference=inference)
