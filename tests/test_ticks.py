"""Tick labels (issue 15, item 6): no "1.000e-3", no exponent cut off a colour bar."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (the options need the backend)
import numpy as np
import pytest
from bokeh.models import CustomJSTickFormatter

from dashboard.histograms import value_histogram
from dashboard.render.ticks import TICK_JS, colorbar_opts, format_tick


@pytest.mark.parametrize("value,label", [
    (0.0, "0"), (0.001, "0.001"), (0.0005, "5e-4"), (40000.0, "4e4"), (4.5, "4.5"),
    (-0.35, "-0.35"), (12345.0, "1.23e4"), (1 / 3, "0.3333"), (-2.5e-5, "-2.5e-5"),
    (0.35000001, "0.35"), (250.0, "250"), (9999.0, "9999")])
def test_labels_are_short_and_keep_their_exponent(value, label):
    assert format_tick(value) == label


def test_labels_fit_a_colour_bar():
    # every label of a wide range of ticks is at most 9 characters ("-0.001778", "-2.5e-5")
    for v in np.concatenate([np.linspace(-5, 5, 41), np.geomspace(1e-7, 1e7, 57)]):
        assert len(format_tick(v)) <= 9, (v, format_tick(v))


def test_histogram_axes_use_the_formatter():
    fig = hv.render(value_histogram(np.linspace(-0.004, 0.004, 100), 0.001), backend="bokeh")
    for axis in (fig.xaxis[0], fig.yaxis[0]):
        assert isinstance(axis.formatter, CustomJSTickFormatter)
        assert axis.formatter.code == TICK_JS


def test_colorbar_opts_are_new_models_per_call():
    # a Bokeh model belongs to one document: every session needs its own
    assert colorbar_opts()["formatter"] is not colorbar_opts()["formatter"]
