"""The Group section's views: the t histogram with the shown and corrected thresholds,
the subjects' strip of axial slices, the colour range of a t map, the peaks' titles."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import param

from dashboard.batch import batched
from dashboard.histograms import bins_of, layer_hooks, value_histogram
from dashboard.render.live import Layer
from dashboard.render.theme import small_title
from dashboard.slice_viewer import colour_range

PLOT_H = 220
STRIP_MAX = 12  # subjects shown in the strip
#: the peaks table's column titles (the analysis' column names are the CLI's JSON keys)
PEAK_COLUMNS = {"x": "x (mm)", "y": "y (mm)", "z": "z (mm)", "network": "planted network",
                "node_distance_mm": "distance to its node (mm)"}


#: Colours of the corrected thresholds' lines on the t histogram.
FDR_COLOR, FWE_COLOR = "#2ca02c", "#d62728"


#: The t histogram's in-place layers: the bars and the three pairs of +/- lines.
HIST_LAYERS = ("hist", "lo", "hi", "fdr_lo", "fdr_hi", "fwe_lo", "fwe_hi")


def t_histogram(values: np.ndarray, threshold: float | None, bins: int = 60,
                fdr: float | None = None, fwe: float | None = None, layers=None) -> hv.Overlay:
    """Histogram of the group t values with the +/- lines of the shown threshold
    (orange; none when None) and, where given, of the FDR (green, dashed) and FWE (red,
    dotted) ones; each part hooked to ``layers[name]`` (:data:`HIST_LAYERS`) if given."""
    plot = value_histogram(np.asarray(values, dtype=float),
                           threshold if threshold is not None else 0.0, label="t", bins=bins,
                           layers=layers)
    if threshold is None or not np.isfinite(threshold):
        plot = hv.Overlay([plot.get(0)])   # the histogram alone
    for level, color, dash, name in ((fdr, FDR_COLOR, "dashed", "fdr"),
                                     (fwe, FWE_COLOR, "dotted", "fwe")):
        if level is not None and np.isfinite(level):
            plot = plot * hv.VLine(-level).opts(
                color=color, line_width=1.5, line_dash=dash,
                hooks=layer_hooks(layers, f"{name}_lo")) * hv.VLine(level).opts(
                color=color, line_width=1.5, line_dash=dash,
                hooks=layer_hooks(layers, f"{name}_hi"))
    return plot.opts(show_legend=False)


def hist_layers() -> dict:
    """One :class:`~dashboard.render.live.Layer` per part of the t histogram."""
    return {name: Layer() for name in HIST_LAYERS}


def _finite(level) -> bool:
    return level is not None and bool(np.isfinite(level))


def update_hist(layers, values, threshold, fdr=None, fwe=None, bins: int = 60) -> bool:
    """Show new t values and lines in the histogram drawn by :func:`t_histogram` with
    ``layers``, in place; False, nothing changed, unless exactly the same lines are drawn
    in one figure (a line appearing or going: redraw)."""
    levels = {"": threshold, "fdr_": fdr, "fwe_": fwe}
    wanted = {"hist"} | {f"{k}{side}" for k, v in levels.items() if _finite(v)
                         for side in ("lo", "hi")}
    drawn = {name: layers[name].plots for name in HIST_LAYERS}
    if {name for name, plots in drawn.items() if plots} != wanted \
            or any(len(drawn[name]) != 1 for name in wanted) \
            or len({id(layers[name].figures()[0]) for name in wanted}) != 1:
        return False
    counts, edges = bins_of(np.asarray(values, dtype=float), bins)
    if not layers["hist"].histogram(counts=counts, edges=edges):
        return False
    for key, level in levels.items():
        if _finite(level):
            layers[f"{key}lo"].location(-float(level))
            layers[f"{key}hi"].location(float(level))
    return True


def show_hist(pane, layers, values, threshold, fdr=None, fwe=None) -> None:
    """The t histogram in ``pane``: in place when the same lines are drawn (a seed move),
    else drawn anew; the pane keeps the new element either way."""
    element = t_histogram(values, threshold, fdr=fdr, fwe=fwe, layers=layers)
    with batched():
        if update_hist(layers, values, threshold, fdr, fwe):
            with param.discard_events(pane):
                pane.object = element
            return
    pane.object = element


def subject_strip(strip, clim=None, size: int = 120, layers=None) -> hv.Layout:
    """Small multiples: one axial r slice per subject (``strip``: (subject, y, x)); the
    i-th image hooked to ``layers[i]`` (:class:`~dashboard.render.live.Layer`), if given,
    for :func:`update_strip`."""
    values = np.asarray(strip.values, dtype=float)
    clim = clim or colour_range(values)
    images = []
    for i, name in enumerate(strip.subject.values[:STRIP_MAX]):
        sl = strip.isel(subject=i)
        img = hv.Image((sl.x.values, sl.y.values, sl.values), kdims=["x", "y"], vdims=["r"])
        images.append(img.opts(
            cmap="RdBu_r", clim=clim, title=str(name), frame_width=size,
            frame_height=int(size * np.ptp(sl.y.values) / max(np.ptp(sl.x.values), 1)),
            xaxis=None, yaxis=None, toolbar=None,
            clipping_colors={"NaN": "#222222"}, tools=["hover"],
            hooks=[small_title, *([layers[i].hook] if layers is not None else [])]))
    return hv.Layout(images).cols(len(images) or 1).opts(shared_axes=False, toolbar=None)


def update_strip(layers, strip, clim=None) -> bool:
    """Show ``strip``'s slices in the images drawn by :func:`subject_strip` with
    ``layers``, in place (a seed move: the same subjects, the same grid); False, nothing
    changed, when the drawn images are not those subjects' on that grid (redraw then)."""
    names = [str(n) for n in strip.subject.values[:STRIP_MAX]]
    if len(layers) > len(names) and layers[len(names)].plots:
        return False   # more subjects drawn than given
    if not all(layers[i].titles() == [name] for i, name in enumerate(names)):
        return False
    data = [Layer.grid_data(strip.x.values, strip.y.values,
                            np.asarray(strip.isel(subject=i).values, dtype=float))
            for i in range(len(names))]
    if not all(layers[i].fits(d) for i, d in enumerate(data)):
        return False
    clim = clim or colour_range(np.asarray(strip.values, dtype=float))
    return all([layers[i].image(data=d, clim=clim) for i, d in enumerate(data)])


