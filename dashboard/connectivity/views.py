"""The Connectivity tab's analysis-specific plots and labels.

Pure functions of the model's results, no widget state: the peaks table's row
labels (with each peak's region), the background a subject's maps are drawn over
(the MNI template when the data is on its grid, else the mean functional image), and
the seed's time series as a HoloViews curve (drawn once, then updated in place by the
tab).
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd

from analysis.volumes import mni_background, to_xarray
from dashboard.histograms import layer_hooks as _hooks

PLOT_H = 230
PEAKS_CSS = """
.bk-btn-group { align-items: stretch; }
.bk-btn { font-family: monospace; text-align: left; white-space: pre; }
"""


def map_label(fisher_z: bool) -> str:
    """The map's value as the views name it (colour bar, histogram, readout): "r", or
    "Fisher z" (never a bare "z", which is also the coordinate)."""
    return "Fisher z" if fisher_z else "r"


def peak_regions(peaks: pd.DataFrame, atlas: str, in_mni: bool) -> list[str]:
    """The region of each peak (its ``x, y, z`` in mm) from ``atlas``: "no atlas: not in
    MNI space" when the data is not, "" for the atlas "none"
    (:func:`analysis.reporting.atlas.regions_at`)."""
    from analysis.reporting.atlas import regions_at

    if len(peaks) == 0:
        return []
    return regions_at(atlas, peaks[["x", "y", "z"]].to_numpy(dtype=float), in_mni=in_mni)


def peak_labels(peaks: pd.DataFrame, regions=None) -> dict:
    """One label per peak (MNI mm, r, Fisher z, nearest planted network, and its region
    when ``regions`` are given, one per peak): ``{label: row}``."""
    labels = {}
    for n, row in enumerate(peaks.itertuples(index=False)):
        text = (f"{n + 1:2d}. ({row.x:5.0f}, {row.y:5.0f}, {row.z:5.0f})  "
                f"r={row.r:5.2f}  Fisher z={row.fisher_z:5.2f}")
        if "network" in peaks:
            text += f"  {row.network} ({row.node_distance_mm:.0f} mm)"
        if regions is not None and regions[n]:
            text += f"  {regions[n]}"
        labels[text] = n
    return labels


def data_background(subject):
    """The background for a subject's maps: the MNI template when the data is on its
    grid (the built-in data; files in that space), else the mean functional image."""
    img = subject.img
    voxel = float(abs(img.affine[0, 0]))
    if voxel > 0 and float(voxel).is_integer():
        mni = mni_background(int(voxel))
        if mni.shape == img.shape[:3] and np.allclose(mni.attrs["affine"], img.affine):
            return mni
    mean = np.asarray(img.dataobj, dtype=np.float32).mean(axis=3)
    import nibabel as nib

    return to_xarray(nib.Nifti1Image(mean, img.affine), name="mean functional image")


def seed_series_title(series) -> str:
    seed = ", ".join(f"{v:g}" for v in series.attrs["seed_mm"])
    return f"seed ({seed}) r={series.attrs['radius_mm']:g} mm time series"


def seed_series_curve(series) -> hv.Curve:
    return hv.Curve((series["time"].values, series.values), kdims=["time (s)"],
                    vdims=["seed signal (z)"])


def seed_series_plot(series, layers=None) -> hv.Curve:
    """The seed's standardised time series (time in s)."""
    return seed_series_curve(series).opts(
        color="#2ca02c", line_width=1.5, height=PLOT_H, responsive=True, toolbar=None,
        tools=["hover"], framewise=True, title=seed_series_title(series),
        hooks=_hooks(layers, "curve"))
