"""Each framework internal the app relies on is still there and behaves as assumed.

``dashboard/render/`` (Bokeh, BokehJS, Panel, HoloViews, Tornado) and
``analysis/decoding/svm_fast.py`` (scikit-learn's private libsvm) use internals that an
upgrade may remove or change without notice; ``pyproject.toml`` bounds these
libraries to the minor versions tested here. Each test fails with the library's
version, the internal that changed and the module to update.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import holoviews as hv
import numpy as np
import panel as pn
import param
import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc

from dashboard.render import batching, live, location, server, styles

hv.extension("bokeh", logo=False)


@contextlib.contextmanager
def hook(package: str, what: str, module: str):
    """Turn a failed assumption about ``package``'s ``what`` into one clear message."""
    try:
        yield
    except (AssertionError, AttributeError, TypeError, ImportError, KeyError, ValueError,
            IndexError, OSError) as exc:
        pytest.fail(f"{package} {version(package)} changed {what}: {module} must be updated "
                    f"({type(exc).__name__}: {exc})", pytrace=False)


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


# ---- dashboard/render/batching.py: Bokeh's DocumentModelManager -----------------------
def test_document_model_manager_freeze_hooks():
    from bokeh.models import Div

    with hook("bokeh", "DocumentModelManager's freeze (_push_freeze, _pop_freeze, "
              "_freeze_count, recompute)", "dashboard/render/batching.py"):
        doc = Document()
        models = doc.models
        assert batching.can_skip_walks(models)
        assert callable(models.invalidate) and callable(models.recompute)
        models._push_freeze()
        assert models._freeze_count == 1
        div = Div(text="x")
        doc.add_root(div)
        assert models.get_by_id(div.id) is None, "a frozen document no longer defers the walk"
        models._pop_freeze()
        assert models._freeze_count == 0
        assert models.get_by_id(div.id) is div, "_pop_freeze no longer walks the graph"


def test_lazy_freeze_walks_only_when_the_graph_changed(monkeypatch):
    from bokeh.models import Div

    with hook("bokeh", "DocumentModelManager's invalidate/_pop_freeze",
              "dashboard/render/batching.py"):
        doc = Document()
        div = Div(text="a")
        doc.add_root(div)
        walks = []
        recompute = doc.models.recompute
        monkeypatch.setattr(doc.models, "recompute", lambda: (walks.append(1), recompute()))
        with batching.lazy_freeze(doc):
            div.text = "b"  # a value changed in place: no walk
        assert walks == []
        other = Div(text="c")
        with batching.lazy_freeze(doc):
            doc.add_root(other)
        assert len(walks) == 1 and doc.models.get_by_id(other.id) is other


def test_lazy_freeze_walks_after_a_nested_freeze_only_if_the_graph_changed(monkeypatch):
    """A nested Bokeh freeze (HoloViews' plot updates use one) costs a walk only when it
    changed the roots or set a property that holds models."""
    from bokeh.models import Column, Div

    doc = Document()
    div = Div(text="a")
    col = Column(children=[div])
    doc.add_root(col)
    walks = []
    recompute = doc.models.recompute
    monkeypatch.setattr(doc.models, "recompute", lambda: (walks.append(1), recompute()))
    with batching.lazy_freeze(doc):
        with doc.models.freeze():
            div.text = "b"   # values in place
    assert walks == []
    added = Div(text="new child")
    with batching.lazy_freeze(doc):
        with doc.models.freeze():
            col.children = [div, added]   # a property holding models
    assert len(walks) == 1 and doc.models.get_by_id(added.id) is added
    root = Div(text="new root")
    with batching.lazy_freeze(doc):
        with doc.models.freeze():
            doc.add_root(root)
    assert len(walks) == 2 and doc.models.get_by_id(root.id) is root
    with batching.lazy_freeze(doc):
        with doc.models.freeze():
            doc.remove_root(root)
    assert len(walks) == 3 and doc.models.get_by_id(root.id) is None


# ---- dashboard/render/live.py: HoloViews' drawn plots ---------------------------------
def _draw(obj):
    doc = Document()
    with set_curdoc(doc):
        doc.add_root(pn.panel(obj).get_root(doc))
    return doc


def _source(layer):
    (plot,) = layer.plots
    return {k: list(np.asarray(v).ravel()) if k == "image" else list(v)
            for k, v in plot.handles["source"].data.items()}


