"""The hostile-load run of ``benchmarks/bench_serve.py`` (issue 13).

    python benchmarks/bench_serve.py --hostile                     # 16 sessions, 120 s, full size
    python benchmarks/bench_serve.py --hostile --size small --sessions 4 --seconds 20 --settle 30

N Chromium sessions (``--sessions``, default 16) arrive at once on a warm server and, for
``--seconds`` (default 120), move widgets at random in all three tabs (fixed seed: the same
plan every run), about once a second each, switching tabs every 8-25 moves: the Encoding
tab's alpha and R² threshold sliders, the Decoding tab's C slider and CV scheme, the
Connectivity tab's seed (x, y) and threshold. Meanwhile:

* one session arrives on the Decoding tab, starts a permutation test (``--permutations``,
  default 10,000) and watches its progress (a Decoding parameter moved would cancel it, by
  design); it is one of the quarter of the sessions closed abruptly mid-run (the browser
  context is closed, no clean-up), while its test runs: the server must stop it (see the
  CPU after the last close);
* one session that stays arrives on the Connectivity tab, opens its Group section, sets
  ``--group-subjects`` (default 4) and presses Run, then moves on like the others (no seed
  moves: a new seed re-runs the group); its run must finish (waited for after the run);
* a quarter of the sessions (``--sessions`` // 4) are closed abruptly at random moments
  between 30% and 70% of the run.

Measured and printed:

* server log: tracebacks and ``ERROR`` lines (target 0); tornado's
  ``WebSocketClosedError``/``StreamClosedError`` (a client gone with a message in flight)
  are counted apart;
* lost sessions (target 0): a page that stays whose websocket closed, or that does not
  answer a last probe move within 20 s;
* moves: sent, answered, unanswered (no summary update within ``--answer-timeout`` s,
  default 30: a lost move; target 0), answered later than 1 s and 10 s; move-to-update
  latency median and p95 (with the part until the server's answer reached the page), measured in
  the page (the model change to the summary's text change, a MutationObserver as in the
  load run), overall and per tab; a page never has two moves in flight: a move still
  unanswered when the next is due delays the next one;
* tab switches (and their time to the tab's summary), JavaScript errors in the pages;
* server RSS (the ``panel serve`` process and its children, e.g. Dask workers; the main
  process alone beside it): after warm-up with no session open, the peak, and ``--settle``
  (default 60) s after the last session closed: ratio to the start (target within 15%);
* server CPU (cores busy, children included) during the run, and over 5 s starting 10 s
  after the last session closed (background work stopped: near 0).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_serve import (ARGS, EXTERNAL, READY, _cold_start, _free_port, _rss,  # noqa: E402
                         _stop, _wait_idle, prepare, server_command)

TAB_NAMES = ["encoding", "decoding", "connectivity"]
#: (widget css class, candidate values, weight) per tab: every move changes the tab's summary
#: line (alpha, threshold, C, CV scheme, seed), so each one is answered by a text change
MOVES = {
    0: [("alpha-slider", [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], 3),
        ("threshold-slider", [0.0, 0.01, 0.02, 0.05, 0.1, 0.2], 1)],
    1: [("c-slider", list(range(14)), 3),          # index into C_VALUES (1e-4 ... 1000)
        ("cv-select", ["kfold", "run"], 1)],
    2: [("threshold-slider", [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], 2),
        ("seed-x", [-30.0, -18.0, -6.0, 6.0, 18.0, 30.0], 1),
        ("seed-y", [-64.0, -52.0, -40.0, -28.0], 1)],
}

#: Records the page's websockets (installed before Bokeh opens its own): a session whose
#: websocket closed is lost, whatever the page still shows.
WS_HOOK = """
(() => {
  const Native = window.WebSocket;
  window.__ws = {opened: 0, closed: []};
  const Hooked = function (...args) {
    const ws = new Native(...args);
    window.__ws.opened += 1;
    ws.addEventListener('message', () => { window.__ws.lastIn = performance.now(); });
    ws.addEventListener('close', (e) => window.__ws.closed.push([e.code, performance.now()]));
    return ws;
  };
  Hooked.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Hooked[k] = Native[k];
  window.WebSocket = Hooked;
})();
"""

#: The in-page driver: ``window.__hx`` holds the counters; ``__hx.run(plan)`` plays a plan
#: (tab switches, moves once a second, the permutation test, the group run) until
#: ``deadline`` ms (performance.now()) or ``__hx.stop``.
DRIVER = """
(cfg) => {
  const H = window.__hx = {lat: [], srv: [], moves: 0, answered: 0, unanswered: 0, delayed: 0,
    missing: 0, switches: 0, switchFails: 0, switchLat: [], tab: cfg.tab, pending: null, lost: [],
    jobs: {}, stop: false, finished: false, error: null, probe: undefined};
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const views = () => {
    const roots = Bokeh.index.all_views ? [...Bokeh.index.all_views()] : Object.values(Bokeh.index);
    const seen = new Set(); const all = [];
    const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); all.push(v);
      for (const c of (v.child_views ? [...v.child_views] : [])) walk(c); };
    for (const v of roots) walk(v);
    return all;
  };
  const has = (v, cls) => (v.model.css_classes || []).includes(cls);
  const valueOf = (m) => { try { return m.value; } catch (e) { return undefined; } };
  const find = (cls) => views().find((v) => has(v, cls) && v.el && v.el.isConnected);
  const widget = (cls) => views().find((v) => has(v, cls) && v.el && v.el.isConnected
                                          && valueOf(v.model) !== undefined);
  const textOf = (root) => [...root.children].filter((c) => !['STYLE', 'LINK'].includes(c.tagName))
      .map((c) => c.innerText).join(' ').trim();
  const READY = [/^alpha=/, / vs /, /^seed \\(/];
  const summaryView = (tab) => views().find((v) => v.el && v.el.isConnected && (tab === 2
      ? has(v, 'connectivity-summary') : has(v, 'summary') && !has(v, 'group-summary')));
  const idle = () => Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle;

  // the summary line of the current tab: its text changes answer the pending move
  const arm = (tab) => {
    const v = summaryView(tab);
    if (!v) return false;
    const root = v.el.shadowRoot || v.el;
    const text = textOf(root);
    if (!READY[tab].test(text)) return false;
    if (H.obs) H.obs.disconnect();
    H.host = v.el; H.before = text;
    H.obs = new MutationObserver(() => {
      const now = textOf(root);
      if (now === H.before) return;
      H.before = now;
      if (H.pending) {
        // the server's part: to the last message in before the text changed (the one
        // carrying it); the rest is the page applying and drawing it
        const lastIn = window.__ws && window.__ws.lastIn;
        H.srv.push(lastIn && lastIn > H.pending.t0 ? lastIn - H.pending.t0 : null);
        H.lat.push([H.pending.tab, performance.now() - H.pending.t0]);
        H.answered += 1; H.pending = null;
      }
    });
    H.obs.observe(root, {subtree: true, childList: true, characterData: true});
    return true;
  };
  const armed = () => (H.host && H.host.isConnected) || arm(H.tab);
  const waitTab = async (tab, timeout) => {
    const t0 = performance.now();
    while (performance.now() - t0 < timeout) {
      if (idle() && arm(tab)) return performance.now() - t0;
      await sleep(100);
    }
    return null;
  };
  H.ready = () => idle() && arm(H.tab);
  const switchTab = async (tab) => {
    if (tab === H.tab && armed()) return true;
    const tabs = find('analysis-tabs');
    H.switches += 1; H.tab = tab; H.host = null;
    tabs.model.active = tab;
    const took = await waitTab(tab, 60000);
    if (took === null) { H.switchFails += 1; return false; }
    H.switchLat.push(took);
    return true;
  };
  H.switchTab = switchTab;
  // one move: a candidate other than the widget's current value
  const move = (cls, cands, idx) => {
    if (!armed()) { H.missing += 1; return false; }
    const v = widget(cls);
    if (!v) { H.missing += 1; return false; }
    const cur = valueOf(v.model);
    let val = cands[idx % cands.length];
    if (String(cur) === String(val)) val = cands[(idx + 1) % cands.length];
    H.pending = {t0: performance.now(), tab: H.tab, cls: cls, from: String(cur), to: String(val),
                 text: H.before};
    H.moves += 1;
    v.model.value = val;
    return true;
  };
  // wait until the pending move is answered, or count it unanswered after ``limit`` ms
  const settle = async (limit) => {
    if (!H.pending) return;
    const t0 = H.pending.t0;
    while (H.pending && performance.now() - t0 < limit) await sleep(20);
    if (H.pending) {
      // which move went unanswered, for the report: the widget, its values, the summary
      // before and now, whether the page was idle (no message of the server pending)
      const p = H.pending;
      const now = H.host && H.host.isConnected ? textOf(H.host.shadowRoot || H.host) : null;
      const lastIn = window.__ws && window.__ws.lastIn;
      // every connected widget of that class (a second one, e.g. a stale or hidden copy,
      // would take the move without the summary's tab seeing it) and the active tab
      const same = views().filter((v) => has(v, p.cls) && v.el && v.el.isConnected);
      const tabsView = find('analysis-tabs');
      H.lost.push({tab: p.tab, widget: p.cls, from: p.from, to: p.to,
                   copies: same.map((v) => String(valueOf(v.model)) + (v.el.offsetParent ? '' : ' (hidden)')),
                   active: tabsView ? tabsView.model.active : null,
                   at: Math.round(p.t0 / 100) / 10, before: (p.text || '').slice(0, 90),
                   now: now === null ? null : now.slice(0, 90), idle: idle(),
                   lastIn: lastIn ? Math.round(lastIn - p.t0) : null});
      H.unanswered += 1; H.pending = null;
      if (now !== null) H.before = now;
    }
  };
  H.settle = settle;
  const click = (cls) => {
    const v = find(cls);
    const b = v && (v.el.shadowRoot || v.el).querySelector('button');
    if (!b) return false;
    b.click(); return true;
  };
  const until = async (pred, timeout) => {
    const t0 = performance.now();
    while (performance.now() - t0 < timeout) { if (pred()) return true; await sleep(100); }
    return false;
  };
  const job = async (kind, n) => {
    const rec = H.jobs[kind] = {started: false, t: performance.now()};
    if (kind === 'perm') {
      if (!(await switchTab(1))) return;
      const count = widget('perm-count');
      if (!count) return;
      count.model.value = n;
      await sleep(500);
      rec.clicked = click('perm-run');
      rec.started = await until(() => { const c = find('perm-cancel');
                                        return c && !c.model.disabled; }, 15000);
    } else {
      if (!(await switchTab(2))) return;
      const card = find('group-section');
      if (!card) return;
      const header = (card.el.shadowRoot || card.el).querySelector('.card-button, button');
      if (header) header.click(); else card.model.collapsed = false;
      if (!(await until(() => widget('group-n-subjects'), 30000))) return;
      const subjects = widget('group-n-subjects');
      rec.n = Math.max(subjects.model.start, Math.min(n, subjects.model.end));  // on disk
      subjects.model.value = rec.n;
      await sleep(500);
      rec.clicked = click('group-run');
      rec.started = await until(() => { const s = find('group-status');
        const p = find('group-progress');
        const shown = p && p.model.visible && (p.model.styles instanceof Map ?
          p.model.styles.get('visibility') : (p.model.styles || {}).visibility) !== 'hidden';
        return shown || (s && textOf(s.el.shadowRoot || s.el) !== ''); }, 30000);
    }
    rec.t = performance.now() - rec.t;
  };
  H.running = (kind) => {   // the job's own widgets say it is still running (tab shown)
    if (kind === 'perm') { const c = find('perm-cancel'); return c ? !c.model.disabled : null; }
    const r = find('group-run'); return r ? !!r.model.disabled : null;
  };
  H.textOf = (cls) => { const v = find(cls); return v ? textOf(v.el.shadowRoot || v.el) : null; };
  H.permState = () => { const p = find('perm-progress');
    return {running: H.running('perm'), progress: p ? p.model.value : null,
            status: H.textOf('perm-status')}; };
  H.groupText = () => { const s = find('group-summary'); return s ? textOf(s.el.shadowRoot || s.el) : null; };
  // plan: [['tab', i] | ['move', cls, cands, idx] | ['job', kind, n]]; moves every ``every`` ms
  // a heartbeat (the run tells a page whose script stopped from one that is slow) with
  // the tab and the last step, where a stopped page was
  H.step = 'start';
  setInterval(() => console.debug(`hx-beat tab ${H.tab}, last step ${H.step}`), 1000);
  H.run = async (plan, deadline, every, phase, limit) => {
    try {
      if ((await waitTab(H.tab, 60000)) === null) H.switchFails += 1;
      await sleep(phase);
      let next = performance.now();
      for (const step of plan) {
        H.step = step[0] === 'move' ? step[1] : step.join(' ');
        if (H.stop || performance.now() > deadline) break;
        if (step[0] === 'tab') { await settle(limit); await switchTab(step[1]); next = performance.now(); continue; }
        if (step[0] === 'job') { await settle(limit); await job(step[1], step[2]); next = performance.now(); continue; }
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        if (H.pending) { H.delayed += 1; await settle(limit); }
        if (H.stop || performance.now() > deadline) break;
        move(step[1], step[2], step[3]);
        next = Math.max(next + every, performance.now());
      }
      await settle(limit);
    } catch (e) {
      H.error = String(e && e.stack || e);
    }
    H.finished = true;
  };
  // a last move on the current tab: answered within ``limit`` ms?
  H.probeMove = async (limit) => {
    H.probe = undefined;
    const before = H.answered;
    const opts = MOVES_JS[H.tab][0];
    if (!move(opts[0], opts[1], 3)) { H.probe = false; return; }
    await settle(limit);
    H.probe = H.answered > before;
  };
  return true;
}
"""


def _plan(rng, role: str, seconds: float, tab0: int, n_perm: int, n_group: int) -> list:
    """A session's steps: tab switches every 8-25 moves, a move a second, its job."""
    steps: list = []
    tab = tab0
    if role == "perm":
        # its user watches the progress bar: any Decoding parameter moved cancels the test
        # (by design), so this session makes no moves after starting it
        return [["job", "perm", int(n_perm)]]
    elif role == "group":
        tab = 2
        steps.append(["job", "group", int(n_group)])
    n_moves = int(seconds) + 10
    while n_moves > 0:
        k = int(rng.integers(8, 26))
        options = MOVES[tab]
        if role == "group":  # a seed move would re-run the group on its workers: keep one run
            options = [o for o in options if not o[0].startswith("seed")]
        weights = np.array([o[2] for o in options], float)
        for _ in range(min(k, n_moves)):
            cls, cands, _w = options[int(rng.choice(len(options), p=weights / weights.sum()))]
            steps.append(["move", cls, cands, int(rng.integers(len(cands)))])
        n_moves -= k
        tab = int(rng.choice([t for t in range(3) if t != tab]))
        steps.append(["tab", tab])
    return steps


