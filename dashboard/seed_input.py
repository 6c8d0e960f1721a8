"""The seed's MNI coordinates as three number inputs, once for every tab (issue 14).

The Connectivity tab and its Group section both use :class:`SeedInput`: the same
labels, step (the data's voxel size), widths and CSS classes (``<prefix>-x``,
``-y``, ``-z``, which the tests and benchmarks find them by).
"""

from __future__ import annotations

from typing import Callable

import panel as pn

AXES = ("x", "y", "z")


class SeedInput(pn.viewable.Viewer):
    """x, y, z (mm) inputs. :attr:`xyz` reads them, :meth:`show` sets them (the caller
    keeps its own guard against the echo), :meth:`watch` calls back on a typed value."""

    def __init__(self, xyz, step: float = 4.0, css_prefix: str = "seed", width: int = 80,
                 **params):
        super().__init__(**params)
        self.widgets = tuple(
            pn.widgets.FloatInput(label=f"{axis} (mm)", value=float(v), step=float(step),
                                  width=width, css_classes=[f"{css_prefix}-{axis}"],
                                  description=f"MNI {axis} coordinate of the seed's centre, "
                                              "in millimetres")
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