def _elements(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, 4)
    rows = [(p, t, int(c)) for (p, t), c in zip([("a", "x"), ("b", "x"), ("a", "y"),
                                                  ("b", "y")], counts)]
    edges = np.linspace(-1, 1, 6)
    return {
        "image": hv.Image(rng.standard_normal((3, 4)), bounds=(0, 0, 4, 3)),
        "curve": hv.Curve((np.arange(5.0), rng.standard_normal(5)), kdims=["time (s)"],
                          vdims=["signal (z)"]).opts(tools=["hover"]),
        "points": hv.Points(rng.standard_normal((3, 2)), kdims=["x", "z"]),
        "bars": hv.Bars([(str(i), float(v)) for i, v in enumerate(rng.random(3))],
                        kdims=["fold"], vdims=["accuracy"]),
        "heat": hv.HeatMap(rows, kdims=["predicted", "true"], vdims=["count"]).opts(
            tools=["hover"]),
        "labels": hv.Labels(rows, kdims=["predicted", "true"], vdims=["count"]),
        "hist": hv.Histogram((edges, rng.integers(0, 9, 5)), kdims=["value"],
                             vdims=["voxels"]).opts(tools=["hover"]),
        "vline": hv.VLine(float(rng.random())),
    }


def _drawn_layers(elements):
    layers = {name: live.Layer() for name in elements}
    hooked = [e.opts(hooks=[layers[n].hook]) for n, e in elements.items()]
    _draw(hv.Layout(hooked[:4]) + hv.Layout([hooked[4] * hooked[5]])
          + hv.Layout([hooked[6] * hooked[7]]))
    return layers


def test_drawn_plots_have_the_models_and_columns_layer_uses():
    with hook("holoviews", "the handles or column names of its Bokeh plots",
              "dashboard/render/live.py"):
        elements = _elements(0)
        layers = _drawn_layers(elements)
        (image,) = layers["image"].plots
        assert {"image", "x", "y", "dw", "dh"} <= set(image.handles["source"].data)
        assert hasattr(image.handles["color_mapper"], "low")
        assert hasattr(image.handles["plot"].title, "text")
        assert hasattr(image.handles["x_range"], "start")
        assert image.current_frame is not None and \
            [d.name for d in image.current_frame.dimensions()][:2] == ["x", "y"]
        curve = _source(layers["curve"])
        assert set(curve) <= {"time (s)", "signal (z)", hv.core.util.dimension_sanitizer(
            "time (s)"), hv.core.util.dimension_sanitizer("signal (z)")}
        heat = _source(layers["heat"])
        assert {"predicted", "true", "zvalues", "count"} <= set(heat)
        assert all(isinstance(v, str) for v in heat["count"])
        labels = _source(layers["labels"])
        assert {"predicted", "true", "count"} <= set(labels)
        assert {"top", "left", "right", "value", "voxels"} <= set(_source(layers["hist"]))
        (vline,) = layers["vline"].plots
        assert hasattr(vline.handles["glyph"], "location")


def test_layer_updates_show_what_a_fresh_drawing_shows():
    with hook("holoviews", "the Bokeh columns of its plots",
              "dashboard/render/live.py (Layer)"):
        layers = _drawn_layers(_elements(1))
        new = _elements(2)
        e = new
        assert layers["image"].image(e["image"])
        assert layers["curve"].xy(e["curve"].dimension_values(0), e["curve"].dimension_values(1))
        assert layers["points"].xy(e["points"].dimension_values(0),
                                   e["points"].dimension_values(1))
        assert layers["bars"].bars(e["bars"])
        assert layers["heat"].heatmap(e["heat"])
        assert layers["labels"].labels(e["labels"])
        assert layers["hist"].histogram(counts=e["hist"].dimension_values(1),
                                        edges=e["hist"].edges)
        assert layers["vline"].location(float(e["vline"].data))
        fresh = _drawn_layers(_elements(2))
        for name in ("image", "curve", "points", "bars", "heat", "labels", "hist"):
            updated, drawn = _source(layers[name]), _source(fresh[name])
            assert updated.keys() == drawn.keys(), name
            for column in drawn:
                a, b = updated[column], drawn[column]
                if a and isinstance(b[0], str):
                    assert sorted(zip(*(updated[k] for k in sorted(drawn)))) == \
                        sorted(zip(*(drawn[k] for k in sorted(drawn)))), name
                else:
                    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float),
                                               err_msg=f"{name}.{column}")
        assert layers["vline"].plots[0].handles["glyph"].location == \
            fresh["vline"].plots[0].handles["glyph"].location