def _phase(text: str) -> None:
    """Where a long run is (stderr): the last phases wait on the pages."""
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def smaps_by_kind(pid: int) -> dict:
    """The process' resident memory (MB) by kind of mapping, from ``/proc/PID/smaps``:
    ``[heap]``, ``[stack]``, anonymous maps by size (``anon <1 MB``, ``anon 64 MB maps``:
    glibc's thread arenas, other sizes: numpy's large arrays, BLAS buffers...), and
    file-backed maps by file name (shared libraries loaded since). Empty where there is no
    ``/proc``."""
    kinds: dict = {}
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return kinds
    kind = None
    for line in text.splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and not head[0].endswith(":"):
            lo, hi = (int(v, 16) for v in head[0].split("-"))
            name = head[5] if len(head) > 5 else ""
            mb = (hi - lo) / 2**20
            if name.startswith("["):
                kind = name
            elif name:
                kind = "file " + Path(name).name.split(".cpython")[0][:40]
            else:
                # by size: glibc's thread arenas are 64 MB maps, numpy's large arrays
                # and BLAS buffers maps of their own sizes
                kind = "anon <1 MB" if mb < 1 else f"anon {mb:.0f} MB maps"
        elif head[0] == "Rss:" and kind is not None:
            kinds[kind] = kinds.get(kind, 0.0) + int(head[1]) / 1024
    return kinds


