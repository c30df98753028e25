"""The configuration's frozen value objects, each field with its named default and rule.

Every table of the TOML file is one class here; ``scanner.config.load`` fills them from the
file and the environment. Rules that span fields are each class's ``problem()``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from scanner.config.databases import (
    DATABASE_TEXT,
    database_problem,
    database_url,
    journal_url_beside,
)
from scanner.config.names import (
    BARCODE_FORMATS,
    CHECKOUT_POLICIES,
    DECODER_NAMES,
    DIRECTIONS,
    LAYOUT_NAMES,
    PAGE_LANGUAGES,
    PIN_FACTORIES,
    SOURCE_NAMES,
)
from scanner.config.rules import (
    GATE_ID_TEXT,
    PIN_TEXT,
    TERMINATOR_TEXT,
    gate_id_problem,
    pin_problem,
    setting,
    terminator_problem,
    time_of_day_problem,
)
from scanner.config.zones import ZoneTree, venue
from scanner.netrules import api_url_problem, is_loopback, mesh_url_problem

DEFAULT_API_URL = "https://vivenu.com"
DEFAULT_DB = "gate.db"
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 15.0
DEFAULT_RETRIES = 5
# With the backoff capped at 5 minutes, more retries than this outlast any wait worth
# making; far more would overflow the backoff's 2 ** n.
MAX_RETRIES = 100
# A page request, retries included, ends within this, however slowly the server drips.
DEFAULT_PAGE_DEADLINE = 30.0
# A page of 1,000 tickets is under 1 MB; a body past this is refused while it streams.
DEFAULT_MAX_PAGE_BYTES = 32 * 1024 * 1024
DEFAULT_SYNC_INTERVAL = 10.0
# The API's own bound on ``top`` (1..1000); more is a 400.
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
# Delta windows overlap the previous one by this much: device and server clocks differ,
# and a ticket written just before ``until`` may become visible only after we asked.
DEFAULT_WINDOW_OVERLAP = 120.0
DEFAULT_RECONCILE_EVERY = 6 * 3600.0
# A reconciling sync that would delete more than this share of an event's tickets (or all
# of them) is held back until an operator accepts it: an empty or truncated listing from a
# broken server must not wipe what an offline gate admits against.
DEFAULT_MAX_DELETION_SHARE = 0.1
# Far above any real event: a listing whose total passes this is a server fault.
DEFAULT_MAX_EVENT_TICKETS = 5_000_000
# An updatedAt this far past server time is not trusted to win a merge.
DEFAULT_FUTURE_TOLERANCE = 300.0
DEFAULT_LOOKUP_DEADLINE_MS = 400.0
DEFAULT_UPLOAD_BATCH = 500
MAX_UPLOAD_BATCH = 1000
DEFAULT_UPLOAD_INTERVAL = 5.0
DEFAULT_DEDUP_WINDOW = 2.0
DEFAULT_RELAY_PULSE_MS = 500
# Shorter pulses are missed by common turnstile controllers; longer ones let two through.
MIN_RELAY_PULSE_MS = 100
MAX_RELAY_PULSE_MS = 60_000
DEFAULT_PASSAGE_TIMEOUT = 5.0
# Seconds a held ticket waits for the steward before it is refused: enough to look at an
# ID card, short enough that the queue behind does not give up.
DEFAULT_CONFIRM_TIMEOUT = 20.0
# Brivo's door-ajar alarm starts at 30 s: long enough for a wheelchair or a pram.
DEFAULT_PASSAGE_HELD_AFTER = 30.0
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8080
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
# The daemon's daily copy of the journal ([journal]): copies kept, and when (local time).
DEFAULT_BACKUP_KEEP = 7
MAX_BACKUP_KEEP = 3650
DEFAULT_BACKUP_AT = "03:30"
# /me ticketSyncInterval's documented range, which an override must respect too.
MIN_RUN_SYNC_INTERVAL = 5.0
MAX_RUN_SYNC_INTERVAL = 900.0
# How far a server's Date may be from a believable device clock and still be adopted: NTP
# keeps a clock within a second, a drifting RTC-less Pi gains minutes a week at most.
DEFAULT_CLOCK_BOUND = 300.0
# Date headers have one-second resolution and a request takes time: below this every
# honest answer would count as a disagreement.
MIN_CLOCK_BOUND = 5.0
MAX_CLOCK_BOUND = 86400.0

# The longest read a reader hands on; scanner.decide.barcode refuses longer ones with the
# same bound (tests/test_config_registries.py).
DEFAULT_MAX_READ_LENGTH = 512


class Secret:
    """A string that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def fits_header(self) -> bool:
        """Whether it is visible ASCII only, as an HTTP header value must be: a newline,
        space or non-ASCII character fails every request in a line that quotes it."""
        return all("!" <= c <= "~" for c in self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ApiConfig:
    url: str = setting(DEFAULT_API_URL, check=api_url_problem,
                       text="an https:// URL (plain http only to loopback)")
    token_file: str | None = setting(None, nonempty=True, path=True)
    connect_timeout: float = setting(DEFAULT_CONNECT_TIMEOUT, above=0)
    read_timeout: float = setting(DEFAULT_READ_TIMEOUT, above=0)
    retries: int = setting(DEFAULT_RETRIES, lo=0, hi=MAX_RETRIES)
    page_deadline: float = setting(DEFAULT_PAGE_DEADLINE, above=0)
    max_page_bytes: int = setting(DEFAULT_MAX_PAGE_BYTES, lo=1024)
    # Filled from GATE_API_TOKEN or the token file, never from TOML.
    token: Secret = field(default_factory=lambda: Secret(""), repr=False)


@dataclass(frozen=True)
class SyncConfig:
    interval: float = setting(DEFAULT_SYNC_INTERVAL, above=0)
    page_size: int = setting(DEFAULT_PAGE_SIZE, lo=1, hi=MAX_PAGE_SIZE)
    window_overlap: float = setting(DEFAULT_WINDOW_OVERLAP, lo=0)
    reconcile_every: float = setting(DEFAULT_RECONCILE_EVERY, above=0)
    max_deletion_share: float = setting(DEFAULT_MAX_DELETION_SHARE, lo=0, hi=1)
    max_event_tickets: int = setting(DEFAULT_MAX_EVENT_TICKETS, lo=1)
    future_tolerance: float = setting(DEFAULT_FUTURE_TOLERANCE, lo=0)


@dataclass(frozen=True)
class PolicyConfig:
    """Local overrides of what ``/me`` says; ``None`` means: follow the server."""

    include_details_required: bool | None = None
    allow_checkin: bool | None = None
    allow_checkout: bool | None = None
    multi_checkin: bool | None = None
    check_timeslots: bool | None = None
    # Ticket types allowed per gate; empty: follow scanConfig.
    allowed_ticket_types: tuple[str, ...] = ()
    # Entry-permission ids this gate serves; empty: entry lists are not checked.
    entries: tuple[str, ...] = ()
    # What an OUT without a prior IN does: "allow" (record it) or "deny".
    checkout_without_checkin: str = setting("deny", choices=CHECKOUT_POLICIES)
    # Held until a steward confirms: these ticket types, and reduced-price tickets
    # (a discount on the ticket); off unless set, so no venue's gates start holding people.
    confirm_ticket_types: tuple[str, ...] = ()
    confirm_discounted: bool = False
    # Seconds a held ticket waits for the steward's answer; then it is refused.
    confirm_timeout: float = setting(DEFAULT_CONFIRM_TIMEOUT, above=0, hi=600)


@dataclass(frozen=True)
class RouteConfig:
    """One ``[[routes]]`` table: which gates tickets of these areas, entry permissions or
    ticket types use; such a ticket at another gate is told which one (WRONG_GATE)."""

    gates: tuple[str, ...] = setting((), nonempty=True)
    areas: tuple[str, ...] = ()
    entries: tuple[str, ...] = ()
    ticket_types: tuple[str, ...] = ()

    def problem(self) -> tuple[str, str] | None:
        if not self.gates:
            return ("gates", "a route names the gates its tickets use")
        if not (self.areas or self.entries or self.ticket_types):
            return ("areas", "a route names areas, entries or ticket_types")
        return None


@dataclass(frozen=True)
class LookupConfig:
    """Online fallback for barcodes missing from the store; 0 turns it off."""

    deadline_ms: float = setting(DEFAULT_LOOKUP_DEADLINE_MS, lo=0)


@dataclass(frozen=True)
class UploadConfig:
    batch_size: int = setting(DEFAULT_UPLOAD_BATCH, lo=1, hi=MAX_UPLOAD_BATCH)
    interval: float = setting(DEFAULT_UPLOAD_INTERVAL, above=0)


@dataclass(frozen=True)
class ReaderConfig:
    """One source feeding the gate and how; see hardware/. ``[[readers]]`` lists several."""

    source: str = setting("stdin", choices=SOURCE_NAMES)
    # Which way a person passing this reader goes, and the turnstile (lane) it serves.
    direction: str = setting("IN", choices=DIRECTIONS)
    lane: str = setting("main", nonempty=True)
    name: str = ""  # empty: named by source and position
    dedup_window: float = setting(DEFAULT_DEDUP_WINDOW, lo=0)
    max_length: int = setting(DEFAULT_MAX_READ_LENGTH, lo=1)
    # camera
    camera: str = setting("0", nonempty=True)
    width: int = setting(640, lo=1)
    height: int = setting(480, lo=1)
    fps: float = setting(30.0, above=0)
    formats: tuple[str, ...] = setting(BARCODE_FORMATS, choices=BARCODE_FORMATS, nonempty=True)
    full_every: int = setting(5, lo=1)
    # zxing-cpp, pyzbar, or auto: zxing-cpp, pyzbar if it cannot import
    decoder: str = setting("auto", choices=DECODER_NAMES)
    # serial
    port: str = setting("/dev/ttyACM0", nonempty=True)
    baud: int = setting(9600, lo=1)
    terminator: str = setting("\r\n", check=terminator_problem, text=TERMINATOR_TEXT)
    prefix: str = ""
    suffix: str = ""
    # hid
    device: str = ""
    layout: str = setting("us", choices=LAYOUT_NAMES)

    def problem(self) -> tuple[str, str] | None:
        if self.source == "hid" and not self.device:
            return ("device", "the hid source needs an evdev device path, "
                              "e.g. /dev/input/by-id/usb-...-event-kbd")
        if self.name and not self.name.isprintable():
            return ("name", f"expected a printable string, got {self.name!r}")
        return None


@dataclass(frozen=True)
class OutputsConfig:
    """The turnstile's relay, lights, buzzer and optional inputs, on gpiozero pins."""

    pin_factory: str = setting("lgpio", choices=PIN_FACTORIES)
    relay_pin: int | str | None = setting(None, check=pin_problem, text=PIN_TEXT)
    relay_pulse_ms: int = setting(DEFAULT_RELAY_PULSE_MS, lo=MIN_RELAY_PULSE_MS,
                                  hi=MAX_RELAY_PULSE_MS)
    relay_active_high: bool = True
    green_pin: int | str | None = setting(None, check=pin_problem, text=PIN_TEXT)
    red_pin: int | str | None = setting(None, check=pin_problem, text=PIN_TEXT)
    buzzer_pin: int | str | None = setting(None, check=pin_problem, text=PIN_TEXT)
    # The turnstile's PASS contact: a grant with no passage within the timeout did not pass.
    passage_pin: int | str | None = setting(None, check=pin_problem, text=PIN_TEXT)
    passage_timeout: float = setting(DEFAULT_PASSAGE_TIMEOUT, above=0)
    # A normally closed fire-alarm loop: open means hold every lane open.
    fire_alarm_pin: int | str | None = setting(None, check=pin_problem, text=PIN_TEXT)
    # The steward's confirm button (a contact to ground): opens the gate for a held ticket.
    confirm_pin: int | str | None = setting(None, check=pin_problem, text=PIN_TEXT)
    # The passage contact closed this long is an alarm: the turnstile is held or blocked.
    passage_held_after: float = setting(DEFAULT_PASSAGE_HELD_AFTER, lo=1, hi=3600)

    def problem(self) -> tuple[str, str] | None:
        seen: dict[str, str] = {}
        for f in dataclasses.fields(self):
            pin = getattr(self, f.name) if f.name.endswith("_pin") else None
            if pin is None:
                continue
            # 17, "GPIO17" and "BCM17" are one pin; header names are compared as written.
            same = str(pin).upper().removeprefix("GPIO").removeprefix("BCM")
            if same in seen:
                return (f.name, f"pin {pin!r} is already outputs.{seen[same]}")
            seen[same] = f.name
        return None



@dataclass(frozen=True)
class WebConfig:
    """The kiosk page, /api/status, /healthz and /metrics served by ``gate run``."""

    # Off: `gate run` serves no page (a turnstile nobody looks at needs no web server).
    enabled: bool = True
    host: str = setting(DEFAULT_WEB_HOST, nonempty=True)
    # 0: any free port, the one taken is logged (tests, a demo beside another gate).
    port: int = setting(DEFAULT_WEB_PORT, lo=0, hi=65535)
    # The hashed steward PIN; needed before the page may be served beyond loopback.
    pin_file: str | None = setting(None, nonempty=True, path=True)
    # The hashed supervisor PIN (overrides); unset: nobody may override a denial.
    supervisor_pin_file: str | None = setting(None, nonempty=True, path=True)
    # Read-only status without login when served beyond loopback; off: holder names are
    # personal data.
    status_open: bool = False
    # The page's language for every browser; None: each browser's Accept-Language.
    language: str | None = setting(None, choices=PAGE_LANGUAGES)

    def problem(self) -> tuple[str, str] | None:
        if self.enabled and not is_loopback(self.host) and not self.pin_file:
            return ("pin_file", f"required when web.host ({self.host!r}) is not loopback: "
                                "changes need a login there")
        return None


@dataclass(frozen=True)
class RunConfig:
    """The daemon's own timing."""

    # Delta sync period; None: follow /me ticketSyncInterval.
    sync_interval: float | None = setting(None, lo=MIN_RUN_SYNC_INTERVAL,
                                          hi=MAX_RUN_SYNC_INTERVAL)
    # A worker whose heartbeat is older than this is hung: the watchdog stops.
    heartbeat_timeout: float = setting(DEFAULT_HEARTBEAT_TIMEOUT, above=0)
    # Seconds between watchdog pings; None: half of systemd's WatchdogSec.
    watchdog: float | None = setting(None, above=0)
    # The sync in a child process (scanner.sync.process), off the decision lane's GIL.
    sync_process: bool = True
    # Seconds a server clock may differ from a believable device clock and still be used
    # to stamp scans and decide timeslots (README, "Clocks").
    clock_bound: float = setting(DEFAULT_CLOCK_BOUND, lo=MIN_CLOCK_BOUND, hi=MAX_CLOCK_BOUND)


@dataclass(frozen=True)
class JournalConfig:
    """The daemon's daily verified copy of the journal (``scanner.journal.backup_dir``);
    off while ``backup_dir`` is empty."""

    # A folder on another disk (a USB stick's mount point); empty: no daily copy.
    backup_dir: str = setting("", path=True)
    # Copies of this gate kept there (one a day: days); older ones are removed.
    backup_keep: int = setting(DEFAULT_BACKUP_KEEP, lo=1, hi=MAX_BACKUP_KEEP)
    backup_at: str = setting(DEFAULT_BACKUP_AT, check=time_of_day_problem,
                             text="a local time of day as HH:MM")
    # Allow a backup_dir on the journal's own disk (else taken for an unmounted stick).
    backup_same_disk: bool = False


@dataclass(frozen=True)
class MeshConfig:
    """Gates of a venue sharing scans over MQTT; an empty ``url`` is a gate on its own."""

    url: str = setting("", check=mesh_url_problem, text="an mqtt:// or mqtts:// URL")
    key_file: str | None = setting(None, nonempty=True, path=True)  # the venue's HMAC key
    # username and password
    credentials_file: str | None = setting(None, nonempty=True, path=True)
    ca_file: str | None = setting(None, nonempty=True, path=True)
    cert_file: str | None = setting(None, nonempty=True, path=True)  # client certificate
    client_key_file: str | None = setting(None, nonempty=True, path=True)  # its private key
    # The supervisor's Ed25519 public key (a PEM file, not a secret): venue commands signed
    # with it are obeyed; unset: the gate takes no venue commands.
    supervisor_key: str | None = setting(None, nonempty=True, path=True)
    # The one gate that makes the places of capped zones (scanner.zones.escrow): the same
    # name in every gate's configuration; required with a mesh and a capacity.
    minter: str = setting("", check=lambda v: gate_id_problem(v) if v else None,
                          text=GATE_ID_TEXT)

    def problem(self) -> tuple[str, str] | None:
        if not self.url:
            return None
        if not self.key_file:
            return ("key_file", "required with mesh.url: every message is signed with the "
                                "venue's key")
        parts = urlsplit(self.url.strip())
        if parts.scheme.lower() == "mqtt" and self.credentials_file \
                and not is_loopback(parts.hostname or ""):
            return ("url", f"plain mqtt:// would send the credentials in clear to "
                           f"{parts.hostname!r}; use mqtts://")
        if bool(self.cert_file) != bool(self.client_key_file):
            return ("cert_file", "give cert_file and client_key_file together")
        return None


@dataclass(frozen=True)
class ControlConfig:
    """``gate control``'s own settings: the venue commands its page may send."""

    # The supervisor's Ed25519 private key (`gate venue keygen`, mode 0600); unset: the
    # page has no command buttons and its command API refuses.
    supervisor_key_file: str | None = setting(None, nonempty=True, path=True)
    # The broker's supervisor user (username:password, mode 0600) the buttons publish as,
    # as `gate venue` does; unset: [mesh] credentials_file.
    credentials_file: str | None = setting(None, nonempty=True, path=True)


@dataclass(frozen=True)
class GateConfig:
    gate_id: str = setting("gate", check=gate_id_problem, text=GATE_ID_TEXT)
    db: str = setting(DEFAULT_DB, check=database_problem, text=DATABASE_TEXT)
    # The journal's own database; empty: beside the ticket store.
    journal_db: str = setting("", check=lambda v: database_problem(v) if v else None,
                              text=DATABASE_TEXT)
    events: tuple[str, ...] = ()
    api: ApiConfig = field(default_factory=ApiConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    lookup: LookupConfig = field(default_factory=LookupConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    # From [[readers]] tables, or the single [reader] table as a one-element list; without
    # either, one stdin reader; ``readers = []``: none yet (a gate not set up).
    readers: tuple[ReaderConfig, ...] = field(default_factory=lambda: (ReaderConfig(),))
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    run: RunConfig = field(default_factory=RunConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    routes: tuple[RouteConfig, ...] = ()
    # This gate's zone; empty: /me's scanZoneId, else the default zone (scanner.config.zones).
    zone: str = ""
    # From [[zones]] tables; without them one zone, the venue.
    zones: ZoneTree = field(default_factory=venue)

    @property
    def reader(self) -> ReaderConfig:
        """The first reader: what single-reader commands (``gate scan``) use; the default
        (stdin) when none is configured."""
        return self.readers[0] if self.readers else ReaderConfig()

    @property
    def db_url(self) -> str:
        """An SQLAlchemy URL: ``db`` as given if it has a scheme, else a SQLite file path."""
        return database_url(self.db)

    @property
    def journal_db_url(self) -> str:
        """The journal's own database: ``journal_db`` like ``db``, else beside the store."""
        return database_url(self.journal_db) if self.journal_db \
            else journal_url_beside(self.db_url)
