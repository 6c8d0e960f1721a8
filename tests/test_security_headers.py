"""Every HTTP response of the served app carries the security headers (dashboard/security.py).

Served as users serve it (`fmri-explorer serve`, a subprocess), asked with plain
HTTP: the page, a static file, an error page, the liveness endpoint. If a Panel,
Bokeh or Tornado upgrade moves the hooks dashboard/security.py patches, these fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import free_port


@contextlib.contextmanager
def serve_process(*args, panel_args=(), env=None, timeout=120.0, path="/liveness"):
    """Run ``fmri-explorer serve --size small ARGS -- --liveness PANEL_ARGS`` on a free
    loopback port until the app answers; yield (process, base URL). The process group is
    killed afterwards, whatever happened."""
    port = free_port()
    cmd = [sys.executable, "-m", "analysis.cli", "serve", "--size", "small", "--address",
           "127.0.0.1", "--port", str(port), *args, "--", "--liveness",
           f"--allow-websocket-origin=127.0.0.1:{port}", *panel_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    r.read()
                break
            except urllib.error.HTTPError:  # answered (e.g. a redirect to the login page)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the server stopped: {proc.stdout.read()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the server did not answer in {timeout} s")
                time.sleep(0.3)
        yield proc, base
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        proc.stdout.close()


def _headers(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers


@pytest.fixture(scope="module")
def server(encoding_dir, decoding_dir, connectivity_dir):
    with serve_process() as (proc, base):
        yield base


@pytest.mark.parametrize("path", ["/app", "/liveness", "/static/js/bokeh.min.js",
                                  "/no-such-page", "/app?tab=%3Cimg%20src%3Dx%3E"])
def test_every_response_has_the_security_headers(server, path):
    status, headers = _headers(server + path)
    assert status in (200, 404), (path, status)
    csp = headers["Content-Security-Policy"]
    assert csp, f"{path}: no Content-Security-Policy (a Panel/Bokeh/Tornado upgrade moved "\
                "the hook dashboard/security.py patches?)"
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src-attr"] == ["'none'"]  # no inline event handlers
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"]
    assert directives["form-action"] == ["'self'"]
    # no outside origin anywhere: only 'self', this host's websocket, data:/blob: URLs
    port = server.rsplit(":", 1)[1]
    for name, sources in directives.items():
        for source in sources:
            assert source.startswith("'") or source in ("data:", "blob:") or \
                source in (f"ws://127.0.0.1:{port}", f"wss://127.0.0.1:{port}"), (name, source)
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_the_policy_names_only_a_well_formed_host():
    from dashboard.security import content_security_policy

    assert "ws://demo.example.org:5006" in content_security_policy("demo.example.org:5006")
    assert "ws://[::1]:5006" in content_security_policy("[::1]:5006")
    hostile = content_security_policy("evil.org; script-src *")
    assert "evil" not in hostile and "ws:" not in hostile
