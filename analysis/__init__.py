"""fmri-explorer analysis core: datasets, preprocessing, fast engines, Param classes.

Nothing in this package imports Panel or HoloViews: the same classes run
headless (notebooks, CLI, tests) and behind the dashboard.
"""

__version__ = "0.1.0"
