"""Configuration: frozen value objects loaded once from TOML plus environment overrides.

Precedence: defaults < TOML file (``GATE_CONFIG``) < environment. The environment names are
fixed (``ENVIRONMENT`` below). The token is never read from the TOML file itself, only from
its own file (mode 0600) or the environment, so it can never leak through a shared config
file; the mesh credentials likewise come from their own file.

The whole file is checked when it is read: every key, type, range and enumerated value, each
declared beside its field with ``setting()`` (see ``scanner.config_schema``). Any mistake is
one ConfigError line naming the key and what it accepts:
``upload.batch_size: expected an integer from 1 to 1000, got 0``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from hardware.keymaps import LAYOUTS
from hardware.serial_reader import parse_terminator
from scanner.config_schema import (
    PIN_TEXT,
    api_url_problem,
    build,
    mesh_url_problem,
    pin_problem,
    setting,
)
from scanner.decide.barcode import DEFAULT_MAX_READ_LENGTH
from scanner.decide.model import Direction
from scanner.errors import ConfigError, ConfigMistakes
from scanner.read.decode import DECODERS, KNOWN_FORMATS
from scanner.read.sources import DEVICE_KEY, SOURCES
from scanner.secret_file import read_secret_text

DEFAULT_API_URL = "https://vivenu.com"
DEFAULT_DB = "gate.db"
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 15.0
DEFAULT_RETRIES = 5
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

# Enumerations, each taken from the code that interprets it.
SOURCE_NAMES = tuple(SOURCES)
DECODER_NAMES = ("auto", *DECODERS)
LAYOUT_NAMES = tuple(LAYOUTS)
DIRECTIONS = tuple(d.value for d in Direction)
CHECKOUT_POLICIES = ("allow", "deny")
# gpiozero's GPIOZERO_PIN_FACTORY names: lgpio on a Pi 5 / bookworm, mock in tests and demo.
PIN_FACTORIES = ("mock", "lgpio", "rpigpio", "pigpio", "native")


# Environment variable -> dotted key it overrides.
ENVIRONMENT = {
    "GATE_API_URL": "api.url",
    "GATE_API_TOKEN_FILE": "api.token_file",
    "GATE_EVENTS": "events",
    "GATE_DB": "db",
    "GATE_JOURNAL_DB": "journal_db",
    "GATE_ID": "gate_id",
    "GATE_MESH_URL": "mesh.url",
}
_NOT_SHOWN = "(value not shown: it may be a token)"


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

    def __bool__(self) -> bool:
        return bool(self._value)


def _terminator_problem(value: Any) -> str | None:
    try:
        parse_terminator(value)
    except ValueError:
        return f"expected {_TERMINATOR_TEXT}, got {value!r}"
    return None


_TERMINATOR_TEXT = 'CR, LF, CRLF or the literal bytes (e.g. "\\x03")'

# A gate's name is also its MQTT topic level (gates/<gate_id>/...) and its broker username:
# '/' would split the level, '+' and '#' are MQTT wildcards (mosquitto refuses such a user)
# and ':' separates the username in mosquitto's password file and in credentials_file.
MAX_GATE_ID = 64
_GATE_ID_FORBIDDEN = "/+#:"
_GATE_ID_TEXT = (f"a printable name of at most {MAX_GATE_ID} characters, without surrounding "
                 f"spaces or any of {' '.join(_GATE_ID_FORBIDDEN)} (it names the gate's "
                 "mesh topics and broker user)")


def _gate_id_problem(value: Any) -> str | None:
    if isinstance(value, str) and value and value.isprintable() and value == value.strip() \
            and len(value) <= MAX_GATE_ID and not set(value) & set(_GATE_ID_FORBIDDEN):
        return None
    return f"expected {_GATE_ID_TEXT}, got {value!r}"


@dataclass(frozen=True)
class ApiConfig:
    url: str = setting(DEFAULT_API_URL, check=api_url_problem,
                       text="an https:// URL (plain http only to loopback)")
    token_file: str | None = setting(None, nonempty=True)
    connect_timeout: float = setting(DEFAULT_CONNECT_TIMEOUT, above=0)
    read_timeout: float = setting(DEFAULT_READ_TIMEOUT, above=0)
    retries: int = setting(DEFAULT_RETRIES, lo=0)
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
    formats: tuple[str, ...] = setting(KNOWN_FORMATS, choices=KNOWN_FORMATS, nonempty=True)
    full_every: int = setting(5, lo=1)
    # zxing-cpp, pyzbar, or auto: zxing-cpp, pyzbar if it cannot import
    decoder: str = setting("auto", choices=DECODER_NAMES)
    # serial
    port: str = setting("/dev/ttyACM0", nonempty=True)
    baud: int = setting(9600, lo=1)
    terminator: str = setting("\r\n", check=_terminator_problem, text=_TERMINATOR_TEXT)
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


# The kiosk page's catalogues (scanner/kiosk/locale/<language>).
PAGE_LANGUAGES = ("en", "de", "fr", "nl", "es", "it")


@dataclass(frozen=True)
class WebConfig:
    """The kiosk page, /api/status, /healthz and /metrics served by ``gate run``."""

    # Off: `gate run` serves no page (a turnstile nobody looks at needs no web server).
    enabled: bool = True
    host: str = setting(DEFAULT_WEB_HOST, nonempty=True)
    # 0: any free port, the one taken is logged (tests, a demo beside another gate).
    port: int = setting(DEFAULT_WEB_PORT, lo=0, hi=65535)
    # The hashed steward PIN; needed before the page may be served beyond loopback.
    pin_file: str | None = setting(None, nonempty=True)
    # Read-only status without login when served beyond loopback; off: holder names are
    # personal data.
    status_open: bool = False
    # The page's language for every browser; None: each browser's Accept-Language.
    language: str | None = setting(None, choices=PAGE_LANGUAGES)

    def problem(self) -> tuple[str, str] | None:
        from scanner.netrules import is_loopback

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


def parse_time_of_day(text: str) -> time:
    """``HH:MM`` (24-hour) as a time; ValueError otherwise."""
    hours, sep, minutes = text.partition(":")
    if not (sep and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(text)
    return time(int(hours), int(minutes))


def _time_of_day_problem(value: Any) -> str | None:
    try:
        parse_time_of_day(value)
    except (ValueError, TypeError, AttributeError):
        return f"expected a local time of day as HH:MM, got {value!r}"
    return None


@dataclass(frozen=True)
class JournalConfig:
    """The daemon's daily verified copy of the journal (``scanner.journal.backup_dir``);
    off while ``backup_dir`` is empty."""

    # A folder on another disk (a USB stick's mount point); empty: no daily copy.
    backup_dir: str = ""
    # Copies of this gate kept there (one a day: days); older ones are removed.
    backup_keep: int = setting(DEFAULT_BACKUP_KEEP, lo=1, hi=MAX_BACKUP_KEEP)
    backup_at: str = setting(DEFAULT_BACKUP_AT, check=_time_of_day_problem,
                             text="a local time of day as HH:MM")
    # Allow a backup_dir on the journal's own disk (else taken for an unmounted stick).
    backup_same_disk: bool = False


@dataclass(frozen=True)
class MeshConfig:
    """Gates of a venue sharing scans over MQTT; an empty ``url`` is a gate on its own."""

    url: str = setting("", check=mesh_url_problem, text="an mqtt:// or mqtts:// URL")
    key_file: str | None = setting(None, nonempty=True)          # the venue's HMAC key
    credentials_file: str | None = setting(None, nonempty=True)  # username and password
    ca_file: str | None = setting(None, nonempty=True)
    cert_file: str | None = setting(None, nonempty=True)         # client certificate
    client_key_file: str | None = setting(None, nonempty=True)   # its private key

    def problem(self) -> tuple[str, str] | None:
        from urllib.parse import urlsplit

        from scanner.netrules import is_loopback

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
class GateConfig:
    gate_id: str = setting("gate", check=_gate_id_problem, text=_GATE_ID_TEXT)
    db: str = setting(DEFAULT_DB, nonempty=True)
    # The journal's own database; empty: beside the ticket store.
    journal_db: str = ""
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

    @property
    def reader(self) -> ReaderConfig:
        """The first reader: what single-reader commands (``gate scan``) use; the default
        (stdin) when none is configured."""
        return self.readers[0] if self.readers else ReaderConfig()

    @property
    def db_url(self) -> str:
        """An SQLAlchemy URL: ``db`` as given if it has a scheme, else a SQLite file path."""
        if "://" in self.db:
            return self.db
        return f"sqlite:///{Path(self.db).expanduser()}"

    @property
    def journal_db_url(self) -> str:
        """The journal's own database: ``journal_db`` like ``db``, else beside the store."""
        if not self.journal_db:
            from scanner.store.db import journal_url_beside

            return journal_url_beside(self.db_url)
        if "://" in self.journal_db:
            return self.journal_db
        return f"sqlite:///{Path(self.journal_db).expanduser()}"


