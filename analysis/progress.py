"""Progress reporting that works in a terminal, a notebook and the app.

Long functions take ``progress=None``: a callable ``progress(fraction, message)``
with ``fraction`` in [0, 1]. The CLI passes :func:`console_progress`, the app
binds it to a progress bar, tests pass a list's ``append``.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

ProgressFn = Callable[[float, str], None]


def null_progress(fraction: float, message: str = "") -> None:  # noqa: ARG001
    """Ignore progress."""


def console_progress(description: str, stream=None) -> ProgressFn:
    """A progress callable that draws a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, file=stream or sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}", leave=True)

    def report(fraction: float, message: str = "") -> None:
        if bar.disable:  # closed already
            return
        bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        bar.set_postfix_str(message, refresh=False)
        if fraction >= 1.0:
            bar.close()  # draws the final state once
        else:
            bar.refresh()

    return report


def scaled(progress: Optional[ProgressFn], start: float, stop: float) -> ProgressFn:
    """Map a sub-task's [0, 1] onto [start, stop] of ``progress``."""
    progress = progress or null_progress

    def report(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * fraction, message)

    return report
