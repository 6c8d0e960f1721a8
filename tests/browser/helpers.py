"""Drive Bokeh models from Playwright (see ../shared/BROWSER_TESTING.md)."""

from __future__ import annotations

import json
import time

READY = "() => !!window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"

def _views_js() -> str:
    return """
    const roots = Bokeh.index.all_views ? [...Bokeh.index.all_views()] : Object.values(Bokeh.index);
    const seen = new Set(); const all = [];
    const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); all.push(v);
      const kids = v.child_views ? [...v.child_views] : [];
      for (const c of kids) walk(c);
      if (v.renderer_views) for (const c of v.renderer_views.values()) walk(c); };
    for (const v of roots) walk(v);
    const has = (m, cls) => m && ((m.css_classes || []).includes(cls) || m.name === cls);
    """


def set_model_value(page, css_class: str, value, prop: str = "value") -> None:
    """Set a widget model's property as a user edit would (syncs to the server)."""
    found = page.evaluate(
        "([cls, val, prop]) => {" + _views_js() + """
        const v = all.find(v => has(v.model, cls));
        if (!v) return false;
        v.model[prop] = val; return true; }""",
        [css_class, value, prop])
    if not found:
        raise LookupError(f"no Bokeh model with css class or name {css_class!r}")


def model_value(page, css_class: str, prop: str = "value"):
    return page.evaluate(
        "([cls, prop]) => {" + _views_js() + """
        const v = all.find(v => has(v.model, cls));
        return v ? JSON.stringify(v.model[prop]) : null; }""",
        [css_class, prop])


def figure_point(page, name: str, x: float, y: float) -> tuple:
    """Page pixel coordinates of data point ``(x, y)`` in the figure named ``name``."""
    box = page.evaluate(
        "([cls, x, y]) => {" + _views_js() + """
        const v = all.find(v => v.frame && has(v.model, cls));
        if (!v) return null;
        const r = v.canvas_view.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)]; }""",
        [name, x, y])
    if box is None:
        raise LookupError(f"no figure named {name!r}")
    return tuple(box)


def click_data(page, name: str, x: float, y: float) -> None:
    """Click at data coordinates ``(x, y)`` on the figure named ``name``."""
    px, py = figure_point(page, name, x, y)
    page.mouse.click(px, py)


def open_tab(page, name: str) -> None:
    """Click the tab titled ``name`` and wait until Bokeh is idle."""
    page.locator(".bk-tab", has_text=name).first.click()
    page.wait_for_function(READY, timeout=60_000)


def wait_idle(page, timeout: float = 60_000) -> None:
    page.wait_for_function(READY, timeout=timeout)


def text_of(page, css_selector: str) -> str:
    """Visible text of the first element matching ``css_selector`` (a Panel pane's
    shadow host: its text lives in the shadow root, beside <style> elements)."""
    return page.locator(f"{css_selector} >> visible=true").first.evaluate(
        """el => { const root = el.shadowRoot || el;
           return [...root.children].filter(c => !['STYLE', 'LINK'].includes(c.tagName))
                  .map(c => c.innerText).join('\\n').trim(); }""")


def wait_text(page, css_selector: str, predicate=bool, timeout: float = 60.0) -> str:
    """Wait until the visible text of ``css_selector`` satisfies ``predicate``; return it."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = text_of(page, css_selector)
        except Exception:  # noqa: BLE001 - not rendered yet
            text = ""
        if predicate(text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{css_selector}: {text!r} after {timeout} s")


def wait_image_change(locator, before: bytes, timeout: float = 30.0) -> bytes:
    """Wait until ``locator``'s screenshot differs from ``before`` (a plot was redrawn)."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            now = locator.screenshot(timeout=5000)
        except PlaywrightError:  # the plot is being replaced: look again
            now = before
        if now != before:
            return now
        time.sleep(0.1)
    raise AssertionError("the plot was not redrawn")


def wait_text_change(page, css_selector: str, before: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = text_of(page, css_selector)
        if now != before:
            return now
        time.sleep(0.05)
    raise AssertionError(f"{css_selector} still {before!r} after {timeout} s")


__all__ = ["set_model_value", "model_value", "figure_point", "click_data", "open_tab",
           "wait_idle", "text_of", "wait_text", "wait_text_change", "wait_image_change", "json"]


def record_busy(page, progress_class: str, status_class: str, views_class: str = "") -> None:
    """Start recording whether the progress bar with css class ``progress_class`` was
    shown, which texts the status pane showed and (with ``views_class``) whether those
    views were greyed out (dashboard/busy.py's inline styles), from the models' change
    signals (a quick job's "shown" and "hidden" may arrive in one network read); read the
    record with :func:`busy_record`."""
    found = page.evaluate("([pcls, scls, vcls]) => {" + _views_js() + """
      const rec = window.__busy = {progress: false, status: [], greyed: false};
      const p = all.find((v) => has(v.model, pcls));
      const st = all.find((v) => has(v.model, scls));
      const views = vcls ? all.find((v) => has(v.model, vcls)) : null;
      if (!p || !st || (vcls && !views)) return false;
      // shown: visible, and not hidden by the kit's inline style (dashboard/busy.py)
      const get = (s, k) => s instanceof Map ? s.get(k) : (s || {})[k];
      const note = () => {
        if (p.model.visible && get(p.model.styles, 'visibility') !== 'hidden') rec.progress = true;
        if (views && get(views.model.styles, 'pointer-events') === 'none') rec.greyed = true;
        const t = String(st.model.text || '');
        if (t && !rec.status.includes(t)) rec.status.push(t);
      };
      p.model.properties.visible.change.connect(note);
      p.model.properties.styles.change.connect(note);
      if (views) views.model.properties.styles.change.connect(note);
      st.model.properties.text.change.connect(note);
      window.__busyTimer = setInterval(note, 5);
      return true; }""", [progress_class, status_class, views_class])
    if not found:
        raise LookupError(f"no models with css classes {progress_class!r}, {status_class!r}, "
                          f"{views_class!r}")


def busy_record(page) -> dict:
    """Stop :func:`record_busy`; ``{"progress": bool, "status": [texts]}``."""
    return page.evaluate("() => { clearInterval(window.__busyTimer); return window.__busy; }")


def busy_drawn(page, stem: str) -> list:
    """``[opacity, pointer-events]`` of the views ``<stem>-views`` and the visibility of
    the progress bar ``<stem>-progress`` as the page draws them (computed styles: a
    property a style update leaves out stays in the browser)."""
    return page.evaluate("(stem) => {" + _views_js() + """
      const v = all.find((v) => has(v.model, stem + '-views'));
      const p = all.find((v) => has(v.model, stem + '-progress'));
      const vs = getComputedStyle(v.el);
      const shown = p && p.model.visible ? getComputedStyle(p.el).visibility : 'hidden';
      return [vs.opacity, vs.pointerEvents, shown]; }""", stem)
