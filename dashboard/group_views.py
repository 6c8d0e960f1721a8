"""The Group section's views: the t histogram with the shown and corrected thresholds,
the subjects' strip of axial slices, the colour range of a t map, the peaks' titles."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.histograms import value_histogram
from dashboard.slice_viewer import colour_range

PLOT_H = 220
STRIP_MAX = 12  # subjects shown in the strip
#: the peaks table's column titles (the analysis' column names are the CLI's JSON keys)
PEAK_COLUMNS = {"x": "x (mm)", "y": "y (mm)", "z": "z (mm)", "network": "planted network",
                "node_distance_mm": "distance to its node (mm)"}


#: Colours of the corrected thresholds' lines on the t histogram.
FDR_COLOR, FWE_COLOR = "#2ca02c", "#d62728"


def t_histogram(values: np.ndarray, threshold: float | None, bins: int = 60,
                fdr: float | None = None, fwe: float | None = None) -> hv.Overlay:
    """Histogram of the group t values with the +/- lines of the shown threshold
    (orange; none when None) and, where given, of the FDR (green, dashed) and FWE (red,
    dotted) ones."""
    plot = value_histogram(np.asarray(values, dtype=float),
                           threshold if threshold is not None else 0.0, label="t", bins=bins)
    if threshold is None or not np.isfinite(threshold):
        plot = hv.Overlay([plot.get(0)])   # the histogram alone
    for level, color, dash in ((fdr, FDR_COLOR, "dashed"), (fwe, FWE_COLOR, "dotted")):
        if level is not None and np.isfinite(level):
            plot = plot * hv.VLine(-level).opts(color=color, line_width=1.5, line_dash=dash) \
                * hv.VLine(level).opts(color=color, line_width=1.5, line_dash=dash)
    return plot.opts(show_legend=False)


def subject_strip(strip, clim=None, size: int = 120) -> hv.Layout:
    """Small multiples: one axial r slice per subject (``strip``: (subject, y, x))."""
    values = np.asarray(strip.values, dtype=float)
    clim = clim or colour_range(values)
    images = []
    for i, name in enumerate(strip.subject.values[:STRIP_MAX]):
        sl = strip.isel(subject=i)
        img = hv.Image((sl.x.values, sl.y.values, sl.values), kdims=["x", "y"], vdims=["r"])
        images.append(img.opts(
            cmap="RdBu_r", clim=clim, title=str(name), frame_width=size,
            frame_height=int(size * np.ptp(sl.y.values) / max(np.ptp(sl.x.values), 1)),
            xaxis=None, yaxis=None, toolbar=None, fontsize={"title": 9},
            clipping_colors={"NaN": "#222222"}, tools=["hover"]))
    return hv.Layout(images).cols(len(images) or 1).opts(shared_axes=False, toolbar=None)


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
