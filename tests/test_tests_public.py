"""Tests use the public API of models, tabs and engines (issue 14), not ``tab._plots``,
``bar._png`` or ``viewer._rev``: this test fails, listing the lines, when a test reaches
a private attribute of a tab, export bar, slice viewer, panel, upload or section.

The framework checks (``test_render_hooks.py``, ``test_private_use.py``) and the browser
tests are exempt; so, until their rework, are the connectivity and group tests (PENDING).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
NAMES = ("tab", "bar", "viewer", "panel", "upload", "section")
PRIVATE = re.compile(r"\b(?:" + "|".join(NAMES) + r")\._[A-Za-z]\w*")
EXEMPT = ("conftest.py", "test_render_hooks.py", "test_private_use.py", Path(__file__).name)
#: Pending the connectivity tab's and group section's rework (their plots not yet public):
#: these files, and these tests of other files, may still reach into them.
PENDING_FILES = ("test_connectivity_*.py", "test_group*.py")
PENDING_TESTS = {"test_live.py": {
    "test_connectivity_click_and_threshold_update_in_place_as_a_fresh_tab_draws"}}


def _pending_lines(path: Path) -> set[int]:
    names = PENDING_TESTS.get(path.name, set())
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names
            for n in range(node.lineno, node.end_lineno + 1)}


def private_uses(folder: Path = TESTS) -> list[str]:
    found = []
    for path in sorted(folder.glob("*.py")):    # not tests/browser/
        if path.name in EXEMPT or any(path.match(p) for p in PENDING_FILES):
            continue
        pending = _pending_lines(path)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if number in pending or line.lstrip().startswith("#"):
                continue
            for match in PRIVATE.finditer(line):
                found.append(f"{path.name}:{number}: {match.group()}: {line.strip()}")
    return found


def test_tests_use_public_interfaces():
    found = private_uses()
    assert not found, (
        "tests reaching private attributes: use (or add, with a docstring) a public "
        "method or property, or observe the behaviour (element data, widget values, "
        "exported bytes, job state):\n" + "\n".join(found))


def test_the_pattern_catches_what_it_is_for():
    for line in ['tab._plots["bars"].rev', "bar._png()[:4]", "tab.viewer._rev == rev",
                 'panel._status.object', "upload._inputs[role]", "section._run()"]:
        assert PRIVATE.search(line), line
    for line in ['tab.plots["bars"].rev', 'bar.content("png")', "tab.viewer.rev",
                 "my_tab._x", "tab.__class__", 'data.info.get("_masked")']:
        assert not PRIVATE.search(line), line
