"""Encoding (Miyawaki): the seed's Ridge loop vs cached per-fold decompositions vs himalaya.

Rows, side by side in one run on the same samples and folds:

- the seed's loop (``Ridge(alpha=100)`` + ``KFold(10)`` + ``r2_score``), float64 and float32;
- building the per-fold decompositions once (the structural step);
- one alpha change on the cached decompositions (the slider step), float64 and float32;
- a 20-alpha path: the sklearn loop over alphas, ``himalaya.ridge.RidgeCV`` (numpy
  backend, same folds) and the cached decompositions;
- the largest R^2 difference of each fast path from its reference;
- the compute of the tab's structural changes (issue 15): decomposing K=5 folds and
  leave-one-run-out, the 20-alpha path on cached decompositions, and a whole new
  setting as the tab's job computes it (new folds, new lag: decomposition, R^2 at alpha,
  alpha path, ridge field of the voxel), the median of several on cold caches;
- in the served tab (Chromium, measured in the page): alpha slider -> summary line, and
  -> the last update of the views (map, histogram, alpha path, receptive field, time course).

BLAS runs on one thread for every path (fair, and on 2 shared cores OpenBLAS
threads mostly contend).
"""

from __future__ import annotations

import numpy as np


def run(bench):
    from threadpoolctl import threadpool_limits

    import analysis.encoding.engine  # noqa: F401 - load every BLAS library before limiting them

    with threadpool_limits(1):
        _run(bench)
    app_latency(bench)


def _run(bench):
    from analysis.datasets import miyawaki
    from analysis.encoding.engine import RidgeCV, make_folds
    from analysis.encoding.reference import reference_r2

    data_dir = bench.data_dir("encoding")
    miyawaki.load(data_dir)  # clean once into the npy cache
    bench.time("load cleaned runs (npy cache)", lambda: miyawaki.load(data_dir), repeat=3)
    y, x, runs, _ = miyawaki.load(data_dir).lagged(2)
    bench.row("samples x voxels", f"{y.shape[0]}x{y.shape[1]}")
    folds = make_folds(len(x), "kfold", 10)
    alpha = 100.0
    y64, y32, x32 = y.astype(np.float64), y.astype(np.float32), x.astype(np.float32)

    # ---- one alpha ----------------------------------------------------------------------
    # The machine is shared: the seed loop and the alpha change are timed in alternation,
    # so that both see the same load, and each reports its median.
    ref64 = reference_r2(x, y64, folds, alpha)
    eng64 = RidgeCV(x, y64, folds, dtype=np.float64)
    eng32 = RidgeCV(x, y32, folds, dtype=np.float32)
    bench.time("decompose 10 folds once, f64", lambda: RidgeCV(x, y64, folds, dtype=np.float64))
    bench.time("decompose 10 folds once, f32", lambda: RidgeCV(x, y32, folds, dtype=np.float32))
    alphas_cycle = iter(np.tile([100.0, 90.0, 110.0], 1000))
    _interleaved(bench, {
        "seed loop Ridge(alpha=100) 10 folds, f64": (lambda: reference_r2(x, y64, folds, alpha), 1),
        "one alpha change on cached decompositions, f64":
            (lambda: eng64.r2(next(alphas_cycle)).mean(axis=0), 5),
        "seed loop Ridge(alpha=100) 10 folds, f32": (lambda: reference_r2(x32, y32, folds, alpha), 1),
        "one alpha change on cached decompositions, f32":
            (lambda: eng32.r2(next(alphas_cycle)).mean(axis=0), 5),
    }, rounds=5 if bench.size == "full" else 3)
    bench.row("max |R2 fast - seed| f64", float(np.abs(eng64.r2(alpha) - ref64).max()), "",
              "per fold and voxel")
    bench.row("max |R2 fast f32 - seed f64|", float(np.abs(eng32.r2(alpha) - ref64).max()), "")
    bench.ratio("alpha change vs seed loop, f64", "seed loop Ridge(alpha=100) 10 folds, f64",
                "one alpha change on cached decompositions, f64", target=50)
    bench.ratio("alpha change vs seed loop, f32", "seed loop Ridge(alpha=100) 10 folds, f32",
                "one alpha change on cached decompositions, f32", target=50)

    # ---- 20-alpha path -------------------------------------------------------------------
    alphas = np.logspace(-1, 5, 20)
    ref_path = []
    bench.row("sklearn loop over 20 alphas", _timed(lambda: ref_path.extend(
        reference_r2(x, y64, folds, a).mean(axis=0) for a in alphas)), "s", "one run")
    ref_path = np.stack(ref_path)
    fast_path = eng64.r2_path(alphas).mean(axis=1)
    bench.time("20-alpha path on cached decompositions (incl. decomposing)",
               lambda: RidgeCV(x, y64, folds).r2_path(alphas), repeat=3)
    bench.row("max |path fast - sklearn| over 20 alphas", float(np.abs(fast_path - ref_path).max()))

    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import r2_score

    set_backend("numpy", on_error="raise")
    # scored by R^2 (himalaya's default is the negative MSE) so its cv_scores_ are comparable
    model = HimalayaRidgeCV(alphas=alphas, fit_intercept=True, cv=folds,
                            solver_params={"score_func": r2_score})
    bench.row("himalaya RidgeCV 20 alphas (numpy backend, same folds)",
              _timed(lambda: model.fit(x, y64)), "s", "one run, includes its final refit")
    best_fast = fast_path.max(axis=0)
    bench.row("max |best-alpha R2: fast - himalaya cv_scores_|",
              float(np.abs(best_fast - np.asarray(model.cv_scores_)).max()))
    same = np.isclose(np.asarray(model.best_alphas_, float), alphas[fast_path.argmax(axis=0)],
                      rtol=1e-5)
    bench.row("voxels with the same best alpha as himalaya", f"{same.mean():.1%}")
    bench.ratio("20-alpha path vs sklearn loop", "sklearn loop over 20 alphas",
                "20-alpha path on cached decompositions (incl. decomposing)")
    bench.ratio("20-alpha path vs himalaya RidgeCV",
                "himalaya RidgeCV 20 alphas (numpy backend, same folds)",
                "20-alpha path on cached decompositions (incl. decomposing)", target=20)
    structural(bench, x, y, runs)


