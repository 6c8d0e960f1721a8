"""Command-line options made from a Param class: default, bounds, choices and help are
the Parameter's (written once, e.g. in :class:`analysis.preprocessing.Preprocessing`).

One option per parameter, its destination the parameter's name:

* a number: ``--name VALUE``, checked against the parameter's bounds at parse time
  (one line naming the option, see :mod:`analysis.commands.validate`); one that
  allows None also takes ``none``/``off``;
* a boolean: ``--name`` when off by default, ``--no-name`` when on by default;
* a selector: ``--name {choice,...}``.

The help is the parameter's ``doc`` with its range and default. ``flags`` names
options differently (``{"smoothing_fwhm": "--smoothing"}``: names already in use).
"""

from __future__ import annotations

import argparse

import param

from .validate import _describe, float_range, int_range

#: Words a number option that allows None reads as None (off).
OFF = ("none", "off")


def flag_of(name: str, p: param.Parameter, flags: dict | None = None) -> str:
    """The option of parameter ``name``: ``flags[name]``, else from the name."""
    if flags and name in flags:
        return flags[name]
    dashed = name.replace("_", "-")
    if isinstance(p, param.Boolean) and p.default:
        return f"--no-{dashed}"
    return f"--{dashed}"


def _range(p: param.Number) -> tuple:
    lo, hi = p.bounds or (None, None)
    lo_in, hi_in = p.inclusive_bounds
    return lo, hi, not lo_in, not hi_in


def option_type(p: param.Number):
    """An argparse ``type=`` for a number parameter: its bounds (and ``none`` if allowed)."""
    lo, hi, lo_open, hi_open = _range(p)
    integer = isinstance(p, param.Integer)
    described = _describe("a whole number" if integer else "a number", lo, hi, lo_open, hi_open)
    message = f"must be {described}" + (", or 'none' (off)" if p.allow_None else "")
    parse = int_range(lo, hi, message=message) if integer else \
        float_range(lo, hi, lo_open=lo_open, hi_open=hi_open, message=message)
    if not p.allow_None:
        return parse

    def parse_or_off(text):
        if str(text).strip().lower() in OFF:
            return None
        return parse(text)

    parse_or_off.__name__ = parse.__name__
    return parse_or_off


def _default_text(value) -> str:
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _help(p: param.Parameter, flag: str) -> str:
    doc = (p.doc or p.label or "").strip().rstrip(".")
    if isinstance(p, param.Boolean):
        if flag.startswith("--no-"):
            text = f"{doc} (default on; this flag turns it off)"
        else:
            text = f"{doc} (default off)"
    elif isinstance(p, param.Number):
        lo, hi, lo_open, hi_open = _range(p)
        kind = "a whole number" if isinstance(p, param.Integer) else "a number"
        none = " or none" if p.allow_None else ""
        text = (f"{doc}; {_describe(kind, lo, hi, lo_open, hi_open)}{none} "
                f"(default {_default_text(p.default)})")
    else:
        text = f"{doc} (default {_default_text(p.default)})"
    return text.replace("%", "%%")   # argparse formats help with %


def add_param_options(parser, cls, names=None, flags: dict | None = None) -> tuple:
    """Add one option per parameter ``names`` of ``cls`` (default: all but ``name``) to
    ``parser`` (a parser or an argument group); returns the names."""
    names = tuple(names if names is not None else (n for n in cls.param if n != "name"))
    for name in names:
        p = cls.param[name]
        flag = flag_of(name, p, flags)
        common = dict(dest=name, help=_help(p, flag))
        if isinstance(p, param.Boolean):
            action = "store_false" if flag.startswith("--no-") else "store_true"
            if (action == "store_false") != bool(p.default):
                raise TypeError(f"{cls.__name__}.{name}: {flag} does not fit its default "
                                f"{p.default!r}")
            parser.add_argument(flag, action=action, **common)
        elif isinstance(p, param.Number):
            parser.add_argument(flag, type=option_type(p), default=p.default,
                                metavar=flag.lstrip("-").upper().replace("-", "_"), **common)
        elif isinstance(p, param.Selector):
            parser.add_argument(flag, choices=list(p.objects), default=p.default, **common)
        else:
            raise TypeError(f"{cls.__name__}.{name} ({type(p).__name__}): no option type")
    return names


def param_values(args: argparse.Namespace, names) -> dict:
    """``{name: value}`` of the options :func:`add_param_options` added."""
    return {name: getattr(args, name) for name in names}
