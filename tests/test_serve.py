"""`fmri-explorer serve` starts `panel serve` on the app and answers HTTP."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

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


def _panel_command(argv, monkeypatch, upload_mb=None):
    from analysis.cli import build_parser
    from analysis.commands.serve import panel_command

    if upload_mb is not None:
        monkeypatch.setenv("FMRI_EXPLORER_MAX_UPLOAD_MB", str(upload_mb))
    args = build_parser().parse_args(["serve", *argv])
    return panel_command(args, "small")[0]


def test_websocket_messages_carry_a_file_at_the_upload_limit_as_base64(monkeypatch):
    """The browser sends an upload base64-encoded (4/3 larger) in one websocket message:
    a file just under the limit must not close the connection (1009)."""
    import base64
    import json

    cmd = _panel_command([], monkeypatch, upload_mb=5)
    limit = int(cmd[cmd.index("--websocket-max-message-size") + 1])
    for size in (int(4.79 * 2**20), 5 * 2**20):  # the file; a file at the limit
        content = base64.b64encode(b"\0" * size).decode()
        message = json.dumps({"events": [{"kind": "ModelChanged", "attr": "value",
                                          "new": content, "filename": "x" * 255}]})
        assert len(message) < limit, (size, len(message), limit)
    assert limit < 2 * 5 * 2**20  # still a limit
    # an operator's own value is kept
    cmd = _panel_command(["--", "--websocket-max-message-size", "123"], monkeypatch)
    assert cmd[cmd.index("--websocket-max-message-size") + 1] == "123"


@pytest.mark.parametrize("argv, message", [
    (["--port", "-1"], "--port: -1 is not a port number (0 to 65535)"),
    (["--port", "65536"], "--port: 65536 is not a port number"),
    (["--port", "http"], "--port: not a port number: 'http'"),
    (["--num-procs", "-2"], "--num-procs: -2: must be 1 or more (0: one per CPU)"),
    (["--num-procs", "two"], "--num-procs: not a number of processes: 'two'"),
])
def test_bad_port_or_process_count_is_one_line_exit_2(argv, message):
    out = subprocess.run([sys.executable, "-m", "analysis.cli", "serve", *argv],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr and "ERROR: ERROR" not in out.stderr


def test_num_procs_zero_is_one_per_cpu(monkeypatch):
    cmd = _panel_command(["--num-procs", "0"], monkeypatch)
    assert cmd[cmd.index("--num-procs") + 1] == str(os.cpu_count() or 1)
    assert "--num-procs" not in _panel_command([], monkeypatch)
    cmd = _panel_command(["--port", "0"], monkeypatch)  # any free port, as panel serve
    assert cmd[cmd.index("--port") + 1] == "0"


def test_the_server_runs_with_few_malloc_arenas_and_a_fixed_mmap_threshold(monkeypatch):
    """Issue 13 (memory back within 15% after the sessions): with glibc's defaults each
    thread that computed kept its arena's arrays (benchmarks/bench_thread_memory.py: +30
    MB per thread at once). The server gets two arenas and a fixed 8 MB threshold; an
    operator's own settings win."""
    from analysis.cli import build_parser
    from analysis.commands.serve import panel_command

    for var in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(var, raising=False)
    args = build_parser().parse_args(["serve"])
    env = panel_command(args, "small")[1]
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(8 * 2**20)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert panel_command(args, "small")[1]["MALLOC_ARENA_MAX"] == "4"