def structural(bench, x, y, runs):
    """The compute behind the tab's structural changes (issue 15, "Speed of structural
    changes"): what a new folds count, CV scheme or lag costs the server before the views
    are drawn (the served times are benchmarks/bench_structural.py's)."""
    from analysis.encoding import EncodingAnalysis, clear_caches
    from analysis.encoding.engine import RidgeCV, make_folds

    repeat = 5 if bench.size == "full" else 3
    for name, folds in (("K=5", make_folds(len(x), "kfold", 5)),
                        ("leave-one-run-out", make_folds(len(x), "run", runs=runs))):
        bench.time(f"decompose {name} once, f64 (float32 responses)",
                   lambda folds=folds: RidgeCV(x, y, folds), repeat=repeat)
    eng = RidgeCV(x, y, make_folds(len(x), "kfold", 10))
    alphas = np.logspace(-2, 5, 20)
    bench.time("20-alpha path on cached decompositions (10 folds)",
               lambda: eng.r2_path(alphas), repeat=repeat)
    import os
    import tempfile

    from analysis.config import DATA_ENV
    from analysis.encoding import model

    data_dir = str(bench.data_dir("encoding"))
    EncodingAnalysis(data_dir=data_dir).data()   # read once and kept, as in the server
    stores = (model.ENGINES, model.R2, model.PATHS, model.INDEX, model.SAMPLES)

    def job(**change):
        # the tab's job for a setting not seen: no decomposition in memory nor on disk
        # (the tab writes the disk cache after the views are drawn: not timed here)
        for store in stores:
            store.clear()
        a = EncodingAnalysis(data_dir=data_dir, **change)
        a.engine()
        a.r2_folds()
        a.alpha_path()
        a.ridge_receptive_field(0)

    saved = os.environ.get(DATA_ENV), model._save_engine
    with tempfile.TemporaryDirectory() as home:
        os.environ[DATA_ENV] = home          # an empty disk cache
        model._save_engine = lambda *args, **kwargs: None
        try:
            for label, change in (("new folds (K=7)", dict(n_folds=7)),
                                  ("new lag (3)", dict(lag=3)),
                                  ("new CV scheme (runs)", dict(cv="run"))):
                bench.time(f"structural change compute: {label}",
                           lambda c=change: job(**c), repeat=repeat)
        finally:
            model._save_engine = saved[1]
            if saved[0] is None:
                os.environ.pop(DATA_ENV, None)
            else:
                os.environ[DATA_ENV] = saved[0]
            clear_caches()


