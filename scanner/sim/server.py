"""The simulator's HTTP side: a stdlib ThreadingHTTPServer speaking HTTP/1.1 keep-alive.

Every request is checked in this order: loopback (control routes only), latency, fate
from ``Faults`` (drop / 429 / 5xx), token, then the route. Every answer carries a Date
header from the world's clock, so a client can measure the server's clock offset.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import math
import socket
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from scanner.netrules import is_loopback
from scanner.sim.control import control
from scanner.sim.endpoints import Reply, answer, error_reply
from scanner.sim.injection import DROP, LIMIT, PASS, Faults
from scanner.sim.world import World
from scanner.vivenu.urls import API_PREFIX

log = logging.getLogger("scanner.sim")

DEFAULT_TOKEN = "sim-token"
CONTROL_PREFIX = "/_sim"
# Idle keep-alive connections are closed after this, so stopped clients free their thread.
IDLE_TIMEOUT = 30.0
CHURN_TICK = 0.1
# How often serve_forever looks for a shutdown request: bounds how long stop() takes.
SHUTDOWN_POLL = 0.05


# What _fault_reply returns when the request is to be served normally.
NO_FAULT = Reply(0)


class Seen(NamedTuple):
    """One API request as the server saw it; ``status`` None: dropped unanswered."""

    method: str
    path: str           # as sent: still percent-encoded
    query: str
    status: int | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = IDLE_TIMEOUT
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client
    # waits for a delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        sim = self.server.sim
        split = urlsplit(self.path)
        # Split before unquoting: a barcode may contain an encoded '/'.
        parts = [unquote(p) for p in split.path.split("/") if p]
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            self.close_connection = True
            return self._send(error_reply(400, "Content-Length: not a number"))
        body = self.rfile.read(length) if length > 0 else b""
        path = "/" + "/".join(parts[:1])
        if path == CONTROL_PREFIX:
            if not is_loopback(self.client_address[0]):
                return self._send(error_reply(403, "control routes are for loopback only"))
            if not self._token_ok():
                return self._send(error_reply(401, "missing or wrong token"))
            return self._send(control(sim.world, sim.faults, method, parts[1:], body))
        reply = self._fault_reply(sim.faults)
        if reply is None:
            sim.requests.append(Seen(method, split.path, split.query, None))
            return
        if reply is NO_FAULT:
            prefix = [p for p in API_PREFIX.split("/") if p]
            if parts[:len(prefix)] != prefix:
                reply = error_reply(404, f"no route {split.path}")
            elif not self._token_ok():
                reply = error_reply(401, "missing or wrong token")
            else:
                reply = answer(sim.world, sim.faults, method, parts[len(prefix):], query, body)
        sim.requests.append(Seen(method, split.path, split.query, reply.status))
        self._send(reply)

    def _fault_reply(self, faults: Faults) -> Reply | None:
        """None: drop the connection; NO_FAULT: serve normally; else the fault's answer."""
        settings = faults.settings()
        if settings.latency_ms:
            time.sleep(settings.latency_ms / 1000)
        fate, status = faults.fate()
        if fate == DROP:
            self.close_connection = True
            return None
        if fate == LIMIT:
            wait = str(math.ceil(settings.retry_after))
            return Reply(429, b'{"error":"Too Many Requests"}', headers=(("Retry-After", wait),))
        if fate != PASS:
            # vivenu documents no error bodies; a 503 from a proxy often has none.
            return Reply(status, b"" if status == 503 else b'{"error":"Internal Server Error"}')
        return NO_FAULT

    def _token_ok(self) -> bool:
        given = self.headers.get("token") or ""
        return hmac.compare_digest(given.encode(), self.server.sim.token.encode())

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(self.server.sim.world.now() if timestamp is None else timestamp,
                          usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib default backlog of 5 refuses connections when many clients start at once.
    request_queue_size = 128
    sim: SimServer

    def __init__(self, address: tuple[str, int], sim: SimServer) -> None:
        self.sim = sim
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
            self.sim.connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Cut keep-alive connections too, so a stopped server answers nothing."""
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            # Already closed by the client: nothing to cut.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is normal here (deadline tests, drops).
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class SimServer:
    """A vivenu access-users API on this machine, for tests, benchmarks and the demo."""

    def __init__(self, world: World, faults: Faults | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, token: str = DEFAULT_TOKEN) -> None:
        self.world = world
        self.faults = faults or Faults(seed=world.seed)
        self.token = token
        self._address = (host, port)
        self._httpd: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        # What tests observe: every API request (control routes excluded) and how many
        # TCP connections were accepted (keep-alive reuses one).
        self.requests: list[Seen] = []
        self.connections = 0

    def __repr__(self) -> str:
        return f"SimServer({self.url if self._httpd else 'stopped'})"

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        address, port = self._httpd.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> SimServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server(self._address, self)
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, args=(SHUTDOWN_POLL,),
                             name="sim-http", daemon=True),
            threading.Thread(target=self._churn, name="sim-churn", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Idempotent: stop serving, cut open connections, end the churn ticker."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_open_connections()
        for thread in self._threads:
            thread.join(timeout=5)

    def _churn(self) -> None:
        """Sell and cancel tickets at ``faults.churn`` per second, alternating."""
        owed, done = 0.0, 0
        events = self.world.event_ids
        while not self._stopping.wait(CHURN_TICK):
            owed += self.faults.settings().churn * CHURN_TICK
            while owed >= 1:
                owed -= 1
                if done % 2 == 0:
                    self.world.sell(events[done // 2 % len(events)], 1)
                else:
                    self.world.cancel(1)
                done += 1

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
