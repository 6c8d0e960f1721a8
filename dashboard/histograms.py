"""The value histogram with its threshold lines, shared by the maps of every tab
(Connectivity's r or Fisher z, the Group section's t).

One element builder, so the look (bins over the finite values, orange lines at
+/- threshold) and the live-update layers it names (``hist``, ``lo``, ``hi``; see
:mod:`dashboard.render.live`) are the same wherever a map's values are shown.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.render.ticks import tick_formatter

#: height (px) of a histogram beside a map
PLOT_H = 230


def bins_of(values: np.ndarray, bins: int = 60) -> tuple:
    """``(counts, edges)`` of the finite values (one empty bin at 0 when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        finite = np.zeros(1)
    return np.histogram(finite, bins=bins)


def value_bins(values: np.ndarray, bins: int = 60) -> hv.Histogram:
    """The histogram of the map's finite values."""
    counts, edges = bins_of(values, bins)
    return hv.Histogram((edges, counts), kdims=["value"], vdims=["voxels"])


def layer_hooks(layers, name) -> list:
    """The plot hook of layer ``name`` (a :class:`dashboard.render.live.Layer`), if any."""
    return [layers[name].hook] if layers and name in layers else []


def value_histogram(values: np.ndarray, threshold: float, label: str = "r",
                    bins: int = 60, layers=None) -> hv.Overlay:
    """Histogram of the map's values with the +/- threshold lines."""
    hist = value_bins(values, bins).opts(
        color="#4c78a8", line_color=None, title=f"{label} over brain voxels", height=PLOT_H,
        xlabel=label, responsive=True, toolbar=None, tools=["hover"], framewise=True,
        xformatter=tick_formatter(), yformatter=tick_formatter(),
        hooks=layer_hooks(layers, "hist"))
    lines = (hv.VLine(-threshold).opts(color="orange", line_width=2,
                                       hooks=layer_hooks(layers, "lo"))
             * hv.VLine(threshold).opts(color="orange", line_width=2,
                                        hooks=layer_hooks(layers, "hi")))
    return (hist * lines).opts(show_legend=False)