def test_bars_with_other_categories_show_what_a_fresh_drawing_shows():
    """Fewer (or more) folds: the bars and the axis' categories of a fresh drawing, the
    columns changed before the categories (the page draws the old bars on the new axis
    otherwise, and throws on the shorter columns)."""
    from bokeh.document.events import ColumnDataChangedEvent, ModelChangedEvent

    def bars(values):
        names = [f"fold {i + 1}" for i in range(len(values))]
        return hv.Bars(list(zip(names, values)), kdims=["fold"], vdims=["accuracy"]).opts(
            xrotation=45 if len(values) > 6 else 0)

    with hook("holoviews", "the Bokeh columns and factor range of its Bars plots",
              "dashboard/render/live.py (Layer.categories)"):
        for before, after in (([.5, .6, .7, .8, .9, .6, .7, .8], [.7, .4, .9]),
                              ([.7, .4], [.5, .6, .7, .8, .9, .6, .7])):
            layer = live.Layer()
            doc = _draw(bars(before).opts(hooks=[layer.hook]))
            events = []
            doc.on_change(lambda event: events.append(event))
            assert layer.bars(bars(after))
            fresh = live.Layer()
            _draw(bars(after).opts(hooks=[fresh.hook]))
            assert _source(layer) == _source(fresh)
            (plot,), (drawn,) = layer.plots, fresh.plots
            assert list(plot.handles["x_range"].factors) == list(drawn.handles["x_range"].factors)
            assert plot.handles["xaxis"].major_label_orientation == \
                drawn.handles["xaxis"].major_label_orientation
            kinds = ["data" if isinstance(e, ColumnDataChangedEvent) or getattr(e, "attr", "")
                     == "data" else e.attr for e in events
                     if isinstance(e, (ColumnDataChangedEvent, ModelChangedEvent))]
            assert kinds.index("data") < kinds.index("factors"), kinds


def test_holoviews_pane_get_model_and_dynamicmap_memo():
    with hook("panel", "HoloViews._get_model(doc, root, parent, comm)",
              "dashboard/render/live.py (LivePane)"):
        assert _params(pn.pane.HoloViews._get_model) == ["self", "doc", "root", "parent",
                                                          "comm"]
    with hook("holoviews", "DynamicMap's callback memo (Callable._memoized)",
              "dashboard/render/live.py (forget_cached)"):
        class State(param.Parameterized):
            rev = param.Integer(default=0)

        dmap = hv.DynamicMap(pn.bind(lambda rev: hv.Curve([rev, 2]), rev=State().param.rev))
        _draw(dmap)
        assert isinstance(dmap.callback._memoized, dict) and dmap.callback._memoized
        live.forget_cached(dmap)
        assert not dmap.callback._memoized and not dmap.data


# ---- dashboard/render/location.py: Panel's Location ------------------------------------
def test_location_reads_the_patched_parser():
    import dashboard.share  # noqa: F401 - installs the patches
    from panel.io import location as panel_location

    with hook("panel", "panel.io.location's parse_query (Location.query_params)",
              "dashboard/render/location.py"):
        assert panel_location.parse_query is location.safe_parse_query
        loc = panel_location.Location(search="?a=" + "9" * 5000 + "&b=2")
        assert loc.query_params == {"a": "9" * 5000, "b": 2}


def test_location_update_synced_hands_each_change_over(monkeypatch):
    import dashboard.share  # noqa: F401 - installs the patches
    from panel.io.location import Location

    class Model(param.Parameterized):
        x = param.Integer(default=1)

    calls = []
    monkeypatch.setattr(location, "_APPLY", lambda search, synced: calls.append((search, synced)))
    with hook("panel", "Location._update_synced, ._synced or ._syncing",
              "dashboard/render/location.py"):
        assert Location._update_synced is location._update_synced
        loc = Location(search="?x=3")
        assert loc._syncing is False
        model, on_error = Model(), object()
        loc.sync(model, {"x": "x"}, on_error=on_error)
        obj, mapping, _watcher, handler = loc._synced[-1]
        assert (obj, mapping, handler) == (model, {"x": "x"}, on_error)
        calls.clear()
        loc.search = "?x=5"
        assert calls == [("?x=5", [(model, {"x": "x"}, on_error)])]


