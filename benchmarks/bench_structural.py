"""Structural changes in the served app, measured in Chromium (issue 15, "Speed of
structural changes"): from the widget's change to the last update of the tab's views.

Each tab is served alone (as ``benchmarks/bench_encoding.py``'s alpha rows), at the
benchmark's size, in one Chromium page at 1600x1000. A change is made as a user's edit
(the widget's Bokeh model value set in the page) and timed in the page, from the change
to the summary line's new text and to the last document change followed by 300 ms of
quiet (every view redrawn: no busy state left). Each change goes to a setting not seen
before in the session (no cached decomposition), then back;
the median of the first visits is the row, with the target (1 s, the Decoding
whole-brain mask 3 s). A busy state is the tab's overlay (``.pn-loading``), views
greyed out by inline styles (``pointer-events: none``) or a view whose fit runs in a
job (a figure title ending "fitting ...").

For the Encoding tab, more rows (the widget's start value counts as a visit above, and
a setting can be evicted from memory): the changes that ran a decomposition job (new
settings) and those that did not (settings still in memory), each to the summary line
(sent in the same message as the map) and to every view (each change listed), and where
the time went: the server's job (of which decomposing the folds), the server building
the views (the job's result shown, every view updated), the rest (the message's way and
the browser's work) and the bytes the page received, timed in this process (the server
runs in it) around the tab's methods.

    python benchmarks/run.py --only structural [--size small]
    FMRI_BENCH_TABS=encoding python benchmarks/run.py --only structural   # one tab
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import time

#: the tabs to measure (comma-separated; default: every tab of CHANGES)
TABS_ENV = "FMRI_BENCH_TABS"

#: (tab, row name, widget css class, values visited in turn, target s)
CHANGES = (
    ("encoding", "Encoding: folds (K)", "folds-slider", [5, 6, 7, 8, 9, 10], 1.0),
    ("encoding", "Encoding: lag", "lag-slider", [1, 3, 2, 4, 0, 2], 1.0),
    ("encoding", "Encoding: CV scheme", "cv-select", ["run", "kfold", "run", "kfold"], 1.0),
    ("decoding", "Decoding: whole-brain mask", "mask-select",
     ["whole brain", "ventral-temporal", "whole brain", "ventral-temporal"], 3.0),
    ("decoding", "Decoding: CV scheme", "cv-select", ["kfold", "run", "kfold"], 1.0),
    ("decoding", "Decoding: folds (K)", "folds-slider", [3, 4, 6, 7], 1.0),  # after kfold
    ("connectivity", "Connectivity: subject", "subject-select", [1, 2, 0, 1], 1.0),
    ("connectivity", "Connectivity: smoothing", "smoothing-slider", [4.0, 8.0, 2.0, 6.0], 1.0),
)

#: the change, timed in the page: ``[text ms, last update ms]`` or null if nothing changed
CHANGE_JS = """async ([cls, val]) => {
  const seen = new Set(); const views = [];
  const walk = v => { if (!v || seen.has(v)) return; seen.add(v); views.push(v);
    if (v.child_views) for (const c of v.child_views) walk(c); };
  [...Bokeh.index.all_views()].forEach(walk);
  const view = views.find(v => (v.model.css_classes || []).includes(cls));
  if (!view) return "no widget " + cls;
  const model = view.model;
  let value = val;
  if (model.options !== undefined && !Array.isArray(val)) {
    // a Select: its value is an option's label (or the value of a [value, label] pair)
    const opts = model.options.map(o => Array.isArray(o) ? o : [o, o]);
    const hit = opts.find(o => o[0] == String(val) || o[1] == String(val))
             || opts[Number(val)];
    if (!hit) return "no option " + val + " in " + JSON.stringify(opts);
    value = hit[0];
  }
  if (model.value === value) return "unchanged";
  const find = (root) => { for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains('summary')) return el;
      if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f; } } return null; };
  const summary = find(document);
  const doc = Bokeh.documents[0];
  let last = null, text = null;
  const cb = () => { last = performance.now(); };
  doc.on_change(cb);
  const obs = new MutationObserver(() => { text = performance.now(); });
  obs.observe(summary.shadowRoot, {subtree: true, childList: true, characterData: true});
  const t0 = performance.now();
  model.value = value;
  const deadline = t0 + 60000;
  // busy: a loading overlay, views greyed out by inline styles (pointer-events none), or a
  // view whose fit runs in a job (its title "... fitting ...")
  const style = (s, k) => s instanceof Map ? s.get(k) : (s || {})[k];
  const fitting = () => [...doc.all_models].some(m => (typeof m.text === "string" &&
      m.text.endsWith("fitting ...")) || style(m.styles, "pointer-events") === "none");
  const busy = () => !!document.querySelector('.pn-loading') ||
    [...document.querySelectorAll('*')].some(e => e.shadowRoot &&
       e.shadowRoot.querySelector && e.shadowRoot.querySelector('.pn-loading')) || fitting();
  while (performance.now() < deadline) {   // text changed, not busy, 300 ms of quiet
    await new Promise(r => setTimeout(r, 20));
    if (text !== null && last !== null && performance.now() - last > 300 && !busy()) break;
  }
  obs.disconnect(); doc.remove_on_change(cb);
  return text === null ? null : [text - t0, Math.max(text, last || text) - t0];
}"""


def _factory(tab: str):
    if tab == "encoding":
        from dashboard.encoding import EncodingTab
        return EncodingTab
    if tab == "decoding":
        from dashboard.decoding import DecodingTab
        return DecodingTab
    from dashboard.connectivity import ConnectivityTab
    return ConnectivityTab


def run(bench):
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    try:
        import panel as pn
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        bench.row("structural changes", "skipped", "", f"{exc}")
        return
    if not shutil.which(chromium) and not os.path.exists(chromium):
        bench.row("structural changes", "skipped", "", f"no Chromium at {chromium}")
        return
    from tests.browser.conftest import ARGS, EXTERNAL, READY, free_port, wait_http

    tabs = [t for t in ("encoding", "decoding", "connectivity")
            if t in os.environ.get(TABS_ENV, "encoding,decoding,connectivity").split(",")]
    os.environ["FMRI_EXPLORER_SIZE"] = bench.size
    for kind in tabs:
        bench.data_dir(kind)
    pn.extension(notifications=True)
    trace = _Trace()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        for tab in tabs:
            port = free_port()
            server = pn.serve(_factory(tab), port=port, address="127.0.0.1",
                              websocket_origin=[f"127.0.0.1:{port}"], threaded=True,
                              show=False, liveness=True, start=True)
            try:
                wait_http(f"http://127.0.0.1:{port}/liveness")
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.route(EXTERNAL, lambda route: route.abort())
                page.on("websocket", trace.websocket)
                if tab == "encoding":
                    trace.instrument()
                page.goto(f"http://127.0.0.1:{port}/", timeout=300_000)
                page.wait_for_function(READY, timeout=180_000)
                page.locator(".slice-axial canvas").first.wait_for(state="visible",
                                                                   timeout=180_000)
                time.sleep(2.0)
                for tab_name, name, css, values, target in CHANGES:
                    if tab_name != tab:
                        continue
                    first, again = [], []
                    # Encoding: each change by what the server did (a decomposition job
                    # ran: a new setting; none: a setting still in memory)
                    split = {"new": [], "seen": []}
                    visited = set()
                    for value in values:
                        trace.start()
                        out = page.evaluate(CHANGE_JS, [css, value])
                        if isinstance(out, str):
                            bench.row(name, "skipped", "", out)
                            continue
                        if out is None:
                            continue
                        (again if value in visited else first).append(out[1] / 1000)
                        visited.add(value)
                        if tab == "encoding":
                            job, *rest = trace.parts(out[1] / 1000)
                            split["new" if job > 0 else "seen"].append(
                                (out[0] / 1000, out[1] / 1000, job, *rest))
                    note = f"target < {target:g} s; median of {len(first)} new settings"
                    if again:
                        note += f"; back to a seen setting {statistics.median(again):.2f} s"
                    if first:
                        bench.row(f"app: {name} -> views redrawn (Chromium)",
                                  statistics.median(first), "s", note)
                    if tab == "encoding":
                        _encoding_rows(bench, name, target, split)
                page.close()
            finally:
                server.stop()
        browser.close()


class _Trace:
    """Times, in this process (the server's), of an Encoding tab's structural change: the
    tab's watcher, the job's work, the views shown from its result; and the websocket
    frames the page received (their bytes)."""

    def __init__(self):
        self.events: list = []
        self.frames: list = []
        self.t0 = 0.0

    def start(self):
        self.events, self.frames = [], []
        self.t0 = time.perf_counter()

    def websocket(self, ws):
        def received(payload):
            self.frames.append((time.perf_counter(), len(payload)))
        ws.on("framereceived", received)

    def _timed(self, name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.events.append((name, start, time.perf_counter()))
        return wrapper

    def instrument(self):
        """Wrap the Encoding tab's structural watcher and its jobs (benchmark only)."""
        from dashboard.busy import Busy
        from dashboard.encoding import EncodingTab

        if getattr(EncodingTab, "_bench_traced", False):
            return
        EncodingTab._bench_traced = True
        EncodingTab._structural_changed = self._timed("views", EncodingTab._structural_changed)
        from analysis.encoding.engine import RidgeCV

        RidgeCV.__init__ = self._timed("decompose", RidgeCV.__init__)
        run = Busy.run
        trace = self

        def traced_run(busy, work, name, message, current, apply, on_error=None):
            return run(busy, trace._timed("job", work), name, message, current,
                       trace._timed("views", apply), on_error)
        Busy.run = traced_run

    def parts(self, total: float) -> tuple:
        """``(job s, of which decomposing s, views s, rest s, bytes)`` of the change just
        timed (``total`` s in the page): the rest is the time after the server's last
        step (the message's way and the browser's work), the bytes those the page
        received (Playwright hands the frames over after the timing: no times)."""
        job = sum(e - s for n, s, e in self.events if n == "job")
        decompose = sum(e - s for n, s, e in self.events if n == "decompose")
        views = sum(e - s for n, s, e in self.events if n == "views")
        # the watcher's time includes starting the job (not the job itself)
        end = max((e for _, _, e in self.events), default=self.t0)
        return (job, decompose, views, max(total - (end - self.t0), 0.0),
                sum(b for _, b in self.frames))


def _encoding_rows(bench, name: str, target: float, split: dict) -> None:
    """The Encoding rows: each change to a new setting (a decomposition job ran) and to a
    setting still in memory (the widget's start value counts as seen), to the summary
    line (sent with the map) and to every view, and where the time went."""
    for kind, label in (("new", "new setting (job)"), ("seen", "seen setting (no job)")):
        rows = split[kind]
        if not rows:
            continue
        text, views = ([r[i] for r in rows] for i in (0, 1))
        bench.row(f"  {name}, {label} -> summary and map", statistics.median(text), "s",
                  f"target < {target:g} s; median of {len(rows)}")
        bench.row(f"  {name}, {label} -> every view", statistics.median(views), "s",
                  f"median of {len(rows)}; each: " + " ".join(f"{v:.2f}" for v in views))
        job, dec, build, rest, size = (statistics.median(r[i] for r in rows)
                                       for i in range(2, 7))
        bench.row(f"  {name}, {label}: where the time goes",
                  f"{job:.2f} ({dec:.2f}) / {build:.2f} / {rest:.2f} s; {size / 1e6:.2f} MB",
                  "", "server job (of which decomposing) / server views / rest (the "
                  "message's way + browser); bytes received")
