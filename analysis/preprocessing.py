"""The connectivity preprocessing, declared once: one parameter group for every view.

:class:`Preprocessing` is the seed example's cleaning as a ``param`` group: each
Parameter carries its default, bounds, step, a ``label`` (the widget's) and a
``doc`` (the widget's tooltip and the CLI option's help). Everything else is
derived from it:

* single-subject and group connectivity subclass it
  (:class:`analysis.connectivity.SeedConnectivity`,
  :class:`analysis.group.GroupConnectivity`): same names, defaults and bounds;
* :class:`CleaningSettings` (what keys a cleaned matrix) has one field per
  parameter, same name and default (see :data:`CHOOSERS` for the exception);
* the CLI's options of ``connectivity`` and ``group``
  (:func:`analysis.commands.options.add_param_options`; the flags of
  :data:`CLI_FLAGS` keep their historical names, the others are the name, dashed);
* the Connectivity tab's widgets (:mod:`dashboard.param_widgets`) and its URL
  keys (:func:`dashboard.share.url_mapping`);
* the exported script (:func:`analysis.scripts.connectivity_script`) and the
  reference pipeline (:mod:`analysis.connectivity.reference`): every setting but
  those of :data:`BRAIN_ONLY` is a keyword of both of nilearn's maskers under its
  own name (:meth:`CleaningSettings.masker_kwargs`).

So adding a preprocessing option is one Parameter here; the fast engine
(:func:`analysis.connectivity.clean_data`), which re-implements the maskers, is
where what it does is computed.

Conventions: a number at 0 is "off" (None in the settings: no smoothing, no
filter); a boolean that is on by default is a ``--no-...`` flag on the command line.

Panel-free: the dashboard, the CLI and the notebook import it.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass

import numpy as np
import param

from .errors import DataError

STANDARDIZE = ("zscore_sample", "zscore")
#: The standardisations as a widget offers them: ``{label: value}`` (the values, the CLI's
#: choices and the URL's, stay ``STANDARDIZE``).
STANDARDIZE_LABELS = dict(zip(("z-score, sample SD (n - 1)", "z-score, population SD (n)"),
                              STANDARDIZE))
#: The repetition time (s) of settings made without data (the seed example's).
T_R = 2.0


class Preprocessing(param.Parameterized):
    """The seed example's cleaning: the parameters single-subject and group connectivity
    share (declared here only; each view is derived from them, see the module)."""

    smoothing_fwhm = param.Number(
        default=6.0, bounds=(0.0, 20.0), step=1.0, label="Smoothing FWHM (mm)",
        doc="Spatial smoothing of the brain voxels: full width at half maximum of the "
            "Gaussian kernel in mm (0: none; the seed's sphere is never smoothed)")
    detrend = param.Boolean(default=True, label="Detrend",
                            doc="Remove each time series' linear trend (scanner drift)")
    high_pass = param.Number(
        default=0.01, bounds=(0.0, None), softbounds=(0.0, 0.05), allow_None=True, step=0.005,
        label="High-pass (Hz)",
        doc="Butterworth high-pass cutoff in Hz: slower drifts are removed (0: off)")
    low_pass = param.Number(
        default=0.1, bounds=(0.0, None), softbounds=(0.02, 0.25), allow_None=True, step=0.01,
        label="Low-pass (Hz)",
        doc="Butterworth low-pass cutoff in Hz: faster fluctuations are removed (0: off)")
    standardize = param.Selector(
        default="zscore_sample", objects=STANDARDIZE_LABELS, label="Standardize",
        doc="Scaling of each cleaned time series to mean 0 and variance 1, as nilearn's "
            "maskers: by the sample standard deviation (n - 1) or the population one (n)")
    standardize_confounds = param.Boolean(
        default=True, label="Standardize confounds",
        doc="z-score the confound time series before regressing them out")
    high_variance_confounds = param.Boolean(
        default=False, label="CompCor-like confounds",
        doc="Also regress out the 5 highest-variance components of the image's voxels "
            "(nilearn's high_variance_confounds, CompCor-like)")
    regress_confounds = param.Boolean(
        default=True, label="Regress confounds",
        doc="Regress the confounds table's columns (motion, tissue signals) out of every "
            "time series")

    def cleaning_settings(self, t_r: float = T_R, confound_columns=()) -> "CleaningSettings":
        """The settings for data of repetition time ``t_r`` whose confound columns to
        regress are ``confound_columns`` (none when ``regress_confounds`` is off)."""
        columns = tuple(confound_columns or ()) if self.regress_confounds else ()
        values = {name: _setting(Preprocessing.param[name], getattr(self, name))
                  for name in SETTINGS}
        return CleaningSettings(**values, t_r=t_r, confound_columns=columns or None)


#: The parameters of the group, in their order (widgets and options follow it).
PARAMETERS = tuple(n for n in Preprocessing.param if n != "name")
#: Parameters that are not settings of the cleaning themselves but choose another one:
#: ``regress_confounds`` chooses ``confound_columns`` (None when off).
CHOOSERS = ("regress_confounds",)
#: Settings that only the brain's masker takes (the seed's sphere is never smoothed); every
#: other setting is a keyword of both of nilearn's maskers under its own name.
BRAIN_ONLY = ("smoothing_fwhm",)
#: CLI flags not named after their parameter (kept: users' command lines use them).
CLI_FLAGS = {"smoothing_fwhm": "--smoothing", "regress_confounds": "--no-confounds"}
#: The settings (:class:`CleaningSettings`' fields) that come from the group.
SETTINGS = tuple(n for n in PARAMETERS if n not in CHOOSERS)


def _setting(p: param.Parameter, value):
    """A parameter's value as the settings hold it: a number at 0 is None (off)."""
    if isinstance(p, param.Number) and not isinstance(p, param.Integer) and not value:
        return None
    return value


