"""One module per ``fmri-explorer`` subcommand (see :mod:`analysis.cli`)."""

import json
import sys

import numpy as np


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def print_json(payload) -> None:
    """Print ``payload`` as JSON on stdout (numpy values and paths converted)."""
    json.dump(payload, sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")
