"""The group result (:class:`GroupResult`) and :func:`compute_group`, the whole pipeline.

:func:`compute_group` gets every subject's seed map from the cluster, runs the
group t-test and gathers the numbers in a :class:`GroupResult`, with no Param
class involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ..connectivity import RADIUS_MM, CleaningSettings
from .engine import GroupEngine
from .registry import get_engine
from .stats import group_stats
from .subjects import SubjectList


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
