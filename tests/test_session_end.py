"""A session of the served app (``panel serve`` runs dashboard/app.py as a script) ends
cleanly: its on-destroyed hooks run without error once the session is discarded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from analysis.commands.serve import app_path
from tests.browser.conftest import free_port


def test_a_discarded_sessions_hooks_run_without_error(encoding_dir, decoding_dir,
                                                      connectivity_dir):
    port = free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(app_path()), "--port", str(port),
           "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}",
           "--unused-session-lifetime", "500", "--check-unused-sessions", "500"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ.copy(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:   # the page: the server makes the session, no browser ever connects
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=60).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.5)
        time.sleep(4)          # unused for 0.5 s, checked every 0.5 s: discarded by now
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out = proc.communicate()[0]
    assert "failed with following error" not in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
