"""Structural changes in the served app, measured in Chromium (issue 15, "Speed of
structural changes"): from the widget's change to the last update of the tab's views.

Each tab is served alone (as ``benchmarks/bench_encoding.py``'s alpha rows), at the
benchmark's size, in one Chromium page at 1600x1000. A change is made as a user's edit
(the widget's Bokeh model value set in the page) and timed in the page, from the change
to the summary line's new text and to the last document change followed by 300 ms of
quiet (every view redrawn: a job's busy overlay gone). Each change goes to a setting not
seen before in the session (no cached decomposition), then back; the median of the first
visits is the row, with the target (1 s, the Decoding whole-brain mask 3 s).

    python benchmarks/run.py --only structural [--size small]
"""

from __future__ import annotations

import os
import shutil
import statistics
import time

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
  const busy = () => !!document.querySelector('.pn-loading') ||
    [...document.querySelectorAll('*')].some(e => e.shadowRoot &&
       e.shadowRoot.querySelector && e.shadowRoot.querySelector('.pn-loading'));
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

    os.environ["FMRI_EXPLORER_SIZE"] = bench.size
    for kind in ("encoding", "decoding", "connectivity"):
        bench.data_dir(kind)
    pn.extension(notifications=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        for tab in ("encoding", "decoding", "connectivity"):
            port = free_port()
            server = pn.serve(_factory(tab), port=port, address="127.0.0.1",
                              websocket_origin=[f"127.0.0.1:{port}"], threaded=True,
                              show=False, liveness=True, start=True)
            try:
                wait_http(f"http://127.0.0.1:{port}/liveness")
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.route(EXTERNAL, lambda route: route.abort())
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function(READY, timeout=180_000)
                page.locator(".slice-axial canvas").first.wait_for(state="visible",
                                                                   timeout=180_000)
                time.sleep(2.0)
                for tab_name, name, css, values, target in CHANGES:
                    if tab_name != tab:
                        continue
                    first, again = [], []
                    visited = set()
                    for value in values:
                        out = page.evaluate(CHANGE_JS, [css, value])
                        if isinstance(out, str):
                            bench.row(name, "skipped", "", out)
                            continue
                        if out is None:
                            continue
                        (again if value in visited else first).append(out[1] / 1000)
                        visited.add(value)
                    note = f"target < {target:g} s; median of {len(first)} new settings"
                    if again:
                        note += f"; back to a seen setting {statistics.median(again):.2f} s"
                    if first:
                        bench.row(f"app: {name} -> views redrawn (Chromium)",
                                  statistics.median(first), "s", note)
                page.close()
            finally:
                server.stop()
        browser.close()
