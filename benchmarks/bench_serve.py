"""The served app under load (issue 6).

* Cold start (three times, medians printed): the ``panel serve`` command that
  ``fmri-explorer serve`` runs (its ``--setup`` warm-up, one BLAS thread),
  launched with the dataset cache warm (the cleaned data and the default
  decomposition a first start saves there), to the first interactive page in a
  new context of a Chromium that is already open: the Encoding tab built, its
  summary, map and histogram shown and Bokeh idle (target < 5 s). Also printed:
  launch to the page's frame drawn (the tab's loading spinner, while the server
  loads its data), launch to every view of the tab drawn (the voxel's views,
  the alpha path and the stimulus browser follow the first page), the server's
  CPU seconds up to the first interactive page (less sensitive to other load on
  the machine than the wall time), and the dataset check ``fmri-explorer
  serve`` makes before it launches ``panel serve``.
* Load: N concurrent browser sessions (default 10), each moving the Encoding
  tab's alpha slider once a second for 60 s (10 s at ``--size small``); the
  latency of each change is measured in the page, from the model change to the
  summary line's update. Each page starts its moves at its own moment in the
  second, as independent users would. Printed: errors (target 0), median and 95th percentile
  latency (target p95 < 1 s), a new session's page load on the warm server,
  server RSS at start and with N sessions (target < 50 MB more per session).
* Hostile load (``--hostile``, issue 13; in ``benchmarks/hostile.py``): 16 sessions for
  120 s moving widgets in all tabs, a permutation test, a group run, a quarter of the
  sessions closed abruptly; server errors, lost sessions, unanswered moves, latency, and the
  server's memory and CPU after the last session closed. Run it on its own:

      python benchmarks/bench_serve.py --hostile [--sessions 16] [--seconds 120] [--size full]
      python benchmarks/bench_serve.py --hostile --size small --sessions 4 --seconds 20  # smoke

  ``python benchmarks/bench_serve.py`` without ``--hostile`` runs the cold-start and load
  runs above (as ``benchmarks/run.py --only serve`` does).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
EXTERNAL = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)[:/]).*")
READY = "() => !!window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"

ARM = """
() => {
  const find = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains('summary')) return el;
      if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f; }
    }
    return null;
  };
  const el = find(document);           // found once: no polling of the page
  if (!el) return false;
  const root = el.shadowRoot || el;
  const text = () => [...root.children].filter(c => !['STYLE', 'LINK'].includes(c.tagName))
      .map(c => c.innerText).join(' ');
  window.__lat = []; window.__t0 = null; window.__before = text(); window.__moves = 0;
  new MutationObserver(() => {
    if (window.__t0 === null) return;
    const now = text();
    if (now !== window.__before) {
      window.__lat.push(performance.now() - window.__t0);
      window.__t0 = null; window.__before = now;
    }
  }).observe(root, {subtree: true, childList: true, characterData: true});
  return true;
}
"""

#: Each page moves its own slider once a second (the driver only starts them), so the
#: rate does not depend on how fast the benchmark can talk to ten pages. Each page starts
#: at its own moment in the second (``phase``, ms, drawn at random with a fixed seed), as
#: independent users would: ten pages started together would all move at the same instant.
DRIVE = """
([values, n, phase]) => {
  const roots = [...Bokeh.index.all_views ? Bokeh.index.all_views() : Object.values(Bokeh.index)];
  const seen = new Set(); const all = [];
  const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); all.push(v);
    for (const c of (v.child_views ? [...v.child_views] : [])) walk(c); };
  for (const v of roots) walk(v);
  const slider = all.find(v => (v.model.css_classes || []).includes('alpha-slider'));
  let i = 0;
  const move = () => {
    if (i >= n) { clearInterval(id); return; }
    window.__t0 = performance.now();   // a move still unanswered counts as missed
    slider.model.value = values[i % values.length];
    window.__moves += 1; i += 1;
  };
  let id = null;
  setTimeout(() => { move(); id = setInterval(move, 1000); }, phase || 0);
}
"""


def _rss(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _open(page, url: str) -> None:
    """Load the app; return when the active tab is built and Bokeh is idle."""
    page.route(EXTERNAL, lambda r: r.abort())
    page.goto(url)
    page.wait_for_function(READY, timeout=120_000)
    page.locator(".tab-loading").first.wait_for(state="detached", timeout=120_000)
    page.locator(".summary").first.wait_for(state="attached", timeout=120_000)
    page.wait_for_function(READY, timeout=120_000)


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _proc_cpu(proc) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except Exception:  # noqa: BLE001 - a renderer that has gone
        return 0.0


def _wait_idle(pid: int, timeout: float = 180.0) -> None:
    """Wait until the server uses under 5% of a core for 2 s (its warm-up is done)."""
    deadline = time.monotonic() + timeout
    last = _cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = _cpu(pid)
        if now - last < 0.1:
            return
        last = now


def _stop(server) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(15)


def _cold_start(browser, cmd, env, port, url, lines) -> tuple:
    """Launch the server, open the app in a new context of the (running) browser:
    ``(server, (page drawn, interactive, every view, server CPU), page)``."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.route(EXTERNAL, lambda r: r.abort())
    errors = []   # the page's errors, printed if it never becomes interactive
    page.on("pageerror", lambda exc: errors.append(f"{exc}\n{getattr(exc, 'stack', '')}"))
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.goto("about:blank")
    start = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env, start_new_session=True)
    threading.Thread(target=lambda: lines.extend(iter(server.stdout.readline, "")),
                     daemon=True).start()
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("the server exited:\n" + "".join(lines)[-2000:])
                time.sleep(0.05)
        page.goto(url)
        page.wait_for_function(READY, timeout=120_000)
        shown = time.perf_counter() - start
        page.locator(".tab-loading").first.wait_for(state="detached", timeout=120_000)
        page.locator(".summary").first.wait_for(state="attached", timeout=120_000)
        page.wait_for_function(READY, timeout=120_000)
        cold = time.perf_counter() - start
        cpu = _cpu(server.pid)
        # the voxel's views, the alpha path and the stimulus browser follow the page
        for css in (".time-course canvas", ".rf-lasso canvas", ".alpha-path canvas"):
            page.locator(css).first.wait_for(state="visible", timeout=120_000)
        page.wait_for_function(READY, timeout=120_000)
        complete = time.perf_counter() - start
    except BaseException:
        print("the first page's errors and warnings:\n" + "\n".join(errors)[-4000:],
              file=sys.stderr)
        _stop(server)
        raise
    return server, (shown, cold, complete, cpu), page


