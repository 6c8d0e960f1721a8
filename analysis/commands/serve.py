"""``fmri-explorer serve [--port N] [--show]``: the dashboard via ``panel serve``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..config import SIZE_ENV, SIZES, default_size, max_upload_bytes
from ..datasets import MODULES, ensure_synthetic
from ..progress import console_progress

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
#: BLAS thread variables set to 1 for the server unless already set: on a few shared
#: cores, BLAS threads of concurrent sessions (and the browser) contend and a 0.5 s
#: decomposition takes 10 s; use --num-procs for more cores instead.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
                                   "'--' go to panel serve.")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default=None, help="address to listen on")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.add_argument("--size", choices=SIZES, default=None,
                   help=f"synthetic dataset size (default: ${SIZE_ENV} or full)")
    p.add_argument("--num-procs", type=int, default=None, help="worker processes")
    p.add_argument("panel_args", nargs="*", help="extra arguments for panel serve (after --)")
    return p


def panel_command(args, size: str) -> tuple[list, dict]:
    """The ``panel serve`` command line and environment that :func:`run` starts."""
    cmd = [sys.executable, "-m", "panel", "serve", str(app_path()), "--port", str(args.port)]
    if args.address:
        cmd += ["--address", args.address]
    if args.show:
        cmd.append("--show")
    if args.num_procs:
        cmd += ["--num-procs", str(args.num_procs)]
    extra = list(args.panel_args)
    if not any(a.startswith("--setup") for a in extra):
        # each server process warms its caches in a background thread as it starts
        extra += ["--setup", str(app_path("warmup"))]
    if not any(a.startswith("--websocket-max-message-size") for a in extra):
        # uploads travel over the websocket: let a file at the upload limit through
        extra += ["--websocket-max-message-size", str(max_upload_bytes() + 2**20)]
    cmd += extra
    env = {**{var: "1" for var in BLAS_THREAD_VARS}, **os.environ, SIZE_ENV: size}
    return cmd, env


def run(args) -> int:
    size = args.size or default_size()
    for kind in MODULES:
        ensure_synthetic(kind, size=size, progress=console_progress(f"{kind} dataset ({size})"))
    cmd, env = panel_command(args, size)
    host = args.address or "localhost"
    print(f"fmri-explorer: serving at http://{host}:{args.port}/app", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
