"""Shareable state: whitelisted parameters synced to the URL query.

Only the parameters named in a whitelist are read from (and written to) the
URL, and only parameters whose values param itself validates against fixed
choices or bounds (selectors, numbers, booleans, tuples). Free-text and path
parameters can never be whitelisted, so a URL can never name a file to open.

A link is untrusted input. :func:`sync_url` reads the query itself (it does not
let Panel apply it), refuses a value longer than :data:`MAX_VALUE_CHARS` before
parsing it, parses each value by its parameter's type, checks it against the
parameter (bounds, choices) and against the tab's own rules (a slider's range, a
voxel index within the data, two distinct conditions), sets the valid values in
one ``param.update`` and names the refused ones in one (escaped) notification.
The URL then follows later changes of the parameters.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from typing import Callable
from urllib.parse import parse_qsl

import panel as pn
import param

from dashboard.notify import report_error, report_info
from dashboard.render import location as render_location
from dashboard.render.server import session_doc

log = logging.getLogger("fmri_explorer.dashboard")

#: Parameter types whose values come from a closed set or are checked numbers.
SAFE_TYPES = (param.Selector, param.Number, param.Integer, param.Boolean, param.Tuple,
              param.Range, param.ListSelector)
UNSAFE_TYPES = (param.Path, param.Filename, param.Foldername)
#: A longer value in a link is refused unread (a 5,000-digit number, a pasted essay).
MAX_VALUE_CHARS = 200
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")
_INT = re.compile(r"[+-]?\d+(\.0*)?")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?")

#: A rule takes a parsed value and raises ValueError (the reason) to refuse it.
Rule = Callable[[object], None]


def url_mapping(obj: param.Parameterized | type, prefix: str, aliases: dict | None = None,
                exclude=()) -> dict:
    """``{parameter: query key}`` for every parameter of ``obj`` a link can carry.

    Derived from the Param class, so a parameter added to a model is in the link
    without another edit: every parameter of a safe type (:data:`SAFE_TYPES`) that is
    shown (``precedence`` None or >= 0) and settable (not ``constant``), except those in
    ``exclude`` (settings that do not change what the page shows, such as a thread
    count, or the operator's, such as the dataset size). Keys are ``prefix + name``,
    or ``aliases[name]`` (the keys of links already shared).
    """
    aliases = aliases or {}
    out = {}
    for name, p in obj.param.objects("existing").items():
        if name == "name" or name in exclude:
            continue
        if p.precedence is not None and p.precedence < 0:
            continue
        if p.constant or p.readonly:
            continue
        if isinstance(p, UNSAFE_TYPES) or not isinstance(p, SAFE_TYPES):
            continue
        out[name] = aliases.get(name, prefix + name)
    return out


def check_whitelist(obj: param.Parameterized, mapping: dict) -> None:
    """Refuse to sync a parameter that could carry a path or free text."""
    for name in mapping:
        p = obj.param[name]
        if isinstance(p, UNSAFE_TYPES) or not isinstance(p, SAFE_TYPES):
            raise TypeError(f"{type(obj).__name__}.{name} ({type(p).__name__}) "
                            "cannot be synced to the URL")


# ---- parsing -----------------------------------------------------------------------
def _number(text: str) -> float:
    if not _FLOAT.fullmatch(text):
        raise ValueError("not a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _integer(text: str) -> int:
    if not _INT.fullmatch(text):
        raise ValueError("not a whole number")
    return int(text.split(".")[0])


def _items(text: str) -> list:
    """A JSON list (``["face", "cat"]``, ``[0, -52, 18]``) or comma-separated items."""
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            # Panel writes a list changed after the page loaded as Python shows it
            # (['a', 'b']): a literal only (never evaluated as code), 200 characters at most
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise ValueError("not a list") from None
        if not isinstance(items, (list, tuple)):
            raise ValueError("not a list")
        return list(items)
    return [item.strip() for item in text.split(",")] if text else []


def _choice(p: param.Selector, item) -> object:
    """The one of ``p``'s choices that ``item`` (a string or a JSON scalar) names."""
    if isinstance(item, str) and len(item) >= 2 and item[0] == item[-1] == '"':
        try:
            item = json.loads(item)
        except ValueError:
            pass
    for choice in p.objects:
        if isinstance(choice, bool) or isinstance(item, bool):
            if choice is item or str(choice).lower() == str(item).lower():
                return choice
        elif str(choice) == str(item):
            return choice
        elif isinstance(choice, (int, float)) and isinstance(item, str):
            try:
                if _number(item.strip()) == choice:
                    return choice
            except ValueError:
                pass
    raise ValueError("not one of the choices")


def parse_value(p: param.Parameter, raw: str):
    """The value that ``raw`` (a link's text) gives parameter ``p``; ValueError if none.

    Only numbers, booleans, the parameter's own choices and tuples of numbers come
    out: a value is never free text. ``p``'s own checks (bounds, choices, length)
    are applied.
    """
    if not isinstance(raw, str):
        raise ValueError("not text")
    if len(raw) > MAX_VALUE_CHARS:
        raise ValueError(f"longer than {MAX_VALUE_CHARS} characters")
    text = raw.strip()
    if p.allow_None and text.strip('"').lower() in ("null", "none"):
        return None   # e.g. an automatic colour range, no voxel chosen yet
    if isinstance(p, param.Boolean):
        low = text.strip('"').lower()
        if low not in TRUE + FALSE:
            raise ValueError("not true or false")
        value = low in TRUE
    elif isinstance(p, param.Integer):
        value = _integer(text)
    elif isinstance(p, param.Number):
        value = _number(text)
    elif isinstance(p, param.NumericTuple):
        items = _items(text)
        try:
            value = tuple(_number(str(v).strip()) if not isinstance(v, bool) else None
                          for v in items)
        except ValueError:
            raise ValueError("not a list of numbers") from None
        if None in value:
            raise ValueError("not a list of numbers")
        if p.length is not None and len(value) != p.length:
            raise ValueError(f"needs {p.length} numbers")
    elif isinstance(p, param.ListSelector):
        items = _items(text)
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                   for v in items):
            raise ValueError("not a list of choices")
        value = [_choice(p, v) for v in items]
        if len(set(map(str, value))) != len(value):
            raise ValueError("a choice is repeated")
    elif isinstance(p, param.Selector):
        value = _choice(p, text)
    else:
        raise ValueError("cannot be set from a link")
    try:
        p._validate(value)  # param's own checks: bounds, choices, allow_None, length
    except (ValueError, TypeError) as exc:
        raise ValueError(_reason(exc)) from None
    return value


