"""The kiosk's HTTP server: the page, its event stream, status, health and metrics.

Threads, like the rest of the gate: stdlib ``ThreadingHTTPServer``, one thread per
connection (an open event stream holds one). Routes:

    GET  /               the kiosk page (assets under /static/, all served from here)
    GET  /events         Server-Sent Events: decisions, passages, state
    GET  /api/state      the state message the stream sends on connect
    GET  /api/status     what `gate status --json` prints
    GET  /healthz        200 when ready and every heartbeat is fresh, else 503 and why
    GET  /metrics        Prometheus text format
    POST /api/login      {"pin"} -> session cookie (only needed beyond loopback)
    POST /api/scan       {"barcode"}: manual entry, decided and acted on like any read
    POST /api/direction  {"direction": "IN"|"OUT"}
    POST /api/annul      {"scan_id"}: a grant whose holder did not pass

Bound beyond loopback, every POST but the login needs a session, and read-only routes do
too unless ``status_open``. Every POST must be JSON and, when the browser says where it
comes from (Origin), come from this very host: a cross-site form can send neither.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson

from scanner.act import Acted
from scanner.decide.model import Direction
from scanner.errors import ConfigError, GateError
from scanner.kiosk.auth import COOKIE, SESSION_SECONDS, Lockout, PinHash, Sessions
from scanner.kiosk.events import Broadcaster
from scanner.kiosk.metrics import CONTENT_TYPE, Metrics
from scanner.kiosk.parts import KioskParts, WebSettings
from scanner.kiosk.state import directions, page_state

log = logging.getLogger("scanner.kiosk")

KEEPALIVE = 10.0        # seconds between comment lines on an idle stream (finds dead peers)
STREAM_POLL = 0.5      # how soon an open stream notices the server stopping
RETRY_MS = 1000         # the EventSource reconnect delay the page is told
MAX_BODY = 4096
STATIC = {"index.html": "text/html; charset=utf-8", "kiosk.css": "text/css; charset=utf-8",
          "kiosk.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml"}
READ_ONLY = ("/events", "/api/state", "/api/status", "/metrics")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return resources.files("scanner.kiosk").joinpath("static", name).read_bytes()


class HttpError(GateError):
    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class KioskServer:
    """A named worker: ``start``, idempotent ``stop``, ``heartbeat``; ``url`` once started."""

    name = "kiosk"

    def __init__(self, web: WebSettings, parts: KioskParts, *,
                 direction: Direction = Direction.IN) -> None:
        self.web = web
        self.parts = parts
        self.login_required = not is_loopback(web.host)
        self.pin = PinHash.load(web.pin_file) if self.login_required else None
        self.lockout = Lockout()
        self.sessions = Sessions()
        self._direction = direction
        self._lock = threading.Lock()
        self._reads: dict[str, tuple[float | None, float | None]] = {}
        self.events = Broadcaster(parts, self._state, on_acted=self._acted)
        self.metrics = Metrics(parts, clients=lambda: self.events.clients)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- what the routes use -------------------------------------------------------------

    @property
    def direction(self) -> Direction:
        return self._direction

    def set_direction(self, direction: Direction) -> None:
        allowed = directions(self.parts.probes.settings())
        if direction.value not in allowed:
            raise HttpError(HTTPStatus.CONFLICT, f"this gate does not scan {direction.value}")
        self._direction = direction
        self.events.refresh()

    def note_read(self, scan_id: str, at: float) -> None:
        """When the read behind ``scan_id`` happened (``time.monotonic`` seconds), for the
        read-to-relay histogram. A lane may tell this after the act stage acted on it (it
        submits first, so the relay never waits): whichever of the two comes second is
        measured."""
        self._pair(scan_id, read_at=at)

    def _acted(self, acted: Acted) -> None:
        self._pair(acted.scan_id,
                   acted_at=acted.acted_ns / 1e9 if acted.acted_ns else time.monotonic())

    def _pair(self, scan_id: str, *, read_at: float | None = None,
              acted_at: float | None = None) -> None:
        with self._lock:
            other = self._reads.pop(scan_id, None)
            if other is None:
                if len(self._reads) > 1024:  # halves that never meet (dropped, not acted)
                    self._reads.clear()
                self._reads[scan_id] = (read_at, acted_at)
                return
        read_at = read_at if read_at is not None else other[0]
        acted_at = acted_at if acted_at is not None else other[1]
        if read_at is not None and acted_at is not None:
            self.metrics.read_to_relay.observe(max(0.0, acted_at - read_at))

    def _state(self, fire_alarm: bool) -> dict[str, Any]:
        return page_state(self.parts, direction=self._direction, fire_alarm=fire_alarm,
                          login_required=self.login_required)

    def scan(self, barcode: str) -> dict[str, Any]:
        read_at = time.monotonic()
        result = self.parts.check(barcode, self._direction)
        self.note_read(result.scan_id, read_at)
        if not self.parts.submit(result):
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE,
                            "decided and journaled, but the gate could not act on it")
        return result.to_json()

    def annul(self, scan_id: str) -> None:
        if self.parts.annuls is None:
            raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "this journal cannot annul a grant")
        if not self.events.annullable(scan_id):
            raise HttpError(HTTPStatus.CONFLICT,
                            "not a recent grant of this gate still waiting for its holder")
        if self.parts.annuls.mark_passed(scan_id, False) is False:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no scan {scan_id} in the journal")
        self.events.annulled(scan_id)

    def login(self, address: str, pin: str) -> str:
        wait = self.lockout.retry_after(address)
        if wait > 0:
            raise HttpError(HTTPStatus.TOO_MANY_REQUESTS,
                            f"too many wrong PINs: try again in {int(wait) + 1} s",
                            {"Retry-After": str(int(wait) + 1)})
        if self.pin is None:
            raise HttpError(HTTPStatus.FORBIDDEN,
                            "no PIN set for this gate: run `gate kiosk set-pin`")
        if not self.pin.matches(pin):
            self.lockout.failed(address)
            raise HttpError(HTTPStatus.UNAUTHORIZED, "wrong PIN")
        self.lockout.succeeded(address)
        return self.sessions.open()

    # -- the worker ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("kiosk server not started")
        host, port = self._httpd.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"

    def start(self) -> KioskServer:
        if self._httpd is not None:
            return self
        try:
            self._httpd = _Server((self.web.host, self.web.port), self)
        except OSError as exc:
            raise ConfigError(f"web: cannot listen on {self.web.host}:{self.web.port}: "
                              f"{exc.strerror or exc}") from exc
        self.events.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.2,),
                                        name="kiosk-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        self.events.stop()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def heartbeat(self) -> float:
        return self.events.heartbeat

    @property
    def serving(self) -> bool:
        """Started, and both its threads (HTTP, event broadcaster) still running."""
        thread = self._thread
        return (self._httpd is not None and thread is not None and thread.is_alive()
                and self.events.running)

    def __enter__(self) -> KioskServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], kiosk: KioskServer) -> None:
        self.kiosk = kiosk
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "gate-kiosk"
    sys_version = ""

    @property
    def kiosk(self) -> KioskServer:
        return self.server.kiosk

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- dispatch ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, route: Any) -> None:
        try:
            route(urlsplit(self.path).path)
        except HttpError as exc:
            self._json({"error": str(exc)}, exc.status, exc.headers)
        except GateError as exc:  # a store fault: say so, keep serving
            log.error("kiosk %s %s: %s", self.command, self.path, exc)
            self._json({"error": str(exc)}, HTTPStatus.SERVICE_UNAVAILABLE)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _get(self, path: str) -> None:
        kiosk = self.kiosk
        if path == "/" or path.startswith("/static/"):
            name = "index.html" if path == "/" else path.removeprefix("/static/")
            if name not in STATIC:
                raise HttpError(HTTPStatus.NOT_FOUND, "no such file")
            self._send(HTTPStatus.OK, _static(name), STATIC[name],
                       {"Cache-Control": "no-cache"})
            return
        if path == "/healthz":
            ok, reasons = kiosk.parts.health()
            self._json({"ok": ok, "reasons": reasons},
                       HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)
            return
        if path in READ_ONLY and not kiosk.web.status_open:
            self._require_session()
        if path == "/events":
            self._stream()
        elif path == "/api/state":
            self._json(kiosk.events.state())
        elif path == "/api/status":
            self._json(kiosk.parts.status())
        elif path == "/metrics":
            self._send(HTTPStatus.OK, kiosk.metrics.render(), CONTENT_TYPE)
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such page")

    def _post(self, path: str) -> None:
        kiosk = self.kiosk
        body = self._body()
        if path == "/api/login":
            if not kiosk.login_required:
                self._json({"ok": True})
                return
            token = kiosk.login(self.client_address[0], _text(body, "pin"))
            cookie = (f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; "
                      f"Max-Age={int(SESSION_SECONDS)}")
            self._json({"ok": True}, headers={"Set-Cookie": cookie})
            return
        self._require_session()
        if path == "/api/scan":
            self._json(kiosk.scan(_text(body, "barcode")))
        elif path == "/api/direction":
            try:
                direction = Direction(_text(body, "direction").upper())
            except ValueError:
                raise HttpError(HTTPStatus.BAD_REQUEST, "direction: IN or OUT") from None
            kiosk.set_direction(direction)
            self._json({"direction": direction.value})
        elif path == "/api/annul":
            kiosk.annul(_text(body, "scan_id"))
            self._json({"ok": True})
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such action")

    # -- guards --------------------------------------------------------------------------

    def _require_session(self) -> None:
        if not self.kiosk.login_required:
            return
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            cookie = SimpleCookie()
        morsel = cookie.get(COOKIE)
        if not self.kiosk.sessions.valid(morsel.value if morsel else None):
            raise HttpError(HTTPStatus.UNAUTHORIZED, "log in with this gate's PIN first")

    def _body(self) -> dict[str, Any]:
        if self.headers.get_content_type() != "application/json":
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            raise HttpError(HTTPStatus.FORBIDDEN, "cross-origin request refused")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if not 0 < length <= MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                            if length > MAX_BODY else HTTPStatus.BAD_REQUEST,
                            f"a body of 1 to {MAX_BODY} bytes")
        try:
            body = orjson.loads(self.rfile.read(length))
        except orjson.JSONDecodeError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "not valid JSON") from None
        if not isinstance(body, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        return body

    # -- responses -----------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, doc: Any, status: HTTPStatus = HTTPStatus.OK,
              headers: dict[str, str] | None = None) -> None:
        self._send(status, orjson.dumps(doc), "application/json", headers)

    def _stream(self) -> None:
        kiosk = self.kiosk
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.close_connection = True
        client = kiosk.events.attach()
        try:
            self.wfile.write(f"retry: {RETRY_MS}\n\n".encode())
            idle = 0.0
            while not self.server.stopping.is_set() and not client.cut.is_set():
                try:
                    frame = client.messages.get(timeout=STREAM_POLL)
                    idle = 0.0
                except queue.Empty:
                    idle += STREAM_POLL
                    if idle < KEEPALIVE:
                        continue
                    frame, idle = b": keepalive\n\n", 0.0
                self.wfile.write(frame)
                self.wfile.flush()
        finally:
            kiosk.events.detach(client)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{key}: expected text")
    return value
