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


def app_path() -> Path:
    """The dashboard's ``app.py`` (the source tree's, or the installed package's)."""
    if APP.exists():
        return APP
    import importlib.util

    spec = importlib.util.find_spec("dashboard.app")
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


def run(args) -> int:
    size = args.size or default_size()
    for kind in MODULES:
        ensure_synthetic(kind, size=size, progress=console_progress(f"{kind} dataset ({size})"))
    cmd = [sys.executable, "-m", "panel", "serve", str(app_path()), "--port", str(args.port)]
    if args.address:
        cmd += ["--address", args.address]
    if args.show:
        cmd.append("--show")
    if args.num_procs:
        cmd += ["--num-procs", str(args.num_procs)]
    extra = list(args.panel_args)
    if not any(a.startswith("--websocket-max-message-size") for a in extra):
        # uploads travel over the websocket: let a file at the upload limit through
        extra += ["--websocket-max-message-size", str(max_upload_bytes() + 2**20)]
    cmd += extra
    env = {**os.environ, SIZE_ENV: size}
    host = args.address or "localhost"
    print(f"fmri-explorer: serving at http://{host}:{args.port}/app", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
