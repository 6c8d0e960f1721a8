"""Old vs new, side by side in one run: the benchmarks of another revision and of this
tree, interleaved module by module, and the ratio of every timing.

    python benchmarks/compare.py --base 9a2f171 --only encoding connectivity decoding

The base revision is checked out (``git worktree``) into a temporary folder, which is
removed at the end; each benchmark module runs in its own process, base then new, so
both see the same machine load. A ratio new/old above 1 is a slowdown. The base runs
its own ``benchmarks/run.py`` (so its benchmarks must exist there too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run_bench(tree: Path, name: str, size: str, out: Path) -> list[dict]:
    """Rows of ``bench_<name>.py`` of ``tree`` (its own code first on the path)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, str(tree / "benchmarks" / "run.py"), "--only", name,
                           "--size", size, "--json", str(out)], cwd=tree, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        print(f"{tree.name}: bench_{name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return []
    return json.loads(out.read_text())


def timings(rows: list[dict]) -> dict[str, float]:
    return {r["name"]: float(r["value"]) for r in rows
            if r.get("unit") == "s" and isinstance(r.get("value"), (int, float))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the old revision (commit, tag, branch)")
    parser.add_argument("--only", nargs="+", default=["encoding", "connectivity", "decoding"])
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fmri-explorer-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            table = []
            for name in args.only:
                old = timings(run_bench(base, name, args.size, Path(tmp) / f"old-{name}.json"))
                new = timings(run_bench(ROOT, name, args.size, Path(tmp) / f"new-{name}.json"))
                for key in [k for k in new if k in old]:
                    table.append({"benchmark": name, "name": key, "old_s": old[key],
                                  "new_s": new[key],
                                  "new/old": new[key] / old[key] if old[key] > 0 else None})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                           capture_output=True)
    width = max([len(r["name"]) for r in table] + [10])
    print(f"{'timing':<{width}}  {'old (s)':>10}  {'new (s)':>10}  {'new/old':>8}")
    for r in table:
        ratio = "" if r["new/old"] is None else f"{r['new/old']:.2f}"
        print(f"{r['name']:<{width}}  {r['old_s']:>10.4g}  {r['new_s']:>10.4g}  {ratio:>8}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
