"""The screenshot matrix of the served app (issue 15): every tab at 1600x1000,
1920x1080 presenting and 1366x768, dark and light, into ``screenshots/``.

Serves the app as ``fmri-explorer serve`` does (a ``panel serve`` subprocess on the
synthetic data), opens each combination in headless Chromium through the page's own
link keys (``?tab=...&theme=...&present=...``), waits for Bokeh to be idle and every
view drawn, and writes ``screenshots/<tab>-<width>x<height>[-present]-<theme>.png``.
Look at them before calling a view change done; the README's table shows them.

    python benchmarks/screenshots.py [--size small|full] [--tabs encoding decoding ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_serve import ARGS, EXTERNAL, READY  # noqa: E402

TABS = ("encoding", "decoding", "connectivity")
#: (width, height, presenting)
SIZES = ((1600, 1000, False), (1920, 1080, True), (1366, 768, False))
#: (file name word, the link's ``theme`` value)
THEMES = (("light", "default"), ("dark", "dark"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, size: str) -> subprocess.Popen:
    env = dict(os.environ, FMRI_EXPLORER_SIZE=size)
    cmd = [sys.executable, "-m", "analysis.cli", "serve", "--port", str(port),
           "--address", "127.0.0.1", "--size", size, "--", "--liveness",
           f"--allow-websocket-origin=127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server exited before answering")
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not answer within 180 s")


def shoot(browser, url: str, path: Path, width: int, height: int) -> None:
    ctx = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = ctx.new_page()
        page.route(EXTERNAL, lambda r: r.abort())
        page.goto(url)
        page.wait_for_function(READY, timeout=120_000)
        page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=120_000)
        # let the later views (the voxel's, the stimulus browser) and any job finish
        for _ in range(60):
            page.wait_for_timeout(500)
            if page.evaluate(READY) and not page.locator(".pn-loading").count():
                break
        page.wait_for_timeout(1500)
        page.screenshot(path=str(path))
    finally:
        ctx.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("small", "full"), default="full")
    ap.add_argument("--tabs", nargs="+", choices=TABS, default=list(TABS))
    ap.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(exist_ok=True)
    port = free_port()
    server = serve(port, args.size)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for tab in args.tabs:
                for width, height, present in SIZES:
                    for theme, value in THEMES:
                        query = f"tab={tab}&theme={value}" + ("&present=true" if present else "")
                        name = (f"{tab}-{width}x{height}" + ("-present" if present else "")
                                + f"-{theme}.png")
                        t0 = time.perf_counter()
                        shoot(browser, f"http://127.0.0.1:{port}/app?{query}",
                              args.out / name, width, height)
                        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