# ---- dashboard/render/styles.py ---------------------------------------------------------
def test_divider_stylesheet_is_a_class_attribute_panel_uses():
    with hook("panel", "Divider._stylesheets", "dashboard/render/styles.py"):
        from panel.io.resources import LOCAL_DIST

        assert "_stylesheets" in vars(pn.layout.Divider)
        styles.fix_divider_stylesheet()
        model = pn.layout.Divider().get_root(Document())
        urls = [getattr(s, "url", s) for s in model.stylesheets]
        assert f"{LOCAL_DIST}css/divider.css" in urls


def test_local_stylesheet_hooks():
    with hook("panel", "panel.io.resources (patch_model_css, use_cdn, LOCAL_DIST)",
              "dashboard/render/styles.py"):
        from panel.io.resources import LOCAL_DIST, patch_model_css, use_cdn

        assert isinstance(LOCAL_DIST, str) and callable(use_cdn)
        assert _params(patch_model_css) == ["root", "dist_url"]
    with hook("bokeh", "Document._template_variables", "dashboard/render/styles.py"):
        assert isinstance(Document()._template_variables, dict)
    with hook("holoviews", "holoviews.plotting.util.process_cmap",
              "dashboard/render/styles.py"):
        from holoviews.plotting.util import process_cmap

        assert styles.colormap("viridis") == tuple(process_cmap("viridis"))


# ---- dashboard/render/browser.py: BokehJS (its type declarations) ----------------------
def _bokehjs(path: str) -> str:
    import bokeh

    return (Path(bokeh.__file__).parent / "server" / "static" / "js" / path).read_text()


@pytest.mark.parametrize("path, pattern, what", [
    ("lib/core/dom.d.ts", r"class InlineStyleSheet[^{]*\{[^}]*_update\(css: string\)",
     "core/dom's InlineStyleSheet._update(css)"),
    ("lib/core/dom.d.ts", r"class InlineStyleSheet[^{]*\{[^}]*\bel: HTMLStyleElement",
     "core/dom's InlineStyleSheet.el"),
    ("bokeh.js", r"\bmain\.require = require", "Bokeh.require"),
    ("lib/embed/standalone.d.ts", r"export declare const index: ViewManager", "Bokeh.index"),
    ("lib/core/view_manager.d.ts", r"\ball_views\(\): IterViews", "ViewManager.all_views()"),
    ("lib/models/layouts/layout_dom.d.ts", r"get child_views\(\)", "LayoutDOMView.child_views"),
    ("lib/models/widgets/file_input.d.ts", r"\binput_el: HTMLInputElement",
     "FileInputView.input_el"),
    ("lib/core/has_props.d.ts", r"\bsetv<", "HasProps.setv"),
])
def test_bokehjs_names_used_in_the_page(path, pattern, what):
    with hook("bokeh", f"BokehJS's {what}", "dashboard/render/browser.py"):
        assert re.search(pattern, _bokehjs(path)), f"{pattern!r} not in {path}"


def test_panel_table_view_names_the_resize_guard_uses():
    """TABULATOR_GUARD_JS replaces Panel's DataTabulatorView._flush_resize_when_root_ready
    by the same loop plus a stop for a view no longer in the page: every name it reads."""
    source = (Path(pn.__file__).parent / "models" / "tabulator.ts").read_text()
    with hook("panel", "the table view's resize loop (panel/models/tabulator.ts)",
              "dashboard/render/browser.py"):
        assert "panel.models.tabulator" in source or "class DataTabulator" in source
        assert "async _flush_resize_when_root_ready(): Promise<void>" in source
        for name in ("_resize_pending", "root.ready", "_is_scrolling", "_initializing",
                     "this.container === null", "is_drawing", "_has_active_editor()",
                     "_initialized_stylesheets", "_resize_redraw()"):
            assert name in source, name


def test_tabulator_names_the_columns_guard_uses():
    """TABULATOR_GUARD_JS defers Tabulator's setColumns until the table is built (Panel's
    view calls it on a columns change without waiting): every name it reads."""
    root = Path(pn.__file__).parent
    view = (root / "models" / "tabulator.ts").read_text()
    table = next((root / "dist" / "bundled" / "datatabulator").glob(
        "tabulator-tables@*/dist/js/tabulator.min.js")).read_text()
    with hook("panel", "its table's setColumns, initialized, destroyed or tableBuilt "
              "(panel/models/tabulator.ts, Tabulator)", "dashboard/render/browser.py"):
        assert "declare const Tabulator: any" in view   # the page's global Tabulator
        assert "this.tabulator.setColumns(this.getColumns())" in view
        assert re.search(r"\bsetColumns\(e\)\{", table)
        for name in ("this.initialized=!0", "this.destroyed=!1", '"tableBuilt"'):
            assert name in table, name


