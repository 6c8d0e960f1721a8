"""Group seed connectivity: serial loop vs a LocalCluster of 2 workers, and a seed move.

20 synthetic subjects (generated once into their own data_dir beside the
cache's synthetic data). Timed side by side on the same subjects:

* the plain serial loop (:func:`analysis.group.serial_seed_maps`: load, clean,
  seed map, one subject after the other, in this process);
* the same on a ``LocalCluster`` of 2 worker processes (cluster start-up
  reported apart), from nothing cleaned;
* a seed move once the subjects are cleaned on the workers (only the cheap
  per-subject step runs there; the maps come back).

Also printed, for the README's scaling paragraph: the per-subject cost, the
bytes each task sends and gets back, and the cleaned data a worker holds per
subject.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np

N_SUBJECTS = 20


def _group_dir(bench) -> Path:
    from analysis.config import data_home
    from analysis.datasets import development as dev

    root = Path(bench.data_root) if bench.data_root else data_home()
    path = root / f"bench-group-{bench.size}-{N_SUBJECTS}"
    if not dev.is_present(path):
        start = time.perf_counter()
        dev.generate(path, size=bench.size, n_subjects=N_SUBJECTS)
        bench.row(f"generate {N_SUBJECTS} subjects ({bench.size})",
                  time.perf_counter() - start, "s", "once, then cached")
    return path


def run(bench) -> None:
    from analysis import group as G
    from analysis.connectivity import seed_correlation

    import os

    bench.row("load average (1 min) at start", round(os.getloadavg()[0], 2), "",
              "2 cores, shared: timings and ratios need an idle machine")
    data_dir = _group_dir(bench)
    subjects = G.dataset_subjects(data_dir, n_subjects=N_SUBJECTS)
    model = G.GroupConnectivity(data_dir=str(data_dir), n_subjects=N_SUBJECTS)
    settings = model.settings(subjects)
    seed, moved = G.PCC_MM, (-40.0, -70.0, 36.0)
    n = len(subjects.subjects)

    # serial: the plain loop (one run: it is the slow side)
    serial = {}

    def serial_loop():
        serial["r"] = G.serial_seed_maps(subjects.subjects, settings, subjects.mask, seed)

    t_serial = bench.time(f"serial loop, {n} subjects (clean + seed map)", serial_loop, repeat=1)

    # one subject's pieces, in this process
    spec = subjects.subjects[0]
    start = time.perf_counter()
    cleaned = G.clean_subject(spec, settings, subjects.mask)
    t_clean = time.perf_counter() - start
    t_seed = bench.time("one subject: seed map on cleaned data", lambda: seed_correlation(
        cleaned, moved), repeat=7)
    bench.row("one subject: load + clean", t_clean, "s")
    bench.row("per-subject cost (serial loop / N)", t_serial / n, "s")

    # LocalCluster, 2 worker processes
    start = time.perf_counter()
    engine = G.GroupEngine(n_workers=2, processes=True)
    engine.warm_up()
    bench.row("LocalCluster(2 workers) start-up (+ imports on the workers)",
              time.perf_counter() - start, "s", "once per process, not in the ratio")
    try:
        result = {}

        def distributed():
            engine.forget()  # from nothing cleaned
            result["r"] = engine.seed_maps(subjects.subjects, settings, subjects.mask, seed)[0]

        bench.time(f"LocalCluster 2 workers, {n} subjects (clean + seed map)", distributed,
                   repeat=1)
        bench.ratio("serial / LocalCluster(2)", f"serial loop, {n} subjects (clean + seed map)",
                    f"LocalCluster 2 workers, {n} subjects (clean + seed map)", target=1.7)
        bench.row("max |r distributed - r serial|",
                  float(np.abs(result["r"] - serial["r"]).max()), "", "same maps")

        positions = [moved, seed]
        count = {"i": 0}

        def seed_move():
            count["i"] += 1
            engine.seed_maps(subjects.subjects, settings, subjects.mask,
                             positions[count["i"] % 2])

        bench.time(f"seed move, {n} cleaned subjects on the workers", seed_move, repeat=5)
        bench.ratio("serial loop / seed move", f"serial loop, {n} subjects (clean + seed map)",
                    f"seed move, {n} cleaned subjects on the workers")

        # data each task moves
        n_vox = int(np.asarray(subjects.mask.dataobj).astype(bool).sum())
        clean_args = len(pickle.dumps((spec, settings, subjects.mask)))
        bench.row("clean task: arguments sent (paths, settings, mask)", clean_args / 1e3, "kB")
        bench.row("clean task: data read from disk by the worker",
                  (Path(spec.func).stat().st_size + Path(spec.confounds).stat().st_size) / 1e6,
                  "MB", "compressed NIfTI + confounds")
        bench.row("cleaned data held per subject on a worker", cleaned.nbytes / 1e6, "MB",
                  f"brain {cleaned.brain.shape} + seed domain {cleaned.domain.shape}, float64")
        bench.row("seed task: result sent back (r map)", n_vox * 8 / 1e3, "kB",
                  f"{n_vox} voxels x float64")
        bench.row("seed map step per subject on cleaned data", t_seed * 1e3, "ms")
    finally:
        engine.close()
