"""fmri-explorer dashboard: Panel layouts and HoloViews views over the
Panel-free Param classes of :mod:`analysis`."""