# Keys the TOML file may not set, with the reason given to the operator.
_FORBIDDEN = {
    "api.token": "put the token in its own file (api.token_file, mode 0600) "
                 "or GATE_API_TOKEN, never in the config file",
    "mesh.username": "put it in mesh.credentials_file (mode 0600), never in the config file",
    "mesh.password": "put it in mesh.credentials_file (mode 0600), never in the config file",
}


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None, *,
                origin: str = "GATE_CONFIG") -> GateConfig:
    """Load and check the configuration; raises ConfigError naming the key on any mistake."""
    return load_config_sources(path, env, origin=origin)[0]


def load_config_sources(path: str | os.PathLike[str] | None = None,
                        env: Mapping[str, str] | None = None, *,
                        origin: str = "GATE_CONFIG") -> tuple[GateConfig, dict[str, str]]:
    """The configuration and, per dotted key not at its default, where it came from
    (``file`` or ``env GATE_DB``). ``origin`` names where ``path`` came from (``--config``
    or ``GATE_CONFIG``), for a file that cannot be read.

    Every mistake is found in one reading: one is raised as a ConfigError, several as
    ConfigMistakes, one line each."""
    env = os.environ if env is None else env
    if not path and env.get("GATE_CONFIG"):
        path, origin = env["GATE_CONFIG"], "GATE_CONFIG"
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{origin}: no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{origin}: cannot read {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    problems: list[ConfigError] = []
    for key, why in _FORBIDDEN.items():
        section, _, name = key.partition(".")
        table = data.get(section)
        if isinstance(table, dict) and name in table:
            problems.append(ConfigError(f"{key}: not allowed in the config file: {why}"))
            del table[name]
    try:
        reader_tables, reader_key = _reader_tables(data)
    except ConfigError as exc:
        problems.append(exc)
        data.pop("reader", None)
        data.pop("readers", None)
        reader_tables, reader_key = [], lambda _i: "reader"
    sources = {key: "file" for key in _keys(data)}
    sources.update({f"{reader_key(i)}.{k}": "file"  # a table that is not: build() names it
                    for i, table in enumerate(reader_tables or ()) if isinstance(table, dict)
                    for k in table})
    overridden = _apply_env(data, env)
    sources.update({key: f"env {var}" for var, key in overridden.items()})
    config = build(GateConfig, data, "", problems)
    readers = config.readers if reader_tables is None else tuple(
        build(ReaderConfig, table, f"{reader_key(i)}.", problems)
        for i, table in enumerate(reader_tables))
    problems += _check_readers(readers, reader_key)
    token = Secret("")
    try:
        token = _read_token(config.api, env, overridden)
    except ConfigError as exc:
        problems.append(exc)
    if problems:
        blamed = [_blame_env(problem, overridden) for problem in problems]
        raise blamed[0] if len(blamed) == 1 else ConfigMistakes(blamed)
    if env.get("GATE_API_TOKEN"):
        sources["api.token"] = "env GATE_API_TOKEN"
    elif token:
        sources["api.token"] = "api.token_file"
    api = dataclasses.replace(config.api, token=token)
    return dataclasses.replace(config, api=api, readers=readers), sources


def _keys(data: dict[str, Any]) -> list[str]:
    """Dotted keys of the file's scalars and one-level tables (readers are listed apart)."""
    keys = []
    for key, value in data.items():
        if isinstance(value, dict):
            keys += [f"{key}.{inner}" for inner in value]
        else:
            keys.append(key)
    return keys


def _reader_tables(data: dict[str, Any]) -> tuple[list[Any] | None, Any]:
    """Pops ``[reader]`` or ``[[readers]]``; returns the tables (None: neither was given,
    ``[]``: ``readers = []``, no reader yet) and how to name their keys."""
    if "reader" in data and "readers" in data:
        raise ConfigError("readers: give either one [reader] table or [[readers]] tables, "
                          "not both")
    if "reader" in data:
        return [data.pop("reader")], lambda _i: "reader"
    tables = data.pop("readers", None)
    if tables is None:
        return None, lambda _i: "reader"
    if not isinstance(tables, list):
        raise ConfigError("readers: expected [[readers]] tables, or readers = [] for none")
    return tables, lambda i: f"readers[{i}]"


def _check_readers(readers: tuple[ReaderConfig, ...], key: Any) -> list[ConfigError]:
    """Mistakes across readers: a name or a device given twice, two readers on stdin."""
    problems = []
    names: dict[str, int] = {}
    for i, reader in enumerate(readers):
        if reader.name and reader.name in names:
            problems.append(ConfigError(f"{key(i)}.name: {reader.name!r} is already "
                                        f"{key(names[reader.name])}"))
            continue
        names[reader.name] = i
    # Two readers on one port would each get a share of its codes, in their own directions.
    devices: dict[tuple[str, str], int] = {}
    for i, reader in enumerate(readers):
        attr = DEVICE_KEY.get(reader.source)
        if attr is None:
            continue
        device = (reader.source, getattr(reader, attr))
        if device in devices:
            problems.append(ConfigError(f"{key(i)}.{attr}: {device[1]!r} is already "
                                        f"{key(devices[device])}"))
            continue
        devices[device] = i
    stdin = [i for i, r in enumerate(readers) if r.source == "stdin"]
    if len(stdin) > 1:
        problems.append(ConfigError(f"{key(stdin[1])}.source: only one reader can read stdin"))
    return problems


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Writes the environment's overrides into ``data``; returns variable -> dotted key."""
    applied = {}
    for var, key in ENVIRONMENT.items():
        if var not in env:
            continue
        value: Any = env[var]
        if var == "GATE_EVENTS":
            value = [e.strip() for e in value.split(",") if e.strip()]
        section, _, name = key.rpartition(".")
        table = data.setdefault(section, {}) if section else data
        if isinstance(table, dict):  # else build() names the section as not a table
            table[name] = value
            applied[var] = key
    return applied


def _blame_env(exc: ConfigError, overridden: dict[str, str]) -> ConfigError:
    """Adds which variable set the offending key, since the file does not show it."""
    message = str(exc)
    for var, key in overridden.items():
        if message.startswith(f"{key}:"):
            return ConfigError(f"{message} (set by {var})")
    return exc


def _token_problem(key: str, token: str) -> ConfigError | None:
    """A token goes into an HTTP header: a newline, space or non-ASCII character there would
    fail every request in a line that shows it (httpx quotes the header value)."""
    if all("!" <= c <= "~" for c in token):
        return None
    return ConfigError(f"{key}: the token must be visible ASCII characters, without spaces "
                       f"or control characters {_NOT_SHOWN}")


def _read_token(api: ApiConfig, env: Mapping[str, str], overridden: dict[str, str]) -> Secret:
    if env.get("GATE_API_TOKEN"):
        token = env["GATE_API_TOKEN"].strip()
        if problem := _token_problem("GATE_API_TOKEN", token):
            raise problem
        return Secret(token)
    if not api.token_file:
        return Secret("")
    key = "GATE_API_TOKEN_FILE" if "GATE_API_TOKEN_FILE" in overridden else "api.token_file"
    token_path = Path(api.token_file).expanduser()
    text = read_secret_text(token_path, key, credentials_dir=env.get("CREDENTIALS_DIRECTORY"))
    if not text:
        raise ConfigError(f"{key}: {token_path} is empty")
    if problem := _token_problem(key, text):
        raise problem
    return Secret(text)
