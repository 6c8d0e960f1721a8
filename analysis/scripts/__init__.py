"""Stand-alone scripts that reproduce an analysis with plain nilearn and scikit-learn.

Each function takes an analysis model (its data and current parameters) and
returns the text of a Python script that needs only numpy, pandas, nibabel,
nilearn and scikit-learn, never this package:

* :func:`encoding_script` (:class:`analysis.encoding.EncodingAnalysis`): the
  Miyawaki example's ``MultiNiftiMasker``, ``Ridge`` per fold of ``KFold`` or
  ``LeaveOneGroupOut``, ``r2_score`` per voxel;
* :func:`decoding_script` (:class:`analysis.decoding.DecodingAnalysis`): the
  Haxby tutorial's ``NiftiMasker``, ``SVC`` (or ``LogisticRegression``),
  ``cross_val_score``, ``permutation_test_score``, the weights on the brain;
* :func:`connectivity_script` (:class:`analysis.connectivity.SeedConnectivity`):
  the seed-to-voxel example's ``NiftiSpheresMasker`` and ``NiftiMasker``.

A script reads the files the model reads (absolute paths; a session's uploads
by the names the user gave them, from the folder it runs in), sets every
parameter as a named constant at its top, and prints the numbers of the app's
summary one a line as ``name: value`` (floats at full precision, lists as
Python literals), the last line ``summary: ...`` being the app's summary line.

Panel-free (no panel, holoviews or bokeh): the dashboard's "Code (.py)" export
calls these functions, and so can a notebook.

One module per analysis (:mod:`.encoding`, :mod:`.decoding`,
:mod:`.connectivity`), the rendering they share (constants, layout, the
``show`` helper) in :mod:`.common`.
"""

from __future__ import annotations

from .common import WIDTH
from .connectivity import connectivity_script
from .decoding import decoding_script
from .encoding import encoding_script

__all__ = ["encoding_script", "decoding_script", "connectivity_script"]
