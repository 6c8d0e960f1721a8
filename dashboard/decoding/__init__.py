"""The Decoding tab (Haxby 2001): live SVM decoding with honest cross-validation.

A package: the tab's layout and callbacks (``tab.py``: :class:`DecodingTab`),
its data sources and upload (``sources.py``), its permutation test
(``permutations.py``), the cheap test it runs by itself after each change and the p
shown beside the accuracy (``auto_p.py``) and its plots (``views.py``). Every name
other modules, tests, notebooks and benchmarks import from ``dashboard.decoding`` is
re-exported here.
"""

from __future__ import annotations

from .permutations import MAX_APP_PERMUTATIONS
from .sources import (GIVEN, REAL_SLICE, SLICE_ENV, SYNTHETIC, USER_FILES, _background,
                      _dataset, displayable, real_slice_dir)
from .tab import C_VALUES, TAB_URL_KEYS, URL_KEYS, DecodingTab

__all__ = ["C_VALUES", "DecodingTab", "GIVEN", "MAX_APP_PERMUTATIONS", "REAL_SLICE",
           "SLICE_ENV", "SYNTHETIC", "TAB_URL_KEYS", "URL_KEYS", "USER_FILES", "displayable",
           "real_slice_dir"]
