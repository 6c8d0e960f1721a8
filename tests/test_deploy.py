"""The README's hosted-demo command line, run locally: basic auth blocks strangers."""

import http.cookiejar
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.browser.conftest import free_port


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def demo_server(tmp_path, encoding_dir, decoding_dir, connectivity_dir):
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"demo": "s3cret-pass"}))
    port = free_port()
    # the README's "Deploying" command, on a free local port
    cmd = [sys.executable, "-m", "analysis.cli", "serve", "--address", "127.0.0.1", "--port",
           str(port), "--num-procs", "1", "--", f"--allow-websocket-origin=127.0.0.1:{port}",
           "--basic-auth", str(credentials), "--cookie-secret", "a-long-random-secret",
           "--unused-session-lifetime", "60000", "--check-unused-sessions", "10000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ.copy(), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/login", timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stdout.read())
            time.sleep(0.5)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    try:  # a server process that outlived the command (SIGTERM not acted on) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _login(base, username, password):
    """POST the login form; return an opener with the cookies that follows no redirect."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
    data = urllib.parse.urlencode({"username": username, "password": password}).encode()
    try:
        opener.open(f"{base}/login", data=data, timeout=30).read()
    except urllib.error.HTTPError as exc:  # a successful login redirects
        assert exc.code == 302
    return opener


def test_no_credentials_no_app(demo_server):
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(f"{demo_server}/app", timeout=30)
    assert info.value.code == 302
    assert "/login" in info.value.headers["Location"]


def test_wrong_password_no_app(demo_server):
    opener = _login(demo_server, "demo", "wrong")
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(f"{demo_server}/app", timeout=30)
    assert info.value.code == 302 and "/login" in info.value.headers["Location"]


def test_right_password_gets_the_app(demo_server):
    opener = _login(demo_server, "demo", "s3cret-pass")
    body = opener.open(f"{demo_server}/app", timeout=60).read().decode()
    assert "login-form" not in body
    assert "fmri-explorer" in body


def test_the_demo_is_served_with_the_security_headers(demo_server):
    """The hosted-demo command: the login page and the app carry the CSP and friends."""
    opener = _login(demo_server, "demo", "s3cret-pass")
    for url in (f"{demo_server}/login", f"{demo_server}/app"):
        with opener.open(url, timeout=60) as r:
            csp = r.headers["Content-Security-Policy"]
            assert "script-src-attr 'none'" in csp and "frame-ancestors 'none'" in csp, url
            assert r.headers["X-Frame-Options"] == "DENY"
            assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_app_with_a_trailing_slash_reaches_the_login_page(demo_server):
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(f"{demo_server}/app/", timeout=30)
    app = urllib.parse.urljoin(f"{demo_server}/app/", info.value.headers["Location"])
    assert urllib.parse.urlsplit(app).path == "/app"  # then the login page, as above
    body = urllib.request.urlopen(f"{demo_server}/app/", timeout=30).read().decode()
    assert "login-form" in body
