"""The Encoding tab's data sources: the synthetic dataset and the nilearn data folder's.

With ``fmri-explorer serve --data DIR`` (``$FMRI_EXPLORER_NILEARN_DATA``), the
tab's "Data" selector offers the folder's ``miyawaki2008`` beside the synthetic
dataset, labelled ``nilearn data: miyawaki2008`` (never the server's path), and
the tab starts on it. A switch sets the analysis' ``data_dir``, a structural
change: computed in a job under the busy overlay like a new CV scheme (see
``EncodingTab._structural_changed``), then the new data's background and best
voxel are shown. The source is kept in the URL (``enc_source``); a link can name
only a source offered here (an analysis handed in by a notebook is offered as
:data:`GIVEN`, which no link can open).
"""

from __future__ import annotations

import numpy as np
import param

from analysis.datasets.found import nilearn_sources, offered, same_folder
from dashboard.notify import notify_errors
from dashboard.param_widgets import widget_for
from dashboard.share import sync_url

SYNTHETIC = "synthetic (Miyawaki-like)"
GIVEN = "data of the analysis given"
#: The data source in the URL (read before the analysis is made: the rest of the link
#: is checked against that data).
SOURCE_URL_KEYS = {"source": "enc_source"}
_NOTHING = object()   # no data shown yet


def source_choices(analysis=None) -> tuple[dict, str]:
    """``({label: data_dir}, label to start on)``: the synthetic dataset (None), the
    nilearn data folder's when present (the start), or the given analysis' data."""
    choices = {SYNTHETIC: None, **nilearn_sources("encoding")}
    if analysis is None:
        return choices, list(choices)[-1]
    for label, folder in choices.items():
        if same_folder(folder, analysis.data_dir):
            return choices, label
    return {GIVEN: analysis.data_dir, **choices}, GIVEN


class EncodingSources:
    """The tab's ``source`` (a mixin of :class:`~dashboard.encoding.tab.EncodingTab`):
    uses its ``analysis``, ``viewer`` and ``_set_analysis``."""

    def _init_sources(self, analysis, source=None):
        """The choices and the start; a link's ``enc_source`` (one offered) first.
        Returns the data_dir an analysis made by the tab starts on."""
        self._source_dirs, start = source_choices(analysis)
        with param.parameterized.discard_events(self):
            self.param.source.objects = list(self._source_dirs)
            self.source = source if source is not None else start
        if GIVEN not in self._source_dirs:
            sync_url(self, SOURCE_URL_KEYS, rules={"source": offered(self._source_dirs)})
        self._shown_dir = _NOTHING
        return self._source_dirs[self.source]

    def _source_widget(self):
        self.w_source = widget_for(self.param.source, self.source, "encoding-source",
                                   width=220)
        self.w_source.link(self, value="source")
        self.param.watch(self._switch_source, ["source"])

    @notify_errors
    def _switch_source(self, event=None):
        """Another source chosen: the analysis' data_dir (a structural change)."""
        folder = self._source_dirs[self.source]
        if self.w_source.value != self.source:
            self.w_source.value = self.source
        if not same_folder(folder, self.analysis.data_dir):
            self._set_analysis("data_dir", folder)

    def _show_source(self):
        """The analysis' data_dir (set by a switch, a link or a notebook) in the selector."""
        for label, folder in self._source_dirs.items():
            if same_folder(folder, self.analysis.data_dir):
                if self.source != label:
                    self.source = label
                return

    def _source_failed(self, shown):
        """The new data could not be read: back to the data shown (``shown``)."""
        if shown is not _NOTHING and not same_folder(shown, self.analysis.data_dir):
            for label, folder in self._source_dirs.items():
                if same_folder(folder, shown):
                    self.source = label
                    return

    def _show_data(self):
        """New data (the start, or a switch): its background, and its best voxel selected
        (a voxel index of other data means nothing here)."""
        a = self.analysis
        new = self._shown_dir is not _NOTHING
        if new and same_folder(self._shown_dir, a.data_dir):
            return
        self._shown_dir = a.data_dir
        self.viewer.background = a.background()
        if new or a.voxel is None:
            a.voxel = int(np.argmax(a.mean_r2().values))
