"""The parts every generated script shares: literals, constants, layout, output helper.

:func:`_constants` renders the ``NAME = value  # comment`` block at a script's
top (lists wrapped at :data:`WIDTH`, a comment that does not fit moved above
its line), :func:`_script` assembles docstring, imports, constants, the
``show`` helper (:data:`_SHOW`) and the body, and :func:`_absolute` and
:func:`_uploaded_note` say where a script's data comes from. Used by the
per-analysis modules of :mod:`analysis.scripts`.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

#: Longest line of a generated script before a list is wrapped or a comment moved up.
WIDTH = 88


# --------------------------------------------------------------------------- rendering

def _plain(value):
    """``value`` with numpy scalars and paths made plain Python (for ``repr``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _text(value) -> str:
    """One-line literal, strings in double quotes where that needs no escape."""
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, tuple):
        items = [_text(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _literal(value, indent: int = 0) -> str:
    """A Python literal for ``value``; a list too long for one line, several items a line."""
    value = _plain(value)
    text = _text(value)
    if len(text) + indent <= WIDTH or not isinstance(value, (list, dict)) or not value:
        return text
    if isinstance(value, dict):
        items = [f"{_text(k)}: {_text(v)}" for k, v in value.items()]
        open_, close = "{", "}"
    else:
        items = [_text(v) for v in value]
        open_, close = "[", "]"
    lines, line = [], ""
    for item in items:
        piece = f"{item},"
        if line and len(line) + 1 + len(piece) > WIDTH - 4:
            lines.append(line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    lines.append(line)
    return open_ + "\n" + "".join(f"    {ln}\n" for ln in lines) + close


def _constants(rows) -> str:
    """``NAME = value  # comment`` lines; a comment that does not fit goes above its line.

    ``rows``: ``(name, value, comment)`` tuples; a str row starts a block with a heading.
    """
    out, block = [], []

    def fits(line, comment, width):
        return "\n" not in line and width + 4 + len(comment) <= WIDTH

    def flush():
        inline = [f"{n} = {v}" for n, v, c in block
                  if c and fits(f"{n} = {v}", c, len(f"{n} = {v}"))]
        width = max((len(line) for line in inline), default=0)
        for name, value, comment in block:
            line = f"{name} = {value}"
            if not comment:
                out.append(line)
            elif len(line) <= width and fits(line, comment, width):
                out.append(f"{line.ljust(width)}  # {comment}")
            elif fits(line, comment, len(line)):
                out.append(f"{line}  # {comment}")
            else:
                out.extend([*(f"# {part}" for part in textwrap.wrap(comment, WIDTH - 2)), line])
        block.clear()

    for row in rows:
        if isinstance(row, str):
            flush()
            out += ["", f"# ---- {row}"]
        else:
            name, value, comment = row
            block.append((name, _literal(value, indent=len(name) + 3), comment))
    flush()
    return "\n".join(out).lstrip("\n") + "\n"


def _script(docstring: str, imports: str, constants: str, body: str) -> str:
    return (f'"""{docstring.strip()}\n"""\n\n{imports.strip()}\n\n{constants.strip()}\n\n\n'
            f"{_SHOW.strip()}\n\n\n{body.strip()}\n")


#: The output helper every script defines.
_SHOW = '''
def show(name, value):
    """Print one result as ``name: value`` (floats at full precision, lists as literals)."""
    if isinstance(value, (float, np.floating)):
        value = repr(float(value))
    elif isinstance(value, (list, tuple, np.ndarray)):
        value = repr([float(v) for v in value])
    print(f"{name}: {value}", flush=True)
'''

_NEEDS = ("Needs numpy, pandas, nibabel, nilearn and scikit-learn only. Prints one result a\n"
          "line, ``name: value``, the last one the app's summary; writes the map to OUTPUT.")


def _absolute(path) -> str:
    return os.path.abspath(str(path))


def _uploaded_note() -> str:
    return ("Data: your uploaded files, by the names you gave them: run this script in the\n"
            "folder that holds them.")
