"""A tab's busy state while a background job computes what its views will show.

One job at a time per tab: a new one replaces (cancels) the one running. Meanwhile the
tab's views, its summary line included, are greyed out and not clickable (so a new
summary is never shown over an old map), a progress bar and a status line say what is
being done; when the job is done the tab shows every view at once. Used by the Encoding
tab (a new decomposition), the Decoding tab (masking again) and the Connectivity tab
(cleaning again).

Drawn with inline styles only: in the browser a change of a Bokeh layout's
``css_classes`` or ``visible`` (Panel's ``loading`` overlay, a progress bar shown or
hidden) lays the whole page out again, 150-300 ms each in Chromium at full size (about
0.7 s a job); a change of ``styles`` is not (a few ms). The views get
:data:`BUSY_STYLES`; progress bars (:func:`progress_bar`, the kit's own or one the tab
hands in and also uses for other work) keep their room and are shown and hidden by
:func:`show_bar` with :data:`BUSY_PROGRESS` / :data:`IDLE_PROGRESS` (a bar handed over
hidden with ``visible`` is toggled with it, as its tab does). (So is a Button's
``disabled``: its view is rendered again and the page laid out again; a quick re-run
need not switch it.)
"""

from __future__ import annotations

import time
from typing import Any, Callable

import panel as pn

from dashboard import jobs
from dashboard.batch import batched, soon
from dashboard.notify import report_error

#: The views while a job computes what they will show: greyed out, not clickable.
BUSY_STYLES = {"opacity": "0.45", "pointer-events": "none", "transition": "opacity 0.1s"}
#: The views while no job runs. Explicit values, not ``{}``: BokehJS applies the styles it
#: is given and leaves the properties set before, so an empty dict would keep them greyed.
IDLE_STYLES = {"opacity": "1", "pointer-events": "auto"}
#: The kit's progress bar while no job runs: hidden, its room kept; and while one runs.
IDLE_PROGRESS = {"visibility": "hidden"}
BUSY_PROGRESS = {"visibility": "visible"}
#: Seconds between two progress messages of a job (each is a message to the browser and
#: a redraw there, while the job wants the cores).
REPORT_EVERY = 0.15


class Throttle:
    """Progress reports from a job's thread: at most one every ``every`` seconds (each is
    a message to the browser and a redraw there, while the job wants the cores), the
    last (fraction 1) always."""

    def __init__(self, every: float = REPORT_EVERY):
        self.every = float(every)
        self.last = 0.0

    def reset(self) -> None:
        self.last = 0.0

    def due(self, fraction: float) -> bool:
        """This report is to be shown (and counts as the last shown)."""
        now = time.monotonic()
        if now - self.last < self.every and fraction < 1.0:
            return False
        self.last = now
        return True


def percent(fraction: float) -> int:
    """A fraction done as a progress bar's value out of 100 (clipped to 0..100)."""
    return int(round(100 * min(max(fraction, 0.0), 1.0)))


def progress_bar(css: str, width: int = 240, **params) -> pn.indicators.Progress:
    """A progress bar that keeps its room: hidden by its inline style (:func:`show_bar`).
    ``params``: other Parameters of Panel's ``Progress`` (e.g. ``max``)."""
    return pn.indicators.Progress(**{"value": 0, "max": 100, "bar_color": "primary",
                                     **params, "width": width, "visible": True,
                                     "styles": dict(IDLE_PROGRESS), "css_classes": [css]})


def show_bar(bar, shown: bool, **values) -> None:
    """Show or hide ``bar`` (made by :func:`progress_bar`) by its inline style, with
    other values (e.g. ``value=0``) in the same update."""
    bar.param.update(styles=dict(BUSY_PROGRESS if shown else IDLE_PROGRESS), **values)


def bar_shown(bar) -> bool:
    """``bar`` is shown (visible, and not hidden by its inline style)."""
    return bool(bar.visible) and (bar.styles or {}).get("visibility") != "hidden"


class Busy:
    """The views (a Column the tab fills), a progress bar and a status line, and the job.

    ``css`` names the parts for tests and benchmarks: ``<css>-views``,
    ``<css>-progress``, ``<css>-status``.
    """

    def __init__(self, doc, css: str, width: int = 240, progress=None, status=None):
        self.doc = doc
        self.views = pn.Column(sizing_mode="stretch_width", css_classes=[f"{css}-views"])
        # a tab's own progress bar and status line, or new ones; a bar made by
        # progress_bar (visible, hidden by style) is shown by style, one handed over
        # hidden with ``visible`` keeps being shown and hidden that way (Encoding's
        # significance bar: shown again after "visibility: hidden" it stayed hidden there)
        self.progress = progress if progress is not None else progress_bar(
            f"{css}-progress", width=width)
        self._by_style = bool(self.progress.visible)
        self.status = status if status is not None else pn.pane.Str(
            "", css_classes=[f"{css}-status"])
        self.active = False
        self.job = None
        self._throttle = Throttle()

    def show(self, busy: bool, message: str = "") -> None:
        """Grey the views out (or not), show the progress bar and the message (or not)."""
        self.active = busy
        self._throttle.reset()
        with batched():
            self.views.styles = dict(BUSY_STYLES if busy else IDLE_STYLES)
            if self._by_style:
                show_bar(self.progress, busy, value=0)
            else:
                self.progress.param.update(value=0, visible=busy)
            self.status.object = message if busy else ""

    def report(self, fraction: float, message: str = "") -> None:
        """Progress from the job's thread (shown on the event loop, while still busy), at
        most one message every :data:`REPORT_EVERY` seconds until the last."""
        if not self._throttle.due(fraction):
            return

        def update():
            if self.active:
                self.progress.value = percent(fraction)
                if message:
                    self.status.object = message
        soon(self.doc, update)

    def run(self, work: Callable[[Any], Any], name: str, message: str,
            current: Callable[[Any], bool], apply: Callable[[Any], None],
            on_error: Callable[[BaseException], None] | None = None,
            long: bool = False) -> None:
        """Start ``work(job)`` as this tab's job (replacing one still running), busy with
        ``message``. On the event loop, when it is done: if ``current(result)`` (the
        parameters it computed are still the tab's), the overlay goes and
        ``apply(result)`` shows it; if not, a newer job is on its way and the tab stays
        busy. A failure is reported (and handed to ``on_error``, e.g. to put the widgets
        back). ``long``: minutes of work (a permutation test, an upload), which leaves
        a slot to quick jobs (:class:`analysis.jobs.JobRegistry`)."""
        self.cancel(quiet=True)
        self.show(True, message)

        def done(result):
            self.job = None
            if current(result):
                self.show(False)
                apply(result)

        def failed(exc):
            self.job = None
            self.show(False)
            report_error(exc)
            if on_error is not None:
                on_error(exc)

        self.job = jobs.submit(
            work, name=name, doc=self.doc, on_done=done, on_error=failed, long=long,
            on_queued=lambda n: setattr(self.status, "object", jobs.queued_message(n)))

    def cancel(self, quiet: bool = False) -> None:
        """Stop the job (if any); the overlay goes unless ``quiet`` (a new one follows)."""
        if self.job is not None:
            self.job.cancel()
            self.job = None
            if not quiet:
                self.show(False)
