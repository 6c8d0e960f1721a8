"""`fmri-explorer serve --num-procs 2`: several server processes serve the app.

Each process has its own caches (and its own warm-up); the pages are served
and render, with no console error, whichever process the browser lands on.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.browser.conftest import free_port, open_page
from tests.browser.helpers import wait_text


@pytest.fixture
def two_process_server(encoding_dir, decoding_dir, connectivity_dir, tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "analysis.cli", "serve", "--address", "127.0.0.1", "--port",
           str(port), "--size", "small", "--num-procs", "2", "--",
           f"--allow-websocket-origin=127.0.0.1:{port}"]
    # the server's output goes to a file: a pipe nobody reads fills up (64 KiB of log lines)
    # and blocks the server's next write, so that it stops answering
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env=os.environ.copy(), start_new_session=True)
    proc.log_path = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}/app"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                assert r.status == 200
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.log_path.read_text())
            if time.monotonic() > deadline:
                pytest.fail("the server did not answer in 120 s")
            time.sleep(0.5)
    yield proc, url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    try:  # a server process that outlived the command (SIGTERM not acted on) goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    log.close()


def test_two_server_processes_serve_the_app(two_process_server, browser):
    proc, url = two_process_server
    # both processes are up (panel serve forks after binding the port)
    import psutil

    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
               if "panel" in " ".join(c.cmdline())]
    assert len(workers) >= 3, [c.cmdline() for c in workers]  # the parent and two workers
    # each process warms its caches once (the log says "caches warm"); on the CI's 2 cores,
    # after the other browser tests, that can take minutes: wait for both, then ask for pages
    deadline = time.monotonic() + 420
    while proc.log_path.read_text().count("caches warm") < 2:
        if time.monotonic() > deadline:
            pytest.fail("the two server processes did not warm up in 420 s; their log:\n"
                        + proc.log_path.read_text()[-4000:])
        time.sleep(1)
    summaries = []
    for _ in range(4):  # the kernel spreads the connections over the processes
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        # two processes warming their caches on the CI's 2 cores (after the other browser
        # tests' servers) can take longer than one page's usual 90 s: this checks that
        # both serve the app, not how fast
        try:
            page = open_page(context.new_page(), url, timeout=240_000)
        except Exception as exc:  # what the server said, to tell a slow server from a stuck one
            log_tail = proc.log_path.read_text()[-4000:]
            raise AssertionError(f"{exc}\n--- server log ---\n{log_tail}") from exc
        summaries.append(wait_text(page, ".summary", lambda t: "alpha=" in t))
        page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
        assert page.blocked_requests == [], page.blocked_requests
        assert page.js_errors == [], page.js_errors
        context.close()
    # the same default view in every process
    assert len(set(summaries)) == 1, summaries
