"""What a served process installs to be safe to host (:func:`install`, once per process).

``fmri-explorer serve`` installs it from its ``--setup`` module
(``dashboard/warmup.py``) before the first request, in every server process
(with ``--num-procs N`` too); a plain ``panel serve dashboard/app.py`` installs
it when its first session opens, so that its first page and any login before it
go without it: give it ``--setup dashboard/warmup.py``.

* **Headers.** Every HTTP response carries :data:`HEADERS` and a
  Content-Security-Policy (:func:`content_security_policy`): scripts, styles,
  images, fonts and connections from this server only (websocket to this host),
  no plugins (``object-src 'none'``), no ``<base>`` elsewhere, forms post here,
  the page is never framed by another site, and inline event handlers
  (``onerror=`` in injected markup) never run (``script-src-attr 'none'``).
  Bokeh's page needs inline ``<script>`` blocks (its document's JSON and the
  bootstrap), Panel's ReactiveHTML compiles its scripts with ``new Function``
  ('unsafe-eval', checked in Chromium) and its ES module shims load ``blob:``
  modules, so ``script-src`` allows these: the policy stops injected
  *attributes* and outside origins, the escaping in the app stops injected
  markup (``tests/browser/test_csp.py``).
* **Logins** (``panel serve --basic-auth``). A client (IP address; behind a
  proxy give ``--use-xheaders``) that failed :attr:`LoginThrottle.free` logins
  within :attr:`LoginThrottle.window` seconds is refused (HTTP 429, with
  ``Retry-After``) for a time that doubles with each further failure, up to
  :attr:`LoginThrottle.cap`; the table of clients is bounded. ``/app/`` is
  sent to ``/app`` (Panel served it with its links one folder too deep, and
  sent it to the login page as ``/app/login``, a 404); login URLs are relative
  to the server's root whatever the request's folder.
* **Cookies** are ``SameSite=Lax``, and ``Secure`` when the request came over
  TLS (``--ssl-certfile``, or a proxy's ``X-Forwarded-Proto: https`` with
  ``--use-xheaders``) or when ``$FMRI_EXPLORER_HTTPS=1`` says the server is
  behind a TLS proxy.
* **Shutdown.** When the server stops (SIGTERM, Ctrl-C), the sessions'
  background work is cancelled (``dashboard.jobs.cancel_all``, waiting at most
  :data:`CANCEL_WAIT` s), the exit handlers run (Dask engines, upload
  folders), the interpreter's slow teardown of the heap is skipped, and the
  process exits within :data:`EXIT_GRACE` seconds whatever still runs; a
  process forked by ``--num-procs`` stops when its parent dies.

The hooks are on Tornado's, Panel's and Bokeh's classes (their documented
hook points do not reach every response), in :mod:`dashboard.render.server`;
``tests/test_render_hooks.py``, ``tests/test_security_headers.py`` and
``tests/test_login.py`` fail if an upgrade of either moves them.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import signal
import sys
import threading
import time

from dashboard.render import server as hooks

log = logging.getLogger("fmri_explorer.security")

#: set to 1 when the server is reached over TLS through a proxy: cookies get ``Secure``
HTTPS_ENV = "FMRI_EXPLORER_HTTPS"
#: seconds a stopping process waits for its threads and exit handlers before it exits anyway
EXIT_GRACE = 3.0
#: of which, seconds it waits for cancelled background jobs to stop
CANCEL_WAIT = 2.0

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def content_security_policy(host: str | None = None) -> str:
    """The Content-Security-Policy of a response to a request for ``host`` (its Host header).

    ``connect-src 'self'`` covers the websocket in CSP level 3 browsers; the
    host's own ``ws://``/``wss://`` origins are named too, for older ones.
    """
    connect = ["'self'", "blob:"]  # blob: Panel's ES module shims fetch the modules it made
    if host and _HOST.match(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    return "; ".join([
        "default-src 'self'",
        # Bokeh's page: inline <script> blocks (document JSON, bootstrap); Panel's
        # ReactiveHTML: `new Function`; its ES module shims: blob: modules
        "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
        "script-src-attr 'none'",  # no onerror=/onclick= attributes, ever
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src " + " ".join(connect),
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


# --------------------------------------------------------------------------- headers

def _set_security_headers(handler) -> None:
    for name, value in HEADERS.items():
        handler.set_header(name, value)
    handler.set_header("Content-Security-Policy",
                       content_security_policy(getattr(handler.request, "host", None)))


def _install_headers() -> None:
    # Tornado resets the headers in a handler's __init__ and before an error page
    hooks.after_clear(_set_security_headers)


# --------------------------------------------------------------------------- cookies

def https_behind_proxy() -> bool:
    return os.environ.get(HTTPS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _cookie_flags(handler, kwargs: dict) -> None:
    """``SameSite=Lax`` on every cookie; ``Secure`` when the request came over TLS."""
    if not any(k.lower() == "samesite" for k in kwargs):
        kwargs["samesite"] = "Lax"
    if not any(k.lower() == "secure" for k in kwargs) and (
            handler.request.protocol == "https" or https_behind_proxy()):
        kwargs["secure"] = True


def _install_cookies() -> None:
    hooks.cookie_flags(_cookie_flags)


# --------------------------------------------------------------------------- logins

class LoginThrottle:
    """Failed logins per client: who must wait, and how long.

    A client may fail ``free`` times within ``window`` seconds at full speed;
    from then on each failure locks it out for ``base * 2**k`` seconds (k = 0,
    1, ...; at most ``cap``), during which its attempts are refused unchecked.
    A client is forgotten ``window`` seconds after its lock-out ends (or after
    its last failure), or on a successful login; at most ``max_clients`` are
    kept (the least recently failed go first).
    """

    def __init__(self, free: int = 5, window: float = 60.0, base: float = 2.0,
                 cap: float = 900.0, max_clients: int = 10_000):
        self.free, self.window, self.base, self.cap = int(free), window, base, cap
        self.max_clients = int(max_clients)
        # client -> [failures, time of the last, end of the lock-out]
        self._clients: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, key, now):
        entry = self._clients.get(key)
        if entry is not None and now > max(entry[1], entry[2]) + self.window:
            del self._clients[key]
            entry = None
        return entry

    def retry_after(self, key, now: float | None = None) -> float:
        """Seconds ``key`` must wait before its next attempt is checked (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._entry(key, now)
            return 0.0 if entry is None else max(0.0, entry[2] - now)

    def failure(self, key, now: float | None = None) -> float:
        """Record a failed login; return the seconds the client is now locked out."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._entry(key, now)
            if entry is None:
                entry = [0, now, now]
            entry[0] += 1
            entry[1] = now
            if entry[0] >= self.free:
                entry[2] = now + min(self.cap, self.base * 2 ** min(entry[0] - self.free, 30))
            self._clients[key] = entry
            self._clients.move_to_end(key)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            return max(0.0, entry[2] - now)

    def success(self, key) -> None:
        with self._lock:
            self._clients.pop(key, None)

    def __len__(self) -> int:
        return len(self._clients)


#: this process's failed logins (with --num-procs N, each process counts its own)
THROTTLE = LoginThrottle()


def _relative_login_url(handler) -> str:
    """The login URL relative to the request's folder (Panel prepends '.' to it)."""
    provider = handler.application.auth_provider
    if provider.get_login_url is not None:
        url = provider.get_login_url(handler)
    elif provider.login_url is not None:
        url = provider.login_url
    else:
        raise RuntimeError("login_url or get_login_url() must be supplied when "
                           "authentication hooks are enabled")
    if "://" in url:
        return url
    depth = max(0, _app_path(handler).count("/") - 1)  # "/app" -> 0, "/app/" -> 1
    return ("../" * depth or "./") + url.lstrip("/")


def _app_path(handler) -> str:
    path = handler.request.path
    prefix = getattr(handler.application, "prefix", "") or ""
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def _trailing_slashes(handler) -> int:
    """How many slashes end the app's path (``/app/``: 1; ``/`` and ``/app``: 0)."""
    path = _app_path(handler)
    return len(path) - len(path.rstrip("/")) if path.strip("/") else 0


def _without_trailing_slash(handler) -> str:
    """``/app/?q`` -> ``../app?q``: relative, so right behind a proxy's path prefix too."""
    n = _trailing_slashes(handler)
    name = _app_path(handler).rstrip("/").rsplit("/", 1)[-1]
    query = f"?{handler.request.query}" if handler.request.query else ""
    return "../" * n + name + query


def _redirect_trailing_slash(handler) -> str | None:
    """/app/ would serve the page with its relative links one folder too deep
    (/app/static/...: 404, no styles, no scripts): send the browser to /app."""
    return _without_trailing_slash(handler) if _trailing_slashes(handler) else None


def _refuse_throttled(handler) -> bool:
    """Answer a login from a locked-out client with 429 (True); False: check it."""
    client = handler.request.remote_ip or "?"
    wait = THROTTLE.retry_after(client)
    if wait <= 0:
        return False
    seconds = int(wait) + 1
    log.warning("login from %s refused: too many failed logins (%d s left)", client, seconds)
    handler.set_status(429)
    handler.set_header("Retry-After", str(seconds))
    handler.set_header("Content-Type", "text/plain; charset=UTF-8")
    handler.finish(f"Too many failed logins: try again in {seconds} s.\n")
    return True


def _count_login(handler, ok: bool) -> None:
    client = handler.request.remote_ip or "?"
    if ok:
        THROTTLE.success(client)
    else:
        locked = THROTTLE.failure(client)
        if locked:
            log.warning("login from %s failed; locked out for %.0f s", client, locked)


def _install_login() -> None:
    hooks.login_url(_relative_login_url)
    hooks.redirect_page(_redirect_trailing_slash)
    # the login and logout pages' logo and icon from this server, not Panel's CDN (which
    # the policy blocks, and which a lab meeting without network does not reach)
    hooks.local_login_assets()
    hooks.guard_basic_login(_refuse_throttled, _count_login)


# --------------------------------------------------------------------------- shutdown

def _cancel_background_work() -> None:
    jobs = sys.modules.get("dashboard.jobs")  # not imported: no session started a job
    cancel = getattr(jobs, "cancel_all", None)
    if cancel is None:
        return
    try:
        cancel(timeout=CANCEL_WAIT)  # cancel every job, wait (bounded) for them to stop
    except Exception as exc:  # noqa: BLE001 - the process exits anyway
        log.warning("cancelling background work failed: %s", exc)


#: set when this process's server stops (SIGTERM, Ctrl-C)
STOPPING = threading.Event()


def _exit_after(grace: float) -> None:
    def exit_now():
        time.sleep(grace)
        sys.stderr.write(f"fmri-explorer: still stopping after {grace:g} s: exiting now\n")
        sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=exit_now, name="fmri-explorer-exit", daemon=True).start()


