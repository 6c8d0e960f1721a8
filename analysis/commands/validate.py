"""Checks for the CLI's options, as argparse ``type=`` callables.

Every numeric option is parsed by one of these: NaN and infinity are refused,
and so is a value outside the option's range, at parse time, with one line
that names the option (``fmri-explorer decoding: error: argument --C: must be
a number above 0 and at most 100000, not 'nan'``; see
:class:`analysis.cli.OneLineParser`). Checks that need the data (``--n-folds``
against the number of samples, a cutoff against the Nyquist frequency) are
made at the start of the command's ``run``, before any computation.
"""

from __future__ import annotations

import argparse
import math
import os

#: Largest value of options that take a count of threads or processes.
MAX_JOBS = 64


def max_jobs() -> int:
    """The most threads/workers an option may ask for: 4 per CPU, at most 64."""
    return max(1, min(MAX_JOBS, (os.cpu_count() or 1) * 4))


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _describe(kind: str, lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        if not lo_open and not hi_open:
            return f"{kind} from {_fmt(lo)} to {_fmt(hi)}"
        low = f"above {_fmt(lo)}" if lo_open else f"at least {_fmt(lo)}"
        high = f"below {_fmt(hi)}" if hi_open else f"at most {_fmt(hi)}"
        return f"{kind} {low} and {high}"
    if lo is not None:
        return f"{kind} above {_fmt(lo)}" if lo_open else f"{kind} of at least {_fmt(lo)}"
    if hi is not None:
        return f"{kind} below {_fmt(hi)}" if hi_open else f"{kind} of at most {_fmt(hi)}"
    return f"a finite {kind.split()[-1]}"


def _in_range(value, lo, hi, lo_open, hi_open) -> bool:
    if lo is not None and (value <= lo if lo_open else value < lo):
        return False
    if hi is not None and (value >= hi if hi_open else value > hi):
        return False
    return True


def _parse_float(text: str):
    try:
        return float(str(text).strip())
    except ValueError:
        return None


def float_range(lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False, name: str = "number",
                message: str | None = None):
    """A ``type=`` for a finite float in ``[lo, hi]`` (ends open when asked).

    ``message`` replaces the generic ``must be a number above 0`` (the value is
    appended: ``..., not 'nan'``).
    """
    message = message or f"must be {_describe('a number', lo, hi, lo_open, hi_open)}"

    def parse(text):
        value = _parse_float(text)
        if value is None or not math.isfinite(value) \
                or not _in_range(value, lo, hi, lo_open, hi_open):
            raise argparse.ArgumentTypeError(f"{message}, not {str(text)!r}")
        return value

    parse.__name__ = name
    return parse


def int_range(lo: int | None = None, hi: int | None = None, *, name: str = "integer",
              message: str | None = None):
    """A ``type=`` for a whole number in ``[lo, hi]``; ``1e3`` and ``5.0`` read as integers."""
    message = message or f"must be {_describe('a whole number', lo, hi, False, False)}"

    def parse(text):
        text_s = str(text).strip()
        try:
            value = int(text_s)
        except ValueError:
            f = _parse_float(text_s)
            value = int(f) if f is not None and math.isfinite(f) and f == int(f) else None
        if value is None or not _in_range(value, lo, hi, False, False):
            raise argparse.ArgumentTypeError(f"{message}, not {text_s!r}")
        return value

    parse.__name__ = name
    return parse


#: Any finite number (NaN and infinity refused).
finite_float = float_range(name="finite_float")
#: A finite number above 0.
positive_float = float_range(0.0, None, lo_open=True, name="positive_float")
#: A whole number of at least 0.
non_negative_int = int_range(0, None, name="non_negative_int")


def check_band(high_pass, low_pass, t_r=None) -> None:
    """Refuse ``--high-pass``/``--low-pass`` that cannot make a band (``t_r`` for Nyquist)."""
    from ..errors import DataError

    if high_pass is not None and low_pass is not None and high_pass >= low_pass:
        raise DataError(f"band-pass --high-pass/--low-pass: high_pass {high_pass:g} Hz must be "
                        f"below low_pass {low_pass:g} Hz")
    if t_r:
        nyquist = 0.5 / t_r
        for option, value in (("--high-pass", high_pass), ("--low-pass", low_pass)):
            if value is not None and value >= nyquist:
                raise DataError(f"{option} {value:g} Hz is at or above the Nyquist frequency "
                                f"{nyquist:g} Hz (repetition time {t_r:g} s)")


def check_outputs(*pairs) -> None:
    """Check each ``(option, path)`` output before any computation (see :func:`analysis.atomic.check_target`).

    Only ``.nii``/``.nii.gz`` names, never an existing directory or a
    non-regular file, and the folder must exist. Two options may not name the
    same file.
    """
    from pathlib import Path

    from ..atomic import NIFTI_SUFFIXES, check_target
    from ..errors import DataError

    seen = {}
    for option, path in pairs:
        if path is None:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            raise DataError("is a directory", Path(path))  # said first, whatever its name
        check_target(path, NIFTI_SUFFIXES)
        key = os.path.abspath(os.fspath(path))
        if key in seen:
            raise DataError(f"{option} and {seen[key]} name the same file", Path(path))
        seen[key] = option
