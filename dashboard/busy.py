"""A tab's busy state while a background job computes what its views will show.

One job at a time per tab: a new one replaces (cancels) the one running. Meanwhile the
tab's views, its summary line included, sit under Panel's loading overlay (so a new
summary is never shown over an old map), a progress bar and a status line say what is
being done; when the job is done the tab shows every view at once and the overlay
goes. Used by the Encoding tab (a new decomposition), the Decoding tab (masking
again) and the Connectivity tab (cleaning again).
"""

from __future__ import annotations

from typing import Any, Callable

import panel as pn

from dashboard import jobs
from dashboard.batch import batched, soon
from dashboard.notify import report_error


class Busy:
    """The views (a Column the tab fills), a progress bar and a status line, and the job.

    ``css`` names the parts for tests and benchmarks: ``<css>-views``,
    ``<css>-progress``, ``<css>-status``.
    """

    def __init__(self, doc, css: str, width: int = 240, progress=None, status=None):
        self.doc = doc
        self.views = pn.Column(sizing_mode="stretch_width", css_classes=[f"{css}-views"])
        # a tab's own progress bar and status line, or new ones
        self.progress = progress if progress is not None else pn.indicators.Progress(
            value=0, max=100, bar_color="primary", width=width, visible=False,
            css_classes=[f"{css}-progress"])
        self.status = status if status is not None else pn.pane.Str(
            "", css_classes=[f"{css}-status"])
        self.active = False
        self.job = None

    def show(self, busy: bool, message: str = "") -> None:
        """Turn the overlay, the progress bar and the message on or off."""
        self.active = busy
        with batched():
            self.views.loading = busy
            self.progress.param.update(value=0, visible=busy)
            self.status.object = message if busy else ""

    def report(self, fraction: float, message: str = "") -> None:
        """Progress from the job's thread (shown on the event loop, while still busy)."""
        def update():
            if self.active:
                self.progress.value = int(round(100 * min(max(fraction, 0.0), 1.0)))
                if message:
                    self.status.object = message
        soon(self.doc, update)

    def run(self, work: Callable[[Any], Any], name: str, message: str,
            current: Callable[[Any], bool], apply: Callable[[Any], None],
            on_error: Callable[[BaseException], None] | None = None) -> None:
        """Start ``work(job)`` as this tab's job (replacing one still running), busy with
        ``message``. On the event loop, when it is done: if ``current(result)`` (the
        parameters it computed are still the tab's), the overlay goes and
        ``apply(result)`` shows it; if not, a newer job is on its way and the tab stays
        busy. A failure is reported (and handed to ``on_error``, e.g. to put the widgets
        back)."""
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
            work, name=name, doc=self.doc, on_done=done, on_error=failed,
            on_queued=lambda n: setattr(self.status, "object", jobs.queued_message(n)))

    def cancel(self, quiet: bool = False) -> None:
        """Stop the job (if any); the overlay goes unless ``quiet`` (a new one follows)."""
        if self.job is not None:
            self.job.cancel()
            self.job = None
            if not quiet:
                self.show(False)
