"""Shared fixtures: a private cache folder, small synthetic datasets, no network.

The whole session uses a fresh temporary cache (``$FMRI_EXPLORER_DATA``) and
the ``small`` synthetic size (``$FMRI_EXPLORER_SIZE``), so tests never touch a
user's cache and each small dataset is generated once per session.
"""

from __future__ import annotations

import os

# One BLAS thread per process in the tests: numpy and scipy each bring their own
# OpenBLAS, and on 2 busy cores oversubscribed small products run 3-10x slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from analysis.config import DATA_ENV, SIZE_ENV

#: the small real test data the project carries (a clone alone passes the tests)
HAXBY_SLICE = Path(__file__).resolve().parent / "data" / "haxby2001_slice"

_TMP = tempfile.mkdtemp(prefix="fmri-explorer-tests-")


def pytest_configure(config):
    os.environ[DATA_ENV] = _TMP
    os.environ[SIZE_ENV] = "small"
    os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_unconfigure(config):
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def data_home() -> Path:
    """The session's cache folder (``$FMRI_EXPLORER_DATA``)."""
    return Path(_TMP)


def _synthetic(kind):
    from analysis.datasets import ensure_synthetic

    return ensure_synthetic(kind, size="small")


@pytest.fixture(scope="session")
def encoding_dir(data_home) -> Path:
    """nilearn ``data_dir`` with the small synthetic Miyawaki-like dataset."""
    return _synthetic("encoding")


@pytest.fixture(scope="session")
def decoding_dir(data_home) -> Path:
    """nilearn ``data_dir`` with the small synthetic Haxby-like dataset."""
    return _synthetic("decoding")


@pytest.fixture(scope="session")
def connectivity_dir(data_home) -> Path:
    """nilearn ``data_dir`` with the small synthetic development-like dataset."""
    return _synthetic("connectivity")


@pytest.fixture(scope="session")
def haxby_slice() -> Path:
    """Real Haxby 2001 data: one slice, 1,452 volumes (``tests/data/haxby2001_slice``)."""
    if not HAXBY_SLICE.exists():
        pytest.fail(f"real data missing: {HAXBY_SLICE}")
    return HAXBY_SLICE


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Any connection to a non-loopback address raises :class:`NetworkBlocked`."""
    real_connect = socket.socket.connect
    real_create = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def _is_local(host) -> bool:
        return str(host) in ("localhost", "::1") or str(host).startswith("127.")

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(address, tuple) and not _is_local(host):
            raise NetworkBlocked(f"network access attempted: {address}")
        return real_connect(self, address)

    def create_connection(address, *args, **kwargs):
        if not _is_local(address[0]):
            raise NetworkBlocked(f"network access attempted: {address}")
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local(host):
            raise NetworkBlocked(f"name lookup attempted: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield


@pytest.fixture(scope="session")
def group_dir(data_home):
    """A small development-like dataset of 8 subjects (group analyses)."""
    from analysis.datasets import development as dev

    path = data_home / "group-small-8"
    if not dev.is_present(path):
        dev.generate(path, size="small", n_subjects=8)
    return path


@pytest.fixture
def ridge_builds(monkeypatch):
    """How many RidgeCV decompositions were computed (``"built"``) and read from the disk
    cache (``"loaded"``) while the test ran: a spy on the engine's public constructor
    and :meth:`RidgeCV.load` (the production code keeps no counter)."""
    from analysis.encoding.engine import RidgeCV

    counts = {"built": 0, "loaded": 0}
    init, load = RidgeCV.__init__, RidgeCV.load.__func__

    def counting_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        counts["built"] += 1

    def counting_load(cls, *args, **kwargs):
        eng = load(cls, *args, **kwargs)
        counts["loaded"] += 1
        return eng

    monkeypatch.setattr(RidgeCV, "__init__", counting_init)
    monkeypatch.setattr(RidgeCV, "load", classmethod(counting_load))
    return counts


@pytest.fixture
def cleanings(monkeypatch):
    """The Dask clients a group cleaning task was submitted to from now on, one entry
    per task: a spy on ``Client.submit`` (client side: the in-process thread workers run
    a pickled copy of the task function, so a wrapper of it would count nothing)."""
    from distributed import Client

    from analysis.group import clean_subject

    submitted = []
    submit = Client.submit

    def spy(self, func, *args, **kwargs):
        if getattr(func, "__name__", None) == clean_subject.__name__:
            submitted.append(self)
        return submit(self, func, *args, **kwargs)

    monkeypatch.setattr(Client, "submit", spy)
    return submitted


@pytest.fixture(scope="module")
def one_blas_thread():
    """One BLAS thread for a module's tests (``pytestmark = pytest.mark.usefixtures(
    "one_blas_thread")``): on 2 shared cores OpenBLAS threads contend (10x slower)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