# ---- dashboard/render/server.py ---------------------------------------------------------
def test_tornado_handler_methods():
    import tornado.web

    with hook("tornado", "RequestHandler.clear or .set_cookie", "dashboard/render/server.py"):
        assert _params(tornado.web.RequestHandler.clear) == ["self"]
        params = inspect.signature(tornado.web.RequestHandler.set_cookie).parameters
        assert {"samesite", "secure"} <= set(params) or any(
            p.kind is p.VAR_KEYWORD for p in params.values())


def test_panel_login_and_page_handlers():
    from panel import auth
    from panel.io import server as panel_server

    with hook("panel", "LoginUrlMixin.get_login_url, DocHandler.get, auth.CDN_DIST or "
              "BasicLoginHandler.post/_validate", "dashboard/render/server.py"):
        assert _params(panel_server.LoginUrlMixin.get_login_url) == ["self"]
        assert inspect.iscoroutinefunction(inspect.unwrap(panel_server.DocHandler.get))
        assert isinstance(auth.CDN_DIST, str)
        assert _params(auth.BasicLoginHandler._validate) == ["self", "username", "password"]
        assert "self._validate(" in inspect.getsource(
            inspect.unwrap(getattr(auth.BasicLoginHandler.post, "__wrapped__",
                                   auth.BasicLoginHandler.post))) or \
            getattr(auth.BasicLoginHandler.post, "_fmri_explorer", False)


def test_bokeh_server_hooks():
    import sys

    from bokeh.server.connection import ServerConnection
    from bokeh.server.contexts import BokehSessionContext
    from bokeh.server.server import BaseServer
    from bokeh.server.session import ServerSession

    with hook("bokeh", "BaseServer.stop, ServerConnection.session, "
              "BokehSessionContext._session or ServerSession.connection_count",
              "dashboard/render/server.py"):
        assert callable(BaseServer.stop)
        connection = ServerConnection.__new__(ServerConnection)
        connection._session = None  # a connection that has let go of its session
        with pytest.raises(AssertionError):
            connection.session
        try:
            connection.session
        except AssertionError:
            assert server.from_gone_client(sys.exc_info())
        context = BokehSessionContext("id", None, Document())
        assert context._session is None
        assert isinstance(ServerSession.connection_count, property)


def test_session_execution_hooks():
    with hook("panel", "panel.io.state.set_curdoc or state.execute(schedule=)",
              "dashboard/render/server.py"):
        from panel.io.state import set_curdoc as hooked

        assert callable(hooked)
        assert "schedule" in inspect.signature(pn.state.execute).parameters


# ---- dashboard/share.py: param ----------------------------------------------------------
def test_param_validate():
    with hook("param", "Parameter._validate(value)", "dashboard/share.py (read_link)"):
        number = param.Number(default=0.5, bounds=(0, 1))
        number._validate(0.25)
        with pytest.raises(ValueError):
            number._validate(2.0)


# ---- analysis/decoding/svm_fast.py: scikit-learn's private libsvm -----------------------
def _problem(n_classes, seed=0):
    from sklearn.model_selection import LeaveOneGroupOut

    rng = np.random.default_rng(seed)
    y = np.tile(np.repeat([f"c{k}" for k in range(n_classes)], 3), 4)
    groups = np.repeat(np.arange(4), 3 * n_classes)
    X = rng.standard_normal((len(y), 30)) + (np.searchsorted(np.unique(y), y)[:, None] * 0.3)
    return X, y, groups, list(LeaveOneGroupOut().split(X, y, groups))


def test_private_libsvm_is_usable():
    from analysis.decoding import svm_fast

    with hook("scikit-learn", "sklearn.svm._libsvm (fit/predict arguments)",
              "analysis/decoding/svm_fast.py (the public SVC is used meanwhile, slower)"):
        import sklearn.svm._libsvm as libsvm

        assert svm_fast.usable(libsvm) is None, svm_fast.usable(libsvm)
        assert svm_fast.private_libsvm() is libsvm


