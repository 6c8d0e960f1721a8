"""Errors in callbacks become notifications; the server keeps serving. And the spinner
shown where views are still being made."""

from __future__ import annotations

import functools
import logging

import panel as pn

from analysis.errors import DataError

log = logging.getLogger("fmri_explorer.dashboard")


def report_error(exc: BaseException, duration: int = 8000) -> str:
    """Show ``exc`` in this session as an error notification; return the message."""
    if isinstance(exc, DataError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
        log.exception("callback failed", exc_info=exc)
    notifications = getattr(pn.state, "notifications", None)
    if notifications is not None:
        notifications.error(message, duration=duration)
    return message


def report_info(message: str, duration: int = 4000) -> None:
    notifications = getattr(pn.state, "notifications", None)
    if notifications is not None:
        notifications.info(message, duration=duration)


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
                                                            name="loading"),
                               css_classes=[css_class]),
                     sizing_mode="stretch_width")
