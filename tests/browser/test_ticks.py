"""The tick formatter's JavaScript gives, in Chromium, the labels ``format_tick`` gives."""

from __future__ import annotations

import json

import numpy as np

from dashboard.render.ticks import TICK_JS, format_tick


def test_page_labels_equal_python_labels(page):
    values = [0.0, 0.001, 0.0005, 40000.0, 4.5, -0.35, 12345.0, 1 / 3, -2.5e-5, 0.35000001,
              *np.linspace(-5, 5, 21), *np.geomspace(1.7e-6, 3.3e6, 25)]
    page.set_content("<html><body></body></html>")
    got = page.evaluate(f"(vs) => vs.map(new Function('tick', {json.dumps(TICK_JS)}))", values)
    assert got == [format_tick(v) for v in values]
