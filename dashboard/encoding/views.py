"""The Encoding tab's analysis-specific plots: receptive fields, R^2, time courses.

Pure functions from the analysis' arrays to HoloViews elements: a voxel's 10x10
receptive field (row 0 at the top, the seed's marked pixel boxed in red, the
planted peak in gold), the histogram of R^2 over voxels with the threshold, and
a voxel's measured vs cross-validated predicted time course (one run or all).
``layers`` are the :mod:`dashboard.render.live` handles the tab updates in place.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.slice_viewer import palette

#: The seed marks this pixel in every receptive field.
MARKED_PIXEL = (4, 2)
PLOT_H = 250


def _pixel_box(row: int, col: int, color: str) -> hv.Rectangles:
    return hv.Rectangles([(col - 0.5, row - 0.5, col + 0.5, row + 0.5)]).opts(
        fill_alpha=0, line_color=color, line_width=3)


def rf_element(rf, symmetric=True) -> tuple:
    """The 10x10 image of a receptive field and its colour range."""
    values = np.asarray(rf, dtype=float)
    rows, cols = np.arange(values.shape[0]), np.arange(values.shape[1])
    top = float(np.abs(values).max()) or 1.0
    clim = (-top, top) if symmetric else (0.0, max(top, 1.0))
    return hv.Image((cols, rows, values), kdims=["col", "row"], vdims=["weight"]), clim


def receptive_field_image(rf, title: str, marked=MARKED_PIXEL, planted=None,
                          cmap="RdBu_r", symmetric=True, hooks=()) -> hv.Overlay:
    """A 10x10 image (row 0 at the top, as ``imshow``) with the marked pixel boxed."""
    image, clim = rf_element(rf, symmetric)
    image = image.opts(
        cmap=palette(cmap), clim=clim, invert_yaxis=True, colorbar=symmetric, title=title,
        frame_width=170, frame_height=170, toolbar=None, tools=["hover"], xaxis=None,
        yaxis=None, fontsize={"title": 10}, framewise=True, hooks=list(hooks))
    overlay = image * _pixel_box(*marked, "red")
    if planted is not None:
        overlay = overlay * _pixel_box(*planted, "gold")
    return overlay.opts(show_legend=False)


def r2_bins(r2: np.ndarray, bins: int = 60) -> hv.Histogram:
    """The histogram of R^2 over voxels (finite values)."""
    finite = r2[np.isfinite(r2)]
    counts, edges = np.histogram(finite, bins=bins)
    return hv.Histogram((edges, counts), kdims=["R2"], vdims=["voxels"])


def r2_histogram(r2: np.ndarray, threshold: float, bins: int = 60, layers=None) -> hv.Overlay:
    """Histogram of R^2 over voxels with the threshold as a red line."""
    layers = layers or {}
    hist = r2_bins(r2, bins).opts(
        color="#4c78a8", line_color=None, title="R\u00b2 over voxels", height=PLOT_H,
        responsive=True, toolbar=None, tools=["hover"], framewise=True,
        hooks=[layers["hist"].hook] if "hist" in layers else [])
    line = hv.VLine(threshold).opts(color="red", line_width=2,
                                    hooks=[layers["line"].hook] if "line" in layers else [])
    return (hist * line).opts(show_legend=False)


def _run_of(tc, run):
    if run is not None and "run" in tc.coords:
        return tc.isel(sample=np.flatnonzero(tc.run.values == run - 1))
    return tc


def predicted_curve(tc, run: int | None = None) -> hv.Curve:
    """The cross-validated predicted response of a voxel (one run, 1-based, or all)."""
    tc = _run_of(tc, run)
    return hv.Curve((tc.sample.values, tc.predicted.values), kdims=["sample"],
                    vdims=["response"], label="predicted (CV)")


def time_course_plot(tc, run: int | None = None, layers=None) -> hv.Overlay:
    """Measured vs cross-validated predicted responses of a voxel (one run, 1-based, or all)."""
    layers = layers or {}
    title = f"voxel {tc.attrs['voxel']}: measured vs predicted (CV)"
    if run is not None and "run" in tc.coords:
        title = f"voxel {tc.attrs['voxel']}, run {run}: measured vs predicted (CV)"
    sub = _run_of(tc, run)
    measured = hv.Curve((sub.sample.values, sub.measured.values), kdims=["sample"],
                        vdims=["response"], label="measured").opts(color="#999999", line_width=1)
    predicted = predicted_curve(tc, run).opts(
        color="#d62728", line_width=1.5,
        hooks=[layers["predicted"].hook] if "predicted" in layers else [])
    return (measured * predicted).opts(
        title=title, height=PLOT_H, responsive=True, legend_position="top_right",
        toolbar=None, framewise=True)
