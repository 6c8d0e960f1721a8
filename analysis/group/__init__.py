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

from ..connectivity import MAX_RADIUS_MM, PCC_MM, RADIUS_MM
from .cluster import (CONNECT_TIMEOUT, SCHEDULER_ENV, Cancelled, connect, require_workers,
                      scheduler_address)
from .engine import SEED_MAP_TIMEOUT, GroupEngine
from .model import GroupConnectivity
from .registry import (_ENGINES, DEFAULT_IDLE_S, IDLE_ENV, close_engines, get_engine,
                       idle_seconds, release_engine)
from .results import GroupResult, compute_group, subject_array
from .stats import fisher_z, group_stats
from .subjects import (AGE_GROUPS, SubjectList, SubjectSpec, confound_names, dataset_subjects,
                       file_subjects)
from .tasks import clean_subject, serial_seed_maps, subject_seed_map, warm_up
