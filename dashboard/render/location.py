"""Panel's ``Location`` (the page's URL), patched so that a link is read by our checks.

Panel parses the query of every URL change with :func:`panel.util.parse_query`,
from ``panel.io.location``'s module namespace, and applies it to each object
synced with ``Location.sync`` in ``Location._update_synced``, which it runs
when the page sends its address (after loading) and on every later change.
:func:`install` replaces both, for every ``Location`` made afterwards:

* the parser keeps a value it cannot parse as text (a 5,000-digit number raised
  ValueError there, and blanked the page), and a value longer than the limit
  unparsed;
* a change of URL is handed to the caller's ``apply(search, synced)``, with
  ``synced`` the ``(object, mapping, on_error)`` of each synced object (Panel
  keeps them as ``(object, mapping, watcher, on_error)`` in ``Location._synced``,
  and skips its update while ``Location._syncing``).

``tests/test_render_hooks.py`` checks these names and shapes.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import parse_qsl, urlencode

#: ``apply(search, synced)``, set by :func:`install`
_APPLY: Callable | None = None
#: values longer than this are kept unparsed, set by :func:`install`
_MAX_VALUE_CHARS = 200


def safe_parse_query(query: str) -> dict:
    """Panel's :func:`panel.util.parse_query` without its failures: a value it cannot
    parse, or one longer than the limit given to :func:`install`, is kept as text."""
    from panel.util import parse_query

    pairs = parse_qsl(query[1:] if query.startswith("?") else query, keep_blank_values=True)
    out = {}
    for key, value in pairs:
        if len(value) > _MAX_VALUE_CHARS:
            out[key] = value
            continue
        try:
            out.update(parse_query("?" + urlencode({key: value})))
        except Exception:  # noqa: BLE001
            out[key] = value
    return out


def _update_synced(self, event=None) -> None:
    """``Location._update_synced``: the URL changed; the caller's ``apply`` applies it."""
    if self._syncing or _APPLY is None:
        return
    _APPLY(self.search or "?",
           [(obj, mapping, on_error) for obj, mapping, _, on_error in list(self._synced)])


def install(apply: Callable[[str, list], None], max_value_chars: int) -> None:
    """Every ``Location`` made from now on parses its URL with :func:`safe_parse_query`
    and applies a change of it through ``apply(search, synced)`` (see the module)."""
    global _APPLY, _MAX_VALUE_CHARS
    from panel.io import location

    _APPLY, _MAX_VALUE_CHARS = apply, int(max_value_chars)
    if getattr(location.parse_query, "__name__", "") != "safe_parse_query":
        location.parse_query = safe_parse_query
    patched = location.Location._update_synced
    if getattr(patched, "__name__", "") != "_update_synced" or patched.__module__ != __name__:
        location.Location._update_synced = _update_synced