def _server_stopping() -> None:
    """The server stops: cancel the background work; exit within EXIT_GRACE whatever runs."""
    if STOPPING.is_set():
        return
    STOPPING.set()
    _exit_after(EXIT_GRACE)
    _cancel_background_work()


def _before_threads_join() -> None:
    # interpreter exit, before it waits for the non-daemon threads (a job's pool)
    _cancel_background_work()


def _exit_now() -> None:
    """Last exit handler of a stopped server: skip the interpreter's teardown of the
    heap (1.5-2.5 s for the app's models and arrays), after what must still run."""
    if not STOPPING.is_set():
        return
    import logging as _logging
    import weakref

    try:
        weakref.finalize._exitfunc()  # e.g. the sessions' upload folders
    except Exception:  # noqa: BLE001 - exiting anyway
        pass
    _logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def _die_with_parent() -> None:
    """In a process forked by ``--num-procs``: get SIGTERM when the parent dies."""
    try:
        from tornado.process import task_id
    except ImportError:
        return
    if task_id() is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def _install_shutdown() -> None:
    global _SHUTDOWN_INSTALLED
    import atexit

    _SHUTDOWN_INSTALLED = True
    hooks.before_server_stop(_server_stopping)
    register = getattr(threading, "_register_atexit", None)  # runs before threads are joined
    try:
        (register or atexit.register)(_before_threads_join)
    except RuntimeError:  # the interpreter is already shutting down
        pass
    # exit handlers run last registered first: this one after the server's, the engines'
    # (analysis.group) and the jobs' handlers, all registered later
    atexit.register(_exit_now)
    _die_with_parent()


