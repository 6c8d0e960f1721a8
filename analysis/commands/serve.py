"""``fmri-explorer serve [--port N] [--show] [--data DIR]``: the dashboard via ``panel serve``.

``--data DIR`` (or ``$FMRI_EXPLORER_NILEARN_DATA``) names a nilearn data folder: each
tab offers the real dataset found there (``fmri-explorer fetch ... --data-dir DIR``)
beside the synthetic one and the visitor's uploads, and starts on it; the command
says at start which datasets it found (:mod:`analysis.datasets.found`).

The server runs as a child process in its own process group: a stop signal to
this command (SIGTERM, SIGINT, SIGHUP) goes on to the whole group, so that the
processes ``--num-procs`` forks stop too, and anything left after
:data:`STOP_GRACE` seconds is killed; the command exits when they have. The
server processes stop themselves if this command dies (Linux). What each server
process installs (headers, login throttle, cookies, bounded exit) is in
``dashboard/security.py``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import (NILEARN_DATA_ENV, SIZE_ENV, SIZES, default_size, max_upload_bytes,
                      nilearn_data_dir)
from ..datasets import MODULES, ensure_synthetic
from ..progress import console_progress

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
#: BLAS thread variables set to 1 for the server unless already set: on a few shared
#: cores, BLAS threads of concurrent sessions (and the browser) contend and a 0.5 s
#: decomposition takes 10 s; use --num-procs for more cores instead.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: glibc malloc settings for the server unless already set. By default every thread that
#: allocates gets an arena of its own (up to 8 per core) and arrays up to 32 MB come from
#: the arenas once a large one was freed (the mmap threshold rises); freed, that memory
#: stays with the process (benchmarks/bench_thread_memory.py: 12 threads computing at once
#: keep +390 MB, with these settings +54 MB). Two arenas and a fixed 8 MB threshold (arrays
#: above it go back to the system when freed); a 1 MB threshold made the alpha path 2-4x
#: slower (page faults of fresh maps), 8 MB costs nothing measurable. In the hostile-load
#: run it did not bring the server's memory back near its start (issue 13: the rest is
#: heap fragmentation, see the README).
MALLOC_VARS = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(8 * 2**20)}
#: signals that stop the server: each is passed on as SIGTERM to the server's process group
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP")
                     if hasattr(signal, name))
#: seconds the server's processes get to stop after a stop signal before they are killed
STOP_GRACE = 4.0
#: room in a websocket message for the JSON around an upload's base64 text
MESSAGE_MARGIN = 2**20


def port_number(text: str) -> int:
    """``--port``: an integer 0..65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def process_count(text: str) -> int:
    """``--num-procs``: an integer >= 0 (0: one process per CPU, as panel serve)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of processes: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: must be 1 or more (0: one per CPU)")
    return n


def data_folder(text: str) -> Path:
    """``--data``: an existing folder (a nilearn data_dir)."""
    path = Path(text).expanduser()
    if not path.is_dir():
        what = "not a folder" if path.exists() else "no such folder"
        raise argparse.ArgumentTypeError(f"{what}: {text[:200]}")
    return path.resolve()


def websocket_message_limit(upload_bytes: int) -> int:
    """Bytes a websocket message needs to carry a file of ``upload_bytes``.

    The browser sends an upload as base64 text (4 characters per 3 bytes) in one
    JSON message: a file under the limit must not close the connection (1009),
    so that the app can answer with its own size message.
    """
    return -(-int(upload_bytes) // 3) * 4 + MESSAGE_MARGIN


def app_path(name: str = "app") -> Path:
    """The dashboard's ``<name>.py`` (the source tree's, or the installed package's)."""
    path = APP.with_name(f"{name}.py")
    if path.exists():
        return path
    import importlib.util

    spec = importlib.util.find_spec(f"dashboard.{name}")
    return Path(spec.origin)


def add_parser(sub):
    p = sub.add_parser("serve", help="serve the dashboard (panel serve)",
                       description="Generate the synthetic datasets if missing (once), then "
                                   "serve the app with panel serve. Extra options after "
                                   "'--' go to panel serve. SIGTERM, SIGINT (Ctrl-C) or "
                                   "SIGHUP stops every server process within 5 s. "
                                   "--data DIR serves the real datasets of a nilearn data "
                                   "folder too. "
                                   "Behind a TLS proxy, set FMRI_EXPLORER_HTTPS=1 (Secure "
                                   "cookies) and give --use-xheaders after '--' (failed "
                                   "logins are counted per client address).")
    p.add_argument("--port", type=port_number, default=5006, help="port (0 to 65535)")
    p.add_argument("--address", default=None, help="address to listen on")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.add_argument("--size", choices=SIZES, default=None,
                   help=f"synthetic dataset size (default: ${SIZE_ENV} or full)")
    p.add_argument("--num-procs", type=process_count, default=None,
                   help="server processes (0: one per CPU)")
    p.add_argument("--data", type=data_folder, default=None, metavar="DIR",
                   help="nilearn data folder (as 'fmri-explorer fetch all --data-dir DIR' "
                        "writes): each tab offers the real dataset found there and starts "
                        f"on it (default: ${NILEARN_DATA_ENV})")
    p.add_argument("panel_args", nargs="*", help="extra arguments for panel serve (after --)")
    return p


