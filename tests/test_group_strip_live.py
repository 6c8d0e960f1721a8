"""The Group section's subject strip and t histogram: a seed move updates the drawn
figures in place (issue 17's speed: redrawing a dozen figures per move took seconds),
and they then show what a fresh drawing of the new result shows."""

from __future__ import annotations

import time

import numpy as np
import panel as pn
from bokeh.document import Document
from bokeh.models import GlyphRenderer, Image
from panel.io.state import set_curdoc

from analysis import group as G


def _wait(panel, timeout=120):
    deadline = time.monotonic() + timeout
    while panel.busy and time.monotonic() < deadline:
        panel.job.wait(max(0.0, deadline - time.monotonic()))
    assert not panel.busy


def _render(panel):
    doc = Document()
    with set_curdoc(doc):
        doc.add_root(pn.Column(panel.hist, panel.strip).get_root(doc))
    return doc


def _figures(doc) -> dict:
    from bokeh.plotting import figure

    return {f.title.text: f for f in doc.select({"type": figure})
            if any(isinstance(getattr(r, "glyph", None), Image) for r in f.renderers)}


def _hist(doc) -> tuple:
    """The histogram's figure, its bars' columns and its lines' (colour, location)."""
    from bokeh.models import Quad, Span
    from bokeh.plotting import figure

    (fig,) = [f for f in doc.select({"type": figure}) if f.title.text.startswith("t over")]
    (bars,) = [r for r in fig.renderers if isinstance(getattr(r, "glyph", None), Quad)]
    columns = {k: np.asarray(bars.data_source.data[k], dtype=float)
               for k in ("top", "left", "right")}
    lines = sorted((s.line_color, round(float(s.location), 9)) for s in doc.select({"type": Span}))
    return fig, columns, lines


def _drawn(doc) -> dict:
    """Title -> (image values, colour range) of each drawn slice."""
    out = {}
    for title, fig in _figures(doc).items():
        (renderer,) = [r for r in fig.renderers if isinstance(getattr(r, "glyph", None), Image)]
        mapper = renderer.glyph.color_mapper
        out[title] = (np.asarray(renderer.data_source.data["image"][0], dtype=float),
                      (mapper.low, mapper.high))
    return out


def test_a_seed_move_updates_the_strip_in_place_as_a_fresh_drawing(group_dir):
    from dashboard.group import GroupPanel

    model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=4, processes=False)
    panel = GroupPanel(model=model)
    panel.__panel__()
    panel.start()
    _wait(panel)
    doc = _render(panel)
    before = _figures(doc)
    drawn_before = _drawn(doc)
    hist_before, bars_before, _ = _hist(doc)
    assert sorted(before) == sorted(model.result.r.subject.values)

    model.seed_mm = (-40.0, -70.0, 30.0)   # a seed move: the cheap re-run, then the views
    _wait(panel)
    assert model.result.seed_mm == (-40.0, -70.0, 30.0)
    after = _figures(doc)
    assert {k: id(v) for k, v in after.items()} == {k: id(v) for k, v in before.items()}, \
        "the strip was redrawn, not updated in place"
    moved = _drawn(doc)
    hist_after, bars, lines = _hist(doc)
    assert hist_after is hist_before, "the histogram was redrawn, not updated in place"
    assert not np.array_equal(bars["top"], bars_before["top"])
    assert any(not np.array_equal(moved[k][0], drawn_before[k][0], equal_nan=True)
               for k in moved), "the slices did not change"

    # what a fresh panel draws for the same result
    fresh = GroupPanel(model=G.GroupConnectivity(data_dir=str(group_dir), n_subjects=4,
                                                 processes=False, seed_mm=model.seed_mm))
    fresh.__panel__()
    fresh.start()
    _wait(fresh)
    fresh_doc = _render(fresh)
    expected = _drawn(fresh_doc)
    _, fresh_bars, fresh_lines = _hist(fresh_doc)
    for key in fresh_bars:
        np.testing.assert_allclose(bars[key], fresh_bars[key])
    assert lines == fresh_lines and len(lines) >= 4   # threshold, FDR and/or FWE lines
    assert sorted(expected) == sorted(moved)
    for title, (values, clim) in expected.items():
        np.testing.assert_array_equal(moved[title][0], values)
        assert moved[title][1] == clim, title


def test_other_subjects_draw_the_strip_anew(group_dir):
    from dashboard.group import GroupPanel

    model = G.GroupConnectivity(data_dir=str(group_dir), n_subjects=3, processes=False)
    panel = GroupPanel(model=model)
    panel.__panel__()
    panel.start()
    _wait(panel)
    doc = _render(panel)
    assert len(_figures(doc)) == 3
    model.n_subjects = 4
    panel.start()
    _wait(panel)
    assert len(panel.strip.object) == 4
    assert sorted(_drawn(doc)) == sorted(model.result.r.subject.values)
