"""The tasks a worker runs for one subject, and the plain serial loop over them.

:func:`clean_subject` loads and cleans one subject (its result stays on the
worker), :func:`subject_seed_map` computes one seed map from that cleaned data,
:func:`warm_up` imports the cleaning's modules in a fresh worker.
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
