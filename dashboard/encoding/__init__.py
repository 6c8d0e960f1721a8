"""Encoding tab (Miyawaki 2008): live voxel-wise ridge with receptive fields.

A thin view over :class:`analysis.encoding.EncodingAnalysis`. Its parameters
become widgets (alpha on a log10 slider), its xarray results HoloViews
elements: the fold-mean R^2 map in the shared slice viewer (thresholded), a
histogram of R^2 with the threshold marked, the alpha path with the current
alpha marked, and for the clicked voxel its ridge and Lasso receptive fields
(10x10, rows and columns ticked; on synthetic data the pixel the voxel was built
to respond to boxed in gold) and its measured vs cross-validated predicted time
course in seconds within a run, the stimulus browser's sample marked; plus a
stimulus browser and, under the R^2 map, each voxel's best alpha (log10). The user's
own runs, mask and feature tables can be uploaded and analysed in the tab (``sources``):
their receptive fields are images when the features form a square grid, else weights
per feature and delay. The decompositions are cached per process, so
moving alpha or the threshold, or clicking, never refits anything.

The package: ``tab`` (layout and callbacks), ``views`` (the plots, pure
functions), ``elements`` (the tab's live plot and DynamicMap callbacks),
``exports`` (the Export bar's source), ``sources`` (the data sources),
``significance`` (the permutation test of R^2, FDR across voxels). Every name
the module had is importable from here.
"""

from .elements import EncodingElements
from .exports import EncodingExports
from .sources import GIVEN, SOURCE_URL_KEYS, SYNTHETIC, USER_FILES
from .tab import TAB_URL_KEYS, URL_KEYS, EncodingTab
from .views import (PLANTED_TEXT, PLOT_H, RF_KINDS, measured_curve, predicted_curve, r2_bins,
                    r2_histogram, receptive_field_image, rf_element, rf_kind, rf_layout,
                    stimulus_image, time_course_plot, update_time_course)

__all__ = ["EncodingTab", "URL_KEYS", "TAB_URL_KEYS", "SOURCE_URL_KEYS", "SYNTHETIC", "GIVEN",
           "USER_FILES", "PLANTED_TEXT", "rf_element", "rf_kind", "rf_layout", "RF_KINDS",
           "stimulus_image",
           "receptive_field_image", "r2_bins", "r2_histogram", "measured_curve",
           "predicted_curve", "time_course_plot", "update_time_course"]
