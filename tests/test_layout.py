"""The code's shape (issue 14): imports run one way, with no cycle between modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "dashboard")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (at any level, functions included)."""
    files = {_module_name(f): f for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[:len(anchor) - node.level + (1 if is_pkg else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def cycles(graph: dict) -> list[list[str]]:
    """Every cycle, found by a depth-first search from each module (shortest first)."""
    found = set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    found.add(tuple(sorted(path)))
                elif nxt not in path and len(path) < 8:
                    stack.append((nxt, path + [nxt]))
    return sorted((list(c) for c in found), key=len)


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 30 and graph["dashboard.app"]   # it really read the modules
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_analysis_never_imports_dashboard():
    graph = import_graph()
    bad = {m: sorted(d for d in deps if d.startswith("dashboard"))
           for m, deps in graph.items() if m.startswith("analysis")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_no_module_over_500_lines():
    """Issue 14: one job per module; none of analysis/ or dashboard/ over 500 lines."""
    lengths = {str(f.relative_to(ROOT)): len(f.read_text().splitlines())
               for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py")}
    assert len(lengths) > 30
    assert {f: n for f, n in lengths.items() if n > 500} == {}


def test_one_subpackage_per_analysis():
    """engine (pure numpy), reference (the seed's code) and model (Param class) modules."""
    for name in ("encoding", "decoding", "connectivity"):
        package = ROOT / "analysis" / name
        assert {"__init__.py", "engine.py", "reference.py", "model.py"} <= \
            {f.name for f in package.glob("*.py")}, name
