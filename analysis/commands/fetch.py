"""``fmri-explorer fetch {encoding,decoding,connectivity,all} --data-dir DIR [--n-subjects N]``.

Downloads the real datasets once through nilearn's fetchers (``fetch_miyawaki2008``,
``fetch_haxby``, ``fetch_development_fmri``) into ``DIR``, a nilearn ``data_dir``, and
prints JSON with the paths. Files already in place are not downloaded again (the
fetchers check them first), so a folder written by ``fmri-explorer data ... --out DIR``
(the same layout) is "fetched" without network. nilearn's own download progress goes
to stderr, so stdout carries only the JSON. Without a network the command stops with
one line saying what to do (exit 2).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import urllib.error
from pathlib import Path

from ..atomic import ensure_writable_dir
from ..errors import DataError
from . import print_json

#: the real development dataset's subject count (nilearn's fetch_development_fmri)
N_DEVELOPMENT_SUBJECTS = 155
#: subjects fetched by default: the seed example's one
DEFAULT_SUBJECTS = 1
DATASETS = ("encoding", "decoding", "connectivity")


def _positive_subjects(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
    if not 1 <= n <= N_DEVELOPMENT_SUBJECTS:
        raise argparse.ArgumentTypeError(
            f"{n} is not between 1 and {N_DEVELOPMENT_SUBJECTS} (the dataset's subjects)")
    return n


def add_parser(sub):
    p = sub.add_parser(
        "fetch", help="download the real datasets once (nilearn's fetchers)",
        description="Download the real Miyawaki 2008, Haxby 2001 and development fMRI "
                    "datasets through nilearn's fetchers into DIR (a nilearn data_dir) and "
                    "print JSON with their paths. Files already there are not downloaded "
                    "again. Then serve them with `fmri-explorer serve --data DIR`.")
    p.add_argument("dataset", choices=[*DATASETS, "all"])
    p.add_argument("--data-dir", required=True, type=Path, metavar="DIR",
                   help="nilearn data_dir to download into (created if needed)")
    p.add_argument("--n-subjects", type=_positive_subjects, default=DEFAULT_SUBJECTS,
                   metavar="N", help="connectivity: subjects of the development dataset "
                                     f"(1-{N_DEVELOPMENT_SUBJECTS}; default "
                                     f"{DEFAULT_SUBJECTS}, as nilearn's seed example)")
    p.add_argument("--quiet", action="store_true", help="no download progress")
    return p


def _fetcher(dataset: str, n_subjects: int):
    from nilearn import datasets

    if dataset == "encoding":
        return lambda data_dir, verbose: datasets.fetch_miyawaki2008(
            data_dir=data_dir, verbose=verbose)
    if dataset == "decoding":   # subject 2, as nilearn's decoding example
        return lambda data_dir, verbose: datasets.fetch_haxby(
            data_dir=data_dir, subjects=(2,), verbose=verbose)
    return lambda data_dir, verbose: datasets.fetch_development_fmri(
        n_subjects=n_subjects, data_dir=data_dir, verbose=verbose)


def _paths(bunch) -> dict:
    """The fetched files of a nilearn Bunch (paths and lists of paths) and its TR."""
    out = {}
    for key, value in bunch.items():
        if isinstance(value, (str, Path)) and key != "description":
            out[key] = str(value)
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (str, Path)) for v in value):
            out[key] = [str(v) for v in value]
        elif key == "t_r" and value is not None:
            out[key] = float(value)
    return out


#: the errors a download raises when the network (or the server) cannot be reached
def _network_errors() -> tuple:
    errors = [urllib.error.URLError, socket.gaierror, socket.timeout, ConnectionError,
              TimeoutError]
    try:
        import requests

        errors.append(requests.exceptions.RequestException)
    except ImportError:   # pragma: no cover - nilearn depends on requests
        pass
    return tuple(errors)


def _server(exc) -> str:
    """The download server a network error names (its host), else "the download server"."""
    from urllib.parse import urlsplit

    url = getattr(getattr(exc, "request", None), "url", None)
    host = urlsplit(url).hostname if isinstance(url, str) else None
    return host or "the download server"


def fetch(dataset: str, data_dir: Path, n_subjects: int = DEFAULT_SUBJECTS,
          quiet: bool = False) -> dict:
    """Fetch ``dataset`` into ``data_dir``; return its paths (see :func:`_paths`).

    Raises :class:`DataError` (one line, says what to do) when the network cannot be
    reached."""
    fetcher = _fetcher(dataset, n_subjects)
    try:
        with contextlib.redirect_stdout(sys.stderr):   # stdout is the JSON's
            bunch = fetcher(str(data_dir), 0 if quiet else 1)
    except _network_errors() as exc:
        raise DataError(
            f"could not download the {dataset} dataset: {_server(exc)} cannot be reached "
            f"(no network?); connect to the internet and run again (files already "
            f"downloaded are kept), or copy the dataset into this folder in nilearn's "
            f"layout", data_dir) from None
    return {"data_dir": str(data_dir), **_paths(bunch)}


def run(args) -> int:
    data_dir = ensure_writable_dir(args.data_dir)
    names = DATASETS if args.dataset == "all" else (args.dataset,)
    payload = {name: fetch(name, data_dir, args.n_subjects, args.quiet) for name in names}
    print_json(payload)
    return 0
