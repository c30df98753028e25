"""The control room's routes, on the kiosk's web server and behind the kiosk's guard.

    GET  /               the page (assets under /static/)
    GET  /events         Server-Sent Events: the venue, again whenever it changes
    GET  /api/venue      the venue now (what the stream sends)
    GET  /api/zones      every zone's count: what `gate zones --json` prints
    GET  /metrics        per-zone occupancy in Prometheus' text format
    GET  /api/i18n       the page's words in its language ([web] language or Accept-Language)
    GET  /healthz        200 while the observer hears the mesh
    POST /api/login      {"pin"} -> session cookie (the PIN beyond loopback; the
                         supervisor's for the command buttons, everywhere)
    GET  /api/commands   POST /api/commands: venue commands (``scanner.control.commands``)

The kiosk's rules, by the kiosk's own code (``scanner.kiosk.routes``): the Host header must
name this server, read-only routes need a session beyond loopback unless ``status_open``,
the login is the kiosk's (JSON of this origin, the lockout; a cookie of its own), and no
request ends in a traceback. Its words are a catalogue per language in ``locale/`` (domain
``control``), with the kiosk's labels of the decisions' reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from importlib import resources
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from scanner.control.commands import Commands, command_routes
from scanner.control.view import VenueView
from scanner.errors import GateError
from scanner.kiosk.auth import Login
from scanner.kiosk.i18n import Catalogue, catalogue
from scanner.kiosk.metrics import CONTENT_TYPE
from scanner.kiosk.routes import (
    Guard,
    Hosts,
    HttpError,
    check_session,
    failed,
    json_body,
    login_route,
    page_language,
    page_route,
    sign_in,
)
from scanner.kiosk.routes import json_response as _json
from scanner.zones.export import ZoneCollector

CONTROL = Catalogue("scanner.control", "control")

STATIC = {"control.html": "text/html; charset=utf-8", "control.css": "text/css; charset=utf-8",
          "control.js": "text/javascript; charset=utf-8",
          "words.js": "text/javascript; charset=utf-8"}  # the kiosk's, shared
FRAME_GAP = 0.1        # at most ten frames a second, however busy the venue
KEEPALIVE = 10.0
STREAM_POLL = 0.5      # how soon an open stream notices the server stopping


def words(lang: str) -> dict[str, Any]:
    """The page's words: its own catalogue and the kiosk's labels of reasons (the log)
    and of a supervisor's reasons for an override."""
    labels = {key: text for key, text in catalogue(lang).items()
              if (key.startswith("reason.") and key.endswith(".label"))
              or key.startswith("override.why.")}
    return {"lang": lang, "messages": {**labels, **catalogue(lang, CONTROL)}}


@dataclass
class Room:
    """What the routes serve: the view, the clock, the login, and whether the mesh is
    heard (``healthy``)."""

    view: VenueView
    clock: Callable[[], datetime]
    host: str
    port: int
    login: Login
    login_required: bool         # beyond loopback, as the kiosk's
    status_open: bool
    healthy: Callable[[], tuple[bool, list[str]]]
    stopping: Callable[[], bool] = lambda: False
    language: str | None = None  # [web] language: every page in it, whatever the browser
    commands: Commands | None = None  # None: no supervisor key, no command buttons


class Reading:
    """One of the view's readings (``snapshot``, ``zones``) made at most once per view
    version and ``FRESH`` seconds, whoever asks: a flood of requests or a scraper costs the
    observer one reading a second while nothing changes and one per change otherwise, not
    one per request. Askers meanwhile wait for the reading under way."""

    FRESH = 1.0

    def __init__(self, room: Room, read: Callable[[datetime], Any]) -> None:
        self._room = room
        self._read = read
        self._lock = threading.Lock()
        self._held: tuple[int, float, Any] | None = None   # version, made, reading

    def __call__(self) -> Any:
        return self.read()[2]

    def read(self) -> tuple[int, float, Any]:
        """The reading with the view version it was made at and when (monotonic)."""
        with self._lock:
            version, now = self._room.view.version, time.monotonic()
            held = self._held
            if held is None or held[0] != version or now - held[1] >= self.FRESH:
                # A change while it is made: a newer version, read again by the next ask.
                held = self._held = (version, now, self._read(self._room.clock()))
            return held


