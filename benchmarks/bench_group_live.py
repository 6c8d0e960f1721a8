"""A seed move in the Connectivity tab's Group section, measured in Chromium (issue 17,
"Speed": seed move to the updated FWE map in the app under 1 s for 20 subjects).

The Connectivity tab is served alone (as ``benchmarks/bench_structural.py``), on 20
synthetic subjects (generated once into ``<cache>/bench-group-<size>-20``, the folder
``benchmarks/bench_group.py`` uses), in one Chromium page at 1600x1000. Setup, not
timed: the Group section opened, its subjects slider set to 20, *Run group analysis*
pressed once (each subject cleaned on the local Dask cluster's 2 workers, the first
group map with its 1,000 sign flips). Then each seed move goes to a position not seen
before, typed into one of the Group section's seed inputs as a user's edit (the
widget's Bokeh model value set in the page; the single-subject seed follows, as in
the app), and is timed in the page from the change to

* the group summary's new text (its FDR and FWE thresholds and voxel counts), and
* the last document change followed by 300 ms of quiet with no busy state (the group
  map, histogram, peaks, cluster table and subject strip updated; the run button
  enabled again, no progress bar, no loading overlay, no view greyed out), and the
  server done with the move (asked from the page through ``benchServerBusy``, the
  trace below: a page can go quiet for 300 ms while the server still builds views).

The rows: the median and range of the moves, with the target (1 s); and where the time
goes, timed in this process (the server runs in it) around the group's methods: the
server's job (the seed maps on the workers, the group statistics: t, FDR and the sign
flips, on a worker), the server building the views (``GroupPanel._redraw``, of which the
cluster table) and the rest (the job's queue, the messages' way, the browser's work).

    python benchmarks/run.py --only group_live [--size small]
    FMRI_BENCH_TRACE=GroupPanel._done ...   # also print each move's server timeline
    FMRI_BENCH_PROFILE=views ...            # cProfile of GroupPanel._redraw (or job)
    FMRI_BENCH_CHROME_TRACE=moves.json ...  # Chromium's trace of the moves
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path

N_SUBJECTS = 20
TARGET_S = 1.0

#: each move: (the seed input's css class, its new value); every position a new one
#: from the start (0, -52, 18): (-44,-52,18) (-44,-60,18) (40,-60,18) (40,-60,30)
#: (40,-40,30) (8,-40,30) (8,-40,42)
MOVES = (("group-seed-x", -44.0), ("group-seed-y", -60.0), ("group-seed-x", 40.0),
         ("group-seed-z", 30.0), ("group-seed-y", -40.0), ("group-seed-x", 8.0),
         ("group-seed-z", 42.0))

#: the change, timed in the page: ``[summary text ms, last update ms]`` or null
CHANGE_JS = """async ([cls, val, summaryCls]) => {
  const seen = new Set(); const views = [];
  const walk = v => { if (!v || seen.has(v)) return; seen.add(v); views.push(v);
    if (v.child_views) for (const c of v.child_views) walk(c); };
  [...Bokeh.index.all_views()].forEach(walk);
  const view = views.find(v => (v.model.css_classes || []).includes(cls));
  if (!view) return "no widget " + cls;
  const model = view.model;
  if (model.value === val) return "unchanged";
  const find = (root) => { for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains(summaryCls)) return el;
      if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f; } } return null; };
  const summary = find(document);
  if (!summary) return "no summary " + summaryCls;
  const doc = Bokeh.documents[0];
  let last = null, text = null;
  const cb = () => { last = performance.now(); };
  doc.on_change(cb);
  // its text (not its style elements, which a re-layout may touch) changed
  const textOf = () => [...summary.shadowRoot.children].filter(
      c => !["STYLE", "LINK"].includes(c.tagName)).map(c => c.textContent).join(" ").trim();
  const before = textOf();
  const obs = new MutationObserver(() => {
    if (text === null && textOf() !== before) text = performance.now(); });
  obs.observe(summary.shadowRoot, {subtree: true, childList: true, characterData: true});
  const t0 = performance.now();
  model.value = val;
  const deadline = t0 + 120000;
  // busy: a loading overlay, views greyed out by inline styles (pointer-events none), a
  // view fitting in a job, or the group run under way (its button disabled, progress shown)
  const style = (s, k) => s instanceof Map ? s.get(k) : (s || {})[k];
  const has = (m, c) => (m.css_classes || []).includes(c);
  const modelBusy = () => [...doc.all_models].some(m => (typeof m.text === "string" &&
      m.text.endsWith("fitting ...")) || style(m.styles, "pointer-events") === "none" ||
      (has(m, "group-run") && m.disabled) || (has(m, "group-progress") && m.visible &&
       style(m.styles, "visibility") !== "hidden"));
  const busy = () => !!document.querySelector('.pn-loading') ||
    [...document.querySelectorAll('*')].some(e => e.shadowRoot &&
       e.shadowRoot.querySelector && e.shadowRoot.querySelector('.pn-loading')) || modelBusy();
  // and the server done with the move (the benchmark's trace: a page can go quiet for
  // 300 ms while the server still builds the views)
  while (performance.now() < deadline) {   // text changed, not busy, 300 ms of quiet
    await new Promise(r => setTimeout(r, 20));
    if (text !== null && last !== null && performance.now() - last > 300 && !busy()
        && !(await window.benchServerBusy())) break;
  }
  obs.disconnect(); doc.remove_on_change(cb);
  return text === null ? null : [text - t0, Math.max(text, last || text) - t0];
}"""


def _group_dir(bench) -> Path:
    """20 synthetic subjects at the benchmark's size: bench_group.py's folder, made by
    its own ``_group_dir`` (loaded from beside this file, as benchmarks/run.py loads it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "benchmarks.bench_group", Path(__file__).with_name("bench_group.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.N_SUBJECTS == N_SUBJECTS
    return module._group_dir(bench)


class _Trace:
    """Server-side times (this process) of the Group section's work: the run (its
    result's timings: seed maps on the workers, statistics), the views, the clusters."""

    def __init__(self):
        self.events: list = []
        self.timings: list = []
        self._undo: list = []
        self.active = 0   # wrapped calls under way (any thread)
        # $FMRI_BENCH_PROFILE=views,job: cProfile of those calls, printed at the end
        import cProfile

        self.profiles = {n: cProfile.Profile() for n in
                         os.environ.get("FMRI_BENCH_PROFILE", "").split(",") if n}
        self.t0 = time.perf_counter()

    def server_busy(self) -> bool:
        """For the page: the move's group work under way, or its views not yet built
        (a wrapped call running, or no group ``_redraw`` finished since the change)."""
        return self.active > 0 or not any(n == "views" for n, _, _ in self.events)

    def start(self):
        self.events, self.timings = [], []
        self.t0 = time.perf_counter()

    def timeline(self) -> str:
        """The move's server events, ``name start-end`` in s from the change."""
        return "; ".join(f"{n} {s - self.t0:.2f}-{e - self.t0:.2f}"
                         for n, s, e in sorted(self.events, key=lambda x: x[1]))

    def _wrap(self, owner, attr, name, keep_result=False):
        fn = getattr(owner, attr)
        trace = self

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            label = name + (f"-{args[0].stem}" if name == "clusters" else "")
            trace.active += 1
            profile = trace.profiles.get(name)
            try:
                if profile is not None:
                    profile.enable()
                out = fn(*args, **kwargs)
                if keep_result and getattr(out, "timings", None) is not None:
                    trace.timings.append(dict(out.timings))
                return out
            finally:
                if profile is not None:
                    profile.disable()
                trace.active -= 1
                trace.events.append((label, start, time.perf_counter()))

        setattr(owner, attr, wrapper)
        self._undo.append((owner, attr, fn))

    def instrument(self):
        """Wrap the group's run, the panel's redraw and the cluster table (bench only)."""
        from analysis.group import GroupConnectivity
        from dashboard.clusters import ClusterTable
        from dashboard.group import GroupPanel

        self._wrap(GroupConnectivity, "run", "job", keep_result=True)
        self._wrap(GroupPanel, "_redraw", "views")
        self._wrap(ClusterTable, "refresh", "clusters")
        self._wrap(GroupPanel, "start", "start")
        from dashboard.connectivity import ConnectivityTab
        self._wrap(ConnectivityTab, "_redraw", "single-subject views")
        if os.environ.get("FMRI_BENCH_TRACE"):
            for name in filter(None, os.environ["FMRI_BENCH_TRACE"].split(",")):
                owner, _, attr = name.rpartition(".")
                self._wrap({"ConnectivityTab": ConnectivityTab, "GroupPanel": GroupPanel}[owner],
                           attr, name)

    def print_profiles(self, top: int = 45) -> None:
        import pstats

        for name, profile in self.profiles.items():
            print(f"--- profile of {name!r} (cumulative) ---")
            try:
                pstats.Stats(profile).sort_stats("cumulative").print_stats(top)
            except TypeError:   # never ran
                print("    (not called)")

    def restore(self):
        for owner, attr, fn in reversed(self._undo):
            setattr(owner, attr, fn)
        self._undo = []

    def parts(self) -> dict:
        """Seconds of the move just timed, by part (the group's cluster table only: the
        last ``clusters`` event inside the last ``views``)."""
        total = {n: sum(e - s for m, s, e in self.events if m == n)
                 for n in ("job", "views")}
        views = [(s, e) for n, s, e in self.events if n == "views"]
        total["clusters"] = sum(e - s for n, s, e in self.events if n == "clusters-group")
        del views
        timing = self.timings[-1] if self.timings else {}
        total["seed_maps"] = float(timing.get("seed_s", 0.0))
        total["stats"] = float(timing.get("stats_s", 0.0))
        total["cleaned_now"] = timing.get("cleaned_now")
        return total


def _setup(page, bench, n: int) -> float:
    """Open the Group section, take ``n`` subjects, run once; seconds to the summary."""
    from tests.browser.conftest import READY
    from tests.browser.helpers import set_model_value, text_of

    page.locator(".group-section .card-header").first.click()
    page.locator(".group-run button").first.wait_for(state="visible", timeout=120_000)
    page.wait_for_function(READY, timeout=120_000)
    set_model_value(page, "group-n-subjects", n)
    time.sleep(1.0)
    start = time.perf_counter()
    page.locator(".group-run button").first.click()
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        text = text_of(page, ".group-summary")
        if text.startswith(f"{n} subjects"):
            return time.perf_counter() - start
        time.sleep(0.2)
    raise RuntimeError(f"no group result after the setup's run: {text!r}; status "
                       f"{text_of(page, '.group-status')!r}")


def run(bench):
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    try:
        import panel as pn
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        bench.row("group seed move", "skipped", "", f"{exc}")
        return
    if not shutil.which(chromium) and not os.path.exists(chromium):
        bench.row("group seed move", "skipped", "", f"no Chromium at {chromium}")
        return
    from tests.browser.conftest import ARGS, EXTERNAL, READY, free_port, wait_http

    bench.row("load average (1 min) at start", round(os.getloadavg()[0], 2), "",
              "2 cores, shared: other work may run meanwhile")
    os.environ["FMRI_EXPLORER_SIZE"] = bench.size
    data_dir = _group_dir(bench)
    size = bench.size

    def app():
        from analysis.connectivity import SeedConnectivity
        from dashboard.connectivity import ConnectivityTab

        # the tab on the 20 subjects' folder: its Group section takes its subjects
        return ConnectivityTab(model=SeedConnectivity(size=size, data_dir=str(data_dir)))

    pn.extension("tabulator", notifications=True)
    trace = _Trace()
    trace.instrument()
    port = free_port()
    server = pn.serve(app, port=port, address="127.0.0.1",
                      websocket_origin=[f"127.0.0.1:{port}"], threaded=True,
                      show=False, liveness=True, start=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/liveness")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.route(EXTERNAL, lambda route: route.abort())
                page.expose_function("benchServerBusy", trace.server_busy)
                page.goto(f"http://127.0.0.1:{port}/", timeout=300_000)
                page.wait_for_function(READY, timeout=300_000)
                page.locator(".slice-axial canvas").first.wait_for(state="visible",
                                                                   timeout=300_000)
                setup = _setup(page, bench, N_SUBJECTS)
                _settle(trace)
                bench.row(f"setup: group run, {N_SUBJECTS} subjects cleaned on 2 workers "
                          "(+ cluster start)", setup, "s", "once, not timed below")
                # $FMRI_BENCH_CHROME_TRACE=FILE: Chromium's own trace of the moves (the
                # renderer's work: open FILE in chrome://tracing or Perfetto)
                chrome_trace = os.environ.get("FMRI_BENCH_CHROME_TRACE")
                if chrome_trace:
                    browser.start_tracing(page=page, path=chrome_trace, screenshots=False,
                                          categories=["devtools.timeline", "v8.execute",
                                                      "blink.user_timing", "toplevel",
                                                      "disabled-by-default-v8.cpu_profiler"])
                _moves(bench, page, trace)
                if chrome_trace:
                    browser.stop_tracing()
            finally:
                browser.close()
    finally:
        server.stop()
        trace.restore()
        trace.print_profiles()


def _settle(trace, timeout: float = 300.0) -> None:
    """Wait until the server's group work is done (the first map's views built)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and trace.active > 0:
        time.sleep(0.1)
    time.sleep(2.0)
    import cProfile

    trace.profiles = {n: cProfile.Profile() for n in trace.profiles}   # the moves' only


def _moves(bench, page, trace) -> None:
    text, views, parts = [], [], []
    for css, value in MOVES:
        trace.start()
        out = page.evaluate(CHANGE_JS, [css, value, "group-summary"])
        if isinstance(out, str):
            bench.row(f"seed move {css}={value:g}", "skipped", "", out)
            continue
        if out is None:
            bench.row(f"seed move {css}={value:g}", "timed out", "", "no new summary")
            continue
        time.sleep(0.5)   # the server's last steps are in the trace
        text.append(out[0] / 1000)
        views.append(out[1] / 1000)
        parts.append(trace.parts())
        if os.environ.get("FMRI_BENCH_TRACE") is not None:
            print(f"    move {css}={value:g}: page {out[0] / 1000:.2f} / {out[1] / 1000:.2f} s;"
                  f" server: {trace.timeline()}", flush=True)
    if not views:
        return
    n = len(views)

    def spread(values):
        return f"range {min(values):.2f}-{max(values):.2f} s; each: " + " ".join(
            f"{v:.2f}" for v in values)

    met = "met" if statistics.median(views) < TARGET_S else "NOT met"
    bench.row(f"app: group seed move -> summary with FWE threshold ({N_SUBJECTS} subj.)",
              statistics.median(text), "s",
              f"target < {TARGET_S:g} s; median of {n} moves; {spread(text)}")
    bench.row(f"app: group seed move -> map views + cluster table ({N_SUBJECTS} subj.)",
              statistics.median(views), "s",
              f"target < {TARGET_S:g} s: {met}; median of {n} moves; {spread(views)}")
    med = {k: statistics.median(p[k] for p in parts)
           for k in ("job", "seed_maps", "stats", "views", "clusters")}
    rest = statistics.median(v - p["job"] - p["views"] for v, p in zip(views, parts))
    bench.row("  server: group job (seed maps + statistics)", med["job"], "s",
              f"median of {n}; each: " + " ".join(f"{p['job']:.2f}" for p in parts))
    bench.row("  server:   seed maps on the 2 workers, messages", med["seed_maps"], "s",
              "the job but the statistics; subjects cleaned again during the moves: "
              f"{sum(p['cleaned_now'] or 0 for p in parts)}")
    bench.row("  server:   group statistics (t, FDR, 1,000 sign flips)", med["stats"], "s",
              "on a Dask worker (one thread)")
    bench.row("  server: building the views (GroupPanel._redraw)", med["views"], "s",
              f"median of {n}; each: " + " ".join(f"{p['views']:.2f}" for p in parts))
    bench.row("  server:   of which the cluster table", med["clusters"], "s",
              "issue 17 target < 50 ms per update")
    bench.row("  rest (queue, messages, browser, single-subject map)", rest, "s",
              "last update in the page - server job - server views")
