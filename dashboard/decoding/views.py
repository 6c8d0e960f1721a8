"""The Decoding tab's HoloViews elements and their in-place updates.

The analysis-specific plots, each built from the analysis' xarray results and
testable by its data: the fold-score bars with the mean, chance and train
lines, the out-of-fold confusion matrix, the permutation null with the observed
score, the histogram of the weight/pattern map's values; and, for each, the
function that moves an already drawn plot to a new element in place
(:mod:`dashboard.render.live`), or says it cannot (then the plot is redrawn).
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
from bokeh.palettes import Blues256


def fold_bars(scores) -> hv.Overlay:
    """Fold accuracies as bars, with the mean (solid) and chance (dashed) lines."""
    if scores.attrs["cv"] == "run":
        names = [f"run {r}" for r in scores.test_runs.values]
    else:
        names = [f"fold {i + 1}" for i in scores.fold.values]
    bars = hv.Bars(list(zip(names, scores.fold_score.values)), kdims=["fold"],
                   vdims=["accuracy"]).opts(
        ylim=(0, 1.05), color="#4c78a8", title=f"{scores.attrs['cv_name']} fold accuracy",
        xrotation=45 if len(names) > 6 else 0, height=260, responsive=True,
        tools=["hover"], toolbar=None, framewise=True)
    mean = hv.HLine(float(scores.mean_score), label="mean").opts(color="black", line_width=2)
    chance = hv.HLine(float(scores.chance), label="chance").opts(
        color="red", line_dash="dashed", line_width=2)
    train = hv.HLine(float(scores.train_score), label="train").opts(
        color="grey", line_dash="dotted", line_width=1)
    return (bars * mean * chance * train).opts(show_legend=False)

#: The confusion matrix's colours: the light half of Blues (white to mid-blue), so its
#: black counts are readable on every cell.
CONFUSION_CMAP = list(reversed(Blues256[90:]))


def confusion_plot(scores) -> hv.Overlay:
    """Out-of-fold confusion matrix (counts) with the counts written in: true classes
    down, predicted across, in the same order, so correct predictions run on the
    diagonal from top left to bottom right (as scikit-learn's ConfusionMatrixDisplay)."""
    rows = [(str(p), str(t), int(scores.confusion.sel(true=t, predicted=p)))
            for t in scores.true.values for p in scores.predicted.values]
    heat = hv.HeatMap(rows, kdims=["predicted", "true"], vdims=["count"]).opts(
        cmap=CONFUSION_CMAP, colorbar=False, title="confusion (out-of-fold)", height=260,
        width=300, toolbar=None, tools=["hover"], framewise=True, invert_yaxis=True)
    labels = hv.Labels(rows, kdims=["predicted", "true"], vdims=["count"]).opts(
        text_color="black")
    return heat * labels

def null_histogram(result) -> hv.Overlay:
    """The permutation null with the observed score and p (empty before a run)."""
    if result is None:
        empty = hv.Histogram(([0, 1], [0]), kdims=["accuracy"], vdims=["permutations"]).opts(
            title="permutation null (not run yet)", height=260, framewise=True,
            responsive=True, toolbar=None, alpha=0)
        return empty * hv.VLine(0.5).opts(color="black", line_width=2, alpha=0)
    null = result.null.values
    counts, edges = np.histogram(null, bins=min(30, max(5, len(null) // 5)),
                                 range=(min(null.min(), float(result.score)) - 0.01,
                                        max(null.max(), float(result.score)) + 0.01))
    hist = hv.Histogram((edges, counts), kdims=["accuracy"], vdims=["permutations"]).opts(
        color="#9ecae9", height=260, responsive=True, toolbar=None, framewise=True, alpha=1,
        title=f"permutation null (n={len(null)}): p = {float(result.p_value):.3g}")
    observed = hv.VLine(float(result.score)).opts(color="black", line_width=2, alpha=1)
    return hist * observed

def value_histogram(values, threshold) -> hv.Overlay:
    """Histogram of the map's values with +/- the threshold marked."""
    if values.size == 0:
        values = np.zeros(1)
    counts, edges = np.histogram(values, bins=40)
    hist = hv.Histogram((edges, counts), kdims=["value"], vdims=["voxels"]).opts(
        color="#bbbbbb", height=200, responsive=True, toolbar=None, title="map values",
        framewise=True)
    lines = hv.VLine(-threshold).opts(color="orange") * hv.VLine(threshold).opts(
        color="orange")
    return hist * lines


def _hooked(element, layers):
    """``element`` (an overlay) with each layer's hook added, in order, to its elements."""
    if element is None or not layers:
        return element
    items = list(element) if isinstance(element, hv.Overlay) else [element]
    hooked = [item.opts(hooks=[layer.hook]) for item, layer in zip(items, layers.values())]
    return hv.Overlay(hooked + items[len(hooked):]).opts(show_legend=False)


def _update_bars(layers, element):
    """Fold bars: new heights for the same folds, the lines moved; else a redraw."""
    bars = element.get(0)
    if not layers["bars"].bars(bars):
        return False
    if not layers["bars"].title(bars.opts.get().kwargs["title"]):
        return False
    return all(layers[name].location(float(element.get(i).data))
               for i, name in enumerate(("mean", "chance", "train"), start=1))


def _update_confusion(layers, element):
    """Confusion matrix: new counts in the same cells (and the colour range)."""
    heat, labels = element.get(0), element.get(1)
    if not layers["heat"].heatmap(heat) or not layers["labels"].labels(labels):
        return False
    counts = heat.dimension_values(2)
    return layers["heat"].clim(int(counts.min()), int(counts.max()))


def _update_hist(layers, element):
    """Histogram of map values and the +/- threshold lines."""
    return (layers["hist"].histogram(element.get(0))
            and layers["lo"].location(float(element.get(1).data))
            and layers["hi"].location(float(element.get(2).data)))
