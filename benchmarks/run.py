"""Run the benchmarks and print a table of named figures and ratios.

    python benchmarks/run.py                 # every benchmarks/bench_*.py, full size
    python benchmarks/run.py --only encoding --size small
    python benchmarks/run.py --only reporting --size small   # cluster tables vs nilearn

Each ``bench_<name>.py`` defines ``run(bench)`` and uses :class:`Bench` to time
the fast paths and the reference code side by side in one run:
``bench.time(name, fn)`` (median seconds), ``bench.row(name, value, unit)``,
``bench.ratio(name, slow, fast, target=None)``. Speed is measured here, never
asserted in the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


class Bench:
    """Collects rows: timings, other figures and ratios between timings."""

    def __init__(self, size: str = "full", data_root: Path | None = None, quick: bool = False):
        self.size = size
        self.quick = quick
        self.data_root = data_root
        self.rows: list[dict] = []
        self.section = ""
        self._times: dict[str, float] = {}

    # -- data -----------------------------------------------------------------
    def data_dir(self, kind: str) -> Path:
        """The synthetic ``data_dir`` of ``kind`` at this size (generated if missing)."""
        from analysis.datasets import ensure_synthetic

        return ensure_synthetic(kind, size=self.size, root=self.data_root)

    # -- rows -----------------------------------------------------------------
    def time(self, name: str, fn, repeat: int = 3, number: int = 1, warmup: int = 0) -> float:
        """Median wall time of ``fn()`` over ``repeat`` runs (each ``number`` calls)."""
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(max(1, repeat)):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - start) / number)
        median = statistics.median(samples)
        self._times[name] = median
        self.rows.append({"section": self.section, "name": name, "value": median, "unit": "s",
                          "note": f"median of {len(samples)}"})
        self._print(self.rows[-1])
        return median

    def row(self, name: str, value, unit: str = "", note: str = "") -> None:
        """A figure that is not a timing (a size, a difference, a latency...)."""
        if unit == "s":
            self._times[name] = float(value)
        self.rows.append({"section": self.section, "name": name, "value": value, "unit": unit,
                          "note": note})
        self._print(self.rows[-1])

    def ratio(self, name: str, slow: str, fast: str, target: float | None = None) -> float:
        """``time(slow) / time(fast)``, with the target it should reach."""
        value = self._times[slow] / self._times[fast]
        note = f"{slow} / {fast}"
        if target is not None:
            note += f"; target >= {target:g}x: {'met' if value >= target else 'NOT met'}"
        self.rows.append({"section": self.section, "name": name, "value": value, "unit": "x",
                          "note": note})
        self._print(self.rows[-1])
        return value

    # -- output ---------------------------------------------------------------
    @staticmethod
    def _fmt(row) -> str:
        value, unit = row["value"], row["unit"]
        if unit == "s":
            text = f"{value * 1000:10.2f} ms" if value < 1 else f"{value:10.3f} s "
        elif unit == "x":
            text = f"{value:10.1f} x "
        elif isinstance(value, float):
            text = f"{value:10.4g} {unit}"
        else:
            text = f"{value!s:>10} {unit}"
        return f"  {row['name']:<58} {text}  {row['note']}"

    def _print(self, row) -> None:
        print(self._fmt(row), flush=True)

    def table(self) -> str:
        lines, section = [], None
        for row in self.rows:
            if row["section"] != section:
                section = row["section"]
                lines.append(f"[{section}]")
            lines.append(self._fmt(row))
        return "\n".join(lines)


def discover(only=None):
    # dataset generation and load times come first
    for path in sorted(HERE.glob("bench_*.py"), key=lambda p: (p.stem != "bench_datasets", p.stem)):
        name = path.stem[len("bench_"):]
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(f"benchmarks.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield name, module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="benchmark names (bench_<name>.py)")
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--data", type=Path, default=None,
                        help="cache folder for the synthetic datasets "
                             "(default: $FMRI_EXPLORER_DATA or ~/.cache/fmri-explorer)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.data is not None:
        os.environ["FMRI_EXPLORER_DATA"] = str(args.data)
    bench = Bench(size=args.size, data_root=args.data, quick=args.size == "small")
    failed = []
    for name, module in discover(args.only):
        bench.section = name
        print(f"[{name}]", flush=True)
        try:
            module.run(bench)
        except Exception:  # noqa: BLE001 - report and go on with the others
            traceback.print_exc()
            failed.append(name)
    print("\n=== summary ===")
    print(bench.table())
    if args.json:
        args.json.write_text(json.dumps(bench.rows, indent=2, default=str))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
