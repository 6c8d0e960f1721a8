"""Memory a process keeps after threads did numpy work at once (issue 13's memory row).

    python benchmarks/bench_thread_memory.py [--threads 2 6 12] [--n 2000]

The hostile-load run's server stayed about 250 MB above its start a minute after the
last session closed, with every cache back to its warm entries and no large array alive
beyond the caches' (``FMRI_EXPLORER_MEMORY_REPORT``: its ``large_arrays`` with no
session open), the growth in large anonymous maps (the run's "RSS growth by mapping"
row). This reproduces one mechanism in one process: N threads at once multiply (BLAS)
or run element-wise numpy, then end, and the RSS is read after ``malloc_trim``. With
glibc's defaults each thread that allocates gets an arena of its own and, once a large
array has been freed, arrays up to 32 MB come from the arenas (the mmap threshold
rises): the result arrays' memory stays with the process, about 30 MB per thread that
computed at once (12 threads: +360 MB; the same N again adds nothing). With the
settings ``fmri-explorer serve`` gives its server (``analysis.commands.serve.
MALLOC_VARS``: two arenas, a fixed 8 MB threshold) the same rounds keep 0-54 MB (what
is left is OpenBLAS' own buffer per concurrent caller, a few MB). Each kind runs in a
process of its own, under both settings, side by side.
"""

from __future__ import annotations

import argparse
import ctypes
import threading
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _round(n: int, work) -> None:
    barrier = threading.Barrier(n)

    def run():
        barrier.wait()
        for _ in range(3):
            work()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 2, 6, 6, 12])
    ap.add_argument("--n", type=int, default=2000, help="matrix side (2000: 32 MB)")
    ap.add_argument("--kind", choices=["blas", "elementwise"], default=None,
                    help="one kind in this process (default: each in a process of its own)")
    ap.add_argument("--label", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.kind is None:
        import subprocess
        import sys

        import os

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from analysis.commands.serve import MALLOC_VARS

        print("allocator | kind | threads at once | RSS kept after they ended (MB) | "
              "growth (MB)", flush=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        base.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the server: one BLAS thread
        for label, extra in (("glibc defaults", {}), ("server's MALLOC_VARS", MALLOC_VARS)):
            for kind in ("blas", "elementwise"):
                subprocess.run([sys.executable, __file__, "--kind", kind, "--n", str(args.n),
                                "--label", label, "--threads", *map(str, args.threads)],
                               check=True, env={**base, **extra})
        return 0
    rng = np.random.default_rng(0)
    a, b = rng.random((args.n, args.n)), rng.random((args.n, args.n))
    name, work = {"blas": ("BLAS (a @ b)", lambda: a @ b),
                  "elementwise": ("element-wise ((a * 2 + 1).sum())",
                                  lambda: (a * 2 + 1).sum())}[args.kind]
    _round(1, work)
    start = _rss_mb()
    for n in args.threads:
        _round(n, work)
        rss = _rss_mb()
        print(f"{args.label} | {name} | {n} | {rss:.0f} | {rss - start:+.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