def _interleaved(bench, fns: dict, rounds: int) -> None:
    """Time several functions in alternation; one median row each (``name: (fn, calls per round)``)."""
    import statistics
    import time

    samples = {name: [] for name in fns}
    for name, (fn, _) in fns.items():  # warm up
        fn()
    for _ in range(rounds):
        for name, (fn, calls) in fns.items():
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    for name, values in samples.items():
        bench.row(name, statistics.median(values), "s", f"median of {len(values)}, interleaved")


def _timed(fn) -> float:
    import time

    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


LATENCY_JS = """async ([cls, val]) => {
  const seen = new Set(); const views = [];
  const walk = v => { if (!v || seen.has(v)) return; seen.add(v); views.push(v);
    if (v.child_views) for (const c of v.child_views) walk(c); };
  [...Bokeh.index.all_views()].forEach(walk);
  const slider = views.find(v => (v.model.css_classes || []).includes(cls));
  const find = (root) => { for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains('summary')) return el;
      if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f; } } return null; };
  const summary = find(document);
  const doc = Bokeh.documents[0];
  let last = null, text = null;
  const cb = () => { last = performance.now(); };
  doc.on_change(cb);
  const obs = new MutationObserver(() => { if (text === null) text = performance.now(); });
  obs.observe(summary.shadowRoot, {subtree: true, childList: true, characterData: true});
  const t0 = performance.now();
  slider.model.value = val;
  const deadline = t0 + 10000;
  while (performance.now() < deadline) {   // until the text changed and 300 ms of quiet
    await new Promise(r => setTimeout(r, 20));
    if (text !== null && last !== null && performance.now() - last > 300) break;
  }
  obs.disconnect(); doc.remove_on_change(cb);
  return text === null ? null : [text - t0, (last || text) - t0];
}"""


def app_latency(bench, n: int = 12) -> None:
    """Serve the Encoding tab alone and time alpha-slider moves in Chromium (in the page)."""
    import os
    import shutil
    import statistics
    import time

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    try:
        import panel as pn
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        bench.row("app latency", "skipped", "", f"{exc}")
        return
    if not shutil.which(chromium) and not os.path.exists(chromium):
        bench.row("app latency", "skipped", "", f"no Chromium at {chromium}")
        return
    from dashboard.encoding import EncodingTab
    from tests.browser.conftest import ARGS, EXTERNAL, READY, free_port, wait_http

    os.environ["FMRI_EXPLORER_SIZE"] = bench.size
    bench.data_dir("encoding")
    pn.extension(notifications=True)
    start = time.perf_counter()
    EncodingTab()
    bench.row("app: first Encoding tab (load + decompose)", time.perf_counter() - start, "s")
    start = time.perf_counter()
    EncodingTab()
    bench.row("app: another session's Encoding tab (shared cache)", time.perf_counter() - start, "s")
    port = free_port()
    server = pn.serve(EncodingTab, port=port, address="127.0.0.1",
                      websocket_origin=[f"127.0.0.1:{port}"], threaded=True, show=False,
                      liveness=True, start=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/liveness")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route(EXTERNAL, lambda route: route.abort())
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function(READY, timeout=120_000)
            page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
            time.sleep(1.0)
            texts, views = [], []
            for value in np.tile([1.0, 1.5, 2.0, 2.5, 3.0, 2.2], n // 6 + 1)[:n]:
                out = page.evaluate(LATENCY_JS, ["alpha-slider", float(value)])
                if out is not None:
                    texts.append(out[0] / 1000)
                    views.append(out[1] / 1000)
            browser.close()
    finally:
        server.stop()
    bench.row("app: alpha slider -> map, histogram and summary (Chromium)",
              statistics.median(texts), "s", f"median of {len(texts)}; target < 150 ms")
    bench.row("app: alpha slider -> all views updated (Chromium)", statistics.median(views), "s",
              f"median of {len(views)}; the voxel's views follow in a second message")
