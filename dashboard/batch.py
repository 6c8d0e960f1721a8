"""Batch many view updates into one browser message and at most one model-graph walk.

Every HoloViews plot update freezes the Bokeh document and, on unfreezing,
Bokeh walks the whole model graph again (tens of ms on a full tab). Inside
:func:`batched` the document stays frozen until the end, so a slider move that
redraws seven plots walks the graph once, and the browser gets one message.
When nothing inside changed which models the document holds (only values were
updated in place, see :mod:`dashboard.render.live`), the walk is skipped: Bokeh's
own freeze always walks on exit, this one only when something asked for it (the
Bokeh internals that takes are in :mod:`dashboard.render.batching`).
"""

from __future__ import annotations

import contextlib
import functools
import threading

import panel as pn

from dashboard.render.batching import held_and_frozen


def batched():
    """Context manager: hold and freeze the current document (no-op outside a server)."""
    doc = pn.state.curdoc
    if doc is None:
        return contextlib.nullcontext()
    return held_and_frozen(doc)


def served(doc) -> bool:
    """``doc`` belongs to a served session (not a notebook, not a test without a server)."""
    return doc is not None and doc.session_context is not None


def soon(doc, fn) -> None:
    """Run ``fn`` on ``doc``'s event loop at its next tick (from any thread); outside a
    server, now. Used to send a second message (the slower views) after the first."""
    if served(doc):
        doc.add_next_tick_callback(fn)
    else:
        fn()


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
