"""What is decoded: the masked data of a dataset and the chosen conditions' samples.

:func:`masked_of` fetches the masked data ``(n_volumes, n_voxels)`` (the
process-wide cache, or kept on a session's own data); :func:`select_samples`
picks the volumes of the conditions (names or numeric codes, resolved by
:func:`resolve_conditions`) with their labels and runs, as the seed does.
:func:`condition_choices` orders the conditions a dataset offers and
:func:`default_conditions` picks the pair decoded first: face vs cat when
present, else two classes of similar size that are neither a rest condition
(by name) nor a label dominating the others (numeric codes: rest is often 0).
"""

from __future__ import annotations

import math

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
    known = condition_choices(labels)
    for c in conditions:
        try:
            names.append(resolve_label(c, labels))
        except DataError:
            hint = ""
            if "code" in labels and all(_finite_number(k) for k in known):
                hint = ("; the labels are numeric codes with no names: give a "
                        "code-to-name table to use names")
            raise DataError(f"condition {c!r} has no samples in the labels "
                            f"(known: {', '.join(map(str, known))}){hint}") from None
    return names


#: condition names taken for rest (compared in lower case); numeric codes are never
#: taken for rest by their value, only when they dominate (see :func:`default_conditions`)
REST_NAMES = ("rest", "baseline", "fixation")
#: the pair decoded first when a dataset has both (Haxby 2001)
HAXBY_PAIR = ("face", "cat")


def _finite_number(text) -> bool:
    try:
        return math.isfinite(float(str(text)))
    except ValueError:
        return False


def is_rest(name) -> bool:
    """True for a condition named as rest (``rest``, ``Baseline``, ...), by its name only."""
    return str(name).strip().lower() in REST_NAMES


def _order(name):
    # numbers by value ("2" before "10"), then names alphabetically
    text = str(name)
    return (0, float(text), text) if _finite_number(text) else (1, 0.0, text)


def condition_choices(labels: pd.DataFrame) -> list[str]:
    """The conditions of ``labels`` as offered: numbers by value, names alphabetically,
    rest conditions (by name) last."""
    names = sorted({str(v) for v in labels["labels"]}, key=_order)
    return [n for n in names if not is_rest(n)] + [n for n in names if is_rest(n)]


def default_conditions(labels: pd.DataFrame) -> list[str]:
    """The pair decoded by default: ``face`` and ``cat`` when both are present (the
    seed's); else, among the conditions that are not rest by name and not a label
    with more than twice as many volumes as the next largest (a rest coded as a
    number), the two closest in size (their count ratio; ties: the first in
    :func:`condition_choices` order). Decoding a majority class against a small one
    scores its majority rate: chance."""
    counts = labels["labels"].astype(str).value_counts()
    if all(c in counts.index for c in HAXBY_PAIR):
        return list(HAXBY_PAIR)
    order = condition_choices(labels)
    candidates = [c for c in order if not is_rest(c)]
    sizes = counts[candidates].sort_values(ascending=False, kind="stable")
    if len(sizes) >= 3 and sizes.iloc[0] > 2 * sizes.iloc[1]:
        candidates.remove(sizes.index[0])
    if len(candidates) < 2:
        candidates = order
    if len(candidates) < 2:
        return candidates
    best = min(((max(counts[a], counts[b]) / min(counts[a], counts[b]), i, j)
                for i, a in enumerate(candidates) for j, b in enumerate(candidates) if i < j))
    return [candidates[best[1]], candidates[best[2]]]



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