@pytest.mark.parametrize("n_classes", [2, 3])
def test_private_and_public_paths_give_the_same_null(n_classes):
    from analysis import decoding
    from analysis.decoding import svm_fast

    X, y, groups, splits = _problem(n_classes)
    perms = decoding.shuffled_labels(y, groups, 6, random_state=3)
    public = svm_fast.precomputed_scorer(X, splits, 0.5, private=False)
    plain = decoding.permutation_null(X, y, groups, splits, "svc", 0.5, n_permutations=6,
                                      random_state=3, n_jobs=1, precomputed=False)
    np.testing.assert_array_equal([public(p) for p in perms], plain)
    if svm_fast.private_libsvm() is not None:
        private = svm_fast.precomputed_scorer(X, splits, 0.5, private=True)
        np.testing.assert_array_equal([private(p) for p in perms], plain)


def test_fallback_when_the_private_module_is_gone_or_changed(monkeypatch, caplog):
    import importlib

    from analysis import decoding
    from analysis.decoding import svm_fast

    class Changed:  # a libsvm whose fit lost an argument
        @staticmethod
        def fit(*args, random_seed=None):
            raise TypeError("fit() got an unexpected keyword argument 'svm_type'")

        predict = set_verbosity_wrap = staticmethod(lambda *a, **k: None)

    assert "fit" in svm_fast.usable(Changed())
    assert "no predict" in svm_fast.usable(type("Gone", (), {"fit": staticmethod(len)})())

    real = importlib.import_module

    def no_private(name, *args):
        if name == svm_fast.PRIVATE_MODULE:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(svm_fast.importlib, "import_module", no_private)
    svm_fast.private_libsvm.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=svm_fast.__name__):
            assert svm_fast.private_libsvm() is None
        assert "analysis/decoding/svm_fast.py must be updated" in caplog.text
        X, y, groups, splits = _problem(2, seed=1)
        fast = decoding.permutation_null(X, y, groups, splits, "svc", 1.0, n_permutations=4,
                                         random_state=0, n_jobs=1, precomputed=True)
        plain = decoding.permutation_null(X, y, groups, splits, "svc", 1.0, n_permutations=4,
                                          random_state=0, n_jobs=1, precomputed=False)
        np.testing.assert_array_equal(fast, plain)
        with pytest.raises(RuntimeError, match="cannot be used"):
            svm_fast.precomputed_scorer(X, splits, 1.0, private=True)
    finally:
        monkeypatch.undo()
        svm_fast.private_libsvm.cache_clear()


# ---- dashboard/render/theme.py: Panel's themes, switched without a reload ---------------
def test_panel_theme_stylesheets_and_template_html():
    from dashboard.render import theme

    with hook("panel", "its theme stylesheets (bundled/theme/[bootstrap_]{default,dark}.css "
              "as shared ImportedStyleSheets, state._stylesheets) or the Bootstrap "
              "template's theme HTML", "dashboard/render/theme.py"):
        from bokeh.models import ImportedStyleSheet

        root = Path(pn.__file__).parent
        for name in theme.THEMES:
            for file in (f"{name}.css", f"bootstrap_{name}.css"):
                assert (root / "dist" / "bundled" / "theme" / file).is_file(), file
        base = (root / "_templates" / "base.html").read_text()
        assert f"html {{ background-color: {theme.DARK_PAGE_BACKGROUND} }}" in base
        page = (root / "template" / "bootstrap" / "bootstrap.html").read_text()
        assert 'id="header"' in page and "navbar-{{ 'light' if" in page
        assert "data-bs-theme" in inspect.getsource(pn.template.BootstrapTemplate)

        def theme_urls(model):
            return sorted(s.url for s in model.stylesheets
                          if isinstance(s, ImportedStyleSheet) and theme.THEME_CSS.search(s.url))

        doc = Document()
        with set_curdoc(doc):
            pn.config.theme = "dark"
            model = pn.widgets.Button(label="x", design=pn.theme.Bootstrap).get_root(doc)
            doc.add_root(model)
            assert isinstance(pn.state._stylesheets.get(doc), dict)
            urls = theme_urls(model)
            assert [u.rsplit("/", 1)[1] for u in urls] == ["bootstrap_dark.css", "dark.css"], urls
            theme.switch_theme(doc, "default")
            assert theme_urls(model) == [theme.themed_url(u, "default") for u in urls]
            assert pn.config.theme == "default"
            later = pn.widgets.Button(label="y", design=pn.theme.Bootstrap).get_root(doc)  # later
            assert theme_urls(later) == theme_urls(model)