def panel_command(args, size: str) -> tuple[list, dict]:
    """The ``panel serve`` command line and environment that :func:`run` starts."""
    cmd = [sys.executable, "-m", "panel", "serve", str(app_path()), "--port", str(args.port)]
    if args.address:
        cmd += ["--address", args.address]
    if args.show:
        cmd.append("--show")
    if args.num_procs is not None:
        # 0: one per CPU, counted here (panel runs --setup before forking for 0, after for N > 1)
        cmd += ["--num-procs", str(args.num_procs or os.cpu_count() or 1)]
    extra = list(args.panel_args)
    if not any(a.startswith("--setup") for a in extra):
        # each server process warms its caches in a background thread as it starts
        extra += ["--setup", str(app_path("warmup"))]
    if not any(a.startswith("--websocket-max-message-size") for a in extra):
        # uploads travel over the websocket as base64: let a file at the upload limit through
        extra += ["--websocket-max-message-size",
                  str(websocket_message_limit(max_upload_bytes()))]
    cmd += extra
    env = {**{var: "1" for var in BLAS_THREAD_VARS}, **MALLOC_VARS, **os.environ, SIZE_ENV: size}
    folder = getattr(args, "data", None) or nilearn_data_dir()
    if folder is not None:   # the flag wins over the environment's; absolute for the child
        env[NILEARN_DATA_ENV] = str(Path(folder).resolve())
    return cmd, env


def data_message(args) -> str | None:
    """The start's line on the nilearn data folder (``--data`` or the environment's):
    which real datasets the tabs offer; None when none is given."""
    from ..datasets.found import describe_found

    if getattr(args, "data", None) is not None:
        return describe_found(args.data)
    if not os.environ.get(NILEARN_DATA_ENV, "").strip():
        return None
    folder = nilearn_data_dir()
    if folder is None:
        return (f"fmri-explorer: ${NILEARN_DATA_ENV} is not a folder: "
                "synthetic data only")
    return describe_found(folder)


def _child_setup():
    """What the server's process does before it runs panel serve (made in the wrapper:
    nothing is imported between fork and exec)."""
    prctl = None
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            prctl = ctypes.CDLL(None).prctl
        except (OSError, AttributeError):
            prctl = None

    def setup():
        os.setsid()  # its own process group: the wrapper signals it and its forks at once
        if prctl is not None:  # and it stops if the wrapper dies (even by SIGKILL)
            prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG

    return setup


def _become_subreaper() -> None:
    """Orphans of the server (the processes --num-procs forks, once their parent is gone)
    become this process's children, so that it sees them end (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def _reap(pgid: int) -> None:
    """Collect the exit status of the group's processes that have ended (no zombies)."""
    try:
        while os.waitpid(-pgid, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group; False if no process of it is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def run_server(cmd: list, env: dict, grace: float = STOP_GRACE) -> int:
    """Run the ``panel serve`` command line until it exits or a stop signal arrives.

    The server runs in its own process group (with ``--num-procs N``, its forked
    processes too). SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop it: SIGTERM goes to
    the whole group, and whatever is left after ``grace`` seconds is killed.
    """
    if os.name != "posix":  # no process groups: the child gets the console's Ctrl-C itself
        try:
            return subprocess.call(cmd, env=env)
        except KeyboardInterrupt:
            return 0
    _become_subreaper()
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_child_setup())
    stop = {"at": None}

    def forward(signum, frame):
        if stop["at"] is None:
            stop["at"] = time.monotonic()
        _signal_group(proc.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        while True:
            try:
                code = proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if stop["at"] is not None and time.monotonic() - stop["at"] > grace:
                    _signal_group(proc.pid, signal.SIGKILL)
        # the main process has exited: its forks (--num-procs) go with it
        deadline = (stop["at"] or time.monotonic()) + grace
        if _signal_group(proc.pid, signal.SIGTERM):
            killed = False
            while True:
                _reap(proc.pid)
                if not _signal_group(proc.pid, 0):
                    break
                if time.monotonic() > deadline:
                    if killed:
                        break
                    _signal_group(proc.pid, signal.SIGKILL)
                    killed, deadline = True, time.monotonic() + 1.0  # time to reap them
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stop["at"] is not None else code


def run(args) -> int:
    size = args.size or default_size()
    for kind in MODULES:
        ensure_synthetic(kind, size=size, progress=console_progress(f"{kind} dataset ({size})"))
    cmd, env = panel_command(args, size)
    message = data_message(args)
    if message:
        print(message, flush=True)
    host = args.address or "localhost"
    if args.port:
        print(f"fmri-explorer: serving at http://{host}:{args.port}/app", flush=True)
    else:
        print("fmri-explorer: serving on a free port (panel serve prints it)", flush=True)
    return run_server(cmd, env)
