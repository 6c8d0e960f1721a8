"""Serve the app in-process and drive it with Debian's Chromium (Playwright).

See ../shared/BROWSER_TESTING.md. Every request to a non-loopback address is
aborted: the app must work with no internet (no CDN, no web fonts).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
EXTERNAL = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)[:/]).*")
READY = "() => !!window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "tmp"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server at {url} did not come up in {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run the README's test command, "
                    "which installs Debian's chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1600, "height": 1000}}


def serve_app(app, port: int):
    import panel as pn

    return pn.serve(app, port=port, address="127.0.0.1",
                    websocket_origin=[f"127.0.0.1:{port}"], threaded=True, show=False,
                    liveness=True, start=True)


@contextlib.contextmanager
def served(app):
    """Serve ``app`` (a function returning a Panel object) on a free loopback port; its URL."""
    port = free_port()
    server = serve_app(app, port)
    try:
        wait_http(f"http://127.0.0.1:{port}/liveness")
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def app_url(data_home):
    """The whole app, served in-process on a free loopback port."""
    from dashboard.app import create_app

    with served(create_app) as url:
        yield url


def open_page(page, url: str, timeout: float = 90_000):
    """Go to ``url`` with outside requests aborted; wait until Bokeh is idle."""
    blocked = []

    def abort(route):
        blocked.append(route.request.url)
        route.abort()

    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.route(EXTERNAL, abort)
    page.goto(url)
    page.wait_for_function(READY, timeout=timeout)
    # the app builds the active tab once the page has loaded: wait for it too
    page.locator(".tab-loading").first.wait_for(state="detached", timeout=timeout)
    page.wait_for_function(READY, timeout=timeout)
    page.blocked_requests = blocked
    page.js_errors = errors  # e.g. "Error rendering Bokeh items": a model the page could not draw
    return page


@pytest.fixture
def app_page(page, app_url):
    """A fresh session of the app (a new browser context is a new Bokeh session)."""
    return open_page(page, app_url)


# ---- a nilearn data folder (`fmri-explorer serve --data DIR`) ----------------------------
#: the seed of the folder's synthetic data: not the default synthetic set's (0), so that
#: every number the tabs show tells which data they show
NILEARN_SEED = 5
NILEARN_SUBJECTS = 6


def write_nilearn_folder(out: Path) -> Path:
    """A nilearn data folder laid out by the CLI (``fmri-explorer data ... --out DIR``,
    the fetchers' layout): Miyawaki-like and development-like data of seed
    :data:`NILEARN_SEED`. An own complete folder is left as it is (a second call
    writes nothing)."""
    import subprocess
    import sys

    for argv in (["encoding"], ["connectivity", "--n-subjects", str(NILEARN_SUBJECTS)]):
        subprocess.run([sys.executable, "-m", "analysis.cli", "data", *argv, "--size", "small",
                        "--seed", str(NILEARN_SEED), "--out", str(out), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    return out


@pytest.fixture(scope="session")
def nilearn_data(data_home) -> Path:
    """The session's nilearn data folder (see :func:`write_nilearn_folder`)."""
    return write_nilearn_folder(data_home / f"nilearn-seed{NILEARN_SEED}")


@contextlib.contextmanager
def environment(**values):
    """Environment variables set for the block, then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: str(value) for name, value in values.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def nilearn_app_url(nilearn_data):
    """The whole app served in-process as ``fmri-explorer serve --data DIR`` serves it
    (``$FMRI_EXPLORER_NILEARN_DATA`` set for the module's tests: the sessions' tabs
    read it as they are built)."""
    from analysis.config import NILEARN_DATA_ENV
    from dashboard.app import create_app

    with environment(**{NILEARN_DATA_ENV: nilearn_data}), served(create_app) as url:
        yield url
