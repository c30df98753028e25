"""The kiosk server: what its routes do to the gate (scan, annul, direction, login), and
the worker that serves them (``scanner.kiosk.routes`` on ``scanner.kiosk.httpd``: uvicorn
in its own thread, the kiosk's one asyncio boundary).
"""

from __future__ import annotations

import threading
import time
from http import HTTPStatus
from typing import Any

from scanner.act import Acted
from scanner.decide.model import Direction
from scanner.errors import ConfigError
from scanner.kiosk.auth import (
    SUPERVISOR_PIN_KEY,
    Busy,
    LockedOut,
    Lockout,
    Login,
    LoginRefused,
    NoPin,
    PinHash,
    Sessions,
)
from scanner.kiosk.events import Broadcaster
from scanner.kiosk.httpd import HttpThread, listen
from scanner.kiosk.metrics import Metrics
from scanner.kiosk.parts import KioskParts, WebSettings
from scanner.kiosk.routes import HttpError, build_app
from scanner.kiosk.state import directions, page_state
from scanner.netrules import is_loopback
from scanner.sync.progress import Eta

# /api/status answers from a document at most this old: a monitoring system polling 20
# times a second then costs the gate one status read a second, not twenty (each reads the
# whole store and journal, on the decisions' interpreter).
STATUS_MAX_AGE = 1.0

REFUSALS = {NoPin: HTTPStatus.FORBIDDEN, Busy: HTTPStatus.SERVICE_UNAVAILABLE,
            LockedOut: HTTPStatus.TOO_MANY_REQUESTS}


class KioskServer:
    """A named worker: ``start``, idempotent ``stop``, ``heartbeat``; ``url`` once started."""

    name = "kiosk"

    def __init__(self, web: WebSettings, parts: KioskParts, *,
                 direction: Direction = Direction.IN, lockout: Lockout | None = None) -> None:
        self.web = web
        self.parts = parts
        # Beyond loopback every change needs a session; everywhere, the steward's own
        # actions (annul, IN/OUT) do: the gate's screen logs in once and keeps its session
        # for a shift (``SESSION_SECONDS``), like a tablet.
        self.login_required = not is_loopback(web.host)
        self.pin = PinHash.load(web.pin_file)
        self.supervisor_pin = PinHash.load(web.supervisor_pin_file, SUPERVISOR_PIN_KEY)
        self.language = web.language
        self.lockout = lockout or Lockout()
        self.sessions = Sessions()
        self._login = Login(self.pin, self.lockout, self.sessions,
                            supervisor=self.supervisor_pin)
        self._direction = direction
        self._lock = threading.Lock()
        self._reads: dict[str, tuple[float | None, float | None]] = {}
        self._eta = Eta()
        self._status: tuple[float, dict[str, Any]] | None = None
        self._status_lock = threading.Lock()
        self.events = Broadcaster(parts, self._state, on_acted=self._acted)
        self.metrics = Metrics(parts, clients=lambda: self.events.clients)
        self._http: HttpThread | None = None
        self.port = web.port
        self.stopping = False

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
                          login_required=self.login_required, eta=self._eta)

    def status(self) -> dict[str, Any]:
        """The status document, read again once it is STATUS_MAX_AGE old; requests that
        come meanwhile wait for the one read under way rather than start their own."""
        with self._status_lock:
            now = time.monotonic()
            if self._status is None or now - self._status[0] >= STATUS_MAX_AGE:
                self._status = (now, self.parts.status())
            return self._status[1]

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
        """A session token for the right PIN; refusals as the HTTP answer they become."""
        try:
            return self._login.attempt(address, pin)
        except LoginRefused as exc:
            status = next((code for kind, code in REFUSALS.items() if isinstance(exc, kind)),
                          HTTPStatus.UNAUTHORIZED)
            retry = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else None
            raise HttpError(status, str(exc), retry) from None

    # -- the worker ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("kiosk server not started")
        host, port = self._http.address
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"

    def start(self) -> KioskServer:
        if self._http is not None:
            return self
        try:
            sock = listen(self.web.host, self.web.port)
        except OSError as exc:
            raise ConfigError(f"web: cannot listen on {self.web.host}:{self.web.port}: "
                              f"{exc.strerror or exc}") from exc
        self.port = sock.getsockname()[1]
        self.stopping = False
        self._http = HttpThread(build_app(self), sock)
        self.events.start()
        self._http.start()
        return self

    def stop(self) -> None:
        http, self._http = self._http, None
        if http is None:
            return
        self.stopping = True  # open streams end within STREAM_POLL
        http.stop()
        self.events.stop()

    @property
    def heartbeat(self) -> float:
        return self.events.heartbeat

    @property
    def serving(self) -> bool:
        """Started, and both its threads (HTTP, event broadcaster) still running."""
        http = self._http
        return http is not None and http.alive and self.events.running

    def __enter__(self) -> KioskServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
