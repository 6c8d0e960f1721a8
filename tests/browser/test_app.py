"""The whole app in Chromium, every outside request blocked: three tabs, a click."""

import re

from tests.browser.helpers import click_data, open_tab, text_of, wait_text, wait_text_change

TABS = ["Encoding", "Decoding", "Connectivity"]


def test_three_tabs_render_with_no_outside_request(app_page):
    page = app_page
    for name in TABS:
        open_tab(page, name)
        page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
        wait_text(page, ".summary", lambda t: bool(t.strip()))
    if name == "Connectivity":  # the Group section opens without errors
        page.locator(".group-section").first.locator(".card-button, button").first.click()
        page.wait_for_function("() => Bokeh.documents[0].is_idle", timeout=60_000)
    assert page.blocked_requests == [], page.blocked_requests
    assert page.js_errors == [], page.js_errors


def test_click_on_a_slice_moves_the_crosshair(app_page):
    page = app_page
    open_tab(page, "Decoding")
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    info = page.locator(".crosshair-info").first
    before = text_of(page, ".crosshair-info")
    match = re.search(r"crosshair \(([-\d.]+), ([-\d.]+), ([-\d.]+)\) mm", before)
    assert match, before
    x, y, _ = map(float, match.groups())
    # click one voxel-ish step away in the axial view
    click_data(page, "slice-axial", x + 8.0, y - 8.0)
    after = wait_text_change(page, ".crosshair-info", before)
    assert after != before and info.is_visible()


def test_bokeh_skips_rewriting_an_unchanged_stylesheet(app_page):
    """dashboard/render/browser.py: a repaint no longer rewrites each renderer's unchanged <style>."""
    page = app_page
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("""() => Bokeh.require("core/dom").InlineStyleSheet
        .prototype._update.__unchanged_skipped === true""", timeout=30_000)
    kept, changed, text = page.evaluate("""() => {
      const {InlineStyleSheet} = Bokeh.require("core/dom");
      const sheet = new InlineStyleSheet(":host { width: 1px; }");
      const node = sheet.el.firstChild;
      sheet.replace(":host { width: 1px; }");      // the same text: not written again
      const kept = sheet.el.firstChild === node;
      sheet.replace(":host { width: 2px; }");      // new text: written
      return [kept, sheet.el.firstChild !== node, sheet.css];
    }""")
    assert kept and changed and text == ":host { width: 2px; }"
    assert page.js_errors == [], page.js_errors


def test_a_table_view_out_of_the_page_stops_waiting_for_its_stylesheets(app_page):
    """dashboard/render/browser.py: Panel's table view, out of the page with a stylesheet
    that never loads, used to wait in a loop for ever (the page froze after the Decoding
    tab's first change of CV); guarded, its wait ends and the page answers."""
    page = app_page
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("""() => { const M = Bokeh.Models.get(
        "panel.models.tabulator.DataTabulator");
        return M.prototype.default_view.prototype._flush_resize_when_root_ready
          .__detached_stops === true }""", timeout=30_000)
    ended = page.evaluate("""async () => {
      const View = Bokeh.Models.get("panel.models.tabulator.DataTabulator")
        .prototype.default_view;
      const fake = Object.create(View.prototype);
      Object.assign(fake, {_resize_pending: true, root: {ready: Promise.resolve()},
        el: document.createElement("div"), _initialized_stylesheets: new Map([["x", false]]),
        _is_scrolling: false, _initializing: false, container: null});
      const timeout = new Promise((r) => setTimeout(() => r("still waiting"), 3000));
      return await Promise.race([fake._flush_resize_when_root_ready().then(() => "ended"),
                                 timeout]);
    }""")
    assert ended == "ended"


def test_a_table_given_new_columns_before_it_is_built_takes_them_once_built(app_page):
    """dashboard/render/browser.py: a Tabulator table builds its header in a later task,
    and Panel's view sets new columns (a title following the map's name) without waiting:
    in between it threw "Cannot read properties of null (reading 'firstChild')" and the
    table was left unfinished. Guarded, the call is kept and made once the table is built."""
    page = app_page
    page.wait_for_function("() => window.Tabulator && "
                           "window.Tabulator.prototype.setColumns.__until_built === true",
                           timeout=30_000)
    threw, titles = page.evaluate("""async () => {
      const el = document.createElement("div");
      document.body.appendChild(el);
      const table = new Tabulator(el, {columns: [{field: "a", title: "first"}],
                                       data: [{a: 1}]});
      let threw = null;
      try {
        table.setColumns([{field: "a", title: "second"}]);   // not built yet
        table.setColumns([{field: "a", title: "peak weights"}]);
      } catch (err) { threw = String(err); }
      await new Promise((resolve) => table.on("tableBuilt", () => setTimeout(resolve, 0)));
      const titles = [...el.querySelectorAll(".tabulator-col-title")].map((t) => t.textContent);
      table.destroy();
      el.remove();
      return [threw, titles];
    }""")
    assert threw is None and titles == ["peak weights"], (threw, titles)
    assert page.js_errors == [], page.js_errors


def test_a_server_just_started_sends_the_page_then_the_tab(page, data_home, monkeypatch):
    """While the warm-up thread loads the Encoding tab's data, a first visitor gets the
    page at once (the tab's spinner), then the tab when the data are there, then its
    voxel's views: every model with this server's stylesheets, no outside request."""
    import threading

    from dashboard import warmup
    from dashboard.app import create_app
    from tests.browser.conftest import EXTERNAL, READY, served

    started, ready = threading.Event(), threading.Event()
    started.set()  # as if `--setup dashboard/warmup.py` had started its thread
    monkeypatch.setattr(warmup, "_STARTED", started)
    monkeypatch.setattr(warmup, "FIRST_PAGE_READY", ready)
    blocked, errors = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.route(EXTERNAL, lambda route: (blocked.append(route.request.url), route.abort()))
    with served(create_app) as url:
        page.goto(url)
        page.wait_for_function(READY, timeout=90_000)
        page.wait_for_timeout(500)  # the tab waits for the warm-up
        assert page.locator(".tab-loading").first.is_visible()
        assert page.locator(".summary").count() == 0
        ready.set()
        page.locator(".tab-loading").first.wait_for(state="detached", timeout=90_000)
        summary = wait_text(page, ".summary", lambda t: t.startswith("alpha=100 "))
        assert "voxels above 0.05" in summary
        page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
        # the voxel's views follow in a second message
        for css in (".time-course canvas", ".rf-lasso canvas", ".alpha-path canvas"):
            page.locator(css).first.wait_for(state="visible", timeout=90_000)
        page.wait_for_function(READY, timeout=90_000)
    assert blocked == [], blocked
    assert errors == [], errors
