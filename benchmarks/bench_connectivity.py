"""Seed connectivity: a new seed on cached cleaned data vs the seed's whole pipeline.

Rows (``full``: 168 volumes, ~29k brain voxels on the MNI 4 mm grid):

* the development-like dataset: generation (default subjects, and 20 subjects
  for the group benchmark), loading through ``fetch_development_fmri``, reading
  one subject;
* the seed's pipeline (``NiftiSpheresMasker`` + ``NiftiMasker``, smoothing,
  band-pass, confounds; the file as it is, as the seed runs it);
* cleaning for one preprocessing setting: the engine (``clean_data``, both
  matrices) next to nilearn's ``NiftiMasker`` on the same data;
* a new seed on the cached cleaned data (sphere mean + one product), and the
  same through ``SeedConnectivity`` with the volume and peaks the app draws;
* ratios (target: a new seed >= 2,000x faster than the pipeline) and the
  largest difference from the seed's numbers.
"""

from __future__ import annotations

import itertools
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def run(bench) -> None:
    from analysis import connectivity as C
    from analysis.connectivity.reference import reference_seed_map
    from analysis.datasets import development as dev

    warnings.filterwarnings("ignore")
    size = bench.size
    repeat_slow = 1 if bench.quick else 2

    # ---- dataset ----------------------------------------------------------------------
    with tempfile.TemporaryDirectory(prefix="fmri-explorer-bench-conn-") as tmp:
        start = time.perf_counter()
        dev.generate(Path(tmp) / "default", size=size)
        bench.row(f"generate development-like ({size}, "
                  f"{dev.SIZES[size]['n_subjects']} subjects)", time.perf_counter() - start, "s",
                  "target < 15 s (full)")
        if not bench.quick:
            start = time.perf_counter()
            dev.generate(Path(tmp) / "twenty", size=size, n_subjects=20)
            bench.row(f"generate 20 subjects ({size})", time.perf_counter() - start, "s",
                      "for the group benchmark")
    data_dir = bench.data_dir("connectivity")
    bench.time("load: fetch_development_fmri (all subjects, no network)",
               lambda: dev.load(data_dir), repeat=3)
    files = dev.subject_files(data_dir, subject=0)
    import nibabel as nib

    bench.time("load: read one subject's 4D image", lambda: nib.load(files["func"]).get_fdata(),
               repeat=3)

    # ---- the seed's pipeline --------------------------------------------------------------
    seed, radius = C.PCC_MM, C.RADIUS_MM
    bench.time("seed pipeline: spheres + brain masker (float32 file)",
               lambda: reference_seed_map(files["func"], seed, radius,
                                          confounds=files["confounds"], dtype=None),
               repeat=repeat_slow)
    r32, _ = reference_seed_map(files["func"], seed, radius, confounds=files["confounds"],
                                dtype=None)
    r64, masker = reference_seed_map(files["func"], seed, radius, confounds=files["confounds"])

    # ---- cleaning once per setting ----------------------------------------------------------
    subject = C.load_subject(files["func"], confounds=files["confounds"], t_r=files["t_r"])
    settings = C.CleaningSettings(confound_columns=tuple(subject.confound_names))
    bench.time("clean: engine (brain + seed domain, float64)",
               lambda: C.clean_data(subject, settings), repeat=repeat_slow)
    from nilearn.maskers import NiftiMasker

    img = nib.load(files["func"])
    conf = subject.confounds.to_numpy()

    def nilearn_masker():
        NiftiMasker(mask_img=subject.mask_img, smoothing_fwhm=6, detrend=True,
                    standardize="zscore_sample", low_pass=0.1, high_pass=0.01,
                    t_r=subject.t_r).fit_transform(img, confounds=conf)

    bench.time("clean: nilearn NiftiMasker (brain only, same settings)", nilearn_masker,
               repeat=repeat_slow)
    bench.ratio("cleaning: nilearn brain masker / engine (both matrices)",
                "clean: nilearn NiftiMasker (brain only, same settings)",
                "clean: engine (brain + seed domain, float64)")

    # ---- a new seed ---------------------------------------------------------------------
    data = C.clean_data(subject, settings)
    fast = C.seed_correlation(data, seed, radius)
    bench.row("max |r_engine - r_seed| (seed on float64 image)", float(np.abs(fast.r - r64).max()),
              "", "test bound 1e-5")
    bench.row("max |r_engine - r_seed| (seed on the float32 file)",
              float(np.abs(fast.r - r32).max()), "", "nilearn's own f32 vs f64 differ as much")
    brain = data.mask
    ijk = np.argwhere(brain)[:: max(1, int(brain.sum()) // 200)]
    seeds = itertools.cycle([tuple(v) for v in nib.affines.apply_affine(data.affine, ijk)])
    bench.time("new seed: sphere mean + one product (cached data)",
               lambda: C.seed_correlation(data, next(seeds), radius), repeat=31, number=5)
    bench.ratio("new seed vs the seed's whole pipeline",
                "seed pipeline: spheres + brain masker (float32 file)",
                "new seed: sphere mean + one product (cached data)", target=2000)
    sc = C.SeedConnectivity(data_dir=str(data_dir))
    sc.ensure()

    def param_move():
        sc.seed_mm = next(seeds)
        sc.r_map(), sc.peaks(), sc.summary()

    bench.time("new seed via SeedConnectivity (+ r volume, peaks, summary)", param_move,
               repeat=21, number=3)
    bench.row("brain voxels x volumes", f"{data.n_voxels} x {data.n_volumes}", "")
    browser_latency(bench)


CLICKS = [(-30.0, -20.0), (30.0, -20.0), (0.0, 40.0), (-40.0, -60.0), (40.0, -60.0), (0.0, -52.0)]
INSTALL = """(host) => {
  window.__lat = {down: null, results: []};
  document.addEventListener('pointerdown', () => { window.__lat.down = performance.now(); }, true);
  new MutationObserver(() => {
    if (window.__lat.down !== null) {
      window.__lat.results.push(performance.now() - window.__lat.down);
      window.__lat.down = null;
    }
  }).observe(host.shadowRoot || host, {subtree: true, childList: true, characterData: true});
}"""


def browser_latency(bench, n_clicks: int = 18) -> None:
    """Click to updated map in the served app, measured in Chromium (in the page:
    pointerdown -> the summary's DOM change; the map is sent before the summary)."""
    import os
    import statistics

    if not Path("/usr/bin/chromium").exists():
        bench.row("click to redrawn map (Chromium)", "skipped", "", "no /usr/bin/chromium")
        return
    from playwright.sync_api import sync_playwright

    from dashboard.app import create_app
    from tests.browser.conftest import ARGS, EXTERNAL, READY, free_port, serve_app, wait_http
    from tests.browser.helpers import text_of
    from tests.browser.test_connectivity import visible_figure_point

    os.environ["FMRI_EXPLORER_SIZE"] = bench.size
    port = free_port()
    server = serve_app(lambda: create_app(size=bench.size), port)
    try:
        wait_http(f"http://127.0.0.1:{port}/liveness")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.route(EXTERNAL, lambda route: route.abort())
            page.goto(f"http://127.0.0.1:{port}/?tab=connectivity", timeout=300_000)
            page.wait_for_function(READY, timeout=300_000)
            summary = page.locator(".connectivity-summary").first
            deadline = time.monotonic() + 300
            while ("seed (" not in text_of(page, ".connectivity-summary")
                   and time.monotonic() < deadline):
                time.sleep(0.2)
            page.locator(".slice-axial canvas >> visible=true").first.wait_for(timeout=60_000)
            time.sleep(1.0)
            summary.evaluate(INSTALL)
            for n in range(n_clicks):
                x, y = CLICKS[n % len(CLICKS)]
                page.mouse.click(*visible_figure_point(page, "slice-axial", x, y))
                deadline = time.monotonic() + 30
                while (page.evaluate("() => window.__lat.results.length") <= n
                       and time.monotonic() < deadline):
                    time.sleep(0.02)
                page.wait_for_function(READY, timeout=60_000)   # one click at a time
                time.sleep(0.3)
            results = page.evaluate("() => window.__lat.results")
            page.screenshot(path=str(Path(tempfile.gettempdir()) /
                                     f"connectivity-{bench.size}.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
    if results:
        bench.row("click to redrawn map in Chromium (median)", statistics.median(results) / 1000,
                  "s", f"{len(results)} clicks, range {min(results):.0f}-{max(results):.0f} ms; "
                       "target < 150 ms")
