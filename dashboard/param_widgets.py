"""Widgets made from a model's Parameters: label, tooltip, bounds and step written once,
in the Parameter (e.g. :class:`analysis.preprocessing.Preprocessing`).

:class:`ParamWidgets` makes one widget per parameter of a model in one loop and keeps
them two-way in sync with it (:meth:`ParamWidgets.link`, :meth:`ParamWidgets.show`):

* a boolean: a ``Checkbox``;
* a selector: a ``Select`` of its choices (labelled where the choices were declared as
  ``{label: value}``); a list selector: a ``MultiChoice``;
* a number with both bounds: a slider over its ``softbounds`` where given, else its
  ``bounds``, with the parameter's ``step``; otherwise a number input (``start`` at the
  lower bound). A number that allows None shows None as 0, and 0 typed in it is None
  ("off": a filter at 0 is no filter).

:func:`widget_for` takes another widget type where a tab wants one (a radio group, a
discrete slider): the label, tooltip, choices and range still come from the Parameter,
so a tab never retypes a bound (issue 14).

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


def slider_range(p: param.Parameter) -> tuple:
    """A number parameter's slider range: its ``softbounds`` where given (the range worth
    sliding over), else its ``bounds``, side by side (Panel's Param pane does the same)."""
    lo, hi = p.bounds or (None, None)
    soft_lo, soft_hi = getattr(p, "softbounds", None) or (None, None)
    return (soft_lo if soft_lo is not None else lo, soft_hi if soft_hi is not None else hi)


def tooltip(p: param.Parameter) -> str:
    """A parameter's ``doc`` on one line: its widget's tooltip."""
    return " ".join((p.doc or "").split())


def _options(p: param.Parameter):
    """A selector's choices as the widget offers them: ``{label: value}`` where the
    parameter was declared with a dict (``p.names``), else its list of objects."""
    names = getattr(p, "names", None)
    return dict(names) if names else list(p.objects)


def widget_for(p: param.Parameter, value, css_class: str | None = None, widget_type=None,
               **overrides) -> pn.widgets.Widget:
    """The widget of parameter ``p`` showing ``value`` (see the module).

    ``widget_type`` replaces the default type (e.g. a ``RadioButtonGroup`` for a short
    selector, a ``DiscreteSlider``); the label, tooltip, choices, range and step still
    come from ``p``; ``overrides`` (e.g. ``format``, ``width``) are passed last.
    """
    doc = tooltip(p)
    kwargs = dict(label=p.label or p.name, value=to_widget(p, value),
                  css_classes=[css_class or p.name.replace("_", "-")],
                  description=doc or None)
    if isinstance(p, param.Boolean):
        default = pn.widgets.Checkbox
    elif isinstance(p, param.ListSelector):   # before Selector: a subclass of it
        kwargs.update(options=_options(p), value=list(value or []))
        default = pn.widgets.MultiChoice
    elif isinstance(p, param.Selector):
        kwargs.update(options=_options(p), width=SELECT_WIDTH)
        default = pn.widgets.Select
    elif isinstance(p, param.Number):
        lo, hi = slider_range(p)
        integer = isinstance(p, param.Integer)
        kwargs["step"] = p.step if p.step is not None else (1 if integer else 0.1)
        if _finite(lo) and _finite(hi):
            default = pn.widgets.IntSlider if integer else pn.widgets.FloatSlider
            kwargs.update(start=lo, end=hi, width=SLIDER_WIDTH if doc else None)
        else:
            default = pn.widgets.IntInput if integer else pn.widgets.FloatInput
            kwargs.update({k: v for k, v in (("start", lo), ("end", hi)) if _finite(v)},
                          width=INPUT_WIDTH)
    else:
        raise TypeError(f"{p.owner.__name__ if p.owner else ''}.{p.name} "
                        f"({type(p).__name__}): no widget type")
    cls = widget_type or default
    kwargs.update(overrides)
    return cls(**{k: v for k, v in kwargs.items() if k in cls.param})


def _has_tooltip(widget) -> bool:
    return "description" in widget.param


def with_tooltip(widget, p: param.Parameter):
    """``widget`` with parameter ``p``'s doc as its tooltip: its own ``description``
    where Panel offers one (set by :func:`widget_for`), else a tooltip icon beside it."""
    doc = tooltip(p)
    if not doc or _has_tooltip(widget):
        return widget
    # beside a slider's track (its label above it), or beside a checkbox's label
    top = 5 if isinstance(widget, pn.widgets.Checkbox) else 25
    return pn.Row(widget, pn.widgets.TooltipIcon(value=doc, margin=(top, 0, 0, -5)),
                  margin=0)


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
            doc = tooltip(self.model.param[name])
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
