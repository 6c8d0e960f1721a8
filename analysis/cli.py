"""``fmri-explorer``: the command line.

Subcommands live in :mod:`analysis.commands`, one module each with
``add_parser(subparsers)`` and ``run(args) -> int``.

The error contract: every bad input (a file, an option, a combination) exits
with status 2 and **one** line on stderr, ``fmri-explorer COMMAND: error: ...``,
naming the file or the option and the problem, and no traceback. That holds
for argparse's own errors (:class:`OneLineParser`), for
:class:`~analysis.errors.DataError`, for damaged compressed data found only
when it is read (the damaged input file is named when it can be found), for
running out of memory, and for other ``OSError``/``ValueError`` that inputs
cause. A closed stdout pipe (``fmri-explorer encoding --json | head``) is not
an error: the command stops quietly with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path

from .errors import DataError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["data", "fetch", "serve", "encoding", "decoding", "connectivity", "group"]
#: Exit status of every error the input causes.
EXIT_INPUT = 2
#: Longest error line printed (a message quoting a huge value is cut).
MAX_MESSAGE = 1000


def one_line(text) -> str:
    """``text`` on one line: newlines and runs of blanks collapsed, cut at :data:`MAX_MESSAGE`."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 3] + "..."


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(EXIT_INPUT, f"{self.prog}: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="fmri-explorer",
        description="Explore fMRI encoding, decoding and seed connectivity live.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"analysis.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"analysis.commands.{name}":
                continue  # not built yet
            raise
        sub_parser = module.add_parser(sub)
        sub_parser.set_defaults(run=module.run)
    return parser


def _input_images(args) -> list[Path]:
    """The image files named on the command line (to find which one is damaged)."""
    found = []
    for key in ("func", "mask"):
        value = getattr(args, key, None)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, Path)) and str(item).lower().endswith(
                    (".nii", ".nii.gz", ".hdr", ".img", ".img.gz")):
                found.append(Path(item))
    return found


def _damaged_message(args, exc) -> str:
    """One line for compressed data that failed to decompress, naming the file when possible."""
    from .volumes import TRUNCATED, verify_image_data

    for path in _input_images(args):
        try:
            problem = verify_image_data(path)
        except Exception:  # noqa: BLE001 - only looking for a name
            problem = None
        if problem:
            return problem
    return f"an input image: {TRUNCATED} ({type(exc).__name__}: {exc})"


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the exit flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad option (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    command = args.command

    def fail(message) -> int:
        try:
            print(f"fmri-explorer {command}: error: {one_line(message)}", file=sys.stderr)
        except (OSError, ValueError):
            pass
        return EXIT_INPUT

    import zlib

    from .volumes import DAMAGED_DATA_ERRORS

    with warnings.catch_warnings(record=True) as caught:
        # library warnings are shown after a success, never before an error line
        try:
            status = int(args.run(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not in the exit's flush
        except BrokenPipeError:
            _quiet_stdout()
            return 0
        except DataError as exc:
            return fail(exc)
        except KeyboardInterrupt:
            print(f"fmri-explorer {command}: interrupted", file=sys.stderr)
            return 130
        except (*DAMAGED_DATA_ERRORS, zlib.error) as exc:
            return fail(_damaged_message(args, exc))
        except MemoryError as exc:
            detail = f" ({exc})" if str(exc) else ""
            return fail(f"not enough memory for this input{detail}: "
                        "use smaller images, a tighter mask or fewer volumes")
        except (OSError, ValueError) as exc:
            text = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.filename:
                text = f"{Path(str(exc.filename)).name}: {exc.strerror or text}"
            return fail(f"{type(exc).__name__}: {text}")
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


if __name__ == "__main__":
    sys.exit(main())