def strip_layers() -> list:
    """One :class:`~dashboard.render.live.Layer` per image of the strip."""
    return [Layer() for _ in range(STRIP_MAX)]


def show_strip(pane, layers, strip) -> None:
    """The subjects' slices in ``pane``: a seed move updates the images drawn with
    ``layers`` in place (redrawing a dozen figures took seconds); other subjects or
    another grid draw anew. The pane keeps the new layout either way (a later drawing
    shows it)."""
    layout = subject_strip(strip, layers=layers)
    with batched():
        if update_strip(layers, strip):
            with param.discard_events(pane):
                pane.object = layout
            return
    pane.object = layout


def robust_clim(t: np.ndarray, threshold: float) -> tuple:
    """A symmetric colour range at the 99th percentile of |t| (the seed's own sphere has
    huge t values that would wash out the rest of the map)."""
    finite = np.abs(t[np.isfinite(t)])
    top = float(np.percentile(finite, 99)) if finite.size else 1.0
    top = max(top, 2 * float(threshold), 1e-6)
    return (-top, top)


def shown_map(m) -> tuple:
    """The group model ``m``'s ``(map, viewer threshold, |t| level or None, words)`` of
    the shown correction: the t map at ``|t| >= threshold``, or with the voxels FDR / FWE
    does not declare hidden (NaN)."""
    if m.correction == "uncorrected":
        return m.t_map(), float(m.threshold), float(m.threshold), f"|t| >= {m.threshold:g}"
    level = m.display_threshold()
    inf = m.result.inference
    if m.correction == "fdr":
        words = f"FDR q < {inf.q:g}" if inf is not None else "FDR"
        words += f" (|t| >= {level:.2f})" if level is not None else ": no voxel"
    else:
        words = f"FWE p < {inf.alpha:g}" if inf is not None else "FWE"
        if inf is None or not inf.n_permutations:
            words += ": no permutations"
        elif level is None:
            words += f": not reachable with {inf.n_permutations:,} permutations"
        else:
            words += f" (|t| > {level:.2f}, {inf.n_permutations:,} sign flips)"
    return m.shown_t_map(), 0.0, level, words
