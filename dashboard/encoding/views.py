"""The Encoding tab's analysis-specific plots: receptive fields, R^2, time courses.

Pure functions from the analysis' arrays to HoloViews elements: a voxel's 10x10
receptive field (row 0 at the top, rows and columns 0-9 ticked; on synthetic
data a gold box on the pixel the voxel was built to respond to), or on the user's
own files either the image of their feature grid (one per delay, side by side) or,
when the features form no grid, a heatmap of the weights per feature and delay
(:func:`rf_kind`, the features' names on the axis as text), each voxel's best alpha
as an axial slice through the crosshair (:func:`best_alpha_slice`), the histogram
of R^2 over voxels with the threshold, and a voxel's measured vs cross-validated
predicted time course against time in seconds within one run (or since the
first run's start for all runs), the stimulus browser's sample marked.
``layers`` are the :mod:`dashboard.render.live` handles the tab updates in place.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np

from dashboard.render.live import named, padded
from dashboard.render.theme import small_title
from dashboard.slice_viewer import palette, slice_arrays

PLOT_H = 250
#: The rows' and columns' ticks of a receptive field (the 10x10 stimulus grid).
PIXEL_TICKS = list(range(10))
#: The gold box's meaning, said once beside the receptive fields.
PLANTED_TEXT = "gold box: the pixel this voxel was built to respond to (synthetic data)"
#: The most feature names ticked on a weights heatmap (evenly spaced), and their length.
MAX_FEATURE_TICKS, MAX_NAME = 24, 16
#: The receptive field kinds: an image of the feature grid, or weights per feature and delay.
RF_KINDS = ("image", "weights")


def rf_kind(rf) -> str:
    """``"image"`` for a receptive field on a grid (a 2D array, or dims ``(row, col)`` or
    ``(delay, row, col)``), ``"weights"`` for one per feature (dims ``(delay, feature)``)."""
    dims = getattr(rf, "dims", None)
    return "weights" if dims is not None and "feature" in dims else "image"


def _short(name) -> str:
    name = " ".join(str(name).split())
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "\u2026"


def rf_layout(rf) -> dict:
    """How a receptive field is drawn: ``values`` (2D, rows top to bottom), the x and y
    dimension names, their ticks and labels. A grid's delays are side by side, one
    empty column apart; a weights heatmap has one row per delay, one column per feature
    (ticked with the features' names, shortened; at most :data:`MAX_FEATURE_TICKS`)."""
    dims = getattr(rf, "dims", None)
    values = np.asarray(getattr(rf, "values", rf), dtype=float)
    if rf_kind(rf) == "weights":
        delays = [int(d) for d in rf["delay"].values]
        names = (list(rf["name"].values) if "name" in rf.coords
                 else [str(i) for i in range(values.shape[1])])
        n = values.shape[1]
        step = max(1, int(np.ceil(n / MAX_FEATURE_TICKS)))
        return {"kind": "weights", "values": values, "kdims": ["feature", "delay"],
                "xticks": [(i, _short(names[i])) for i in range(0, n, step)],
                "yticks": [(i, str(d)) for i, d in enumerate(delays)],
                "xlabel": "feature", "ylabel": "delay (volumes)", "n_rows": len(delays),
                "n_cols": n}
    if dims is not None and "delay" in dims:
        delays = [int(d) for d in rf["delay"].values]
        if len(delays) == 1:
            values = values[0]
        else:   # the delays' images side by side, one empty column apart
            gap = np.full((values.shape[1], 1), np.nan)
            blocks = []
            for i, block in enumerate(values):
                blocks += [block] + ([gap] if i < len(values) - 1 else [])
            values = np.hstack(blocks)
            width = rf.sizes["col"] + 1
            return {"kind": "image", "values": values, "kdims": ["col", "row"],
                    "xticks": [(i * width + (width - 2) / 2, f"delay {d}")
                               for i, d in enumerate(delays)],
                    "yticks": list(range(values.shape[0])),
                    "xlabel": "column, at each delay", "ylabel": "row",
                    "n_rows": values.shape[0], "n_cols": values.shape[1]}
    ticks = list(range(max(values.shape)))
    return {"kind": "image", "values": values, "kdims": ["col", "row"],
            "xticks": ticks[:values.shape[1]] if values.shape[1] <= 20 else None,
            "yticks": ticks[:values.shape[0]] if values.shape[0] <= 20 else None,
            "xlabel": "column", "ylabel": "row", "n_rows": values.shape[0],
            "n_cols": values.shape[1]}


def _pixel_box(row: int, col: int, color: str) -> hv.Rectangles:
    return hv.Rectangles([(col - 0.5, row - 0.5, col + 0.5, row + 0.5)]).opts(
        fill_alpha=0, line_color=color, line_width=3)


def rf_element(rf, symmetric=True) -> tuple:
    """The image of a receptive field (see :func:`rf_layout`) and its colour range."""
    layout = rf_layout(rf)
    values = layout["values"]
    n_rows, n_cols = values.shape
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    top = top or 1.0
    clim = (-top, top) if symmetric else (0.0, max(top, 1.0))
    # row i at y = i, column j at x = j (the bounds given: one row or column is an image too)
    image = hv.Image(np.flipud(values), bounds=(-0.5, -0.5, n_cols - 0.5, n_rows - 0.5),
                     kdims=layout["kdims"], vdims=["weight"])
    return image, clim


def _frame(layout) -> tuple:
    """The frame's (width, height) in px: square pixels of a grid, at most 420 x 170;
    a heatmap's features at most 420 wide, its delays 30 px each."""
    rows, cols = layout["n_rows"], layout["n_cols"]
    if layout["kind"] == "weights":
        return int(min(420, max(170, 14 * cols))), int(min(170, max(40, 30 * rows)))
    cell = min(170 / rows, 420 / cols)
    return int(max(60, round(cell * cols))), int(max(60, round(cell * rows)))


def receptive_field_image(rf, title: str, planted=None, cmap="RdBu_r", symmetric=True,
                          hooks=()) -> hv.Overlay:
    """A receptive field's image (row 0 at the top, as ``imshow``; rows and columns
    ticked): 10x10 on Miyawaki's data, the feature grid (one per delay, side by side)
    or the weights per feature and delay on the user's (see :func:`rf_layout`);
    ``planted`` (row, col), the pixel a synthetic voxel was built to respond to, is
    boxed in gold (None: no box, e.g. real data or a voxel built to respond to nothing)."""
    layout = rf_layout(rf)
    image, clim = rf_element(rf, symmetric)
    width, height = _frame(layout)
    ticks = {k: layout[k] for k in ("xticks", "yticks") if layout[k] is not None}
    image = image.opts(
        cmap=palette(cmap), clim=clim, invert_yaxis=True, colorbar=symmetric, title=title,
        frame_width=width, frame_height=height, toolbar=None, tools=["hover"],
        xlabel=layout["xlabel"], ylabel=layout["ylabel"],
        xrotation=45 if layout["kind"] == "weights" else 0,
        framewise=True, hooks=list(hooks), **ticks)
    overlay = hv.Overlay([image])
    if planted is not None:
        overlay = overlay * _pixel_box(*planted, "gold")
    return overlay.opts(show_legend=False, hooks=[small_title])


def stimulus_image(stim, sample: int, hooks=()) -> hv.Image:
    """The stimulus of a sample: Miyawaki's 10x10 image, a user's feature grid, or a
    user's features in one row (by index, each a column of the square frame), in grey
    (``hooks``: HoloViews hooks, e.g. a live layer's)."""
    values = np.asarray(getattr(stim, "values", stim), dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    lo, hi = (float(np.nanmin(values)), float(np.nanmax(values))) if values.size else (0, 1)
    if lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0            # binary images: black and white, as Miyawaki's
    elif hi <= lo:
        hi = lo + 1.0
    rows, cols = values.shape
    # one frame for every kind (a drawn figure keeps its size): a row of features fills it
    return hv.Image(np.flipud(values), bounds=(-0.5, -0.5, cols - 0.5, rows - 0.5),
                    kdims=["col", "row"], vdims=["pixel"]).opts(
        cmap=palette("gray"), clim=(lo, hi), invert_yaxis=True, frame_width=150,
        frame_height=150, toolbar=None, xaxis=None, yaxis=None, framewise=True,
        title=f"stimulus of sample {sample}", hooks=[small_title, *hooks])


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


#: The colour of the permutation test's FDR line on the R^2 histogram (the threshold's
#: line is red).
FDR_COLOR = "#c03fd0"


def fdr_label(q: float) -> str:
    """The FDR line's name, e.g. ``"FDR q<0.05"``."""
    return f"FDR q<{q:g}"


def fdr_marks(threshold: float, q: float, top: float) -> hv.Overlay:
    """The permutation test's R^2 threshold on the histogram: a dashed vertical line
    labelled "FDR q<0.05" above the bars (``top``: the histogram's highest bar; the
    overlay's y range must reach ``1.2 * top``), in :data:`FDR_COLOR`."""
    label = fdr_label(q)
    line = hv.VLine(float(threshold), label=label).opts(
        color=FDR_COLOR, line_width=2, line_dash="dashed")
    text = hv.Text(float(threshold), 1.17 * float(top), f" {label}", halign="left",
                   valign="top").opts(color=FDR_COLOR, text_font_size="9pt",
                                      text_font_style="bold")
    return line * text


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


#: Colour map of the best-alpha map (log10 alpha: low = little regularisation).
ALPHA_CMAP = "viridis"
#: The best-alpha map's frame (px): beside the histogram and the alpha path.
ALPHA_FRAME = (220, PLOT_H - 70)


def _square_mm(xlim, ylim) -> tuple:
    """``(xlim, ylim)`` widened on one axis (about its centre) so that a millimetre is as
    long on both in :data:`ALPHA_FRAME`."""
    width, height = ALPHA_FRAME
    (x0, x1), (y0, y1) = xlim, ylim
    per_px = max((x1 - x0) / width, (y1 - y0) / height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return ((cx - per_px * width / 2, cx + per_px * width / 2),
            (cy - per_px * height / 2, cy + per_px * height / 2))


def best_alpha_slice(best, crosshair_mm, clim, background=None, layers=None) -> hv.Overlay:
    """The axial slice through the crosshair of ``best`` (each voxel's best alpha, log10;
    dims x, y, z in mm, NaN outside the mask) over ``background``'s slice in grey, the
    crosshair's lines green, a "log10 alpha" colour bar over ``clim``. One frame for every
    map (a drawn figure keeps its size: :data:`ALPHA_FRAME`), its ranges the map's extent
    widened on one axis to keep millimetres square."""
    layers = layers or {}

    def hooks(name):
        return [layers[name].hook] if name in layers else []

    x, y, z = (float(c) for c in crosshair_mm)
    xs, ys, values = slice_arrays(best, "axial", z)
    z_shown = float(best["z"].values[np.abs(best["z"].values - z).argmin()])
    (x0, x1), (y0, y1) = ((float(c.min()), float(c.max())) for c in (xs, ys))
    dx = abs(float(xs[1] - xs[0])) if len(xs) > 1 else 1.0
    dy = abs(float(ys[1] - ys[0])) if len(ys) > 1 else 1.0
    xlim, ylim = _square_mm((x0 - dx / 2, x1 + dx / 2), (y0 - dy / 2, y1 + dy / 2))
    width, height = ALPHA_FRAME
    parts = []
    if background is not None:
        bx, by, bv = slice_arrays(background, "axial", z)
        finite = bv[np.isfinite(bv)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        parts.append(hv.Image((bx, by, bv), kdims=["x", "y"], vdims=["background"]).opts(
            cmap=palette("gray"), clim=(lo, hi if hi > lo else lo + 1.0), framewise=True))
    image = hv.Image((xs, ys, values), kdims=["x", "y"], vdims=["log10 alpha"]).opts(
        cmap=palette(ALPHA_CMAP), clim=tuple(clim), colorbar=True, tools=["hover"],
        framewise=True,
        clipping_colors={"NaN": "transparent"}, hooks=hooks("map"),
        colorbar_opts={"title": "log10 alpha"})
    cross = [hv.VLine(x).opts(color="#2ca02c", line_width=1, hooks=hooks("vline")),
             hv.HLine(y).opts(color="#2ca02c", line_width=1, hooks=hooks("hline"))]
    return hv.Overlay([*parts, image, *cross]).opts(
        title=f"best alpha per voxel (log10), axial z={z_shown:g} mm",
        xlim=xlim, ylim=ylim, frame_height=height, frame_width=width, toolbar=None,
        framewise=True,
        xlabel="x (mm)", ylabel="y (mm)", show_legend=False,
        hooks=[named("best-alpha-axial"), small_title])
