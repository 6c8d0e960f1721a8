"""Batch many view updates into one browser message and one model-graph walk.

Every HoloViews plot update freezes the Bokeh document and, on unfreezing,
Bokeh walks the whole model graph again (tens of ms on a full tab). Inside
:func:`batched` the document stays frozen until the end, so a slider move that
redraws seven plots walks the graph once, and the browser gets one message.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import panel as pn


def batched():
    """Context manager: hold and freeze the current document (no-op outside a server)."""
    if pn.state.curdoc is None:
        return contextlib.nullcontext()
    return pn.io.hold(freeze=True)


def in_batch(func):
    """Decorator: run ``func`` inside :func:`batched`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with batched():
            return func(*args, **kwargs)

    return wrapper


def serialized(method):
    """Decorator for a tab's callbacks: one at a time per tab (i.e. per session).

    The app runs callbacks in a thread pool, so two quick changes in one
    session (type a number, click Run; drag a slider) could otherwise run at
    once and finish out of order. Other sessions are not held up.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        lock = self.__dict__.get("_callback_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_callback_lock", threading.RLock())
        with lock:
            return method(self, *args, **kwargs)

    return wrapper