def _figure_looks(doc) -> list:
    """The colours, fonts and fills of the document's figures, axes, titles, colour bars."""
    from bokeh.models import Axis, ColorBar, Grid, Plot, Title

    looks = []
    for model in doc.models:
        if isinstance(model, (Plot, Axis, Title, ColorBar, Grid)):
            values = model.properties_with_values(include_defaults=True)
            looks.append((type(model).__name__, sorted(
                (k, repr(v)) for k, v in values.items()
                if re.search(r"color|font|alpha|fill", k) and not hasattr(v, "id"))))
    return sorted(looks)


@pytest.mark.parametrize("start, switched", [("default", "dark"), ("dark", "default")])
def test_a_switched_figure_looks_drawn_in_that_theme(start, switched):
    from dashboard.render import theme

    def drawn(name, switch_to=None):
        doc = Document()
        with set_curdoc(doc):
            pn.config.theme = name
            plots = (hv.Image(np.eye(4)).opts(colorbar=True, title="image")
                     + hv.Curve([1, 3, 2]).opts(title="curve"))
            pane = pn.pane.HoloViews(plots)
            pn.template.BootstrapTemplate(theme=name, main=[pane]).server_doc(doc)
            if switch_to:
                theme.switch_theme(doc, switch_to, roots=[pane])
            elif switch_to is None:   # as the app does once a page is loaded
                theme.set_figure_theme(doc, name, roots=[pane])
            for plot, _ in pane._plots.values():  # a later HoloViews update, too
                plot.update(0)
        return _figure_looks(doc)

    with hook("holoviews", "what a Bokeh document theme does to its drawn plots (or "
              "bokeh HasProps._property_values, panel HoloViews._plots)",
              "dashboard/render/theme.py (figure_theme, switch_theme)"):
        looks = drawn(start, switched)
        assert looks, "no figure drawn"
        assert looks == drawn(switched)
        assert looks != drawn(start)


def test_session_doc_is_panels_context_local_document():
    """render.server.session_doc reads Panel's context-local current document
    (``state._curdoc``, a ContextVar that ``set_curdoc`` sets); if Panel renames it, this
    fails: update dashboard/render/server.py."""
    import contextvars

    from bokeh.document import Document
    from panel.io.state import set_curdoc, state

    from dashboard.render.server import session_doc

    assert isinstance(state._curdoc, contextvars.ContextVar), \
        "panel.io.state.state._curdoc is no longer a ContextVar: update session_doc()"
    assert session_doc() is None
    doc = Document()
    with set_curdoc(doc):
        assert session_doc() is doc
        seen = []
        contextvars.copy_context().run(lambda: seen.append(session_doc()))
        assert seen == [doc]
    assert session_doc() is None


def test_a_raising_callback_leaves_no_current_document():
    """Bokeh's patch_curdoc pops its override without a ``finally``: a raising session
    callback left its document current for the whole process (pn.state.curdoc in every
    other thread answered with that session). render.server installs a safe one where
    Bokeh (invoke_with_curdoc) and Panel (its handlers) look it up."""
    import contextlib

    import pytest
    from bokeh.document import Document
    from bokeh.document.callbacks import invoke_with_curdoc
    from bokeh.io import doc as bokeh_doc
    from panel.io import handlers

    from dashboard.render import server

    assert bokeh_doc.patch_curdoc is server._safe_patch_curdoc, \
        "bokeh.io.doc.patch_curdoc is not the safe one: install_safe_patch_curdoc() ran?"
    assert handlers.patch_curdoc is server._safe_patch_curdoc
    assert isinstance(bokeh_doc._PATCHED_CURDOCS, list), \
        "bokeh.io.doc._PATCHED_CURDOCS changed: update dashboard/render/server.py"
    before = list(bokeh_doc._PATCHED_CURDOCS)
    doc = Document()

    def boom():
        assert bokeh_doc.curdoc() is doc
        raise ValueError("a callback failed")

    with pytest.raises(ValueError):
        invoke_with_curdoc(doc, boom)
    assert bokeh_doc._PATCHED_CURDOCS == before
    with contextlib.suppress(ValueError), server._safe_patch_curdoc(doc):
        raise ValueError
    assert bokeh_doc._PATCHED_CURDOCS == before