def _ratio_note(ratio: float) -> str:
    return f"target within 15%: {'met' if abs(ratio - 1) <= 0.15 else 'NOT met'}"


def run(bench, sessions: int = 16, seconds: float = 120.0, seed: int = 0,
        permutations: int = 10_000, group_subjects: int = 4, settle: float = 60.0,
        answer_timeout: float = 30.0, viewport: tuple = (1400, 900)) -> dict:
    """The hostile-load run; figures go to ``bench.row`` (section ``serve-hostile``)."""
    import psutil
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    bench.section = "serve-hostile"
    prepare(bench)
    port = _free_port()
    cmd, env = server_command(bench, port)
    url = f"http://127.0.0.1:{port}/app"
    lines: list = []
    server = None
    rng = np.random.default_rng(seed)
    n_close = sessions // 4
    order = rng.permutation(sessions)
    closers = [int(i) for i in order[:n_close]]
    perm_session = closers[0] if closers else None
    group_session = int(order[n_close]) if sessions > n_close else None
    tabs0 = rng.integers(0, 3, sessions)
    if perm_session is not None:
        tabs0[perm_session] = 1    # arrives on the Decoding tab
    if group_session is not None:
        tabs0[group_session] = 2   # arrives on the Connectivity tab
    close_at = dict(zip(closers, np.sort(rng.uniform(0.3, 0.7, n_close)) * seconds))
    phases = rng.uniform(0, 1000, sessions)
    roles = {i: "perm" if i == perm_session else "group" if i == group_session else
             "close" if i in closers else "stay" for i in range(sessions)}
    plans = [_plan(np.random.default_rng([seed, i]), roles[i], seconds, int(tabs0[i]),
                   permutations, group_subjects) for i in range(sessions)]
    moves_js = "const MOVES_JS = " + repr({k: [[c, v] for c, v, _ in opts]
                                             for k, opts in MOVES.items()}) + ";"
    driver = DRIVER.replace("(cfg) => {", "(cfg) => {\n  " + moves_js, 1)
    samples: list = []   # (time, server + children MB, server MB)
    sampling = threading.Event()

    def sample():
        proc = psutil.Process(server.pid)
        while not sampling.is_set():
            try:
                samples.append((time.monotonic(), _rss(server.pid), proc.memory_info().rss / 2**20))
            except psutil.Error:
                return
            sampling.wait(0.5)

    def cpu_all() -> float:
        total = 0.0
        proc = psutil.Process(server.pid)
        for p in [proc, *proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            try:
                server, (_, cold, _, _), first = _cold_start(browser, cmd, env, port, url, lines)
            except BaseException:
                path = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_serve_hostile.log"
                path.write_text("".join(lines))
                print(f"the server's first page failed; its log: {path}\n"
                      + "".join(lines)[-1500:], file=sys.stderr)
                raise
            bench.row("server start: launch to first interactive page", cold, "s", "warm-up follows")
            deadline = time.monotonic() + 180
            while not any("caches warm" in line for line in lines) and time.monotonic() < deadline:
                first.wait_for_timeout(500)
            first.context.close()
            _wait_idle(server.pid)
            rss_start = _rss(server.pid)
            rss_start_main = psutil.Process(server.pid).memory_info().rss / 2**20
            maps_start = smaps_by_kind(server.pid)
            threading.Thread(target=sample, daemon=True).start()
            control = browser.new_page()   # about:blank, no session: pumps Playwright's events
            control.route(EXTERNAL, lambda r: r.abort())

            # all sessions arrive at once, each on its own first tab
            contexts, pages, page_errors = [], [], [[] for _ in range(sessions)]
            beats = {}   # page -> (time, text) of its last heartbeat
            t_open = time.perf_counter()
            for i in range(sessions):
                ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
                ctx.add_init_script(WS_HOOK)
                pg = ctx.new_page()
                pg.route(EXTERNAL, lambda r: r.abort())
                pg.on("pageerror", lambda exc, i=i: page_errors[i].append(
                    f"{exc}\n{getattr(exc, 'stack', '') or ''}"))
                pg.on("console", lambda msg, i=i: beats.__setitem__(i, (time.monotonic(), msg.text))
                      if msg.text.startswith("hx-beat") else None)
                pg.goto(f"{url}?tab={TAB_NAMES[int(tabs0[i])]}", wait_until="commit")
                contexts.append(ctx)
                pages.append(pg)
            failed_open = 0
            for i, pg in enumerate(pages):
                try:
                    pg.wait_for_function(READY, timeout=180_000)
                    pg.evaluate(driver, {"tab": int(tabs0[i])})
                    pg.wait_for_function("() => window.__hx.ready()", timeout=180_000,
                                         polling=200)
                except PlaywrightError:
                    failed_open += 1
            opened = time.perf_counter() - t_open
            bench.row(f"{sessions} sessions arriving at once: all interactive", opened, "s",
                      f"{failed_open} failed to open")

            cpu0, wall0 = cpu_all(), time.monotonic()
            for i, pg in enumerate(pages):
                try:
                    pg.evaluate("([plan, seconds, every, phase, limit]) => {"
                                " window.__hx.run(plan, performance.now() + seconds * 1000,"
                                " every, phase, limit); return true; }",
                                [plans[i], float(seconds), 1000.0, float(phases[i]),
                                 float(answer_timeout) * 1000])
                except PlaywrightError:
                    pass  # a page that did not open: counted as lost below
            start = time.monotonic()
            closed: dict = {}
            perm_running_at_close, perm_job, perm_state = None, {}, {}
            while time.monotonic() - start < seconds:
                now = time.monotonic() - start
                for i, when in close_at.items():
                    if i in closed or now < when:
                        continue
                    if i == perm_session:
                        try:
                            perm_state, perm_job = pages[i].evaluate(
                                "() => [window.__hx.permState(), window.__hx.jobs.perm || {}]")
                            perm_running_at_close = perm_state.get("running")
                        except PlaywrightError:
                            perm_running_at_close = None
                    contexts[i].close()   # abruptly: no clean-up, the test may be running
                    closed[i] = now
                control.wait_for_timeout(200)
            alive = [i for i in range(sessions) if i not in closed]
            _phase("moves over: waiting for the pages' last moves")
            unresponsive = {}   # page -> its role and last heartbeat
            # a page whose script stopped answering would hang the run (Playwright's calls
            # on it never return, timeouts included): known by its missing heartbeats
            control.wait_for_timeout(3000)
            for i in alive:
                beat = beats.get(i, (0.0, "never"))
                if time.monotonic() - beat[0] > 10:
                    unresponsive[i] = f"{roles[i]} ({beat[1]}, {time.monotonic() - beat[0]:.0f} s ago)"
                    _phase(f"page {i} unresponsive: {unresponsive[i]}")
                    continue
                try:
                    pages[i].evaluate("() => { window.__hx.stop = true; }")
                except PlaywrightError:
                    pass
            # one deadline for all the pages (not one each); polled by timer: a busy
            # page's animation frames can be too rare for Playwright's default polling
            finish_by = time.monotonic() + answer_timeout + 60
            for i in alive:
                if i in unresponsive:
                    continue
                try:
                    pages[i].wait_for_function(
                        "() => window.__hx.finished", polling=250,
                        timeout=max(1.0, finish_by - time.monotonic()) * 1000)
                except PlaywrightError:
                    pass
            cores_run = (cpu_all() - cpu0) / (time.monotonic() - wall0)
            stats = {}
            for i in range(sessions):
                if i in closed:
                    continue
                if i in unresponsive:
                    stats[i] = {"error": "page unresponsive"}
                    continue
                try:
                    stats[i] = pages[i].evaluate(
                        "() => { const H = window.__hx; return {lat: H.lat, srv: H.srv, moves: H.moves,"
                        " answered: H.answered, unanswered: H.unanswered, delayed: H.delayed, lost: H.lost,"
                        " missing: H.missing, switches: H.switches, switchFails: H.switchFails,"
                        " switchLat: H.switchLat, jobs: H.jobs, error: H.error, finished: H.finished,"
                        " ws: window.__ws}; }")
                except PlaywrightError as exc:
                    stats[i] = {"error": str(exc)}
            # lost sessions: a websocket closed, or no answer to a last probe move
            _phase("probing the sessions that stay")
            lost = []
            for i in alive:
                st = stats.get(i, {})
                ws = st.get("ws") or {}
                if "moves" not in st or ws.get("closed") or not ws.get("opened"):
                    lost.append(i)
                    continue
                try:
                    pages[i].evaluate("() => { window.__hx.probeMove(20000); return true; }")
                    pages[i].wait_for_function("() => window.__hx.probe !== undefined",
                                               timeout=30_000, polling=250)
                    if not pages[i].evaluate("() => window.__hx.probe"):
                        lost.append(i)
                except PlaywrightError:
                    lost.append(i)
            # the group run finished? (its session's Connectivity tab shows the group summary)
            group_text, group_wait, group_status = None, None, None
            if group_session is not None and group_session in alive \
                    and group_session not in unresponsive:
                _phase("waiting for the group run")
                pg = pages[group_session]
                t0 = time.monotonic()
                try:
                    pg.evaluate("() => { window.__hx.switchTab(2); return true; }")
                    pg.wait_for_function(
                        "() => { const t = window.__hx.groupText(); return t !== null &&"
                        " /^\\d+ subjects/.test(t); }", timeout=240_000, polling=500)
                    group_wait = time.monotonic() - t0
                except PlaywrightError:
                    pass
                try:
                    group_text, group_status = pg.evaluate(
                        "() => [window.__hx.groupText(), window.__hx.textOf('group-status')]")
                except PlaywrightError:
                    pass
            for i in alive:
                contexts[i].close()
            t_last = time.monotonic()
            _phase(f"all sessions closed: settling for {settle:g} s")
            rss_peak = max([s[1] for s in samples] + [rss_start])
            # background work must have stopped: CPU from 10 to 15 s after the last close
            control.wait_for_timeout(10_000)
            c0, w0 = cpu_all(), time.monotonic()
            control.wait_for_timeout(5_000)
            cores_after = (cpu_all() - c0) / (time.monotonic() - w0)
            rest = settle - (time.monotonic() - t_last)
            if rest > 0:
                control.wait_for_timeout(rest * 1000)
            rss_end = _rss(server.pid)
            rss_end_main = psutil.Process(server.pid).memory_info().rss / 2**20
            maps_end = smaps_by_kind(server.pid)
            sampling.set()
            rss_peak = max([s[1] for s in samples] + [rss_peak, rss_end])
            n_lines = len(lines)
        finally:
            sampling.set()
            browser.close()
            if server is not None:
                _stop(server)

    # ---- report ------------------------------------------------------------------------
    log = "".join(lines[:n_lines])
    # one block per traceback chain ("During handling of the above exception" continues one)
    parts = log.split("Traceback (most recent call last):")
    blocks = []
    for before, part in zip(parts[:-1], parts[1:]):
        tail = before.rstrip()
        if blocks and (tail.endswith("another exception occurred:")
                       or tail.endswith("direct cause of the following exception:")):
            blocks[-1] += part
        else:
            blocks.append(part)
    gone = sum(1 for b in blocks if "WebSocketClosedError" in b or "StreamClosedError" in b)
    # ERROR lines, and the callbacks Panel reports failed as a WARNING (e.g. a session's
    # on_session_destroyed hook: "... callback <...> failed with following error: ...")
    error_lines = [ln for ln in log.splitlines()
                   if "ERROR" in ln or ("callback" in ln and "failed with following error" in ln)]
    errors_logged = len(blocks) - gone + len(error_lines)
    lat_all = [(t, ms / 1000.0) for st in stats.values() for t, ms in st.get("lat", [])]
    lat = np.array([x for _, x in lat_all])
    moves = sum(st.get("moves", 0) for st in stats.values())
    unanswered = sum(st.get("unanswered", 0) for st in stats.values())
    delayed = sum(st.get("delayed", 0) for st in stats.values())
    missing = sum(st.get("missing", 0) for st in stats.values())
    switches = sum(st.get("switches", 0) for st in stats.values())
    switch_fails = sum(st.get("switchFails", 0) for st in stats.values())
    switch_lat = np.array([x for st in stats.values() for x in st.get("switchLat", [])]) / 1000
    js_errors = [st["error"] for st in stats.values() if st.get("error")]
    q = (lambda a, p: float(np.percentile(a, p)) if a.size else float("nan"))
    n_alive = sessions - len(closed)
    bench.row("plan", f"{sessions} sessions x {seconds:g} s", "",
              f"seed {seed}; {len(closed)} closed abruptly at "
              + ", ".join(f"{t:.0f}" for t in sorted(closed.values())) + " s")
    app_blocks = [b for b in blocks if "WebSocketClosedError" not in b and "StreamClosedError" not in b]
    # each chain's exception line: the first line after its frames that is not indented
    kinds = sorted({next((ln for ln in b.strip("\n").splitlines() if ln and not ln[0].isspace()),
                         "")[:110] for b in app_blocks}
                   | {ln.split("failed with following error:")[-1].strip()[:110]
                      for ln in error_lines if "failed with following error" in ln})
    bench.row("server log errors", errors_logged, "",
              f"{len(app_blocks)} traceback chains + {len(error_lines)} ERROR or failed-callback "
              f"lines; target 0"
              + "".join(f"\n      {k}" for k in kinds[:5]))
    bench.row("server log: clients gone with a message in flight", gone, "",
              "tornado Stream/WebSocketClosedError, not an app error")
    bench.row("lost sessions", len(lost), "",
              f"of the {n_alive} that stayed: websocket closed or no answer to a probe move; "
              "target 0")
    bench.row("pages unresponsive at the end", len(unresponsive), "",
              "no heartbeat for 10 s: their script stopped (counted lost): "
              + (", ".join(f"{role}" for role in unresponsive.values()) or "none"))
    bench.row("moves sent (sessions that stayed)", moves, "",
              f"{missing} not sent (widget or summary not found)")
    bench.row("moves unanswered", unanswered, "",
              f"no summary update within {answer_timeout:g} s; target 0")
    for i, st in sorted(stats.items()):   # which ones: widget, values, summary before / after
        for m in st.get("lost", []):
            bench.row(f"  unanswered: session {i}, {TAB_NAMES[m['tab']]} {m['widget']}",
                      f"{m['from']} -> {m['to']}", "",
                      f"at {m['at']:.0f} s (page clock); widgets of that class "
                      f"{m.get('copies')}; active tab {m.get('active')}; server's last message "
                      f"{m['lastIn']} ms after the move; page idle {m['idle']}; summary "
                      f"{m['before']!r} -> {m['now']!r}"[:300])
    bench.row("moves answered after more than 10 s", int((lat > 10).sum()), "",
              "answered, but slowly")
    bench.row("moves answered after more than 1 s", int((lat > 1).sum()), "",
              f"{delayed} times a page waited for an answer before its next move")
    bench.row("move-to-update latency, median", q(lat, 50), "s", "in-page, all tabs")
    bench.row("move-to-update latency, p95", q(lat, 95), "s", "reported (issue 13); see the split")
    srv = np.array([x for st in stats.values() for x in st.get("srv", []) if x is not None]) / 1000
    bench.row("  of which the server's answer arriving, median / p95", q(srv, 50), "s",
              f"p95 {q(srv, 95):.3f} s: the move to the last message in before the update; the "
              "rest is the page applying and drawing it (pages and server share the cores)")
    for t, name in enumerate(TAB_NAMES):
        sub = np.array([x for tab, x in lat_all if tab == t])
        bench.row(f"  {name}: latency median / p95", q(sub, 50), "s",
                  f"p95 {q(sub, 95):.3f} s over {sub.size} moves")
    bench.row("tab switches", switches, "",
              f"{switch_fails} failed; to the tab's summary: median {q(switch_lat, 50):.2f} s, "
              f"p95 {q(switch_lat, 95):.2f} s")
    page_msgs = [m for i in stats for m in page_errors[i]]   # sessions that stayed
    kinds = sorted({m.splitlines()[0][:60] for m in page_msgs + js_errors if m})
    bench.row("JavaScript errors in the pages", len(page_msgs) + len(js_errors), "",
              "sessions that stayed; " + "; ".join(kinds)[:200])
    if page_msgs or js_errors:   # the first of each kind with its stack: where it came from
        firsts = {}
        for m in page_msgs + js_errors:
            firsts.setdefault(m.splitlines()[0][:60], m)
        path = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_serve_hostile_js.txt"
        path.write_text("\n\n".join(firsts.values()))
        bench.row("JavaScript errors' stacks saved", str(path), "")
    bench.row("permutation test running when its session was closed",
              {True: "yes", False: "no", None: "unknown"}[perm_running_at_close], "",
              f"{permutations} permutations; session closed at "
              f"{closed.get(perm_session, float('nan')):.0f} s; started in the page: "
              f"{perm_job.get('started')}; progress then {perm_state.get('progress')} / 1000, "
              f"status {perm_state.get('status')!r}")
    group_jobs = stats.get(group_session, {}).get("jobs", {}).get("group", {})
    bench.row("group run finished", "yes" if group_text and group_text[0].isdigit() else "no", "",
              f"{group_jobs.get('n', group_subjects)} subjects; started: {group_jobs.get('started')}; "
              + (f"waited {group_wait:.0f} s after the run; " if group_wait else "")
              + repr((group_text or "")[:70]) + f"; status {group_status!r}")
    bench.row("server CPU during the run (cores busy)", cores_run, "",
              "server and its children (Dask workers)")
    bench.row("server CPU 10-15 s after the last session closed", cores_after, "cores",
              "background work stopped: near 0")
    bench.row("server RSS at start (after warm-up, no session)", rss_start, "MB",
              f"main process alone {rss_start_main:.0f} MB")
    bench.row("server RSS peak", rss_peak, "MB", "server and children, sampled every 0.5 s")
    ratio = rss_end / rss_start
    bench.row(f"server RSS {settle:g} s after the last session closed", rss_end, "MB",
              f"main process alone {rss_end_main:.0f} MB "
              f"({rss_end_main / rss_start_main:.2f} x its start)")
    bench.row("server RSS after / at start", ratio, "", _ratio_note(ratio))
    if maps_start and maps_end:   # where the main process' growth lies
        grown = sorted(((maps_end.get(k, 0.0) - maps_start.get(k, 0.0), k)
                        for k in set(maps_start) | set(maps_end)), reverse=True)
        bench.row("main process RSS growth by mapping", sum(g for g, _ in grown), "MB",
                  "; ".join(f"{k} {g:+.0f}" for g, k in grown if abs(g) >= 2)[:400])
    if errors_logged or gone or lost or unanswered:
        path = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_serve_hostile.log"
        path.write_text(log)
        bench.row("server log saved", str(path), "", "; ".join(error_lines[:3])[:200])
    return {"errors": errors_logged, "lost": len(lost), "unanswered": unanswered,
            "p95": q(lat, 95), "ratio": ratio, "cpu_after": cores_after}
