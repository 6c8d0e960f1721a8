"""The one job API (analysis/jobs.py): the CLI's foreground jobs and the app's
registry are the same Job, progress, cancel, result and error."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analysis import jobs

ROOT = Path(__file__).resolve().parents[1]


def test_run_returns_the_result_and_forwards_progress():
    seen = []

    def work(job):
        for i in range(4):
            job.progress((i + 1) / 4, f"step {i + 1}")
        return "done"

    assert jobs.run(work, name="steps", progress=lambda f, m="": seen.append((f, m))) == "done"
    assert seen == [(0.25, "step 1"), (0.5, "step 2"), (0.75, "step 3"), (1.0, "step 4")]


def test_run_raises_the_works_error_unchanged():
    class Boom(ValueError):
        pass

    def work(job):
        raise Boom("bad input")

    with pytest.raises(Boom, match="bad input"):
        jobs.run(work, name="failing")


def test_a_cancelled_job_stops_at_its_next_progress_report():
    registry = jobs.JobRegistry(max_jobs=1)
    reports, started = [], threading.Event()

    def work(job):
        started.set()
        while True:
            job.progress(0.5, "working")
            reports.append(1)
            time.sleep(0.01)

    outcome = []
    job = registry.submit(work, name="endless", on_cancelled=lambda: outcome.append("cancelled"),
                          on_done=lambda r: outcome.append("done"))
    assert started.wait(10)
    job.cancel()
    assert job.wait(jobs.STOP_WITHIN) and job.state == "cancelled"
    n = len(reports)
    time.sleep(0.1)
    assert len(reports) == n and outcome == ["cancelled"]


def test_the_app_registry_is_the_same_api():
    from dashboard import jobs as app_jobs

    assert issubclass(app_jobs.JobRegistry, jobs.JobRegistry)
    assert app_jobs.Job is jobs.Job and app_jobs.Cancelled is jobs.Cancelled
    done = []
    job = app_jobs.JobRegistry(max_jobs=1).submit(lambda job: 42, name="headless",
                                                  on_done=done.append)
    assert job.wait(10) and done == [42] and job.owner is None   # no session: not owned


def test_interrupt_cancels_a_foreground_job():
    """Ctrl-C during a CLI job (:func:`analysis.jobs.run`): the job is cancelled and
    stops, and KeyboardInterrupt reaches the CLI (which exits 130)."""
    code = (
        "import signal, threading, os, time\n"
        "from analysis import jobs\n"
        "stopped = []\n"
        "def work(job):\n"
        "    try:\n"
        "        while True:\n"
        "            job.progress(0.5); time.sleep(0.01)\n"
        "    finally:\n"
        "        stopped.append(1)\n"
        "threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "try:\n"
        "    jobs.run(work, name='endless')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', stopped)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "interrupted [1]", out.stderr
