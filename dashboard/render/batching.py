"""Hold and freeze a Bokeh document; walk its model graph on unfreezing only when needed.

Every HoloViews plot update freezes the Bokeh document and, on unfreezing,
Bokeh walks the whole model graph again (tens of ms on a full tab).
:func:`held_and_frozen` keeps the document frozen (and its change events held,
Panel's ``hold``) until the end, so a slider move that redraws seven plots
walks the graph once, and the browser gets one message. When nothing inside
changed which models the document holds (only values were updated in place,
see :mod:`dashboard.render.live`), the walk is skipped: Bokeh's own freeze
always walks on exit, this one only when something asked for it. The graph can
change in two ways only: a property that holds models is set (Bokeh's
``Model.trigger`` then calls ``invalidate``) or the document's roots change
(``add_root``, ``remove_root``, ``clear``: compared on exit). A nested freeze that
did neither (a HoloViews update that set data in place) no longer costs a walk;
it had cost a third of a Decoding C move's time under load.

Bokeh internals used (``DocumentModelManager``): ``_push_freeze``,
``_pop_freeze``, ``_freeze_count``, ``invalidate`` and ``recompute``; without
the private ones, Bokeh's own ``freeze()`` is used (always walks).
``tests/test_render_hooks.py`` checks them.
"""

from __future__ import annotations

import contextlib

import panel as pn


@contextlib.contextmanager
def held_and_frozen(doc):
    """Freeze ``doc``'s model graph (walked on exit only if something changed it) and
    hold its change events (sent together on exit)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(lazy_freeze(doc))
        stack.enter_context(pn.io.hold(doc))
        yield


class _Tracker:
    """Records, on a document's model manager, whether the model graph may have changed."""

    def __init__(self, models):
        self.dirty = False
        self.roots: list = []
        invalidate = models.invalidate

        def tracked_invalidate():
            self.dirty = True
            invalidate()

        models.invalidate = tracked_invalidate

    def roots_changed(self, doc) -> bool:
        roots = list(getattr(doc, "roots", ()))
        return len(roots) != len(self.roots) or any(
            a is not b for a, b in zip(roots, self.roots))


def can_skip_walks(models) -> bool:
    """``models`` (a document's model manager) has the private hooks :func:`lazy_freeze`
    uses to skip a needless walk."""
    return models is not None and hasattr(models, "_freeze_count") and hasattr(
        models, "_pop_freeze") and hasattr(models, "_push_freeze")


@contextlib.contextmanager
def lazy_freeze(doc):
    """Freeze ``doc``'s model graph; on exit, walk it only if something changed it."""
    models = getattr(doc, "models", None)
    if not can_skip_walks(models):
        with (models.freeze() if models is not None else contextlib.nullcontext()):
            yield
        return
    tracker = models.__dict__.get("_fmri_tracker")
    if tracker is None:
        tracker = models.__dict__["_fmri_tracker"] = _Tracker(models)
    models._push_freeze()
    if models._freeze_count == 1:
        tracker.dirty = False
        tracker.roots = list(getattr(doc, "roots", ()))
    try:
        yield
    finally:
        models._freeze_count -= 1
        if models._freeze_count == 0 and (tracker.dirty or tracker.roots_changed(doc)):
            tracker.dirty = False
            tracker.roots = []
            models.recompute()
