"""Hooks into the server's classes (Tornado, Bokeh's server, Panel's handlers) and sessions.

:mod:`dashboard.security` decides what a served process does (which headers,
when a login is refused, how it stops); this module only knows where, in these
libraries, to hook it in. Their documented hook points do not reach every
response, so methods are wrapped on their classes, once per process (a flag on
the wrapper):

* ``tornado.web.RequestHandler.clear`` (resets the headers: in ``__init__`` and
  before an error page) and ``.set_cookie``;
* Panel's ``panel.io.server.LoginUrlMixin.get_login_url`` and
  ``DocHandler.get`` (the app's page), ``panel.auth.BasicLoginHandler.post`` and
  its private ``_validate(username, password)``, and ``panel.auth.CDN_DIST``
  (where the login page's logo and icon come from);
* Bokeh's ``bokeh.server.server.BaseServer.stop``;
* Tornado's ``WebSocketClosedError`` for a page update written to a page that had
  closed, logged by asyncio when nobody awaited the write (:func:`to_closed_socket`);
* Bokeh's ``ServerConnection.session``, which asserts when the connection has let
  go of its session (a message from a client that closed the page): recognised
  in a logged traceback by :func:`from_gone_client`; and ``WSHandler.on_close``
  (with the connection's private ``_session``), which asked for it once more after
  the keep-alive had let it go (:func:`lost_connection_closes_quietly`);
* a session's open connections (``doc.session_context._session``) and running
  a callback on a session's event loop with Panel's ``set_curdoc``;
* Panel's ``Pane._update_object(ref, doc, ...)`` and ``Reactive._get_properties(doc)``:
  a pane updated while its tab is hidden resolves its stylesheets against its own
  document, not Panel's CDN (:func:`_detached_pane_stylesheets`).

``tests/test_render_hooks.py``, ``tests/test_security_headers.py`` and
``tests/test_login.py`` fail if an upgrade moves them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from typing import Callable

#: the logger under which Bokeh reports an error while handling a client's message
PROTOCOL_LOGGER = "bokeh.server.protocol_handler"
#: where the login and logout pages' logo and icon are served from (this server)
LOCAL_LOGIN_ASSETS = "static/extensions/panel/"


def _patched(fn) -> bool:
    return getattr(fn, "_fmri_explorer", False)


def _mark(fn):
    fn._fmri_explorer = True
    return fn


# --------------------------------------------------------------------------- Tornado

def after_clear(fn: Callable) -> None:
    """``fn(handler)`` runs each time Tornado resets a response's headers."""
    import tornado.web

    clear = tornado.web.RequestHandler.clear
    if _patched(clear):
        return

    @_mark
    def clear_then(self):
        clear(self)
        fn(self)

    tornado.web.RequestHandler.clear = clear_then


def cookie_flags(fn: Callable) -> None:
    """``fn(handler, kwargs)`` may add flags to the keyword arguments of every cookie set."""
    import tornado.web

    set_cookie = tornado.web.RequestHandler.set_cookie
    if _patched(set_cookie):
        return

    @_mark
    def set_cookie_flagged(self, name, value, *args, **kwargs):
        fn(self, kwargs)
        return set_cookie(self, name, value, *args, **kwargs)

    tornado.web.RequestHandler.set_cookie = set_cookie_flagged


# --------------------------------------------------------------------------- Panel

def login_url(fn: Callable) -> None:
    """Panel's handlers send a visitor to log in at ``fn(handler)``."""
    from panel.io import server

    mixin = server.LoginUrlMixin
    if _patched(mixin.get_login_url):
        return

    @_mark
    def get_login_url(self):
        return fn(self)

    mixin.get_login_url = get_login_url


def redirect_page(target: Callable) -> None:
    """A request for the app's page goes to ``target(handler)`` instead when that is not
    None (a redirect), else it is served as usual."""
    from panel.io import server

    doc = server.DocHandler
    if _patched(doc.get):
        return
    get = doc.get

    @_mark
    async def get_or_redirect(self, *args, **kwargs):
        url = target(self)
        if url is not None:
            return self.redirect(url)
        return await get(self, *args, **kwargs)

    doc.get = get_or_redirect


def local_login_assets() -> None:
    """The login and logout pages' logo and icon from this server, not Panel's CDN."""
    from panel import auth

    auth.CDN_DIST = LOCAL_LOGIN_ASSETS


