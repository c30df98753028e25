"""What the kiosk is given: callables and a listener, so it knows no Gate and no worker.

``scanner.app.kiosk.from_gate`` fills these from a running gate; tests may fill them
with anything that honours the same shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from scanner.act import Listener
from scanner.build import version
from scanner.decide.model import Direction
from scanner.gatekeeper import CheckResult
from scanner.kiosk.counts import Latencies, Tally
from scanner.supervise import Desk

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_PIN_FILE = "~/.config/gate-scanner/kiosk.pin"
DEFAULT_SUPERVISOR_PIN_FILE = "~/.config/gate-scanner/supervisor.pin"
# How a health reason names the first sync ("syncing: 1200 of 48000 tickets (2 %)"): while
# it is the only reason, /healthz says "syncing", a wait that ends by itself.
SYNCING = "syncing"


class WebSettings(Protocol):
    """The ``[web]`` table (attribute names only)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def pin_file(self) -> str: ...
    @property
    def status_open(self) -> bool: ...
    @property
    def language(self) -> str | None: ...
    @property
    def supervisor_pin_file(self) -> str: ...


@dataclass(frozen=True)
class WebOptions:
    """Plain ``[web]`` values, for callers without a configuration object."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    pin_file: str = DEFAULT_PIN_FILE
    status_open: bool = True
    language: str | None = None    # None: each browser's Accept-Language
    supervisor_pin_file: str = DEFAULT_SUPERVISOR_PIN_FILE


class Annuls(Protocol):
    """The journal mark for "opened, not passed" (``Journal.mark_passed``)."""

    def mark_passed(self, scan_id: str, passed: bool) -> bool | None: ...


def _unknown() -> None:
    return None


def _none_kept(_limit: int) -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class Probes:
    """Live facts the page and /metrics show; each None when not known (yet)."""

    # The API's last request outcome: True reached, False failed, None never tried.
    online: Callable[[], bool | None] = _unknown
    reader_connected: Callable[[], bool | None] = _unknown
    frames_per_second: Callable[[], float | None] = _unknown
    clock_offset: Callable[[], float | None] = _unknown
    # False when the device clock is not believable (before the build date, years off).
    clock_ok: Callable[[], bool] = lambda: True
    fire_alarm: Callable[[], bool] = lambda: False
    settings: Callable[[], dict[str, Any] | None] = _unknown  # /me as last synced
    mesh: Callable[[], dict[str, Any] | None] = _unknown  # scanner.status.mesh_status
    venue: Callable[[], dict[str, Any] | None] = _unknown  # scanner.venue CommandBook.state
    # Every zone's count (scanner.zones.book.ZoneBook.snapshot's "zones").
    zones: Callable[[], list[dict[str, Any]]] = list


@dataclass(frozen=True)
class KioskParts:
    gate_id: str
    listener: Listener                                 # the act stage's fan-out queue
    check: Callable[[str, Direction], CheckResult]     # Gatekeeper.check: decide + journal
    submit: Callable[[CheckResult, int | None], bool]  # ActStage.submit (with its read's
    #                                                    time.monotonic_ns, for read-to-relay)
    status: Callable[[], dict[str, Any]]               # what `gate status --json` prints
    health: Callable[[], tuple[bool, list[str]]]       # (ready and heartbeats fresh, why not)
    tallies: Callable[[], list[Tally]]
    latencies: Callable[[], Latencies]
    annuls: Annuls | None = None
    # Held tickets, overrides, releases, information scans (scanner.supervise.Desk).
    desk: Desk | None = None
    probes: Probes = field(default_factory=Probes)
    # This gate's last n decisions as the page lists them, newest first, read back from
    # the journal when the page starts (``present.journaled_event``): a restart keeps them.
    journaled: Callable[[int], list[dict[str, Any]]] = _none_kept
    # The installed gate-scanner's, for /healthz and /metrics' gate_build_info.
    version: str = field(default_factory=version)


class Reachability:
    """The online badge's source: workers that talk to the API (sync, upload) report each
    request's outcome; calling it gives the last one (None before the first)."""

    def __init__(self) -> None:
        self._last: bool | None = None

    def reached(self) -> None:
        self._last = True

    def failed(self) -> None:
        self._last = False

    def report(self, reached: bool) -> None:
        self._last = reached

    def __call__(self) -> bool | None:
        return self._last