def prepare(bench) -> None:
    """Datasets generated and the Encoding tab's default decomposition cached (what a
    first server start saves), before any clock starts."""
    for kind in ("encoding", "decoding", "connectivity"):
        bench.data_dir(kind)  # warm cache: generated before the clock starts
    # ... with the Encoding tab's default decomposition, which a first server start saves
    subprocess.run([sys.executable, "-c", "from analysis.encoding import EncodingAnalysis\n"
                    f"EncodingAnalysis(size={bench.size!r}).engine()"],
                   check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def server_command(bench, port: int) -> tuple:
    """The ``panel serve`` command line and environment ``fmri-explorer serve`` runs."""
    import argparse

    from analysis.commands.serve import panel_command

    args = argparse.Namespace(port=port, address="127.0.0.1", show=False, num_procs=None,
                              panel_args=[f"--allow-websocket-origin=127.0.0.1:{port}",
                                          "--liveness"])
    return panel_command(args, bench.size)


def run(bench) -> None:
    from playwright.sync_api import sync_playwright

    prepare(bench)
    n_sessions = 10
    duration = 10.0 if bench.quick else 60.0
    port = _free_port()
    check = subprocess.run(
        [sys.executable, "-c", "import time; t = time.perf_counter()\n"
         "from analysis.datasets import MODULES, ensure_synthetic\n"
         f"for k in MODULES: ensure_synthetic(k, size={bench.size!r})\n"
         "print(time.perf_counter() - t)"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if check.returncode == 0:
        bench.row("fmri-explorer serve: dataset check before panel serve",
                  float(check.stdout.split()[-1]), "s", "in its own process, before the launch")
    cmd, env = server_command(bench, port)
    url = f"http://127.0.0.1:{port}/app"
    lines: list = []
    server = None
    runs = 1 if bench.quick else 3
    # the visitor's browser is open before the server starts (its own start-up, 1-2 s of
    # both cores here, is not the server's cold start); each run: a new server, a new
    # browser context (empty cache)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            results = []
            for i in range(runs):
                if server is not None:
                    _stop(server)
                lines = []
                server, result, page = _cold_start(browser, cmd, env, port, url, lines)
                results.append(result)
                if i < runs - 1:
                    page.context.close()
            shown, cold, complete, cpu = (float(np.median(col)) for col in zip(*results))
            each = ", ".join(f"{r[1]:.2f}" for r in results)
            bench.row("cold start: launch to the page's frame drawn", shown, "s",
                      f"median of {runs}; the tab's loading spinner")
            bench.row("cold start: launch to first interactive page", cold, "s",
                      f"median of {runs} ({each}); dataset cache warm; target < 5 s: "
                      f"{'met' if cold < 5 else 'NOT met'}")
            bench.row("cold start: launch to every view of the tab drawn", complete, "s",
                      "the voxel's views and the alpha path arrive after the first page")
            bench.row("cold start: server CPU time to first interactive page", cpu, "s",
                      "user + system, warm-up thread included")
            page.close()
            # the baseline once the warm-up of the other tabs is done and the server idle
            deadline = time.monotonic() + 180
            while not any("caches warm" in line for line in lines) and time.monotonic() < deadline:
                time.sleep(0.5)
            _wait_idle(server.pid)
            rss_start = _rss(server.pid)
            pages = []
            opens = []
            for _ in range(n_sessions):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                pg = context.new_page()
                t0 = time.perf_counter()
                _open(pg, url)
                opens.append(time.perf_counter() - t0)
                pg.locator(".alpha-slider").first.wait_for(state="attached")
                pg.evaluate(ARM)
                pages.append(pg)
            rss_sessions = _rss(server.pid)
            bench.row("new session on the warm server: page to interactive, median",
                      float(np.median(opens)), "s", f"{n_sessions} sessions opened one by one")
            errors = 0
            ticks = int(duration)
            values = [1.0, 2.0, 3.0, 1.5, 2.5]
            import psutil

            cpu0, wall0 = _cpu(server.pid), time.perf_counter()
            browser_procs = [c for c in psutil.Process().children(recursive=True)
                             if "chrom" in c.name().lower()]
            browser_cpu0 = sum(_proc_cpu(c) for c in browser_procs)
            phases = np.random.default_rng(0).uniform(0, 1000, len(pages))
            for pg, phase in zip(pages, phases):
                pg.evaluate(DRIVE, [values, ticks, float(phase)])
            time.sleep(duration + 4.0)
            wall = time.perf_counter() - wall0
            server_cores = (_cpu(server.pid) - cpu0) / wall
            browser_cores = (sum(_proc_cpu(c) for c in browser_procs) - browser_cpu0) / wall
            latencies = []
            for pg in pages:
                lat = pg.evaluate("() => window.__lat")
                errors += max(0, pg.evaluate("() => window.__moves") - len(lat))
                latencies += lat
            before_close = len(lines)
            browser.close()
            # (closing the browser with updates in flight logs tornado's WebSocketClosedError:
            # only what the server logged while the sessions were open is counted)
            log = "".join(lines[:before_close])
            lat = np.array(latencies) / 1000.0
            bench.row(f"load: {n_sessions} sessions x {ticks} slider moves, updates missed", errors,
                      "", "target 0")
            bench.row("load: update latency, median", float(np.median(lat)) if lat.size else np.nan,
                      "s", "in-page, model change to summary update")
            bench.row("load: update latency, p95", float(np.percentile(lat, 95)) if lat.size
                      else np.nan, "s", "of the updates that arrived; target < 1 s")
            # a missed update is one still unanswered when the next move came (over 1 s)
            every = np.concatenate([lat, np.full(errors, np.inf)])
            p95 = float(np.percentile(every, 95)) if every.size else np.nan
            bench.row("load: update latency, p95 counting missed ones as over 1 s",
                      p95 if np.isfinite(p95) else "> 1 s", "s" if np.isfinite(p95) else "",
                      f"{errors} of {every.size} missed")
            bench.row("load: server CPU (cores busy)", server_cores, "",
                      f"the {n_sessions} Chromium pages on the same machine: "
                      f"{browser_cores:.2f} cores")
            bench.row("server RSS at start (after first page)", rss_start, "MB")
            bench.row(f"server RSS with {n_sessions} sessions", rss_sessions, "MB")
            per = (rss_sessions - rss_start) / n_sessions
            bench.row("server RSS per extra session", per, "MB",
                      f"target < 50 MB: {'met' if per < 50 else 'NOT met'}")
            # a client that went away with a message in flight (the cold-start page, closed)
            # makes tornado log WebSocketClosedError: counted apart, not as a server error
            blocks = log.split("Traceback (most recent call last):")[1:]
            gone = sum(1 for b in blocks if "WebSocketClosedError" in b or "StreamClosedError" in b)
            errors_logged = len(blocks) - gone + log.count("ERROR")
            bench.row("server log errors", errors_logged, "",
                      "tracebacks and ERROR lines; target 0")
            if gone:
                bench.row("server log: clients gone with a message in flight", gone, "",
                          "tornado Stream/WebSocketClosedError, not an app error")
            if errors_logged or gone:
                (Path(os.environ.get("TMPDIR", "/tmp")) / "bench_serve_server.log").write_text(
                    "".join(lines))
        finally:
            if server is not None:
                _stop(server)


def main(argv=None) -> int:
    """``python benchmarks/bench_serve.py [--hostile ...]``: print the rows (and JSON)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="The served app under load; --hostile: "
                                                 "the hostile-load run (issue 13).")
    parser.add_argument("--hostile", action="store_true",
                        help="the hostile-load run instead of the cold-start and load runs")
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--data", type=Path, default=None,
                        help="cache folder for the synthetic datasets "
                             "(default: $FMRI_EXPLORER_DATA or ~/.cache/fmri-explorer)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    hostile = parser.add_argument_group("hostile load")
    hostile.add_argument("--sessions", type=int, default=16, help="browser sessions (16)")
    hostile.add_argument("--seconds", type=float, default=120.0, help="duration of the moves (120)")
    hostile.add_argument("--seed", type=int, default=0, help="random seed of the plan (0)")
    hostile.add_argument("--permutations", type=int, default=10_000,
                         help="permutations of the test started by a session closed mid-run")
    hostile.add_argument("--group-subjects", type=int, default=4,
                         help="subjects of the group run (4)")
    hostile.add_argument("--settle", type=float, default=60.0,
                         help="seconds after the last session closed to measure memory (60)")
    hostile.add_argument("--viewport", default="1400x900",
                         help="each page's window, WIDTHxHEIGHT (1400x900)")
    hostile.add_argument("--answer-timeout", type=float, default=30.0,
                         help="a move without a summary update after this is lost (30)")
    args = parser.parse_args(argv)
    if args.data is not None:
        os.environ["FMRI_EXPLORER_DATA"] = str(args.data)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Bench

    bench = Bench(size=args.size, data_root=args.data, quick=args.size == "small")
    if args.hostile:
        import hostile as hostile_run

        bench.section = "serve-hostile"
        print("[serve-hostile]", flush=True)
        hostile_run.run(bench, sessions=args.sessions, seconds=args.seconds, seed=args.seed,
                        permutations=args.permutations, group_subjects=args.group_subjects,
                        settle=args.settle, answer_timeout=args.answer_timeout,
                        viewport=tuple(int(v) for v in args.viewport.lower().split("x")))
    else:
        bench.section = "serve"
        print("[serve]", flush=True)
        run(bench)
    print("\n=== summary ===")
    print(bench.table())
    if args.json:
        args.json.write_text(json.dumps(bench.rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
