"""Reporting on maps (issue 17): region names from atlases and cluster tables.

Panel-free: :mod:`.atlas` names the region at MNI coordinates
(:func:`region_at`, :func:`regions_at`, the registry :data:`ATLASES`);
:mod:`.clusters` makes nilearn's cluster table in one pass
(:func:`cluster_table`, :func:`clusters_json`); :mod:`.cli` holds the options
the commands share (``--clusters``, ``--min-cluster-size``, ``--atlas``, ``--space``).
"""

from .atlas import (ATLASES, DEFAULT_ATLAS, NO_LABEL, NO_REGION, NOT_MNI, AtlasSpec,
                    region_at, regions_at)
from .clusters import COLUMNS, cluster_table, clusters_json

__all__ = ["ATLASES", "AtlasSpec", "COLUMNS", "DEFAULT_ATLAS", "NO_LABEL", "NO_REGION",
           "NOT_MNI", "cluster_table", "clusters_json", "region_at", "regions_at"]
