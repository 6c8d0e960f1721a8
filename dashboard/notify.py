"""Errors in callbacks become notifications; the server keeps serving. And the spinner
shown where views are still being made."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import panel as pn

from analysis.errors import DataError

log = logging.getLogger("fmri_explorer.dashboard")

#: Characters replaced by numeric character references (``&#60;``). HTML text needs
#: ``& < >`` (quotes matter only inside attributes, where no text of ours goes); Markdown needs its link, image, code, emphasis, strikethrough, table
#: and escape characters: a reference is never read as Markdown syntax (CommonMark), so
#: ``[x](javascript:...)`` stays text. ``_`` between two letters or digits stays
#: (``sub-01_bold.nii``): Markdown never reads it as emphasis there.
_SPECIAL = "&<>[]`*~|\\"
_ESCAPES = {ord(c): f"&#{ord(c)};" for c in _SPECIAL}
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # not between two letters/digits
#: Longest user string shown (file names, labels, link values): the rest is cut.
MAX_SHOWN = 300


def escape(text: Any, limit: int | None = MAX_SHOWN) -> str:
    """``text`` as it must go into HTML or Markdown to be shown as itself, never as
    markup: the only way user-supplied strings (URL values, file names, labels,
    column names, messages quoting them) reach a notification or a Markdown/HTML pane.

    Long text is cut to ``limit`` characters (a 5,000-character value is not shown
    whole); control characters other than newlines and tabs are dropped."""
    text = "" if text is None else str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "\u2026"
    text = "".join(c for c in text if c in "\n\t" or (ord(c) >= 32 and ord(c) != 127))
    return _UNDERSCORE.sub("&#95;", text.translate(_ESCAPES))


#: The same escaping for Markdown panes: ``pn.pane.Markdown(safe_markdown(name))``.
safe_markdown = escape


def html_choices(options) -> dict:
    """``{label: value}`` options for a widget that renders its labels as HTML (Bokeh's
    MultiChoice: Choices.js sets ``innerHTML``): each label escaped, each value as is."""
    return {escape(o, limit=None): o for o in options}


def _notify(kind: str, message: str, duration: int) -> None:
    notifications = getattr(pn.state, "notifications", None)
    if notifications is None:
        return
    # Panel's notifications render their message as HTML: always escaped here
    text = escape(message, limit=2 * MAX_SHOWN)

    def show():
        getattr(notifications, kind)(text, duration=duration)

    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None and not pn.state.loaded:
        pn.state.onload(show)  # a notification made before the page is drawn is never shown
    else:
        show()


def report_error(exc: BaseException, duration: int = 8000) -> str:
    """Show ``exc`` in this session as an error notification (escaped: the message may
    quote a file name, a label or a URL value); return the message as plain text
    (pass it through :func:`safe_markdown` before putting it in a Markdown pane)."""
    if isinstance(exc, DataError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
        log.exception("callback failed", exc_info=exc)
    _notify("error", message, duration)
    return message


def report_info(message: str, duration: int = 4000) -> None:
    """Show ``message`` (plain text, escaped here) as an info notification."""
    _notify("info", message, duration)


def notify_errors(func):
    """Decorator: exceptions raised by ``func`` become notifications (returns None)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the app must keep serving
            report_error(exc)
            return None

    return wrapper


def loading(css_class: str, size: int = 40) -> pn.Column:
    """A spinner standing where views are still being made (replace the holder's items)."""
    return pn.Column(pn.Column(pn.indicators.LoadingSpinner(value=True, size=size,
                                                            label="loading"),
                               css_classes=[css_class]),
                     sizing_mode="stretch_width")
