"""The Dark / light button switches the page and its figures in place: no reload, the
session's values kept, the URL's ``theme`` following (dashboard/render/theme.py)."""

import re

from tests.browser.conftest import SCREENSHOTS, open_page
from tests.browser.helpers import model_value, text_of, wait_idle, wait_text_change

#: The page, a Panel component and a figure as drawn (colours as the browser computes them).
LOOK_JS = """() => {
  const roots = [...Bokeh.index.all_views()];
  const seen = new Set(); const all = [];
  const walk = (v) => { if (!v || seen.has(v)) return; seen.add(v); all.push(v);
    for (const c of (v.child_views ? [...v.child_views] : [])) walk(c); };
  roots.forEach(walk);
  const fig = all.find((v) => v.model.name === "slice-axial" && v.frame);
  const summary = all.find((v) => (v.model.css_classes || []).includes("summary"));
  return {body: getComputedStyle(document.body).backgroundColor,
          text: getComputedStyle(summary.shadow_el.querySelector("p")).color,
          figure: fig.model.background_fill_color, border: fig.model.border_fill_color,
          tick: fig.model.left[0].major_label_text_color, theme: document.documentElement.dataset.bsTheme};
}"""


def _luminance(css: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255


def _hex_luminance(color: str) -> float:
    color = color.lstrip("#")
    return _luminance("rgb({}, {}, {})".format(*(int(color[i:i + 2], 16) for i in (0, 2, 4))))


def _pixel_luminance(png: bytes, x: int, y: int) -> float:
    import io

    from PIL import Image

    r, g, b = Image.open(io.BytesIO(png)).convert("RGB").getpixel((x, y))
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255


def _switch(page, to: str) -> dict:
    page.locator(".theme-toggle button").click()
    page.wait_for_function("(t) => new URLSearchParams(location.search).get('theme') === t",
                           arg=to, timeout=60_000)
    page.wait_for_function("(t) => document.documentElement.dataset.bsTheme === t",
                           arg="dark" if to == "dark" else "light", timeout=60_000)
    wait_idle(page)
    page.wait_for_timeout(500)  # the swapped stylesheets load and the canvases repaint
    return page.evaluate(LOOK_JS)


def _assert_dark(look, page):
    assert look["theme"] == "dark"
    assert _luminance(look["body"]) < 0.25, look
    assert _luminance(look["text"]) > 0.75, look  # text readable on it
    assert _hex_luminance(look["figure"]) < 0.25 and _hex_luminance(look["border"]) < 0.25
    assert _hex_luminance(look["tick"]) > 0.75, look
    png = page.locator(".slice-axial").first.screenshot()
    assert _pixel_luminance(png, 3, 3) < 0.25  # the figure's border as painted


def _assert_light(look, page):
    assert look["theme"] == "light"
    assert _luminance(look["body"]) > 0.9, look
    assert _luminance(look["text"]) < 0.35, look
    assert _hex_luminance(look["figure"]) > 0.9 and _hex_luminance(look["border"]) > 0.9
    assert _hex_luminance(look["tick"]) < 0.5, look
    png = page.locator(".slice-axial").first.screenshot()
    assert _pixel_luminance(png, 3, 3) > 0.9


def test_dark_and_back_without_a_reload_keeping_the_session(app_page):
    page = app_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    navigations = []  # documents loaded (the URL's own changes load none)
    page.on("load", lambda p: navigations.append(p.url))
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    _assert_light(page.evaluate(LOOK_JS), page)
    # a value changed in this session: the alpha slider, one step to the right
    before = text_of(page, ".summary")
    page.locator(".alpha-slider .noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    summary = wait_text_change(page, ".summary", before)
    alpha = model_value(page, "alpha-slider")
    page.evaluate("() => { window.__marker = 1 }")

    look = _switch(page, "dark")
    page.screenshot(path=str(SCREENSHOTS / "theme-dark.png"))
    page.locator(".encoding-views").first.screenshot(path=str(SCREENSHOTS / "theme-dark-figures.png"))
    _assert_dark(look, page)
    assert page.evaluate("() => window.__marker") == 1, "the page was reloaded"
    assert navigations == [], navigations
    assert model_value(page, "alpha-slider") == alpha
    assert text_of(page, ".summary") == summary

    look = _switch(page, "default")
    page.screenshot(path=str(SCREENSHOTS / "theme-light.png"))
    _assert_light(look, page)
    assert page.evaluate("() => window.__marker") == 1 and navigations == []
    assert model_value(page, "alpha-slider") == alpha
    assert text_of(page, ".summary") == summary
    assert page.js_errors == [], page.js_errors


def test_a_dark_link_opens_dark_and_switches_to_light_in_place(page, app_url):
    page = open_page(page, app_url + "?theme=dark")
    page.locator(".slice-axial canvas").first.wait_for(state="visible", timeout=60_000)
    _assert_dark(page.evaluate(LOOK_JS), page)
    page.evaluate("() => { window.__marker = 1 }")
    look = _switch(page, "default")
    page.screenshot(path=str(SCREENSHOTS / "theme-dark-start-light.png"))
    _assert_light(look, page)
    assert page.evaluate("() => window.__marker") == 1, "the page was reloaded"
    assert page.js_errors == [], page.js_errors
