"""Seed-to-voxel connectivity: clean once, then any seed is instant (InstaCorr-like).

Reference (the seed example, :mod:`analysis.connectivity.reference`): a
``NiftiSpheresMasker`` (sphere mean of the *unsmoothed* voxels, then cleaned
and z-scored) and a ``NiftiMasker`` (smoothed, cleaned, z-scored), then
``dot(brain.T, seed) / n_volumes``.

Fast engine, exact because cleaning (detrend, Butterworth band-pass, confound
projection) is one linear operator on time applied to every voxel:

1. :func:`clean_data` (once per preprocessing setting and subject, cached by
   :func:`cleaned`): the brain matrix ``(n_volumes, n_voxels)`` exactly as the
   brain masker makes it (smoothing, cleaning, standardisation), and the
   *seed-domain* matrix: the unsmoothed voxels that a sphere can reach,
   cleaned with the same settings but not standardised.
2. :func:`seed_correlation` (per seed): the sphere's voxels (nilearn's rule,
   on precomputed voxel coordinates), their mean cleaned signal z-scored like
   the sphere masker does (``ddof=1`` for ``zscore_sample``), and one
   matrix-vector product. Voxels outside the domain are constant in time:
   cleaning plus z-scoring removes them from the sphere mean exactly.

:func:`clean_data` and :func:`seed_correlation` are plain functions of their
inputs (no cache, no global state), so a group analysis can run them per
subject on Dask workers. :class:`SeedConnectivity` is the Param class the
notebook, the CLI and the dashboard share.

The package: :mod:`.subject` (inputs), :mod:`.cleaning` (clean once, cached),
:mod:`.engine` (seeds, maps, peaks), :mod:`.model` (the Param class),
:mod:`.reference` (the seed's nilearn code).
"""

from ..preprocessing import PARAMETERS as PREPROCESSING  # noqa: F401
from ..preprocessing import STANDARDIZE, T_R, CleaningSettings, Preprocessing  # noqa: F401
from .cleaning import CACHE, CleanedData, clean_data, cleaned, discard_subject, is_cached  # noqa: F401
from .engine import (MAX_RADIUS_MM, ONE_BLAS_THREAD, PCC_MM, RADIUS_MM, SeedMap,  # noqa: F401
                     central_seed, find_peaks, label_peaks, seed_correlation, seed_signal,
                     sphere_voxels, to_volume)
from .model import SeedConnectivity, dataset_participants, with_settings  # noqa: F401
from .reference import reference_seed_map  # noqa: F401
from .subject import SubjectData, load_subject  # noqa: F401
