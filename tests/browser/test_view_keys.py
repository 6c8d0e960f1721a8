"""The slice views from the keyboard in Chromium (issue 15 item 19; dashboard/view_keys.py):
a focused view takes the arrow keys, Page Up/Down and Enter."""

import re

from tests.browser.helpers import open_tab, text_of, wait_text_change

VOXEL = re.compile(r"voxel \((\d+), (\d+), (\d+)\)")


def _voxel(page):
    text = text_of(page, ".crosshair-info")
    match = VOXEL.search(text)
    assert match, text
    return tuple(int(g) for g in match.groups())


def test_keys_move_the_crosshair_and_enter_sets_the_seed(app_page):
    page = app_page
    open_tab(page, "Connectivity")
    axial = page.locator(".slice-axial >> visible=true").first
    axial.locator("canvas").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("""() => [...document.querySelectorAll('*')].some(function find(el) {
        if (el.classList.contains('slice-axial') && el.getAttribute('tabindex') === '0'
            && /arrow keys/.test(el.getAttribute('aria-label') || '')) return true;
        return el.shadowRoot ? [...el.shadowRoot.querySelectorAll('*')].some(find) : false;
      })""", timeout=30_000)
    axial.focus()
    summary = text_of(page, ".summary")
    i, j, k = _voxel(page)
    before = text_of(page, ".crosshair-info")
    page.keyboard.press("ArrowUp")          # +y: the next voxel up in the axial view
    wait_text_change(page, ".crosshair-info", before)
    assert _voxel(page) == (i, j + 1, k)
    before = text_of(page, ".crosshair-info")
    page.keyboard.press("PageUp")            # the next axial slice (+z)
    wait_text_change(page, ".crosshair-info", before)
    assert _voxel(page) == (i, j + 1, k + 1)
    assert text_of(page, ".summary") == summary   # moving is not choosing a seed
    page.keyboard.press("Enter")             # the seed goes to the crosshair
    after = wait_text_change(page, ".summary", summary, timeout=60)
    assert after != summary
    assert page.js_errors == [], page.js_errors
