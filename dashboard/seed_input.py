"""The seed's MNI coordinates as three number inputs, once for every tab (issue 14).

The Connectivity tab and its Group section both use :class:`SeedInput`: the same
labels, step (the data's voxel size), widths and CSS classes (``<prefix>-x``,
``-y``, ``-z``, which the tests and benchmarks find them by).
"""

from __future__ import annotations

from typing import Callable

import panel as pn
import param

from dashboard.param_widgets import tooltip

AXES = ("x", "y", "z")


class SeedInput(pn.viewable.Viewer):
    """x, y, z (mm) inputs. :attr:`xyz` reads them, :meth:`show` sets them (the caller
    keeps its own guard against the echo), :meth:`watch` calls back on a typed value.

    ``parameter``, the model's seed Parameter (e.g. ``SeedConnectivity.param.seed_mm``), gives
    the inputs' tooltip (its ``doc``) and :attr:`title`, their heading (its ``label``)."""

    def __init__(self, xyz, step: float = 4.0, css_prefix: str = "seed", width: int = 80,
                 parameter: param.Parameter | None = None, **params):
        super().__init__(**params)
        p = parameter
        doc = tooltip(p) if p is not None else ""
        self.title = (p.label if p is not None else "") or "Seed (MNI mm)"
        self.widgets = tuple(
            pn.widgets.FloatInput(label=f"{axis} (mm)", value=float(v), step=float(step),
                                  width=width, css_classes=[f"{css_prefix}-{axis}"],
                                  description=doc or f"MNI {axis} coordinate of the seed's "
                                                     "centre, in millimetres")
            for axis, v in zip(AXES, xyz))
        self.x, self.y, self.z = self.widgets

    @property
    def xyz(self) -> tuple:
        return tuple(float(w.value) for w in self.widgets)

    def show(self, xyz) -> None:
        """Set the inputs (model -> widgets)."""
        for w, v in zip(self.widgets, xyz):
            w.value = float(v)

    def watch(self, callback: Callable) -> None:
        """``callback(event)`` when any input changes."""
        for w in self.widgets:
            w.param.watch(callback, "value")

    def __panel__(self):
        return pn.Row(*self.widgets)
