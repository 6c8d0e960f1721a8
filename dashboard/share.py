"""Shareable state: whitelisted parameters synced to the URL query.

Only the parameters named in a whitelist are read from (and written to) the
URL, and only parameters whose values param itself validates against fixed
choices or bounds (selectors, numbers, booleans, tuples). Free-text and path
parameters can never be whitelisted, so a URL can never name a file to open.
"""

from __future__ import annotations

import param
import panel as pn

from dashboard.notify import report_info

#: Parameter types whose values come from a closed set or are checked numbers.
SAFE_TYPES = (param.Selector, param.Number, param.Integer, param.Boolean, param.Tuple,
              param.Range, param.ListSelector)
UNSAFE_TYPES = (param.Path, param.Filename, param.Foldername)


def check_whitelist(obj: param.Parameterized, mapping: dict) -> None:
    """Refuse to sync a parameter that could carry a path or free text."""
    for name in mapping:
        p = obj.param[name]
        if isinstance(p, UNSAFE_TYPES) or not isinstance(p, SAFE_TYPES):
            raise TypeError(f"{type(obj).__name__}.{name} ({type(p).__name__}) "
                            "cannot be synced to the URL")


def sync_url(obj: param.Parameterized, mapping: dict | list) -> bool:
    """Sync ``obj``'s whitelisted parameters with the URL query of this session.

    ``mapping`` maps parameter names to query keys (a list uses the same names).
    Values in the URL that param rejects are ignored with a notification.
    Returns False outside a served session (notebooks, tests without a server).
    """
    if not isinstance(mapping, dict):
        mapping = {name: name for name in mapping}
    check_whitelist(obj, mapping)
    location = pn.state.location
    if location is None:
        return False

    def ignored(values: dict) -> None:
        report_info("ignored from the link: " + ", ".join(f"{k}={v!r}" for k, v in values.items()))

    location.sync(obj, mapping, on_error=ignored)
    return True
