"""Logins under `panel serve --basic-auth` (dashboard/security.py).

The login page is reached from `/app/` too; failed logins are throttled per
client (HTTP 429 with Retry-After); cookies are SameSite, and Secure over TLS.
"""

from __future__ import annotations

import http.cookiejar
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dashboard.security import LoginThrottle
from tests.test_security_headers import serve_process

PASSWORD = "s3cret-pass"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _opener(jar=None):
    handlers = [_NoRedirect()]
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    return urllib.request.build_opener(*handlers)


def _open(opener, url, data=None, headers=None):
    """(status, headers, body) of a request that follows no redirect."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=60) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def _login(opener, base, password, client=None, proto=None):
    headers = {}
    if client:
        headers["X-Real-IP"] = client  # with --use-xheaders, as behind a proxy
    if proto:
        headers["X-Forwarded-Proto"] = proto
    data = urllib.parse.urlencode({"username": "demo", "password": password}).encode()
    return _open(opener, base + "/login", data=data, headers=headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory, encoding_dir, decoding_dir, connectivity_dir):
    credentials = tmp_path_factory.mktemp("login") / "credentials.json"
    credentials.write_text(json.dumps({"demo": PASSWORD}))
    with serve_process(panel_args=["--basic-auth", str(credentials), "--cookie-secret",
                                   "a-long-random-secret", "--use-xheaders"],
                       path="/login") as (proc, base):
        yield base


def _follow(opener, url, hops=5):
    """Follow redirects by hand; the URLs visited and the last (status, body)."""
    visited = [url]
    for _ in range(hops):
        status, headers, body = _open(opener, url)
        if status not in (301, 302, 303, 307):
            return visited, status, body
        url = urllib.parse.urljoin(url, headers["Location"])
        visited.append(url)
    raise AssertionError(f"redirect loop: {visited}")


def test_app_with_a_trailing_slash_reaches_the_login_page_then_the_app(server):
    visited, status, body = _follow(_opener(), server + "/app/?tab=decoding")
    assert status == 200 and "login-form" in body, visited
    assert urllib.parse.urlsplit(visited[-1]).path == "/login", visited
    assert urllib.parse.urlsplit(visited[1]).path == "/app", visited  # no trailing slash
    # logged in, /app/ is the app at /app (its relative links then point at /static)
    jar = http.cookiejar.CookieJar()
    opener = _opener(jar)
    assert _login(opener, server, PASSWORD, client="10.0.0.1")[0] == 302
    visited, status, body = _follow(opener, server + "/app/?tab=decoding")
    assert status == 200 and "login-form" not in body and "fmri-explorer" in body
    assert visited[-1] == server + "/app?tab=decoding", visited
    assert 'src="static/' in body or "static/extensions" in body


def test_failed_logins_are_throttled_per_client(server):
    opener = _opener()
    statuses = [_login(opener, server, f"wrong-{i}", client="10.0.0.66")[0] for i in range(40)]
    answered = [s for s in statuses if s != 429]
    throttled = [s for s in statuses if s == 429]
    assert statuses[:5] == [302] * 5  # the first failures: the login page again
    assert len(answered) <= 8, statuses  # then (almost) all refused unchecked
    assert len(throttled) >= 32, statuses
    status, headers, body = _login(opener, server, "wrong", client="10.0.0.66")
    assert status == 429 and int(headers["Retry-After"]) >= 1, (status, body)
    # the right password is not even checked while the client is locked out...
    assert _login(opener, server, PASSWORD, client="10.0.0.66")[0] == 429
    # ...and another client is not affected
    status, headers, _ = _login(opener, server, PASSWORD, client="10.0.0.77")
    assert status == 302 and "error" not in headers["Location"]


def test_login_cookies_are_samesite_and_secure_over_tls(server):
    status, headers, _ = _login(_opener(), server, PASSWORD, client="10.0.0.2")
    assert status == 302
    cookies = headers.get_all("Set-Cookie")
    user = [c for c in cookies if c.startswith("user=")]
    assert user and all("SameSite=Lax" in c and "HttpOnly" in c for c in user), cookies
    assert all("SameSite=" in c for c in cookies), cookies
    assert not any("Secure" in c for c in cookies)  # plain HTTP
    # behind a TLS proxy (--use-xheaders and X-Forwarded-Proto: https)
    _, headers, _ = _login(_opener(), server, PASSWORD, client="10.0.0.3", proto="https")
    assert all("Secure" in c for c in headers.get_all("Set-Cookie"))


def test_secure_cookies_when_the_operator_says_https():
    """``$FMRI_EXPLORER_HTTPS=1``: Secure cookies even on a plain-HTTP request (a TLS
    proxy that does not forward the protocol). In a subprocess: the patch is global."""
    code = """
import unittest.mock as mock
import tornado.httputil, tornado.web
from dashboard import security
security.install(shutdown=False)
request = tornado.httputil.HTTPServerRequest(uri="/", connection=mock.Mock())
handler = tornado.web.RequestHandler(tornado.web.Application(), request)
handler.set_cookie("user", "x")
print(handler._new_cookie["user"].OutputString())
"""
    import os

    for env, secure in ((None, False), ("1", True)):
        environ = {k: v for k, v in os.environ.items() if k != "FMRI_EXPLORER_HTTPS"}
        if env:
            environ["FMRI_EXPLORER_HTTPS"] = env
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=environ, check=True).stdout
        assert "SameSite=Lax" in out
        assert ("Secure" in out) == secure, out


def test_throttle_rules():
    t = LoginThrottle(free=5, window=60, base=2, cap=900, max_clients=3)
    for i in range(4):
        assert t.failure("a", now=i) == 0  # free failures
    assert t.retry_after("a", now=4) == 0
    assert t.failure("a", now=4) == 2  # the 5th: locked out 2 s
    assert t.retry_after("a", now=5) == pytest.approx(1)
    assert t.failure("a", now=6) == 4  # then 4, 8, ... s
    assert t.failure("a", now=10) == 8
    locks = [t.failure("a", now=20 + i) for i in range(20)]
    assert max(locks) == 900  # capped
    t.success("a")
    assert t.retry_after("a", now=50) == 0
    # forgotten a window after the last lock-out (or failure) ends
    t.failure("b", now=0)
    assert len(t) == 1 and t.retry_after("b", now=61) == 0 and len(t) == 0
    # bounded: the least recently failed go first
    for key in "cdefg":
        t.failure(key, now=100)
    assert len(t) == 3