class _CleaningMethods:
    """The methods of :class:`CleaningSettings` (its fields are made from the group)."""

    def check(self) -> "CleaningSettings":
        """Raise :class:`DataError` for a band that cannot work; return self."""
        if not self.t_r or not np.isfinite(self.t_r) or self.t_r <= 0:
            raise DataError(f"t_r must be a positive number of seconds, not {self.t_r}")
        nyquist = 0.5 / self.t_r
        for name in ("high_pass", "low_pass"):
            value = getattr(self, name)
            if value is None:
                continue
            if not np.isfinite(value) or value <= 0:
                raise DataError(f"{name} must be above 0 Hz (or off), not {value}")
            if value >= nyquist:
                raise DataError(f"{name} {value:g} Hz is at or above the Nyquist frequency "
                                f"{nyquist:g} Hz (t_r {self.t_r:g} s)")
        if self.high_pass is not None and self.low_pass is not None \
                and self.high_pass >= self.low_pass:
            raise DataError(f"band-pass: high_pass {self.high_pass:g} Hz must be below "
                            f"low_pass {self.low_pass:g} Hz")
        if self.standardize not in STANDARDIZE:
            raise DataError(f"standardize must be one of {', '.join(STANDARDIZE)}, "
                            f"not {self.standardize!r}")
        if self.smoothing_fwhm is not None and not (np.isfinite(self.smoothing_fwhm)
                                                    and self.smoothing_fwhm >= 0):
            raise DataError(f"smoothing_fwhm must be >= 0 mm, not {self.smoothing_fwhm}")
        return self

    @property
    def fwhm(self) -> float | None:
        return self.smoothing_fwhm if self.smoothing_fwhm else None

    @property
    def nilearn_standardize(self) -> str | None:
        """``standardize`` as nilearn's ``signal.clean`` takes it: nilearn 0.14 dropped
        ``"zscore"`` (the population z-score, ddof 0), which :meth:`standardized` applies."""
        return "zscore_sample" if self.standardize == "zscore_sample" else None

    def standardized(self, signals: np.ndarray) -> np.ndarray:
        """``signals`` (n_volumes, n_voxels), cleaned with :attr:`nilearn_standardize`,
        z-scored as ``standardize`` asks: for ``"zscore"`` centred and divided by the
        population standard deviation (nilearn's old ``"zscore"``: a constant voxel is
        left at 0); otherwise unchanged."""
        if self.standardize != "zscore" or signals.shape[0] < 2:
            return signals
        signals = signals - signals.mean(axis=0)
        std = signals.std(axis=0)
        std[std < np.finfo(np.float64).eps] = 1.0
        signals /= std
        return signals

    def clean_kwargs(self, standardize) -> dict:
        """Keyword arguments of ``nilearn.signal.clean`` for these settings."""
        return dict(detrend=self.detrend, standardize=standardize,
                    standardize_confounds=self.standardize_confounds,
                    low_pass=self.low_pass, high_pass=self.high_pass, t_r=self.t_r,
                    # the whole matrix at once: ~4.6x faster, equal (see DESIGN)
                    butterworth__copy=True)

    def masker_kwargs(self) -> dict:
        """Keyword arguments of both of nilearn's maskers (``NiftiMasker``,
        ``NiftiSpheresMasker``) for these settings: every setting of the group but
        :data:`BRAIN_ONLY`, ``t_r``; ``standardize`` as :attr:`nilearn_standardize`."""
        kwargs = {name: getattr(self, name) for name in SETTINGS if name not in BRAIN_ONLY}
        kwargs["standardize"] = self.nilearn_standardize
        kwargs["t_r"] = self.t_r
        return kwargs


_TYPES = {param.Boolean: bool, param.Selector: str, param.Integer: "int | None",
          param.Number: "float | None"}

#: The cleaning settings: what keys a cleaned matrix (frozen, hashable, picklable).
#:
#: One field per setting of :class:`Preprocessing` (:data:`SETTINGS`: same name, its
#: default, a number at 0 as None, e.g. ``high_pass`` in Hz, None: off), then the data's:
#: ``t_r`` (s) and ``confound_columns`` (tuple of str; None: no confound regression).
CleaningSettings = make_dataclass(
    "CleaningSettings",
    [(name, _TYPES.get(type(Preprocessing.param[name]), object),
      field(default=_setting(Preprocessing.param[name], Preprocessing.param[name].default)))
     for name in SETTINGS]
    + [("t_r", float, field(default=T_R)),
       ("confound_columns", "tuple | None", field(default=None))],
    bases=(_CleaningMethods,), frozen=True,
    namespace={"__module__": __name__, "__doc__": "The seed example's preprocessing (its "
               "defaults): what keys a cleaned matrix. Fields: one per setting of "
               "Preprocessing, then t_r and confound_columns."})
CleaningSettings.__qualname__ = "CleaningSettings"
