"""The kiosk's one asyncio boundary: uvicorn (h11) serving an ASGI app on its own event
loop in its own thread. Everything else in the gate is threads; the app reaches them with
``run_in_threadpool``.

uvicorn bounds what a client may hold: ``limit_concurrency`` (503 beyond it), headers of at
most MAX_HEADER_BYTES, idle keep-alive connections closed after KEEP_ALIVE. It has no
deadline for a request still arriving, so a client trickling its headers (slowloris) or its
body would hold a connection forever: ``_Deadline`` adds one, and caps connections per
address and in all. Clients from elsewhere never take the last LOCAL_RESERVE of the
``limit_concurrency`` places: however many streams the network holds open, the gate's own
screen (loopback) still gets its page, its stream and its health check. No client
behaviour writes a traceback: uvicorn's and asyncio's records are folded into one line
each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import h11
from uvicorn import Config, Server
from uvicorn.protocols.http.h11_impl import H11Protocol

from scanner.errors import ConfigError
from scanner.netrules import is_loopback

log = logging.getLogger("scanner.kiosk")

REQUEST_TIMEOUT = 10.0   # seconds for a request's headers and body to arrive, once begun
KEEP_ALIVE = 5           # seconds an idle keep-alive connection is kept
MAX_CONNECTIONS = 160    # requests and streams at once (a venue's 100 open pages); 503 beyond
MAX_OPEN = 256           # connections held at all (a slow client counts before its request)
MAX_PER_ADDRESS = 32     # of them from one address: a browser opens at most a handful
LOCAL_RESERVE = 8        # of MAX_CONNECTIONS only this machine may take: its screen's few
MAX_HEADER_BYTES = 8192  # the request line and headers
GRACE = 2                # seconds open streams get to end when the server stops
BACKLOG = 64
QUIET = 10.0             # seconds in which uvicorn's same warning is logged once


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; a ConfigError naming them when it
    cannot be had (the port taken, no such address)."""
    name = host.strip("[]") or None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise _cannot(host, port, exc) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise _cannot(host, port, exc) from exc
    return sock


def _cannot(host: str, port: int, exc: OSError) -> ConfigError:
    return ConfigError(f"web: cannot listen on {host}:{port}: {exc.strerror or exc}")


class _Deadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request to arrive whole, and caps on
    connections held."""

    timeout = REQUEST_TIMEOUT
    _address = ""
    _local = True
    local = staticmethod(is_loopback)  # which addresses are this machine (``HttpThread``'s)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._address = address = self.client[0] if self.client else ""
        self._local = self.local(address)
        same = sum(1 for c in self.connections if getattr(c, "_address", None) == address)
        others = 0 if self._local else sum(1 for c in self.connections
                                           if not getattr(c, "_local", True))
        if len(self.connections) > MAX_OPEN or same > MAX_PER_ADDRESS \
                or others > MAX_CONNECTIONS - LOCAL_RESERVE:
            log.debug("kiosk: connection from %s refused: too many open", address)
            self.connections.discard(self)  # counts for no limit while it closes
            transport.abort()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        # The request is in (headers and body): the app has it, no deadline applies to the
        # answer (an event stream lasts as long as the page).
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _unsupported_upgrade_warning(self) -> None:
        # A client asking to switch protocols (WebSocket, h2c) is answered over HTTP/1.1 as
        # if it had not asked: no fault of the gate's, nor a package for the operator to add.
        log.debug("kiosk: %s asked to upgrade its connection: answered over HTTP/1.1",
                  self._address)

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) \
                and not self.transport.is_closing():
            log.debug("kiosk: %s dropped: no whole request within %.0f s",
                      self._address, self.timeout)
            self.transport.abort()


class _OneLine(logging.Filter):
    """A record from uvicorn logged again as one line of the kiosk's logger, its traceback
    folded into it, the same message at most once per QUIET seconds (a flood must not flood
    the log too); uvicorn's own lifecycle lines (started, finished) dropped: the kiosk logs
    its own."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        key = str(record.msg)
        if record.created - self._last.get(key, -QUIET) < QUIET:
            return False
        if len(self._last) > 64:
            self._last.clear()
        self._last[key] = record.created
        message = record.getMessage().strip()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message}: {type(exc).__name__}: {exc}"
        log.log(record.levelno, "kiosk http: %s", message)
        return False  # said once, in the project's logger


_FILTER = _OneLine()
for _name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
    logging.getLogger(_name).addFilter(_FILTER)


def _loop_fault(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    log.warning("kiosk http: %s%s", context.get("message", "fault"),
                f": {type(exc).__name__}: {exc}" if exc is not None else "")


class HttpThread:
    """uvicorn serving ``app`` on ``sock`` in thread ``name``: ``start``, idempotent
    ``stop``, ``alive``. ``local`` says which client addresses are this machine (the
    LOCAL_RESERVE is theirs)."""

    def __init__(self, app: Any, sock: socket.socket, *, name: str = "kiosk-http",
                 local: Callable[[str], bool] = is_loopback) -> None:
        self.sock = sock
        self.address: tuple[str, int] = sock.getsockname()[:2]
        protocol = type("Deadline", (_Deadline,), {"local": staticmethod(local)})
        # ws="none": the page speaks HTTP and server-sent events only, so an upgrade
        # request is answered over HTTP whether or not a WebSocket library is installed.
        config = Config(app, http=protocol, ws="none", loop="asyncio", lifespan="off",
                        log_config=None,
                        access_log=False, proxy_headers=False, server_header=False,
                        timeout_keep_alive=KEEP_ALIVE, limit_concurrency=MAX_CONNECTIONS,
                        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                        timeout_graceful_shutdown=GRACE, backlog=BACKLOG)
        self._server = Server(config)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = GRACE + 3.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sock.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def url(self) -> str:
        """Where this machine reaches the server: its address, or loopback for a wildcard."""
        host, port = self.address
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_loop_fault)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self.sock]))
        except (Exception, SystemExit) as exc:  # never silently: the worker restarts us
            log.error("kiosk http stopped: %s: %s", type(exc).__name__, exc)
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
