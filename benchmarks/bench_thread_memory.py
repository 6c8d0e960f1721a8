"""Memory a process keeps after threads did numpy work at once (issue 13's memory row).

    python benchmarks/bench_thread_memory.py [--threads 2 6 12] [--n 2000]

The hostile-load run's server stays about 250 MB above its start a minute after the last
session closed, with every cache back to its warm entries, no session object alive and
no large array alive beyond the caches' (``FMRI_EXPLORER_MEMORY_REPORT``: its
``large_arrays`` with no session open), the growth in large anonymous maps (the run's
"RSS growth by mapping" row). This reproduces the mechanism in one process: N threads
at once multiply (BLAS: OpenBLAS keeps a work buffer per concurrent caller for good) or
run element-wise numpy (glibc keeps per-thread arenas), then end; after
``malloc_trim`` the RSS stays up by about 30 MB per concurrent caller, the same N again
adds nothing (the buffers are reused), a larger N adds more. What a server keeps thus
follows its peak number of threads computing at once, not its sessions.
"""

from __future__ import annotations

import argparse
import ctypes
import threading

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
    args = ap.parse_args(argv)
    if args.kind is None:
        import subprocess
        import sys

        print("kind | threads at once | RSS kept after they ended (MB) | growth (MB)",
              flush=True)
        for kind in ("blas", "elementwise"):
            subprocess.run([sys.executable, __file__, "--kind", kind, "--n", str(args.n),
                            "--threads", *map(str, args.threads)], check=True)
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
        print(f"{name} | {n} | {rss:.0f} | {rss - start:+.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
