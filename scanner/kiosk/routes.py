"""The kiosk's routes as a Starlette app; every call into the gate runs in a worker thread.

    GET  /               the kiosk page (assets under /static/, all served from here)
    GET  /events         Server-Sent Events: decisions, passages, state
    GET  /api/state      the state message the stream sends on connect
    GET  /api/status     what `gate status --json` prints
    GET  /api/recent     this gate's last 20 decisions, newest first
    GET  /api/i18n       the page's words in its language ([web] language or Accept-Language)
    GET  /healthz        200 "ready" when ready and every heartbeat is fresh, else 503 and
                         why: "syncing" while the first sync is all that waits, else
                         "not ready"
    GET  /metrics        Prometheus text format
    POST /api/login      {"pin"} -> session cookie
    POST /api/scan       {"barcode"}: manual entry, decided and acted on like any read
    POST /api/direction  {"direction": "IN"|"OUT"}             (the steward's PIN, always)
    POST /api/annul      {"scan_id"}: a grant whose holder did not pass       (the same)
    ...                  stewards' and supervisors' routes: ``scanner.kiosk.desk_routes``

Every request, on every route, must name this gate in its Host header (``Hosts``): a page
on another site whose name was re-pointed at this gate (DNS rebinding) says its own name
there, and is refused before any route runs. Bound beyond loopback, every POST but the login
needs a session, and read-only routes do too unless ``status_open``. Annul and the IN/OUT
switch need a session on loopback too: whoever touches the gate's own screen is not
necessarily its steward. Every POST must be JSON
and, when the browser says where it comes from (Origin), come from this very host: a
cross-site form can send neither. No request, however malformed, ends in a traceback: a
fault is one log line and a JSON answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import queue
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scanner.decide.model import Direction
from scanner.errors import GateError
from scanner.kiosk.auth import (
    SESSION_SECONDS,
    Busy,
    LockedOut,
    Login,
    LoginRefused,
    NoPin,
    Sessions,
)
from scanner.kiosk.events import END
from scanner.kiosk.i18n import choose, page_words
from scanner.kiosk.metrics import CONTENT_TYPE
from scanner.kiosk.parts import SYNCING
from scanner.netrules import LOOPBACK_NAMES
from scanner.printable import escape, is_number

if TYPE_CHECKING:
    from scanner.kiosk.events import Broadcaster
    from scanner.kiosk.metrics import Metrics
    from scanner.kiosk.parts import KioskParts, WebSettings

log = logging.getLogger("scanner.kiosk")

KEEPALIVE = 10.0        # seconds between comment lines on an idle stream (finds dead peers)
STREAM_POLL = 0.5      # how soon an open stream notices the server stopping
RETRY_MS = 1000         # the EventSource reconnect delay the page is told
MAX_BODY = 4096
STATIC = {"index.html": "text/html; charset=utf-8", "kiosk.css": "text/css; charset=utf-8",
          "kiosk.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml",
          "words.js": "text/javascript; charset=utf-8"}
READ_ONLY = ("/events", "/api/state", "/api/status", "/api/recent", "/metrics")
SAFETY_HEADERS = [(b"x-content-type-options", b"nosniff"),
                  (b"content-security-policy", b"default-src 'self'")]
WILDCARDS = ("0.0.0.0", "::", "")


def health_state(ok: bool, reasons: list[str]) -> str:
    """/healthz's one word: "ready", "syncing" (only the first sync waits: a monitor or the
    demo waits on), or "not ready" (something a person may have to see to)."""
    if ok:
        return "ready"
    if reasons and all(reason.startswith(SYNCING + ":") for reason in reasons):
        return SYNCING
    return "not ready"


class HttpError(GateError):
    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class Hosts:
    """The names a request may give in its Host header: the configured host, the loopback
    names, and, bound to every address, any IP literal and this machine's own name (a
    rebinding attack needs a name the attacker controls, so a literal address is safe).
    Always with this server's port, or none when that is 80."""

    def __init__(self, host: str, port: int) -> None:
        self.port = port
        configured = host.strip().lower()
        self.any_ip = configured.strip("[]") in WILDCARDS
        names = {*LOOPBACK_NAMES, "127.0.0.1", "[::1]", _bracketed(configured)}
        if self.any_ip:
            own = socket.gethostname().lower()
            names |= {own, f"{own}.local"}
        self.names = frozenset(names)

    def allows(self, header: str | None) -> bool:
        if not header or any(c in header for c in "/@?#\\ "):
            return False
        try:
            parts = urlsplit(f"//{header.strip()}")
            name, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            return False
        if (port if port is not None else 80) != self.port or not name:
            return False
        if _bracketed(name) in self.names or (name.endswith(".") and name[:-1] in self.names):
            return True
        return self.any_ip and _is_ip(name)


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """The outermost layer: the Host check on every route, the safety headers on every
    answer, an access line at debug, and any fault that got this far as one log line and
    a 500 (never uvicorn's traceback)."""

    def __init__(self, app: ASGIApp, hosts: Hosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        client = (scope.get("client") or ("?", 0))[0]
        # As logged: decoded from %XX, a path may hold ESC or a newline (a forged log line).
        path = escape(scope.get("path", ""))
        if not self.hosts.allows(host):
            log.debug("kiosk: %s %s refused: Host %r", client, path, host)
            await _reply(send, HTTPStatus.MISDIRECTED_REQUEST,
                         {"error": "this gate does not answer to that Host"})
            return
        started = [False]

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
                message["headers"] = [*message.get("headers", []), *SAFETY_HEADERS]
                log.debug("kiosk: %s %s %s %s", client, scope["method"], path,
                          message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_guarded)
        except (ClientDisconnect, OSError):
            pass
        except Exception as exc:
            log.error("kiosk %s %s: %s: %s", scope["method"], path, type(exc).__name__,
                      escape(str(exc)))
            if not started[0]:
                with contextlib.suppress(Exception):
                    await _reply(send, HTTPStatus.INTERNAL_SERVER_ERROR, FAILED)


async def _reply(send: Send, status: HTTPStatus, doc: Any) -> None:
    body = orjson.dumps(doc)
    await send({"type": "http.response.start", "status": int(status),
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *SAFETY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def _json(doc: Any, status: int = HTTPStatus.OK,
          headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers, "application/json")


json_response = _json  # the control room's routes (scanner.control) answer alike
FAILED = {"error": "the kiosk failed on this request"}


async def failed(_request: Request, _exc: Exception) -> Response:
    """The answer to a fault no other handler took (``Guard`` logs it): JSON, as every
    answer; without it Starlette answers a plain-text 500 before ``Guard`` can."""
    return _json(FAILED, HTTPStatus.INTERNAL_SERVER_ERROR)

# What each refused login becomes (any other refusal: 401).
REFUSALS = {NoPin: HTTPStatus.FORBIDDEN, Busy: HTTPStatus.SERVICE_UNAVAILABLE,
            LockedOut: HTTPStatus.TOO_MANY_REQUESTS}


def sign_in(login: Login, address: str, pin: str) -> str:
    """A session token for the right PIN; a refusal as the HTTP answer it becomes."""
    try:
        return login.attempt(address, pin)
    except LoginRefused as exc:
        status = next((code for kind, code in REFUSALS.items() if isinstance(exc, kind)),
                      HTTPStatus.UNAUTHORIZED)
        retry = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else None
        raise HttpError(status, str(exc), retry) from None


def check_session(request: Request, sessions: Sessions, message: str) -> None:
    """401 with ``message`` unless the request carries a live session's cookie."""
    if not sessions.valid(sessions.token(request.cookies)):
        raise HttpError(HTTPStatus.UNAUTHORIZED, message)


def login_route(attempt: Callable[[str, str], str], cookie: str) -> Route:
    """``POST /api/login`` {"pin"}: ``attempt(address, pin)``'s token as the session
    cookie named ``cookie`` (HttpOnly, SameSite=Strict, for a shift)."""
    async def login(request: Request) -> Response:
        body = await _body(request)
        address = request.client.host if request.client else ""
        token = await run_in_threadpool(attempt, address, _text(body, "pin"))
        header = (f"{cookie}={token}; Path=/; HttpOnly; SameSite=Strict; "
                  f"Max-Age={int(SESSION_SECONDS)}")
        return _json({"ok": True}, headers={"Set-Cookie": header})

    return Route("/api/login", login, methods=["POST"])


def page_language(request: Request, forced: str | None) -> str:
    """The page's language: ``forced`` ([web] language), else the browser's best."""
    return choose(request.headers.get("accept-language"), forced)


def in_language(page: bytes, lang: str) -> bytes:
    """A page's HTML with its language set, before any script runs."""
    return page.replace(b'<html lang="en">', f'<html lang="{lang}">'.encode(), 1)


def page_route(files: dict[str, bytes], types: dict[str, str], index: str,
               language: Callable[[Request], str]) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``/`` (the HTML page ``index``, in ``language(request)``) and of
    ``/static/{name}``: a page's own ``files``, read at start, served as ``types`` says."""
    async def page(request: Request) -> Response:
        name = request.path_params.get("name", index)
        if name not in files:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such file")
        body = files[name]
        if name == index:
            body = in_language(body, language(request))
        return Response(body, media_type=types[name],
                        headers={"Cache-Control": "no-cache", "Vary": "Accept-Language"})

    return page


class Kiosk(Protocol):
    """What the routes serve (``scanner.kiosk.server.KioskServer``): its parts and state,
    and what a request may ask of it."""

    web: WebSettings
    parts: KioskParts
    events: Broadcaster
    metrics: Metrics
    sessions: Sessions
    login_required: bool
    port: int
    stopping: bool
    language: str | None

    @property
    def direction(self) -> Direction: ...
    def scan(self, barcode: str) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def annul(self, scan_id: str) -> None: ...
    def login(self, address: str, pin: str) -> str: ...
    def set_direction(self, direction: Direction) -> None: ...


def build_app(kiosk: Kiosk) -> ASGIApp:
    """The kiosk's ASGI app, Host-checked for ``kiosk.web``'s host and ``port``."""
    files = {name: resources.files("scanner.kiosk").joinpath("static", name).read_bytes()
             for name in STATIC}

    def require_session(request: Request) -> None:
        if kiosk.login_required:
            check_session(request, kiosk.sessions, "log in with this gate's PIN first")

    def require_steward(request: Request) -> None:
        check_session(request, kiosk.sessions, "the steward's PIN first")

    def read_only(request: Request) -> None:
        if not kiosk.web.status_open:
            require_session(request)

    def language(request: Request) -> str:
        return page_language(request, kiosk.language)

    page = page_route(files, STATIC, "index.html", language)

    async def words(request: Request) -> Response:
        return _json(page_words(language(request)), headers={"Vary": "Accept-Language"})

    async def recent(request: Request) -> Response:
        read_only(request)
        return _json(kiosk.events.recent())

    async def healthz(_request: Request) -> Response:
        ok, reasons = await run_in_threadpool(kiosk.parts.health)
        return _json({"ok": ok, "state": health_state(ok, reasons), "reasons": reasons,
                      "version": kiosk.parts.version},
                     HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)

    async def state(request: Request) -> Response:
        read_only(request)
        return _json(await run_in_threadpool(kiosk.events.state))

    async def status(request: Request) -> Response:
        read_only(request)
        return _json(await run_in_threadpool(kiosk.status))

    async def metrics(request: Request) -> Response:
        read_only(request)
        return Response(await run_in_threadpool(kiosk.metrics.render), media_type=CONTENT_TYPE)

    async def events(request: Request) -> Response:
        read_only(request)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def woken() -> None:  # from the broadcaster's thread
            with contextlib.suppress(RuntimeError):  # the loop closed: the stream is over
                loop.call_soon_threadsafe(wake.set)

        # Attached before the answer starts: a decision taken once the page saw the stream
        # open is always on it.
        client = await run_in_threadpool(kiosk.events.attach, woken)
        return StreamingResponse(
            _stream(client.messages, lambda: kiosk.stopping or client.cut.is_set(), wake),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            background=BackgroundTask(kiosk.events.detach, client))

    async def scan(request: Request) -> Response:
        body = await _body(request)
        require_session(request)
        return _json(await run_in_threadpool(kiosk.scan, _text(body, "barcode")))

    async def direction(request: Request) -> Response:
        body = await _body(request)
        require_steward(request)
        try:
            chosen = Direction(_text(body, "direction").upper())
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "direction: IN or OUT") from None
        await run_in_threadpool(kiosk.set_direction, chosen)
        return _json({"direction": chosen.value})

    async def annul(request: Request) -> Response:
        body = await _body(request)
        require_steward(request)
        await run_in_threadpool(kiosk.annul, _text(body, "scan_id"))
        return _json({"ok": True})

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return _json({"error": str(exc)}, exc.status, exc.headers)

    async def store_fault(request: Request, exc: Exception) -> Response:
        log.error("kiosk %s %s: %s", request.method, request.url.path, exc)
        return _json({"error": str(exc)}, HTTPStatus.SERVICE_UNAVAILABLE)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: "no such page", 405: "not allowed here"}.get(exc.status_code,
                                                                      str(exc.detail))
        return _json({"error": message}, exc.status_code, exc.headers)

    from scanner.kiosk.desk_routes import desk_routes

    app = Starlette(routes=[
        Route("/", page), Route("/static/{name}", page), Route("/healthz", healthz),
        Route("/events", events), Route("/api/state", state), Route("/api/status", status),
        Route("/metrics", metrics), Route("/api/recent", recent), Route("/api/i18n", words),
        login_route(kiosk.login, kiosk.sessions.cookie),
        Route("/api/scan", scan, methods=["POST"]),
        Route("/api/direction", direction, methods=["POST"]),
        Route("/api/annul", annul, methods=["POST"]),
        *desk_routes(kiosk, _body, _text, _json, HttpError),
    ], exception_handlers={HttpError: refused, GateError: store_fault,
                           HTTPException: http_error, Exception: failed})
    return Guard(app, Hosts(kiosk.web.host, kiosk.port))


async def _stream(messages: queue.Queue[bytes], over: Callable[[], bool],
                  wake: asyncio.Event) -> AsyncIterator[bytes]:
    """The event stream: the reconnect delay, then each frame the broadcaster queued, with
    a comment line after KEEPALIVE idle seconds."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    idle = 0.0
    while not over():
        try:
            frame = messages.get_nowait()
        except queue.Empty:
            wake.clear()
            if not messages.empty():  # queued between the look and the clear
                continue
            try:
                await asyncio.wait_for(wake.wait(), STREAM_POLL)
            except TimeoutError:
                idle += STREAM_POLL
                if idle >= KEEPALIVE:
                    idle = 0.0
                    yield b": keepalive\n\n"
            continue
        if frame == END:
            return
        idle = 0.0
        yield frame


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object a POST carries: of this origin, at most MAX_BODY bytes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
    origin = request.headers.get("origin")
    if origin is not None and _netloc(origin) != request.headers.get("host", "").lower():
        raise HttpError(HTTPStatus.FORBIDDEN, "cross-origin request refused")
    too_big = HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body of 1 to {MAX_BODY} bytes")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not is_number(declared):
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if int(declared) > MAX_BODY:
            raise too_big
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise too_big
    if not data:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"a body of 1 to {MAX_BODY} bytes")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError(HTTPStatus.BAD_REQUEST, "expected a JSON object")
    return body


# The control room's routes take their bodies by the same rules.
json_body = _body


def _netloc(origin: str) -> str | None:
    """The host and port an Origin header names; None for one no URL parser takes
    ("http://[")."""
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return None


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{key}: expected text")
    return value