def guard_basic_login(refuse: Callable, checked: Callable) -> None:
    """Panel's ``--basic-auth`` login form: ``refuse(handler)`` runs first and, when it
    returns True (it has answered the request), the password is not checked;
    ``checked(handler, ok)`` is told the result of each check."""
    from panel import auth

    handler = auth.BasicLoginHandler
    if _patched(handler.post):
        return
    post, validate = handler.post, handler._validate

    @_mark
    def post_guarded(self):
        if refuse(self):
            return None
        return post(self)  # checks the password with _validate (below)

    def validate_reported(self, username, password):
        ok = validate(self, username, password)
        checked(self, ok)
        return ok

    handler.post = post_guarded
    handler._validate = validate_reported


# --------------------------------------------------------------------------- Bokeh

def before_server_stop(fn: Callable) -> None:
    """``fn()`` runs when a Bokeh server (``panel serve``) is stopped, before it stops."""
    from bokeh.server.server import BaseServer

    stop = BaseServer.stop
    if _patched(stop):
        return

    @_mark
    def stop_after(self, *args, **kwargs):
        fn()
        return stop(self, *args, **kwargs)

    BaseServer.stop = stop_after


def lost_connection_closes_quietly() -> None:
    """A websocket that closes after Bokeh's keep-alive found it closed already: no
    traceback. The keep-alive's ping on a closed socket lets the connection go of its
    session (``client_lost``); Tornado's ``on_close`` then asked that connection for its
    session and raised Bokeh's assertion, logged as "Uncaught exception GET /app/ws"
    (once in a hostile-load run, a page closed while the server was busy)."""
    from bokeh.server.views.ws import WSHandler

    on_close = WSHandler.on_close
    if _patched(on_close):
        return

    @_mark
    def on_close_once(self):
        connection = getattr(self, "connection", None)
        if connection is not None and getattr(connection, "_session", None) is None:
            logging.getLogger("bokeh.server.views.ws").info(
                "WebSocket connection closed (its session let go already): code=%s",
                self.close_code)
            self.application.client_lost(connection)   # a set's discard: idempotent
            return
        return on_close(self)

    WSHandler.on_close = on_close_once


def from_gone_client(exc_info) -> bool:
    """``exc_info`` is Bokeh's assertion on a message from a client that had gone
    (``ServerConnection.session`` once the connection let go of its session)."""
    if not exc_info or exc_info[0] is not AssertionError or exc_info[2] is None:
        return False
    tb = exc_info[2]
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return code.co_name == "session" and \
        code.co_filename.replace("\\", "/").endswith("bokeh/server/connection.py")


def add_protocol_log_filter(log_filter: logging.Filter) -> None:
    """Filter the errors Bokeh logs while handling clients' messages."""
    logging.getLogger(PROTOCOL_LOGGER).addFilter(log_filter)


#: the logger under which asyncio reports a task's exception nobody retrieved
ASYNCIO_LOGGER = "asyncio"


def to_closed_socket(exc_info) -> bool:
    """``exc_info`` is Tornado's error for a write to a websocket that had closed
    (``WebSocketClosedError``, or the ``StreamClosedError`` under it): Panel's page
    updates are written as futures, and those of a page closed mid-write may be dropped
    unawaited, which asyncio logs as "Task exception was never retrieved"."""
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    return bool(exc_info) and exc_info[1] is not None and \
        isinstance(exc_info[1], (WebSocketClosedError, StreamClosedError))


def add_asyncio_log_filter(log_filter: logging.Filter) -> None:
    """Filter the errors asyncio logs (tasks whose exception nobody retrieved)."""
    logging.getLogger(ASYNCIO_LOGGER).addFilter(log_filter)


# --------------------------------------------------------------------------- sessions

def connection_count(doc) -> int | None:
    """Open websocket connections of ``doc``'s server session (None if unknown)."""
    try:
        session = doc.session_context._session
        return int(session.connection_count) if session is not None else None
    except Exception:  # noqa: BLE001 - another Bokeh version: rely on session destruction
        return None


def execute_in(doc, fn: Callable) -> None:
    """Schedule ``fn`` on ``doc``'s session (its event loop, with ``doc`` as Panel's
    current document), from any thread."""
    import panel as pn
    from panel.io.state import set_curdoc

    with set_curdoc(doc):
        pn.state.execute(fn, schedule=True)


def run_in(doc, fn: Callable) -> None:
    """Run ``fn`` now, with ``doc`` as Panel's current document (on ``doc``'s event loop,
    e.g. a job's result: as in the session's own callbacks, Panel's context-local document
    is then the session's; see also :func:`_detached_pane_stylesheets`)."""
    from panel.io.state import set_curdoc

    with set_curdoc(doc):
        fn()


