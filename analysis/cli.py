"""``fmri-explorer``: the command line.

Subcommands live in :mod:`analysis.commands`, one module each with
``add_parser(subparsers)`` and ``run(args) -> int``. Errors in the input exit
non-zero with a one-line message and no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import DataError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["data", "serve", "encoding", "decoding", "connectivity", "group"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmri-explorer",
        description="Explore fMRI encoding, decoding and seed connectivity live.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except DataError as exc:
        print(f"fmri-explorer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fmri-explorer {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, MemoryError) as exc:
        print(f"fmri-explorer {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
