"""The served app works under its Content-Security-Policy (dashboard/security.py).

Served as users serve it (`fmri-explorer serve`), in Chromium: every tab renders,
the alpha slider answers, and the browser reports no CSP violation; markup
injected into the page with an inline event handler does not run it.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import open_page
from tests.browser.helpers import open_tab, text_of, wait_text, wait_text_change
from tests.test_security_headers import serve_process

VIOLATIONS = """() => { window.__csp = [];
  document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI), true); }"""


@pytest.fixture(scope="module")
def served_app(encoding_dir, decoding_dir, connectivity_dir):
    with serve_process() as (proc, base):
        yield base + "/app"


def _csp_messages(messages):
    return [m for m in messages if "Content Security Policy" in m or "Refused to" in m]


def test_the_app_works_under_its_policy(served_app, page):
    console = []
    page.on("console", lambda msg: console.append(msg.text))
    page.add_init_script(VIOLATIONS.join(["(", ")()"]))
    # the header by a request of its own: a first page left mid-render by a second
    # navigation logged "Error rendering Bokeh items" (the abandoned page's, not the app's)
    response = page.request.get(served_app)
    assert "script-src-attr 'none'" in response.headers["content-security-policy"]
    open_page(page, served_app)
    before = wait_text(page, ".summary", lambda t: "alpha=" in t)
    # a user's move: the slider's handle, by keyboard
    page.locator(".alpha-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    after = wait_text_change(page, ".summary", before)
    assert "alpha=" in after
    # the other tabs render too (their first views and summaries)
    open_tab(page, "Decoding")
    page.locator(".fold-bars canvas").first.wait_for(state="visible", timeout=90_000)
    wait_text(page, ".summary", lambda t: "vs" in t, timeout=90)
    open_tab(page, "Connectivity")
    wait_text(page, ".connectivity-summary", lambda t: bool(t.strip()), timeout=90)
    assert page.evaluate("window.__csp") == [], page.evaluate("window.__csp")
    assert _csp_messages(console) == []
    assert page.js_errors == [], page.js_errors


def test_an_injected_event_handler_does_not_run(served_app, page):
    page.add_init_script(VIOLATIONS.join(["(", ")()"]))
    open_page(page, served_app)
    page.evaluate("""() => { const div = document.createElement('div');
        div.innerHTML = '<img src="x-missing.png" onerror="window.__pwned = 1">';
        document.body.appendChild(div); }""")
    page.wait_for_function("window.__csp.some(v => v.startsWith('script-src-attr'))",
                           timeout=10_000)
    assert page.evaluate("window.__pwned") is None
    assert text_of(page, ".summary")  # the app is still there


def test_the_login_page_and_the_app_behind_it_under_the_policy(tmp_path, page, encoding_dir,
                                                                decoding_dir, connectivity_dir):
    """The README's hosted demo (--basic-auth): from /app/ to the login page (its logo
    from this server), then the app, with no CSP violation."""
    import json

    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"demo": "s3cret-pass"}))
    console = []
    page.on("console", lambda msg: console.append(msg.text))
    page.add_init_script(VIOLATIONS.join(["(", ")()"]))
    with serve_process(panel_args=["--basic-auth", str(credentials), "--cookie-secret",
                                   "a-long-random-secret"], path="/login") as (proc, base):
        page.goto(base + "/app/")
        page.fill("input[name=username]", "demo")
        page.fill("input[name=password]", "s3cret-pass")
        assert page.evaluate("window.__csp") == [], page.evaluate("window.__csp")
        page.locator("form.login-form [type=submit], form.login-form button").first.click()
        page.wait_for_url(base + "/app", timeout=60_000)
        open_page(page, base + "/app")
        wait_text(page, ".summary", lambda t: "alpha=" in t)
        assert page.evaluate("window.__csp") == [], page.evaluate("window.__csp")
    assert _csp_messages(console) == []
