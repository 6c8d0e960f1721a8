"""The Encoding tab's permutation test in Chromium: Run shows a progress bar, then the
R^2 histogram's dashed "FDR q<0.05" line at the module's threshold and the line of text."""

from __future__ import annotations

import time

import pytest

from analysis.encoding import EncodingAnalysis
from analysis.encoding.permutation import permutation_test
from dashboard.encoding.views import FDR_COLOR
from tests.browser.conftest import SCREENSHOTS
from tests.browser.helpers import (_views_js, busy_record, record_busy, set_model_value,
                                   wait_text)


def _fdr_lines(page) -> list:
    """Locations of the vertical lines drawn in the FDR colour in the R^2 histogram."""
    return page.evaluate("(color) => {" + _views_js() + """
      const pane = all.find((v) => has(v.model, 'r2-hist'));
      if (!pane) return [];
      const figs = all.filter((v) => v.model.center && v.model.renderers);
      const lines = [];
      for (const f of figs) {
        let p = f; while (p && p !== pane) p = p.parent;
        if (!p) continue;
        for (const m of [...f.model.center, ...f.model.renderers])
          if (m.dimension === 'height' && 'location' in m && m.location !== null &&
              String(m.line_color).toLowerCase() === color) lines.push(m.location);
      }
      return lines; }""", FDR_COLOR.lower())


@pytest.mark.browser
def test_run_draws_the_fdr_line(app_page):
    page = app_page
    run = page.locator(".enc-perm-run button").first
    run.wait_for(state="visible", timeout=60_000)
    page.locator(".r2-hist canvas").first.wait_for(state="visible", timeout=60_000)
    assert _fdr_lines(page) == []
    set_model_value(page, "enc-perm-count", 40)
    record_busy(page, "enc-significance-progress", "enc-significance-status")
    run.click()
    text = wait_text(page, ".enc-significance-text", lambda t: "FDR q<0.05" in t, timeout=120)
    busy = busy_record(page)
    assert busy["progress"] and any("permutation" in t for t in busy["status"]), busy

    # the module's test of the same analysis (the app serves the small size; seed 0)
    enc = EncodingAnalysis(size="small")
    y, x, runs, _ = enc.samples()
    expected = permutation_test(enc.engine(), x, y, runs, enc.alpha, 40, "shift",
                                random_state=0)
    assert expected.r2_threshold is not None
    assert (f"{expected.n_significant:,} of {enc.n_voxels:,} voxels pass FDR q<0.05"
            in text), text
    assert "40 permutations (circular shifts within runs" in text
    assert "smallest reportable p = 1/(n+1) = 0.024" in text
    deadline = time.monotonic() + 30
    while not _fdr_lines(page) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _fdr_lines(page) == [pytest.approx(expected.r2_threshold)]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".enc-significance").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "encoding-significance.png"))
