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
from scanner.kiosk.auth import (
    SUPERVISOR_PIN_KEY,
    Lockout,
    Login,
    PinHash,
    Sessions,
)
from scanner.kiosk.events import Broadcaster
from scanner.kiosk.httpd import HttpThread, listen
from scanner.kiosk.metrics import Metrics
from scanner.kiosk.parts import KioskParts, WebSettings
from scanner.kiosk.routes import HttpError, build_app, sign_in
from scanner.kiosk.state import directions, page_state
from scanner.netrules import is_loopback
from scanner.sync.progress import Eta

# /api/status answers from a document at most this old: a monitoring system polling 20
# times a second then costs the gate one status read a second, not twenty (each reads the
# whole store and journal, on the decisions' interpreter).
STATUS_MAX_AGE = 1.0



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
        self._eta = Eta()
        self._status: tuple[float, dict[str, Any]] | None = None
        self._status_lock = threading.Lock()
        self.events = Broadcaster(parts, self._state, on_acted=self._acted)
        self.metrics = Metrics(parts, clients=lambda: self.events.clients,
                               status=self.status)
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

    def _acted(self, acted: Acted) -> None:
        """Read-to-relay, from the read's time the scan carried through the act stage."""
        if acted.read_ns is not None:
            acted_ns = acted.acted_ns or time.monotonic_ns()
            self.metrics.read_to_relay.observe(max(0, acted_ns - acted.read_ns) / 1e9)

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
        read_ns = time.monotonic_ns()
        result = self.parts.check(barcode, self._direction)
        if not self.parts.submit(result, read_ns):
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
        return sign_in(self._login, address, pin)

    # -- the worker ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("kiosk server not started")
        return self._http.url

    def start(self) -> KioskServer:
        if self._http is not None:
            return self
        sock = listen(self.web.host, self.web.port)
        self.port = sock.getsockname()[1]
        self.stopping = False
        self._http = HttpThread(build_app(self), sock, local=self.lockout.local)
        self.events.start()
        self._http.start()
        return self

    def stop(self) -> None:
        http, self._http = self._http, None
        if http is None:
            return
        self.stopping = True
        self.events.stop()  # ends every open stream now, so the HTTP server need not wait
        http.stop()

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
