"""The control room's web server: the kiosk's uvicorn thread serving ``routes``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from scanner.clock import utc_now
from scanner.control.commands import Commands
from scanner.control.routes import Room, build_app
from scanner.control.view import VenueView
from scanner.kiosk.auth import SUPERVISOR_PIN_KEY, Lockout, Login, PinHash, Sessions
from scanner.kiosk.httpd import HttpThread, listen
from scanner.netrules import is_loopback

# Not the kiosk's: a browser sends a host's cookies to each of its ports, and a gate's
# page beside the control room on one machine would otherwise log the other out.
COOKIE = "control_session"


class ControlServer:
    """The page for ``view`` on ``host``:``port`` (0: any free port). A PIN (``pin_file``,
    as the kiosk's) opens a session; beyond loopback read-only routes need one unless
    ``status_open``. ``language`` ([web] language) forces the page's language. With
    ``commands`` the supervisor's PIN (``supervisor_pin_file``) opens a session that may
    send venue commands."""

    def __init__(self, view: VenueView, *, host: str = "127.0.0.1", port: int = 0,
                 pin_file: str = "", supervisor_pin_file: str = "",
                 status_open: bool = False, commands: Commands | None = None,
                 language: str | None = None, clock: Callable[[], datetime] = utc_now,
                 healthy: Callable[[], tuple[bool, list[str]]] = lambda: (True, [])) -> None:
        self._stopping = False
        supervisor = PinHash.load(supervisor_pin_file, SUPERVISOR_PIN_KEY) \
            if supervisor_pin_file and commands is not None else None
        login = Login(PinHash.load(pin_file) if pin_file else None, Lockout(),
                      Sessions(cookie=COOKIE), supervisor=supervisor)
        self.sock = listen(host, port)
        self.port = self.sock.getsockname()[1]
        room = Room(view, clock, host, self.port, login, not is_loopback(host), status_open,
                    healthy, lambda: self._stopping, language, commands)
        self._http = HttpThread(build_app(room), self.sock, name="control-http")

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._stopping = True
        self._http.stop()

    @property
    def alive(self) -> bool:
        return self._http.alive
