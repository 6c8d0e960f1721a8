"""Tests use the public API of models, tabs and engines (issue 14), not ``tab._plots``,
``bar._png`` or ``viewer._rev``: this test fails, listing the lines, when a test reaches
a private attribute of a tab, export bar, slice viewer, panel, upload, section or engine.

The framework checks (``test_render_hooks.py``, ``test_private_use.py``), ``conftest.py``
and the browser tests are exempt.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
NAMES = ("tab", "bar", "viewer", "panel", "upload", "section", "engine")
PRIVATE = re.compile(r"\b(?:" + "|".join(NAMES) + r")\._[A-Za-z]\w*")
EXEMPT = ("conftest.py", "test_render_hooks.py", "test_private_use.py", Path(__file__).name)


def private_uses(folder: Path = TESTS) -> list[str]:
    found = []
    for path in sorted(folder.glob("*.py")):    # not tests/browser/
        if path.name in EXEMPT:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("#"):
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
                 'panel._status.object', "upload._inputs[role]", "section._run()",
                 "engine._cleaned.values()"]:
        assert PRIVATE.search(line), line
    for line in ['tab.plots["bars"].rev', 'bar.content("png")', "tab.viewer.rev",
                 "my_tab._x", "tab.__class__", 'data.info.get("_masked")',
                 "engine.kept_settings()"]:
        assert not PRIVATE.search(line), line
