"""Framework internals are used in one place only.

Bokeh, BokehJS, Panel and HoloViews internals (private attributes, their
unexported modules, monkeypatches, the column names HoloViews gives its Bokeh
models) live in ``dashboard/render/``, scikit-learn's private libsvm in
``analysis/decoding/svm_fast.py``, where ``tests/test_render_hooks.py`` checks each one
against the installed versions. This test fails, listing the lines, when such a
use appears anywhere else in ``dashboard/`` or ``analysis/``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {ROOT / "dashboard" / "render", ROOT / "analysis" / "decoding" / "svm_fast.py"}

FRAMEWORKS = r"(?:pn|hv|panel|holoviews|bokeh|tornado)"
#: private attributes of the frameworks' objects that render/ relies on
KNOWN_PRIVATE = ("_freeze_count", "_push_freeze", "_pop_freeze", "_template_variables",
                 "_stylesheets", "_get_model", "_update_synced", "_synced", "_syncing",
                 "_session", "_memoized", "_libsvm", "_esm_path")

PATTERNS = {
    "a private attribute reached from a framework module":
        re.compile(rf"(?<![\w.]){FRAMEWORKS}(?:\.\w+)*\._[A-Za-z]\w*"),
    "a private attribute of a framework object":
        re.compile(r"(?<!\bself)(?<!\bcls)\.(?:" + "|".join(KNOWN_PRIVATE) + r")\b"),
    "a private attribute of a document, session or model manager":
        re.compile(r"\b(?:doc|document|curdoc|session_context|models)\._[A-Za-z]\w*"),
    "an import of a framework's internal module":
        re.compile(r"^\s*(?:from|import)\s+(?:panel\.(?:io|util|auth|models|layout\.base)|"
                   r"bokeh\.(?:server|core|util|embed|document)|"
                   r"holoviews\.(?:core|plotting)|tornado\.web)\b"),
    "an import of a private name":
        re.compile(r"^\s*from\s+(?:panel|bokeh|holoviews|param|sklearn)[\w.]*\s+import\s+"
                   r"(?:.*[\s,(])?_[A-Za-z]\w*"),
    "a private scikit-learn module":
        re.compile(r"\bsklearn(?:\.\w+)*\._\w+"),
    "a patch of a framework class":
        re.compile(rf"(?<![\w.]){FRAMEWORKS}(?:\.\w+)*\.[A-Z]\w*\.\w+\s*=(?!=)"),
    "BokehJS internals in JavaScript":
        re.compile(r"\bBokeh\.(?:require|index)\b|\b(?:input_el|child_views|all_views|"
                   r"InlineStyleSheet)\b|\.prototype\b"),
    "HoloViews' drawn models or column names":
        re.compile(r"\.handles\b|\bcurrent_frame\b|\bdimension_sanitizer\b|['\"]zvalues['\"]"),
}


def _sources():
    for folder in ("dashboard", "analysis"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if not any(path == allowed or allowed in path.parents for allowed in ALLOWED):
                yield path


def offending_lines() -> list[str]:
    found = []
    for path in _sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for what, pattern in PATTERNS.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
                    break
    return found


def test_framework_internals_only_in_the_render_layer():
    found = offending_lines()
    assert not found, (
        "framework internals outside dashboard/render/ (and analysis/decoding/svm_fast.py): move "
        "them there, behind a function the tab calls, with a check in "
        "tests/test_render_hooks.py:\n" + "\n".join(found))


def test_the_patterns_catch_what_they_are_for():
    samples = [
        'pn.layout.Divider._stylesheets = ["x.css"]',
        "doc._template_variables.setdefault('dist_url', url)",
        "models._freeze_count -= 1",
        "location.Location._update_synced = _update_synced",
        "for obj, mapping, _, on_error in list(loc._synced):",
        "from sklearn.svm import _libsvm",
        "from sklearn.model_selection._validation import _shuffle",
        "from panel.io import location",
        "from holoviews.core.util import dimension_sanitizer",
        "tornado.web.RequestHandler.clear = clear_with_headers",
        "import tornado.web",
        "session = doc.session_context._session",
        "const dom = window.Bokeh.require('core/dom')",
        "const view = views().find((v) => v.input_el === input)",
        "src = plot.handles['source']",
        "{'zvalues': c, 'count': str(c)}",
        "return super()._get_model(doc, root, parent, comm)",
    ]
    for line in samples:
        assert any(p.search(line) for p in PATTERNS.values()), line
    for line in ["self._plots[key] = plot", "self.param._rev", "pn.state.curdoc",
                 "pn.widgets.Button(label='Run')", "obj.param.update(**values)",
                 "from panel.custom import JSComponent", "self._session = None",
                 "hv.renderer('bokeh').webgl = False", "from tornado.process import task_id"]:
        assert not any(p.search(line) for p in PATTERNS.values()), line
