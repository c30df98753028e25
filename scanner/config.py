"""Configuration: frozen value objects loaded once from TOML plus environment overrides.

Precedence: defaults < TOML file (``GATE_CONFIG``) < environment. The environment names are
fixed: GATE_API_URL, GATE_API_TOKEN, GATE_API_TOKEN_FILE, GATE_EVENTS, GATE_DB, GATE_ID.
The token is never read from the TOML file itself, only from its own file (mode 0600) or the
environment, so it can never leak through a shared config file.

Every error names the key: ``sync.page_size: expected an integer, got 'many'``.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.decide.barcode import DEFAULT_MAX_READ_LENGTH
from scanner.errors import ConfigError
from scanner.read.decode import KNOWN_FORMATS

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
DEFAULT_PAGE_SIZE = 1000
# Delta windows overlap the previous one by this much: device and server clocks differ,
# and a ticket written just before ``until`` may become visible only after we asked.
DEFAULT_WINDOW_OVERLAP = 120.0
DEFAULT_RECONCILE_EVERY = 6 * 3600.0
# Far above any real event: a listing whose total passes this is a server fault.
DEFAULT_MAX_EVENT_TICKETS = 5_000_000
# An updatedAt this far past server time is not trusted to win a merge.
DEFAULT_FUTURE_TOLERANCE = 300.0
DEFAULT_LOOKUP_DEADLINE_MS = 400.0
DEFAULT_UPLOAD_BATCH = 500
DEFAULT_UPLOAD_INTERVAL = 5.0
DEFAULT_DEDUP_WINDOW = 2.0


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


@dataclass(frozen=True)
class ApiConfig:
    url: str = DEFAULT_API_URL
    token_file: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    retries: int = DEFAULT_RETRIES
    page_deadline: float = DEFAULT_PAGE_DEADLINE
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    # Filled from GATE_API_TOKEN or the token file, never from TOML.
    token: Secret = field(default_factory=lambda: Secret(""), repr=False)


@dataclass(frozen=True)
class SyncConfig:
    interval: float = DEFAULT_SYNC_INTERVAL
    page_size: int = DEFAULT_PAGE_SIZE
    window_overlap: float = DEFAULT_WINDOW_OVERLAP
    reconcile_every: float = DEFAULT_RECONCILE_EVERY
    max_event_tickets: int = DEFAULT_MAX_EVENT_TICKETS
    future_tolerance: float = DEFAULT_FUTURE_TOLERANCE


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
    checkout_without_checkin: str = "deny"


@dataclass(frozen=True)
class LookupConfig:
    """Online fallback for barcodes missing from the store; 0 turns it off."""

    deadline_ms: float = DEFAULT_LOOKUP_DEADLINE_MS


@dataclass(frozen=True)
class UploadConfig:
    batch_size: int = DEFAULT_UPLOAD_BATCH
    interval: float = DEFAULT_UPLOAD_INTERVAL


@dataclass(frozen=True)
class ReaderConfig:
    """Which source feeds the gate and how; see hardware/."""

    source: str = "stdin"  # camera | serial | hid | stdin
    dedup_window: float = DEFAULT_DEDUP_WINDOW
    max_length: int = DEFAULT_MAX_READ_LENGTH
    # camera
    camera: str = "0"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    formats: tuple[str, ...] = KNOWN_FORMATS
    full_every: int = 5
    decoder: str = "auto"  # zxing | pyzbar | auto (zxing-cpp, pyzbar if it cannot import)
    # serial
    port: str = "/dev/ttyACM0"
    baud: int = 9600
    terminator: str = "\r\n"
    prefix: str = ""
    suffix: str = ""
    # hid
    device: str = ""
    layout: str = "us"


@dataclass(frozen=True)
class GateConfig:
    gate_id: str = "gate"
    db: str = DEFAULT_DB
    events: tuple[str, ...] = ()
    api: ApiConfig = field(default_factory=ApiConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    lookup: LookupConfig = field(default_factory=LookupConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)

    @property
    def db_url(self) -> str:
        """An SQLAlchemy URL: ``db`` as given if it has a scheme, else a SQLite file path."""
        if "://" in self.db:
            return self.db
        return f"sqlite:///{Path(self.db).expanduser()}"


# Keys the TOML file may not set, with the reason given to the operator.
_FORBIDDEN = {"api.token": "put the token in its own file (api.token_file, mode 0600) "
                           "or GATE_API_TOKEN, never in the config file"}


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> GateConfig:
    """Load the configuration; raises ConfigError with the offending key on any mistake."""
    env = os.environ if env is None else env
    path = path or env.get("GATE_CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"GATE_CONFIG: no such file: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key, why in _FORBIDDEN.items():
        section, _, name = key.partition(".")
        if name in data.get(section, {}):
            raise ConfigError(f"{key}: not allowed in the config file: {why}")
    _apply_env(data, env)
    config = _build(GateConfig, data, "")
    token = _read_token(config.api, env)
    return dataclasses.replace(config, api=dataclasses.replace(config.api, token=token))


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    api = data.setdefault("api", {})
    if "GATE_API_URL" in env:
        api["url"] = env["GATE_API_URL"]
    if "GATE_API_TOKEN_FILE" in env:
        api["token_file"] = env["GATE_API_TOKEN_FILE"]
    if "GATE_EVENTS" in env:
        data["events"] = [e.strip() for e in env["GATE_EVENTS"].split(",") if e.strip()]
    if "GATE_DB" in env:
        data["db"] = env["GATE_DB"]
    if "GATE_ID" in env:
        data["gate_id"] = env["GATE_ID"]


def _read_token(api: ApiConfig, env: Mapping[str, str]) -> Secret:
    if env.get("GATE_API_TOKEN"):
        return Secret(env["GATE_API_TOKEN"].strip())
    if not api.token_file:
        return Secret("")
    token_path = Path(api.token_file).expanduser()
    try:
        mode = token_path.stat().st_mode
        text = token_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"api.token_file: cannot read {token_path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"api.token_file: {token_path} is readable by others "
                          f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {token_path}")
    if not text:
        raise ConfigError(f"api.token_file: {token_path} is empty")
    return Secret(text)


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in known:
            close = [k for k in known if k.replace("_", "") == key.replace("_", "").lower()]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{prefix}{key}: unknown key{hint}")
    values = {}
    for key, raw in data.items():
        values[key] = _coerce(hints[key], raw, f"{prefix}{key}")
    return cls(**values)


def _coerce(kind: Any, raw: Any, key: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, raw, key + ".")
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if raw is None else _coerce(options[0], raw, key)
    if origin is tuple:
        if isinstance(raw, str):
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise ConfigError(f"{key}: expected a list of strings, got {raw!r}")
        return tuple(raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise ConfigError(f"{key}: expected an integer, got {raw!r}")
    if kind is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        raise ConfigError(f"{key}: expected a number, got {raw!r}")
    if kind is str:
        if isinstance(raw, str):
            return raw
        raise ConfigError(f"{key}: expected a string, got {raw!r}")
    raise ConfigError(f"{key}: cannot be set from the config file")
