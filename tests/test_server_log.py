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
