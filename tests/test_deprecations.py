"""No deprecation warning is attributed to the project's code when every tab and section
is built headless (Panel, param, HoloViews or Python's own): Panel 2.0 removes what
Panel 1.x only warns about (``Widget(name=...)``, ``button_type=``), so each of these
warnings is an error to come.

Widgets take their text as ``label=`` (read and set ``widget.label``, not
``widget.name``) and buttons their colour as ``color=`` (same values as
``button_type``: the same Bokeh model, the same look).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The project's code: a warning whose frame is in here is ours to fix.
PROJECT_DIRS = (ROOT / "dashboard", ROOT / "analysis")


def _categories() -> tuple:
    """Deprecation categories: Python's (which Panel's, param's and HoloViews' own
    subclass; they are listed too, so a change of their bases is noticed)."""
    import holoviews.util.warnings as hv_warnings
    import panel.util.warnings as pn_warnings
    import param._utils as param_warnings

    own = (pn_warnings.PanelDeprecationWarning, hv_warnings.HoloviewsDeprecationWarning,
           param_warnings.ParamDeprecationWarning,
           param_warnings.ParamPendingDeprecationWarning, param_warnings.ParamFutureWarning)
    return (DeprecationWarning, PendingDeprecationWarning, FutureWarning) + own


def _ours(filename: str) -> bool:
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return any(path.is_relative_to(d) for d in PROJECT_DIRS)


def _offending(caught) -> list:
    kinds = _categories()
    return [w for w in caught if issubclass(w.category, kinds) and _ours(w.filename)]


def _describe(found) -> str:
    lines = sorted({f"{Path(w.filename).resolve().relative_to(ROOT)}:{w.lineno}: "
                    f"{w.category.__name__}: {w.message}" for w in found})
    return f"{len(found)} deprecation warning(s) from the project's code:\n" + "\n".join(lines)


@contextmanager
def _recorded():
    """Every warning raised inside, each time (none filtered, none shown once only)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _render(*objects):
    """Bokeh models made for ``objects`` (as a page would), in a new Document."""
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    doc = Document()
    with set_curdoc(doc):
        for obj in objects:
            doc.add_root(pn.panel(obj).get_root(doc))
    return doc


def test_the_check_sees_a_widget_made_the_old_way():
    """The warnings this file guards against are seen, and attributed to our file."""
    import panel as pn

    probe = ROOT / "dashboard" / "_deprecation_probe.py"  # not a file: a code object's name
    code = compile("pn.widgets.Button(name='Run', button_type='primary')\n"
                   "pn.widgets.IntSlider(label='n', start=0, end=2)\n", str(probe), "exec")
    with _recorded() as caught:
        exec(code, {"pn": pn})
    found = _offending(caught)
    messages = sorted(str(w.message).split(" ")[0] for w in found)
    assert messages == ["Widget.name", "button_type"], _describe(found)
    assert {Path(w.filename).resolve() for w in found} == {probe.resolve()}


def test_modules_import_without_deprecations():
    """Module-level code (class declarations, ``pn.extension``...), in a fresh process:
    here the modules may have been imported by other tests already."""
    script = f"""
import importlib, json, pkgutil, sys, warnings
sys.path.insert(0, {str(ROOT)!r})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import analysis, dashboard
    for pkg in (analysis, dashboard):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(info.name)
print(json.dumps([(w.category.__module__, w.category.__qualname__, str(w.message),
                   w.filename, w.lineno) for w in caught]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    names = {k.__qualname__ for k in _categories()}
    found = [f"{Path(f).resolve().relative_to(ROOT)}:{line}: {qual}: {msg}"
             for _, qual, msg, f, line in json.loads(out.stdout.strip().splitlines()[-1])
             if (qual in names or "Deprecat" in qual) and _ours(f)]
    if found:
        pytest.fail("deprecation warnings on import:\n" + "\n".join(found), pytrace=False)


def test_every_tab_and_section_builds_without_deprecations(encoding_dir, decoding_dir,
                                                           connectivity_dir, monkeypatch):
    import nibabel as nib
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from analysis.volumes import to_xarray
    from dashboard import app, group
    from dashboard.export import ExportBar
    from dashboard.notify import loading
    from dashboard.slice_viewer import SliceViewer
    from dashboard.upload import ROLES, UploadPanel

    with _recorded() as caught:
        # the served app: every tab built, the page's models made, presentation on and off
        doc = Document()
        with set_curdoc(doc):
            template = app.create_app()
            for index, key in enumerate(app.TAB_KEYS):
                template.build_tab(key)
                template.tabs.active = index
            template.server_doc(doc)
            template.app_state.present = True
            template.app_state.present = False
        viewers = template.tab_viewers
        assert set(viewers) == set(app.TAB_KEYS) and all(viewers.values())
        for viewer in viewers.values():  # each tab's own models (Tabs draws the active one)
            _render(viewer)

        # labels set after the build: the decoding slider's "C, now ..."
        decoding = viewers["decoding"]
        decoding.analysis.C = 0.5
        assert "now 0.5" in decoding.w_C.label

        # the Connectivity tab's optional sections: the Group card opened, its panel
        connectivity = viewers["connectivity"]
        card = connectivity._group_card()
        _render(card)
        card.collapsed = False
        _render(card, connectivity.group_panel())
        # the Group panel with a scheduler a visitor may type (operator's choice)
        monkeypatch.setenv(group.ALLOW_SCHEDULER_EDIT_ENV, "1")
        editable = group.GroupPanel(seed_source=connectivity.model)
        assert editable.scheduler_editable
        _render(editable)

        # sections on their own: exports, uploads (every role), the spinner, a viewer
        _render(ExportBar(source=viewers["encoding"], stem="encoding"))
        _render(UploadPanel(roles=list(ROLES)))
        _render(loading("tab-loading"))
        affine = np.diag([3.0, 2.5, 4.0, 1.0])
        data = np.random.default_rng(0).standard_normal((7, 9, 5))
        volume = to_xarray(nib.Nifti1Image(data, affine), name="t")
        viewer = SliceViewer(stat_map=volume, background=abs(volume), map_label="t")
        _render(viewer)
        viewer.threshold = 0.5
        viewer.tap("axial", 0.0, 0.0)

    found = _offending(caught)
    if found:
        pytest.fail(_describe(found), pytrace=False)