class GoneClientFilter(logging.Filter):
    """Bokeh logs a traceback ("error handling message ... AssertionError") for a message
    that was still on its way when its client closed the page abruptly: the connection
    has let go of its session by the time the message is handled. Nothing is wrong with
    the server; this turns that one case into a one-line debug record (the hostile-load
    run counted 12 of them for 4 tabs closed mid-move)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hooks.from_gone_client(record.exc_info):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg, record.args, record.exc_info = (
                "a message arrived from a client that had gone; ignored", (), None)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


GONE_CLIENT_FILTER = GoneClientFilter()


class ClosedSocketWriteFilter(logging.Filter):
    """A page closed while the server was writing it an update: Panel writes updates as
    futures and drops those of a closed page unawaited, and asyncio then logs Tornado's
    ``WebSocketClosedError`` as "Task exception was never retrieved" with a 14-line
    traceback (several per tab closed mid-update in the hostile-load run). Nothing is
    wrong with the server; this turns that one case into a one-line debug record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hooks.to_closed_socket(record.exc_info):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg, record.args, record.exc_info = (
                "an update for a page that had closed was not sent", (), None)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


CLOSED_SOCKET_FILTER = ClosedSocketWriteFilter()


def _install_log_filter() -> None:
    hooks.add_protocol_log_filter(GONE_CLIENT_FILTER)
    hooks.add_asyncio_log_filter(CLOSED_SOCKET_FILTER)
    hooks.lost_connection_closes_quietly()


_INSTALLED = False
_SHUTDOWN_INSTALLED = False
_INSTALL_LOCK = threading.Lock()


def install(shutdown: bool = True) -> None:
    """Install the headers, the login throttle, the cookie flags and (in a server
    process: ``shutdown``) the shutdown hooks; once per process."""
    global _INSTALLED
    with _INSTALL_LOCK:
        if not _INSTALLED:
            _install_headers()
            _install_cookies()
            _install_login()
            _install_log_filter()
            _INSTALLED = True
        if shutdown and not _SHUTDOWN_INSTALLED:
            _install_shutdown()