def test_a_callback_has_its_document_current_while_another_threads_runs():
    """Bokeh's current document is one list for the process; with two servers' threads
    (the browser tests), a session callback of one saw the other's session as current and
    Panel took that session's stylesheets for its own models. render.server's
    patch_curdoc also sets Panel's context-local document: each callback sees its own."""
    import threading

    from bokeh.document.callbacks import invoke_with_curdoc
    from bokeh.io import doc as bokeh_doc

    own, other = Document(), Document()
    entered, leave = threading.Event(), threading.Event()
    seen = {}

    def other_servers_callback():
        entered.set()
        leave.wait(10)

    def callback():
        thread = threading.Thread(target=invoke_with_curdoc,
                                  args=(other, other_servers_callback))
        thread.start()
        try:
            assert entered.wait(10)
            seen["panel"] = pn.state.curdoc   # the other thread's entry is Bokeh's last
        finally:
            leave.set()
            thread.join(10)
        seen["after"] = pn.state.curdoc

    before = list(bokeh_doc._PATCHED_CURDOCS)
    invoke_with_curdoc(own, callback)
    assert seen == {"panel": own, "after": own}
    assert bokeh_doc._PATCHED_CURDOCS == before


@pytest.mark.parametrize("name", ["default", "dark"])
def test_bokeh_theme_json_holds_the_themes_attrs(name):
    """figure_theme(present=True) copies a theme's ``_json`` (Bokeh keeps the spec there)
    and adds the presentation text sizes: the copy keeps every value of the original."""
    from dashboard.render.theme import figure_theme

    original, present = figure_theme(name), figure_theme(name, present=True)
    spec = original._json
    assert isinstance(spec, dict)
    for model, values in (spec.get("attrs") or {}).items():
        for prop, value in values.items():
            if "font_size" not in prop:
                assert present._json["attrs"][model][prop] == value, (model, prop)


def _stylesheet_urls(doc) -> set:
    return {sheet.url for model in doc.models for sheet in getattr(model, "stylesheets", [])
            if hasattr(sheet, "url")}


def _served_like_doc(tabs=None):
    from panel.io.resources import LOCAL_DIST

    doc = Document()
    doc._template_variables["dist_url"] = LOCAL_DIST   # as a served session's
    if tabs is not None:
        with set_curdoc(doc):
            doc.add_root(tabs.get_root(doc))
    return doc


@pytest.mark.parametrize("current", ["its own", "another session's"])
def test_a_pane_updated_in_a_hidden_tab_keeps_the_pages_stylesheets_local(current):
    """A dynamic Tabs' hidden tab keeps its models out of the document; Panel updates such
    a Markdown with ``_get_properties(model.document)``, i.e. no document: its stylesheets
    (the session's shared objects) went to Panel's CDN for the whole page (a job's result
    arriving while another tab is shown). render.server resolves them against the pane's
    own document, even when Panel's current document is another session's
    (dashboard/render/server.py, _detached_pane_stylesheets)."""
    from panel.io.resources import CDN_DIST
    from panel.pane.base import Pane
    from panel.reactive import Reactive

    with hook("panel", "Reactive._get_properties(doc) or Pane._update_object",
              "dashboard/render/server.py"):
        for method in (Reactive._get_properties, Pane._update_object):
            assert getattr(method, "_fmri_explorer", False), method
        assert _params(Reactive._get_properties.__wrapped__)[:2] == ["self", "doc"]
        assert _params(Pane._update_object.__wrapped__) == \
            ["self", "ref", "doc", "root", "parent", "comm"]
    line, other = pn.pane.Markdown("computing"), pn.pane.Markdown("another tab")
    tabs = pn.Tabs(("Decoding", line), ("Encoding", other), dynamic=True)
    doc = _served_like_doc(tabs)
    elsewhere = _served_like_doc(pn.Column(pn.pane.Markdown("another session")))
    before = _stylesheet_urls(doc)
    assert before and not any(url.startswith(CDN_DIST) for url in before), before
    with set_curdoc(doc):
        tabs.active = 1             # the Decoding tab's models leave the document
    with set_curdoc(doc if current == "its own" else elsewhere):
        line.object = "p = 0.03"    # a job's result arrives meanwhile
    assert _stylesheet_urls(doc) == before
    with set_curdoc(doc):
        tabs.active = 0             # shown again: its models, with their stylesheets
    after = _stylesheet_urls(doc)
    assert not any(url.startswith(CDN_DIST) for url in after), after
    assert any("markdown.css" in url for url in after), after
    assert "another session" not in str([m.text for m in doc.models if hasattr(m, "text")])
