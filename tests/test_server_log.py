"""The server log under abrupt closes: Bokeh's traceback for a message from a client that
has gone becomes one debug line (dashboard/security.py), every other error stays."""

from __future__ import annotations

import logging
import sys

import pytest
from bokeh.server.connection import ServerConnection

from dashboard import security


def _record(exc_info, name="bokeh.server.protocol_handler"):
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "error handling message",
                             (), exc_info)


def _gone_client_exc_info():
    connection = ServerConnection.__new__(ServerConnection)  # a connection whose session
    connection._session = None                                # has been let go (page closed)
    try:
        connection.session
    except AssertionError:
        return sys.exc_info()
    pytest.fail("Bokeh's ServerConnection.session no longer asserts on a closed connection: "
                "check GoneClientFilter against this Bokeh version")


def test_a_message_from_a_gone_client_is_one_debug_line():
    record = _record(_gone_client_exc_info())
    kept = security.GoneClientFilter().filter(record)
    assert record.levelno == logging.DEBUG and record.exc_info is None
    assert "client that had gone" in record.getMessage()
    assert kept is logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def test_other_errors_keep_their_traceback():
    try:
        assert 1 == 2, "a real bug"
    except AssertionError:
        record = _record(sys.exc_info())
    assert security.GoneClientFilter().filter(record) is True
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_installed_on_bokehs_protocol_handler_logger():
    security.install(shutdown=False)
    assert security.GONE_CLIENT_FILTER in \
        logging.getLogger("bokeh.server.protocol_handler").filters


def _ws_handler(session):
    """A Bokeh websocket handler whose connection has ``session`` (None: let go)."""
    from bokeh.server.views.ws import WSHandler

    lost = []
    handler = WSHandler.__new__(WSHandler)
    connection = ServerConnection.__new__(ServerConnection)
    connection._session = session
    handler.connection = connection
    handler.application = type("App", (), {"client_lost": lambda self, c: lost.append(c)})()
    handler.close_code = None
    handler.close_reason = None
    return handler, lost


def test_a_socket_closed_after_the_keep_alive_let_it_go_logs_no_traceback():
    """Bokeh's keep-alive pings a socket that has closed: the connection lets go of its
    session; Tornado's close then asked it for the session (AssertionError, logged as an
    uncaught exception of the websocket's GET). Installed, the close is quiet; a
    connection with its session still goes through Bokeh's own close."""
    from bokeh.server.views.ws import WSHandler

    from dashboard.render import server

    handler, lost = _ws_handler(None)
    if not getattr(WSHandler.on_close, "_fmri_explorer", False):
        with pytest.raises(AssertionError):   # Bokeh's behaviour the hook is for
            WSHandler.on_close(handler)
    server.lost_connection_closes_quietly()
    security.install(shutdown=False)
    handler, lost = _ws_handler(None)
    WSHandler.on_close(handler)
    assert lost == [handler.connection]
    notified = []
    session = type("Session", (), {"notify_connection_lost": lambda self: notified.append(1),
                                   "unsubscribe": lambda self, c: None})()
    handler, lost = _ws_handler(session)
    WSHandler.on_close(handler)
    assert notified == [1] and lost == [handler.connection]


def _closed_socket_exc_info():
    """Tornado's error for a write to a websocket that had closed, as raised."""
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    try:
        try:
            raise StreamClosedError()
        except StreamClosedError:
            raise WebSocketClosedError() from None
    except WebSocketClosedError:
        return sys.exc_info()


def test_an_update_for_a_closed_page_is_one_debug_line():
    """asyncio's "Task exception was never retrieved" for Tornado's WebSocketClosedError
    (Panel's unawaited write to a page that had closed) is one debug line."""
    record = _record(_closed_socket_exc_info(), name="asyncio")
    record.msg = "Task exception was never retrieved\nfuture: <Task finished ...>"
    kept = security.ClosedSocketWriteFilter().filter(record)
    assert record.levelno == logging.DEBUG and record.exc_info is None
    assert "page that had closed" in record.getMessage()
    assert kept is logging.getLogger("asyncio").isEnabledFor(logging.DEBUG)


def test_other_task_errors_keep_their_traceback():
    try:
        raise ValueError("a real bug in a task")
    except ValueError:
        record = _record(sys.exc_info(), name="asyncio")
    assert security.ClosedSocketWriteFilter().filter(record) is True
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_an_unretrieved_closed_socket_error_leaves_no_traceback_in_the_log(caplog):
    """End to end: a task that failed with WebSocketClosedError and was dropped
    unawaited, as asyncio reports it, leaves no ERROR record once installed."""
    import asyncio
    import gc

    from tornado.websocket import WebSocketClosedError

    security.install(shutdown=False)
    assert security.CLOSED_SOCKET_FILTER in logging.getLogger("asyncio").filters

    async def write():
        raise WebSocketClosedError()

    async def drop_one():
        asyncio.ensure_future(write())   # never awaited, as Panel's dropped write futures
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        asyncio.run(drop_one())
        gc.collect()   # the task's exception is reported when the task is collected
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any("page that had closed" in r.getMessage() for r in caplog.records)
