"""`fmri-explorer serve` starts `panel serve` on the app and answers HTTP."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.browser.conftest import free_port


def test_serve_command_serves_the_app(encoding_dir, decoding_dir, connectivity_dir):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "analysis.cli", "serve", "--port", str(port), "--address",
         "127.0.0.1", "--size", "small", "--", f"--allow-websocket-origin=127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=30) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "server did not answer"
        assert "fmri-explorer" in body
        # everything the page loads comes from this server: no CDN
        assert "cdn.bokeh.org" not in body and "cdn.jsdelivr.net" not in body
        assert "fonts.googleapis.com" not in body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert f"serving at http://127.0.0.1:{port}/app" in out
