"""The tasks a worker runs for one subject, and the plain serial loop over them.

:func:`clean_subject` loads and cleans one subject (its result stays on the
worker), :func:`subject_seed_map` computes one seed map from that cleaned data,
:func:`group_statistics` stacks the seed maps and computes the group statistics
there, :func:`warm_up` imports the cleaning's modules in a fresh worker.
:func:`serial_seed_maps` runs the same steps in a loop without Dask: the reference
the distributed result is tested against.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from ..connectivity import (RADIUS_MM, CleanedData, CleaningSettings, clean_data, load_subject,
                            seed_correlation)
from ..progress import null_progress
from .subjects import SubjectSpec


def clean_subject(spec: SubjectSpec, settings: CleaningSettings, mask) -> CleanedData:
    """Task: load and clean one subject (runs on a worker; the result stays there)."""
    subject = load_subject(spec.func, confounds=spec.confounds, mask=mask, t_r=spec.t_r,
                           name=spec.name)
    if settings.confound_columns and subject.confounds is None:
        settings = replace(settings, confound_columns=None)
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


def group_statistics(maps, mask, n_permutations: int, cluster_forming_p, random_state) -> tuple:
    """Task: the subjects' seed maps (each ``(r, n_seed_voxels)``, in subject order, as
    :func:`subject_seed_map` returns them) stacked, and their group statistics
    (:func:`~analysis.group.stats.group_inference` on Fisher z): ``(r (n_subjects,
    n_voxels), n_seed_voxels (n_subjects,), GroupInference, seconds it took)``.

    On a worker, the statistics take no CPU time from the server's event loop (there, a
    thread of many short numpy calls waits for the interpreter lock at each one)."""
    import time

    from .stats import fisher_z, group_inference

    start = time.perf_counter()
    r = np.stack([np.asarray(m[0], dtype=np.float64) for m in maps])
    n_seed = np.array([int(m[1]) for m in maps], dtype=int)
    inference = group_inference(fisher_z(r), mask, n_permutations=n_permutations,
                                cluster_forming_p=cluster_forming_p,
                                random_state=random_state)
    return r, n_seed, inference, time.perf_counter() - start


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
