"""The Encoding tab's analysis-specific plots: receptive fields, R^2, time courses.

Pure functions from the analysis' arrays to HoloViews elements: a voxel's 10x10
receptive field (row 0 at the top, rows and columns 0-9 ticked; on synthetic
data a gold box on the pixel the voxel was built to respond to), the histogram
of R^2 over voxels with the threshold, and a voxel's measured vs cross-validated
predicted time course against time in seconds within one run (or since the
first run's start for all runs), the stimulus browser's sample marked.
``layers`` are the :mod:`dashboard.render.live` handles the tab updates in place.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.render.live import named, padded
from dashboard.slice_viewer import palette

PLOT_H = 250
#: The rows' and columns' ticks of a receptive field (the 10x10 stimulus grid).
PIXEL_TICKS = list(range(10))
#: The gold box's meaning, said once beside the receptive fields.
PLANTED_TEXT = "gold box: the pixel this voxel was built to respond to (synthetic data)"


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


def receptive_field_image(rf, title: str, planted=None, cmap="RdBu_r", symmetric=True,
                          hooks=()) -> hv.Overlay:
    """A 10x10 image (row 0 at the top, as ``imshow``; rows and columns ticked 0-9);
    ``planted`` (row, col), the pixel a synthetic voxel was built to respond to, is
    boxed in gold (None: no box, e.g. real data or a voxel built to respond to nothing)."""
    image, clim = rf_element(rf, symmetric)
    image = image.opts(
        cmap=palette(cmap), clim=clim, invert_yaxis=True, colorbar=symmetric, title=title,
        frame_width=170, frame_height=170, toolbar=None, tools=["hover"],
        xticks=PIXEL_TICKS, yticks=PIXEL_TICKS, xlabel="column", ylabel="row",
        fontsize={"title": 10, "ticks": 8, "labels": 9}, framewise=True, hooks=list(hooks))
    overlay = hv.Overlay([image])
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


def _one_run(tc, run) -> bool:
    return run is not None and "run" in tc.coords


def _times(tc) -> np.ndarray:
    """Seconds of each sample within its run (0 for each run's first volume)."""
    if "time" in tc.coords:
        return np.asarray(tc.time.values, dtype=float)
    return np.asarray(tc.sample.values, dtype=float) * tc.attrs.get("t_r", 1.0)


def time_axis(tc, run: int | None = None) -> tuple:
    """``(times, x range, dimension)`` of a time course: seconds within the run (one run,
    1-based; the range from the run's start to its last volume), or since the first
    run's start (all runs, the volumes' times)."""
    sub = _run_of(tc, run)
    if _one_run(tc, run):
        times = _times(sub)
        dim = hv.Dimension("time", label="time in run", unit="s")
        return times, (0.0, float(times.max()) if times.size else 1.0), dim
    t_r = float(tc.attrs.get("t_r", 1.0))
    times = (np.asarray(sub.volume.values, dtype=float) * t_r if "volume" in sub.coords
             else _times(sub))
    lo, hi = (float(times.min()), float(times.max())) if times.size else (0.0, 1.0)
    return times, (min(lo, 0.0), hi if hi > lo else lo + 1.0), hv.Dimension(
        "time", label="time", unit="s")


def sample_time(tc, sample: int | None, run: int | None = None) -> float:
    """Where the stimulus browser's ``sample`` lies on the time axis of ``run``: NaN
    (no line) when it is in another run or outside the data."""
    if sample is None or not 0 <= int(sample) < tc.sizes["sample"]:
        return float("nan")
    s = int(sample)
    if _one_run(tc, run):
        return float(_times(tc)[s]) if int(tc.run.values[s]) == run - 1 else float("nan")
    return float(time_axis(tc.isel(sample=[s]), None)[0][0])


def response_range(tc, run: int | None = None) -> tuple:
    """The y range of a time course (both responses, a tenth of their span either side)."""
    sub = _run_of(tc, run)
    values = np.concatenate([sub.measured.values, sub.predicted.values])
    values = values[np.isfinite(values)]
    return padded(values.min(), values.max()) if values.size else (-1.0, 1.0)


def time_course_title(tc, run: int | None = None) -> str:
    if _one_run(tc, run):
        return f"voxel {tc.attrs['voxel']}, run {run}: measured vs predicted (CV)"
    return f"voxel {tc.attrs['voxel']}: measured vs predicted (CV)"


def _curve(tc, run, name, label) -> hv.Curve:
    times, _, dim = time_axis(tc, run)
    return hv.Curve((times, _run_of(tc, run)[name].values), kdims=[dim],
                    vdims=["response"], label=label)


def measured_curve(tc, run: int | None = None) -> hv.Curve:
    """The measured response of a voxel against time (one run, 1-based, or all)."""
    return _curve(tc, run, "measured", "measured")


def predicted_curve(tc, run: int | None = None) -> hv.Curve:
    """The cross-validated predicted response of a voxel (one run, 1-based, or all)."""
    return _curve(tc, run, "predicted", "predicted (CV)")


def time_course_plot(tc, run: int | None = None, layers=None, sample=None) -> hv.Overlay:
    """Measured vs cross-validated predicted responses of a voxel against time (one run,
    1-based, or all), the stimulus browser's ``sample`` a dashed green line when shown."""
    layers = layers or {}

    def hooks(name):
        return [layers[name].hook] if name in layers else []

    _, xlim, _ = time_axis(tc, run)
    measured = measured_curve(tc, run).opts(color="#999999", line_width=1, framewise=True,
                                            hooks=hooks("measured"))
    predicted = predicted_curve(tc, run).opts(
        color="#d62728", line_width=1.5, framewise=True, hooks=hooks("predicted"))
    line = hv.VLine(sample_time(tc, sample, run)).opts(
        color="#2ca02c", line_width=1.5, line_dash="dashed", hooks=hooks("sample"))
    return (measured * predicted * line).opts(
        title=time_course_title(tc, run), height=PLOT_H, responsive=True,
        legend_position="top_right", toolbar=None, framewise=True, xlim=xlim,
        ylim=response_range(tc, run), hooks=[named("time-course")])


def update_time_course(layers, tc, run: int | None = None, sample=None) -> bool:
    """Show ``tc`` (a run, the sample's line) in the drawn plot of :func:`time_course_plot`
    in place: its curves, axes' ranges and title. False when it cannot (not drawn yet)."""
    return bool(layers["measured"].curve(measured_curve(tc, run))
                and layers["predicted"].curve(predicted_curve(tc, run))
                and layers["sample"].location(sample_time(tc, sample, run))
                and layers["predicted"].ranges(x=time_axis(tc, run)[1],
                                               y=response_range(tc, run))
                and layers["predicted"].title(time_course_title(tc, run)))
