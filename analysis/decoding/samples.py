"""What is decoded: the masked data of a dataset and the chosen conditions' samples.

:func:`masked_of` fetches the masked data ``(n_volumes, n_voxels)`` (the
process-wide cache, or kept on a session's own data); :func:`select_samples`
picks the volumes of the conditions (names or numeric codes, resolved by
:func:`resolve_conditions`) with their labels and runs, as the seed does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets import haxby
from ..errors import DataError
from ..io import resolve_label


def select_samples(labels: pd.DataFrame, conditions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The volumes of ``conditions`` (names or numeric codes), as in the seed.

    Returns ``(index, y, groups)``: volume indices ``(n_samples,)``, their labels
    (names) and runs (``chunks``).
    """
    conditions = list(conditions)
    if len(conditions) < 2:
        raise DataError(f"choose at least two conditions to discriminate, got {conditions}")
    names = resolve_conditions(labels, conditions)
    if len(set(names)) < len(names):
        raise DataError(f"conditions must differ, got {names}")
    index = np.flatnonzero(labels["labels"].isin(names).to_numpy())
    y = labels["labels"].to_numpy()[index].astype(str)
    groups = labels["chunks"].to_numpy()[index]
    return index, y, groups


def resolve_conditions(labels: pd.DataFrame, conditions) -> list[str]:
    """Conditions given as names or numeric codes, as names; a clear error for
    a condition with no samples."""
    names = []
    known = list(dict.fromkeys(labels["labels"]))
    for c in conditions:
        try:
            names.append(resolve_label(c, labels))
        except DataError:
            raise DataError(f"condition {c!r} has no samples in the labels "
                            f"(known: {', '.join(map(str, known))})") from None
    return names



#: ``HaxbyData.info`` key: True for a session's own files (an upload), whose masked data
#: is kept with the data object only (never in the process-wide cache nor on disk).
PRIVATE = "private"


def masked_of(data: haxby.HaxbyData, mask_img, mask_name: str, standardize,
              progress=None) -> np.ndarray:
    """The masked data of ``data`` under a mask: the process-wide cache for shared data;
    for private data (``data.info["private"]``, a session's upload) computed once and
    kept on ``data`` itself, so it leaves with the session that holds ``data``."""
    if not data.info.get(PRIVATE):
        return haxby.masked_data(data.func, mask_img, standardize, progress=progress)
    store = data.info.setdefault("_masked", {})
    key = (mask_name, str(standardize))
    if key not in store:
        store[key] = haxby.masked_data(data.func, mask_img, standardize, progress=progress,
                                       shared=False)
    return store[key]

