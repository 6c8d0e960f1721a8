"""Readable tick labels for every axis and colour bar (issue 15, item 6).

Bokeh's default ``BasicTickFormatter`` writes small or large values in
scientific notation with a fixed precision ("1.000e-3"), and a colour bar too
narrow for "4.000e+4" cuts the exponent off ("4.000e"). :func:`tick_formatter`
writes each tick with at most four significant digits and no trailing zeros
("0.001", "0.35", "-0.5", "12.5"), and only values of 10,000 or more, or below
0.001, as a short exponent ("4e4", "2.5e-5").

:data:`TICK_JS` is the formatter's code; :func:`format_tick` is the same rule in
Python (the browser tests compare the page's labels with it). A new Bokeh model
per call: a model belongs to one document, and each session has its own.
"""

from __future__ import annotations

import math

#: the body of the formatter (``tick`` is the value; returns the label)
TICK_JS = """
if (tick === 0 || !isFinite(tick)) return tick === 0 ? "0" : String(tick);
const a = Math.abs(tick);
if (a >= 1e4 || a < 1e-3) {
  let [m, e] = tick.toExponential(2).split("e");
  m = String(parseFloat(m));
  return m + "e" + String(parseInt(e, 10));
}
return String(parseFloat(tick.toPrecision(4)));
"""


def format_tick(tick: float) -> str:
    """The label :data:`TICK_JS` gives ``tick`` (for tests and static exports)."""
    if tick == 0 or not math.isfinite(tick):
        return "0" if tick == 0 else str(tick)
    a = abs(tick)
    if a >= 1e4 or a < 1e-3:
        mantissa, exponent = f"{tick:.2e}".split("e")
        m = float(mantissa)
        return f"{m:g}e{int(exponent)}"
    return f"{float(f'{tick:.4g}'):g}"


def tick_formatter():
    """A new ``CustomJSTickFormatter`` with :data:`TICK_JS`."""
    from bokeh.models import CustomJSTickFormatter

    return CustomJSTickFormatter(code=TICK_JS)


def colorbar_opts() -> dict:
    """HoloViews ``colorbar_opts`` giving a colour bar these labels."""
    return {"formatter": tick_formatter()}
