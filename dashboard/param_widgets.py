"""Widgets made from a model's Parameters: label, tooltip, bounds and step written once,
in the Parameter (e.g. :class:`analysis.preprocessing.Preprocessing`).

:class:`ParamWidgets` makes one widget per parameter of a model in one loop and keeps
them two-way in sync with it (:meth:`ParamWidgets.link`, :meth:`ParamWidgets.show`):

* a boolean: a ``Checkbox``;
* a selector: a ``Select`` of its choices;
* a number with both bounds: a slider from ``bounds`` with the parameter's ``step``;
  otherwise a number input (``start`` at the lower bound). A number that allows None
  shows None as 0, and 0 typed in it is None ("off": a filter at 0 is no filter).

The label is the parameter's ``label``; its ``doc`` is the tooltip: the widget's
``description`` where Panel offers one, else a tooltip icon beside it. The CSS class is
the name, dashed (``high_pass`` -> ``high-pass``), unless ``css_classes`` names another
(classes the tests and benchmarks find widgets by).
"""

from __future__ import annotations

import math

import panel as pn
import param

#: Width of a number input (two fit in a row of the controls column).
INPUT_WIDTH = 120
#: Width of a select (the controls column's).
SELECT_WIDTH = 270
#: Width of a slider with a tooltip icon beside it.
SLIDER_WIDTH = 240


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def to_widget(p: param.Parameter, value):
    """A model value as the widget shows it (None as 0 for a number)."""
    if isinstance(p, param.Number):
        if value is None:
            return 0 if isinstance(p, param.Integer) else 0.0
        return int(value) if isinstance(p, param.Integer) else float(value)
    if isinstance(p, param.Boolean):
        return bool(value)
    return value


def from_widget(p: param.Parameter, value):
    """A widget's value as the model takes it (0 as None for a number that allows it)."""
    if isinstance(p, param.Boolean):
        return bool(value)
    if isinstance(p, param.Number):
        value = 0 if value is None else value
        value = int(value) if isinstance(p, param.Integer) else float(value)
        return None if (p.allow_None and not value) else value
    return value


def widget_for(p: param.Parameter, value, css_class: str | None = None) -> pn.widgets.Widget:
    """The widget of parameter ``p`` showing ``value`` (see the module)."""
    label = p.label or p.name
    doc = " ".join((p.doc or "").split())
    common = dict(label=label, value=to_widget(p, value),
                  css_classes=[css_class or p.name.replace("_", "-")])
    if isinstance(p, param.Boolean):
        return pn.widgets.Checkbox(**common)
    if isinstance(p, param.Selector):
        return pn.widgets.Select(options=list(p.objects), description=doc or None,
                                 width=SELECT_WIDTH, **common)
    if isinstance(p, param.Number):
        lo, hi = p.bounds or (None, None)
        integer = isinstance(p, param.Integer)
        step = p.step if p.step is not None else (1 if integer else 0.1)
        if _finite(lo) and _finite(hi):
            slider = pn.widgets.IntSlider if integer else pn.widgets.FloatSlider
            return slider(start=lo, end=hi, step=step, width=SLIDER_WIDTH if doc else None,
                          **common)
        number = pn.widgets.IntInput if integer else pn.widgets.FloatInput
        bounds = {k: v for k, v in (("start", lo), ("end", hi)) if _finite(v)}
        return number(step=step, width=INPUT_WIDTH, description=doc or None, **bounds,
                      **common)
    raise TypeError(f"{p.owner.__name__ if p.owner else ''}.{p.name} "
                    f"({type(p).__name__}): no widget type")


def _has_tooltip(widget) -> bool:
    return "description" in widget.param


class ParamWidgets:
    """One widget per parameter ``names`` of ``model``, made from the Parameters.

    ``widgets`` maps each name to its widget; :meth:`views` are the layout items (a
    widget with its tooltip icon, two number inputs in a row); :meth:`link` sends the
    widgets' changes to a callable, :meth:`show` shows the model's values.
    """

    def __init__(self, model: param.Parameterized, names, css_classes: dict | None = None):
        self.model = model
        self.names = tuple(names)
        css_classes = css_classes or {}
        self.widgets = {name: widget_for(model.param[name], getattr(model, name),
                                         css_classes.get(name))
                        for name in self.names}

    def value(self, name: str, widget_value):
        """The model value of widget ``name``'s ``widget_value``."""
        return from_widget(self.model.param[name], widget_value)

    def link(self, on_change) -> None:
        """Call ``on_change(name, model_value)`` when a widget changes (widget -> model)."""
        for name, widget in self.widgets.items():
            widget.param.watch(
                lambda event, name=name: on_change(name, self.value(name, event.new)), "value")

    def show(self) -> None:
        """Set every widget from the model (model -> widget); the caller keeps its own
        guard against the changes' echo (e.g. a ``_syncing`` flag)."""
        for name, widget in self.widgets.items():
            widget.value = to_widget(self.model.param[name], getattr(self.model, name))

    def views(self) -> list:
        """The widgets as layout items, in the parameters' order: a tooltip icon beside a
        widget that cannot show its doc; consecutive number inputs share a row."""
        items, inputs = [], []
        for name, widget in self.widgets.items():
            doc = " ".join((self.model.param[name].doc or "").split())
            narrow = isinstance(widget, (pn.widgets.FloatInput, pn.widgets.IntInput))
            if narrow:
                inputs.append(widget)
                if len(inputs) == 2:
                    items.append(pn.Row(*inputs))
                    inputs = []
                continue
            if inputs:
                items.append(inputs[0])
                inputs = []
            if doc and not _has_tooltip(widget):
                items.append(pn.Row(widget, pn.widgets.TooltipIcon(value=doc)))
            else:
                items.append(widget)
        items.extend(inputs)
        return items