def _reason(exc: BaseException) -> str:
    """Why param refused a value, in a few words (never quoting the value)."""
    text = str(exc)
    limit = re.search(r"must be (at least|at most|less than|greater than) ([-+\w.]+?)\W*(,|$)",
                      text)
    if limit:
        return f"must be {limit.group(1)} {limit.group(2)}"
    if "bound" in text:
        return "out of range"
    if "not in" in text or "not one of" in text or "does not accept" in text:
        return "not one of the choices"
    if "length" in text:
        return "wrong number of items"
    return "not a valid value"


# ---- rules beyond param's own checks ------------------------------------------------
def within(lo: float, hi: float) -> Rule:
    """A rule: the value lies in [lo, hi] (e.g. the widget's range)."""
    def rule(value):
        if not lo <= value <= hi:
            raise ValueError(f"outside {lo:g} to {hi:g}")
    return rule


def at_least_two(value) -> None:
    if len(value) < 2:
        raise ValueError("at least two distinct choices are needed")


#: Rules for the analysis classes whose tab modules pass none: ``{(class, parameter): rule}``.
CLASS_RULES: dict[tuple[str, str], Rule] = {
    ("DecodingAnalysis", "conditions"): at_least_two,
    ("DecodingAnalysis", "n_folds"): within(2, 20),      # the n_folds slider
    ("DecodingAnalysis", "C"): within(1e-4, 1e3),        # the C slider
    ("DecodingAnalysis", "n_permutations"): within(10, 10000),
}


def rules_for(obj: param.Parameterized, rules: dict | None = None) -> dict:
    defaults = {name: rule for (cls, name), rule in CLASS_RULES.items()
                if any(c.__name__ == cls for c in type(obj).__mro__)}
    return {**defaults, **(rules or {})}


# ---- the link -----------------------------------------------------------------------
def _own_session() -> bool:
    """False when Panel's current document is only Bokeh's process-wide one: another
    session's, whose link and address are not this code's (see
    :func:`dashboard.render.server.session_doc`)."""
    return not (session_doc() is None and pn.state.curdoc is not None)


