"""Stopping the server: every process ends within 5 s, background work cancelled.

`fmri-explorer serve` runs `panel serve` in its own process group and passes a
stop signal on to the group (analysis/commands/serve.py); each server process
cancels its jobs and exits within a bound when it stops (dashboard/security.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.browser.conftest import free_port
from tests.test_security_headers import serve_process

STOP_WITHIN = 5.0
ROOT = Path(__file__).resolve().parents[1]


def _answers(url) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            r.read()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _live(procs):
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _stops_within(procs, url, seconds=STOP_WITHIN):
    """Seconds until ``url`` stops answering and every process of ``procs`` is gone."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if not _live(procs) and not _answers(url):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def _server_processes(proc, n):
    """The wrapper and its ``n`` server processes, once they are all there."""
    deadline = time.monotonic() + 30
    while True:
        wrapper = psutil.Process(proc.pid)
        children = [c for c in wrapper.children(recursive=True)
                    if "panel" in " ".join(c.cmdline())]
        if len(children) >= n or time.monotonic() > deadline:
            return [wrapper, *children]
        time.sleep(0.2)


@pytest.mark.parametrize("num_procs", [1, 2])
def test_sigterm_to_serve_stops_every_server_process(num_procs, encoding_dir, decoding_dir,
                                                     connectivity_dir):
    args = ["--num-procs", str(num_procs)] if num_procs > 1 else []
    with serve_process(*args) as (proc, base):
        with urllib.request.urlopen(base + "/app", timeout=60) as r:  # a session: warm-up runs
            assert r.status == 200
        # the main server process and, with --num-procs 2, the two it forks
        procs = _server_processes(proc, 1 if num_procs == 1 else 3)
        assert len(procs) == (2 if num_procs == 1 else 4), [p.cmdline() for p in procs]
        proc.send_signal(signal.SIGTERM)  # `kill <pid>` of `fmri-explorer serve`
        took = _stops_within(procs, base + "/liveness")
        assert took is not None, f"still running after {STOP_WITHIN} s: " \
            f"{[p.cmdline() for p in _live(procs)]}; answering: {_answers(base + '/liveness')}"
        assert proc.wait(1) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_or_hangup_stops_the_server_too(sig, encoding_dir, decoding_dir,
                                               connectivity_dir):
    with serve_process() as (proc, base):
        procs = _server_processes(proc, 1)
        proc.send_signal(sig)
        assert _stops_within(procs, base + "/liveness") is not None, sig
        assert proc.wait(1) == 0


def test_serve_exits_when_its_server_stops(encoding_dir, decoding_dir, connectivity_dir):
    with serve_process() as (proc, base):
        procs = _server_processes(proc, 1)
        procs[1].send_signal(signal.SIGTERM)  # the server itself, not the wrapper
        assert _stops_within(procs, base + "/liveness") is not None
        assert proc.wait(1) == 0


def test_the_server_stops_when_serve_is_killed(encoding_dir, decoding_dir, connectivity_dir):
    with serve_process("--num-procs", "2") as (proc, base):
        procs = _server_processes(proc, 3)
        proc.send_signal(signal.SIGKILL)  # no chance to pass a signal on
        assert _stops_within(procs[1:], base + "/liveness") is not None, \
            [p.cmdline() for p in _live(procs)]


APP = """
import panel as pn
pn.pane.Markdown("tiny app").servable()
"""

SETUP = """
import sys, threading, time
sys.path.insert(0, {root!r})
from dashboard import jobs, security

security.install()

def work(job):  # a long computation that checks for cancellation, as the app's do
    while not job.cancelled:
        time.sleep(0.05)
    with open({mark!r}, "w") as f:
        f.write("cancelled")

jobs.submit(work, name="long")
# a non-daemon thread that would keep the interpreter waiting for a minute at exit
threading.Thread(target=time.sleep, args=(60,), name="stuck", daemon=False).start()
"""


def test_a_stopping_server_cancels_its_jobs_and_does_not_wait_for_threads(tmp_path):
    pytest.importorskip("dashboard.jobs")
    mark = tmp_path / "cancelled.txt"
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "setup.py").write_text(textwrap.dedent(SETUP).format(root=str(ROOT),
                                                                     mark=str(mark)))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", str(tmp_path / "app.py"), "--port", str(port),
         "--address", "127.0.0.1", "--liveness", "--setup", str(tmp_path / "setup.py")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}/liveness"
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_WITHIN + 5)
        took = time.monotonic() - t0
        assert took < STOP_WITHIN, took
        assert mark.read_text() == "cancelled"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