def session_doc():
    """The document of the session this code is building or serving, or None.

    Panel's context-local current document (set while a session's page is built, and
    while its callbacks run). Unlike ``pn.state.curdoc``, it never falls back to
    Bokeh's process-wide current document, which is *another* session's while that
    session's callback runs in the server's thread: a tab built headless (a notebook,
    a test) at that moment would take that session for its own.
    """
    from panel.io.state import state

    try:
        return state._curdoc.get()
    except (AttributeError, LookupError):   # pragma: no cover - checked by a hook test
        return None


@contextlib.contextmanager
def _safe_patch_curdoc(doc):
    """Bokeh's ``patch_curdoc``, but the override goes even when the callback raises, and
    the callback has its document as Panel's (context-local) current one.

    Bokeh 3.9's version pops its entry after the ``yield`` without a ``finally``: a
    session callback that raises leaves that session's document as the process-wide
    current document, and ``pn.state.curdoc`` in any other thread (a job's, a headless
    tab's) then answers with that session.

    Bokeh keeps its override in one list for the whole process; Panel's current document
    falls back to it. With two servers in one process (the browser tests: each
    ``pn.serve(threaded=True)`` has its own thread and event loop), a callback of one
    server's session (``add_periodic_callback``, a client's message) saw the *other*
    server's session as current, and Panel took that session's cached stylesheets for
    its own models ("Models must be owned by only a single document", the page's later
    messages refused). Panel's context-local document is set here too, and the entry
    removed is this call's own (not the last one, which another thread may have added)."""
    import weakref

    from bokeh.document.locking import UnlockedDocumentProxy
    from bokeh.io import doc as bokeh_doc
    from panel.io.state import set_curdoc

    patched = bokeh_doc._PATCHED_CURDOCS
    entry = weakref.ref(doc)
    patched.append(entry)
    # the document itself, as Panel's curdoc_locked() unwraps an unlocked callback's proxy
    own = doc._doc if isinstance(doc, UnlockedDocumentProxy) else doc
    del doc
    try:
        with set_curdoc(own):
            yield
    finally:
        for i in range(len(patched) - 1, -1, -1):
            if patched[i] is entry:
                del patched[i]
                break


def install_safe_patch_curdoc() -> None:
    """Use :func:`_safe_patch_curdoc` wherever Bokeh and Panel look ``patch_curdoc`` up
    (idempotent)."""
    from bokeh.io import doc as bokeh_doc
    from panel.io import handlers

    bokeh_doc.patch_curdoc = _safe_patch_curdoc
    handlers.patch_curdoc = _safe_patch_curdoc


#: the document of the pane being updated by Panel (``Pane._update_object``)
_UPDATED_IN = contextvars.ContextVar("fmri_explorer_updated_in", default=None)


def _detached_pane_stylesheets() -> None:
    """A pane updated while its model is out of the page resolves its stylesheets against
    its session's document, not Panel's CDN.

    A hidden tab of a ``dynamic`` ``pn.Tabs`` (the app's) takes its models out of the
    document and keeps them to show again. Panel updates such a pane's model in place
    (``Pane._update_object`` -> ``Markdown._update``, ``ModelPane._update``...) with
    ``_get_properties(model.document)``, i.e. with no document: the update's stylesheets
    were patched to ``CDN_DIST``. They are the *session's* shared ``ImportedStyleSheet``
    objects (Panel caches them per current document, ``state._stylesheets``), so every
    model of the page switched its ``loading.css`` and ``markdown.css`` to the CDN (a
    job's result shown in another tab: the Decoding tab's automatic p).

    Here ``_update_object`` runs with the document of the pane's view (the one Panel
    passes it) as Panel's current document and as the one ``_get_properties`` uses when
    given none: the pane's own session's, never another session's that happens to be
    current in the process."""
    from panel.io.state import set_curdoc
    from panel.pane.base import Pane
    from panel.reactive import Reactive

    get, update = Reactive._get_properties, Pane._update_object

    @_mark
    @functools.wraps(get)
    def get_properties(self, doc, *args, **kwargs):
        if doc is None:
            doc = _UPDATED_IN.get()
        return get(self, doc, *args, **kwargs)

    @_mark
    @functools.wraps(update)
    def update_object(self, ref, doc, root, parent, comm):
        if doc is None or comm is not None:   # a notebook's comm: Panel's own way
            return update(self, ref, doc, root, parent, comm)
        token = _UPDATED_IN.set(doc)
        try:
            with set_curdoc(doc):
                return update(self, ref, doc, root, parent, comm)
        finally:
            _UPDATED_IN.reset(token)

    if not _patched(get):
        Reactive._get_properties = get_properties
    if not _patched(update):
        Pane._update_object = update_object


# every dashboard module goes through the render layer: installed before any session
install_safe_patch_curdoc()
_detached_pane_stylesheets()