def build_app(room: Room) -> ASGIApp:
    files = {name: resources.files("scanner.kiosk" if name == "words.js" else "scanner.control")
             .joinpath("static", name).read_bytes() for name in STATIC}
    snapshot, zone_counts = Reading(room, room.view.snapshot), Reading(room, room.view.zones)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ZoneCollector(zone_counts))

    def read_only(request: Request) -> None:
        if room.login_required and not room.status_open:
            check_session(request, room.login.sessions, "log in with the control room's PIN")

    def attempt(address: str, pin: str) -> str:
        return sign_in(room.login, address, pin)

    page = page_route(files, STATIC, "control.html",
                      lambda request: page_language(request, room.language))

    async def i18n(request: Request) -> Response:
        return _json(words(page_language(request, room.language)),
                     headers={"Vary": "Accept-Language"})

    async def venue(request: Request) -> Response:
        read_only(request)
        return _json(await run_in_threadpool(snapshot))

    async def zones(request: Request) -> Response:
        read_only(request)
        return _json(await run_in_threadpool(zone_counts))

    async def metrics(request: Request) -> Response:
        read_only(request)
        return Response(await run_in_threadpool(generate_latest, registry),
                        media_type=CONTENT_TYPE)

    async def healthz(_request: Request) -> Response:
        ok, reasons = await run_in_threadpool(room.healthy)
        return _json({"ok": ok, "reasons": reasons},
                     HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)

    frames = Frames(room, snapshot)

    async def events(request: Request) -> Response:
        read_only(request)
        return StreamingResponse(_frames(room, frames), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return _json({"error": str(exc)}, exc.status, exc.headers)

    async def fault(_request: Request, exc: Exception) -> Response:
        return _json({"error": str(exc)}, HTTPStatus.SERVICE_UNAVAILABLE)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json({"error": {404: "no such page", 405: "not allowed here"}.get(
            exc.status_code, str(exc.detail))}, exc.status_code)

    app = Starlette(routes=[
        Route("/", page), Route("/static/{name}", page), Route("/events", events),
        Route("/api/venue", venue), Route("/api/zones", zones), Route("/metrics", metrics),
        Route("/healthz", healthz), Route("/api/i18n", i18n),
        login_route(attempt, room.login.sessions.cookie),
        *command_routes(room.commands, room.login, read_only, json_body, _json, HttpError),
    ], exception_handlers={HttpError: refused, GateError: fault, HTTPException: http_error,
                           Exception: failed})
    return Guard(app, Hosts(room.host, room.port))


class Frames:
    """The venue's frames for every open page. A page waits for a change on the event loop
    (the view calls ``_changed`` from the observer's thread), so a hundred open pages hold
    no worker thread; the frame is made once per version however many pages stream it
    (the snapshot is the costly part, shared with /api/venue), and again for a page that
    connects once the snapshot is ``Reading.FRESH`` seconds old: its clock and "seen ago"
    move on."""

    def __init__(self, room: Room, snapshot: Reading) -> None:
        self._room = room
        self._snapshot = snapshot
        self._frame: tuple[int, float, bytes] = (-1, 0.0, b"")   # version, made, frame
        self._lock: asyncio.Lock | None = None   # made on the server's own event loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: set[asyncio.Event] = set()

    def _changed(self) -> None:  # the observer's thread
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: no page to tell
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for event in self._waiting:
            event.set()

    async def after(self, seen: int, timeout: float) -> int:
        """The version after ``seen``, waiting up to ``timeout`` seconds for one."""
        view = self._room.view
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            view.watch(self._changed)
        event = asyncio.Event()
        self._waiting.add(event)  # before the look: a change after it wakes this wait
        try:
            if view.version == seen:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout)
        finally:
            self._waiting.discard(event)
        return view.version

    async def at(self, version: int) -> bytes:
        """A frame of ``version`` or a newer one."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            held, made, frame = self._frame
            if held < version or time.monotonic() - made >= self._snapshot.FRESH:
                held, made, doc = await run_in_threadpool(self._snapshot.read)
                frame = b"data: " + orjson.dumps(doc) + b"\n\n"
                self._frame = (held, made, frame)
            return frame


async def _frames(room: Room, frames: Frames) -> AsyncIterator[bytes]:
    """The venue on connect, then again after every change (at most every FRAME_GAP)."""
    yield b"retry: 1000\n\n"
    seen = -1
    idle = 0.0
    while not room.stopping():
        version = await frames.after(seen, STREAM_POLL)
        if version == seen:
            idle += STREAM_POLL
            if idle >= KEEPALIVE:
                idle = 0.0
                yield b": keepalive\n\n"
            continue
        idle, seen = 0.0, version
        yield await frames.at(version)
        await asyncio.sleep(FRAME_GAP)
