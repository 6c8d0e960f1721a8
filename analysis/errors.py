"""The one exception type users see for bad input."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input: a file, a parameter or a combination that cannot work.

    The message names the file (when there is one) and the problem, in one
    line, so that the CLI can print it and the app can show it as a
    notification.

    Parameters
    ----------
    problem : str
        What is wrong, in the user's words.
    path : str or Path, optional
        The offending file; prefixed to the message.
    """

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        message = problem if path is None else f"{Path(path).name}: {problem}"
        super().__init__(message)