def link_args(search: str | None = None) -> dict[str, str]:
    """The link that opened this session as ``{key: raw text}`` (the last of repeated
    keys), or the query ``search`` given.

    Served, the request's own arguments: the page's address is rewritten as soon as a
    first object is synced (Panel writes the values in use, lists as Python shows them),
    and a later tab must read the link as it was given. Without a server (tests, a
    notebook), the Location's ``search``."""
    if search is None:
        if not _own_session():
            return {}
        args = pn.state.session_args or {}
        if args:
            out = {}
            for key, values in args.items():
                if values:
                    raw = values[-1]
                    out[key] = (raw.decode("utf-8", "replace") if isinstance(raw, bytes)
                                else str(raw))
            return out
        location = pn.state.location
        search = location.search if location is not None else ""
    return dict(parse_qsl(search.lstrip("?"), keep_blank_values=True)) if search else {}


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def read_link(obj: param.Parameterized, mapping: dict, args: dict,
              rules: dict | None = None) -> tuple[dict, dict]:
    """``(values, refused)``: the parameters that ``args`` (a link's query) sets, valid
    and different from ``obj``'s, and ``{key: (raw, reason)}`` for the values refused."""
    rules = rules_for(obj, rules)
    values, refused = {}, {}
    for name, key in mapping.items():
        if key not in args:
            continue
        raw = args[key]
        try:
            value = parse_value(obj.param[name], raw)
            if name in rules:
                rules[name](value)
        except ValueError as exc:
            refused[key] = (raw, str(exc))
            continue
        except Exception:  # noqa: BLE001 - a rule that fails refuses the value
            log.exception("checking %s=%r failed", key, raw[:MAX_VALUE_CHARS])
            refused[key] = (raw, "could not be checked")
            continue
        if not _equal(value, getattr(obj, name)):
            values[name] = value
    return values, refused


def ignored_message(refused: dict) -> str:
    """One line naming each refused key, its value (cut) and why (plain text)."""
    def shown(raw):
        return raw if len(raw) <= 40 else f"{raw[:40]}... ({len(raw)} characters)"
    return "ignored from the link: " + "; ".join(
        f"{key}={shown(raw)} ({reason})" for key, (raw, reason) in refused.items())


class _Rules:
    """Passed to Panel as ``location.sync``'s ``on_error``: carries the tab's rules to
    :func:`_apply_url`, which applies every later change of the URL through
    :func:`read_link` too."""

    def __init__(self, rules: dict | None):
        self.rules = rules or {}

    def __call__(self, values) -> None:  # Panel's on_error: nothing to add
        pass


def sync_url(obj: param.Parameterized, mapping: dict | list, rules: dict | None = None) -> bool:
    """Apply the URL query's values to ``obj``'s whitelisted parameters; keep the URL
    showing them as they change.

    ``mapping`` maps parameter names to query keys (a list uses the same names);
    ``rules`` maps parameter names to extra checks (see :func:`within`). Refused
    values are ignored with one notification; the valid ones of the same link apply.
    Returns False outside a served session (notebooks, tests without a server).
    """
    if not isinstance(mapping, dict):
        mapping = {name: name for name in mapping}
    check_whitelist(obj, mapping)
    location = pn.state.location if _own_session() else None
    if location is None:
        return False
    values, refused = read_link(obj, mapping, link_args(), rules)
    if values:
        try:
            obj.param.update(**values)
        except Exception as exc:  # noqa: BLE001 - the page must still come up
            report_error(exc)
    if refused:
        report_info(ignored_message(refused), duration=8000)
    # Panel keeps the URL in step with later changes (the values in use replace the
    # refused ones now); a change of the URL is applied through read_link (below)
    try:
        location.sync(obj, mapping, on_error=_Rules(rules))
    except Exception:  # noqa: BLE001 - the URL not following is no reason to fail
        log.exception("could not sync %s with the URL", type(obj).__name__)
    return True


def _apply_url(search: str, synced: list) -> None:
    """A change of the URL (e.g. the page sending its address once loaded), for each
    object synced with it (``(object, mapping, on_error)``): each value parsed and
    checked by :func:`read_link`; a refused value is never applied (it was named when
    the tab was built). Panel calls this (see :mod:`dashboard.render.location`)."""
    args = link_args(search or "?")
    for obj, mapping, on_error in synced:
        try:
            values, _refused = read_link(obj, mapping, args, getattr(on_error, "rules", None))
            obj.param.update(**values)
        except Exception:  # noqa: BLE001 - a link is no reason to fail
            log.exception("applying the URL to %s failed", type(obj).__name__)


# every session's Location (made after this import) reads its URL safely
render_location.install(_apply_url, MAX_VALUE_CHARS)
