"""Connectivity tab: click anywhere in the brain, get that seed's correlation map.

A thin view over :class:`analysis.connectivity.SeedConnectivity`: the cleaned
data is cached per process (shared by every session, one cleaning per
preprocessing setting, with a progress bar); a click on a slice or a new seed
coordinate is a sphere mean and one matrix-vector product. Shown: the r (or
Fisher z) map over the MNI template, thresholded at +/- the threshold, the
seed as a marker, its time series, a histogram with the threshold lines, the
peaks table (click a row to move the crosshair there), exports of r and z.

The package: ``tab`` (layout and callbacks), ``widgets`` (the controls, made from
the model's Parameters), ``views`` (the plots and peak labels), ``sources`` (the
user's uploads and the switch back to the dataset), ``exports`` (the Export bar's
source and the NIfTI downloads). Every name the module had is importable from here.
"""

from analysis.connectivity import cleaned
from analysis.volumes import mni_background
from dashboard.histograms import value_histogram

from .exports import ConnectivityExports  # noqa: F401
from .sources import UploadSource  # noqa: F401
from .tab import URL_KEYS, ConnectivityTab  # noqa: F401
from .widgets import PREPROCESSING_CSS  # noqa: F401
from .views import (PEAKS_CSS, PLOT_H, data_background, peak_labels,  # noqa: F401
                    seed_series_curve, seed_series_plot, seed_series_title)

__all__ = ["ConnectivityTab", "value_histogram", "seed_series_plot", "mni_background", "cleaned"]
