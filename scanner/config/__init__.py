"""Configuration: frozen value objects loaded once from TOML plus environment overrides.

The bottom layer of the scanner: it imports no adapter (no hardware, database, HTTP or MQTT
library, nothing of ``scanner`` but its errors, the secret-file reader and the network
rules; tests/test_architecture.py checks every import statement). What it chooses by name
(reader sources, decoders, layouts, pin factories) it declares in ``names``, and each
adapter's registry is held to those names by tests/test_config_registries.py.

- ``model``: the frozen dataclasses, one per TOML table, with their named defaults;
- ``rules``: what each field accepts (``setting()`` beside the field);
- ``tables``: one TOML table into its dataclass, every rule checked;
- ``load``: the file plus the environment and the token, every mistake collected;
- ``names``: the names chosen from adapters' registries;
- ``databases``: the ``db`` and ``journal_db`` settings as URLs;
- ``toml``: the one TOML writer, whose output ``load`` reads back;
- ``zones``: the ``[[zones]]`` tables as a zone tree.
"""

from __future__ import annotations

from scanner.config.databases import (
    JOURNAL_SUFFIX,
    database_url,
    journal_url_beside,
)
from scanner.config.load import (
    ENVIRONMENT,
    load_config,
    load_config_sources,
)
from scanner.config.model import (
    DEFAULT_API_URL,
    DEFAULT_BACKUP_AT,
    DEFAULT_BACKUP_KEEP,
    DEFAULT_CLOCK_BOUND,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DB,
    DEFAULT_DEDUP_WINDOW,
    DEFAULT_FUTURE_TOLERANCE,
    DEFAULT_HEARTBEAT_TIMEOUT,
    DEFAULT_LOOKUP_DEADLINE_MS,
    DEFAULT_MAX_DELETION_SHARE,
    DEFAULT_MAX_EVENT_TICKETS,
    DEFAULT_MAX_PAGE_BYTES,
    DEFAULT_MAX_READ_LENGTH,
    DEFAULT_PAGE_DEADLINE,
    DEFAULT_PAGE_SIZE,
    DEFAULT_PASSAGE_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RECONCILE_EVERY,
    DEFAULT_RELAY_PULSE_MS,
    DEFAULT_RETRIES,
    DEFAULT_SYNC_INTERVAL,
    DEFAULT_UPLOAD_BATCH,
    DEFAULT_UPLOAD_INTERVAL,
    DEFAULT_WEB_HOST,
    DEFAULT_WEB_PORT,
    DEFAULT_WINDOW_OVERLAP,
    MAX_BACKUP_KEEP,
    MAX_CLOCK_BOUND,
    MAX_PAGE_SIZE,
    MAX_RELAY_PULSE_MS,
    MAX_RUN_SYNC_INTERVAL,
    MAX_UPLOAD_BATCH,
    MIN_CLOCK_BOUND,
    MIN_RELAY_PULSE_MS,
    MIN_RUN_SYNC_INTERVAL,
    ApiConfig,
    GateConfig,
    JournalConfig,
    LookupConfig,
    MeshConfig,
    OutputsConfig,
    PolicyConfig,
    ReaderConfig,
    RouteConfig,
    RunConfig,
    Secret,
    SyncConfig,
    UploadConfig,
    WebConfig,
)
from scanner.config.names import (
    BARCODE_FORMATS,
    CHECKOUT_POLICIES,
    DECODER_NAMES,
    DEVICE_KEY,
    DIRECTIONS,
    LAYOUT_NAMES,
    PAGE_LANGUAGES,
    PIN_FACTORIES,
    SOURCE_NAMES,
    TERMINATOR_NAMES,
)
from scanner.config.rules import (
    MAX_GATE_ID,
    parse_time_of_day,
)

__all__ = [
    "BARCODE_FORMATS",
    "CHECKOUT_POLICIES",
    "DECODER_NAMES",
    "DEFAULT_API_URL",
    "DEFAULT_BACKUP_AT",
    "DEFAULT_BACKUP_KEEP",
    "DEFAULT_CLOCK_BOUND",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DB",
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_FUTURE_TOLERANCE",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_LOOKUP_DEADLINE_MS",
    "DEFAULT_MAX_DELETION_SHARE",
    "DEFAULT_MAX_EVENT_TICKETS",
    "DEFAULT_MAX_PAGE_BYTES",
    "DEFAULT_MAX_READ_LENGTH",
    "DEFAULT_PAGE_DEADLINE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PASSAGE_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RECONCILE_EVERY",
    "DEFAULT_RELAY_PULSE_MS",
    "DEFAULT_RETRIES",
    "DEFAULT_SYNC_INTERVAL",
    "DEFAULT_UPLOAD_BATCH",
    "DEFAULT_UPLOAD_INTERVAL",
    "DEFAULT_WEB_HOST",
    "DEFAULT_WEB_PORT",
    "DEFAULT_WINDOW_OVERLAP",
    "DEVICE_KEY",
    "DIRECTIONS",
    "ENVIRONMENT",
    "JOURNAL_SUFFIX",
    "LAYOUT_NAMES",
    "MAX_BACKUP_KEEP",
    "MAX_CLOCK_BOUND",
    "MAX_GATE_ID",
    "MAX_PAGE_SIZE",
    "MAX_RELAY_PULSE_MS",
    "MAX_RUN_SYNC_INTERVAL",
    "MAX_UPLOAD_BATCH",
    "MIN_CLOCK_BOUND",
    "MIN_RELAY_PULSE_MS",
    "MIN_RUN_SYNC_INTERVAL",
    "PAGE_LANGUAGES",
    "PIN_FACTORIES",
    "SOURCE_NAMES",
    "TERMINATOR_NAMES",
    "ApiConfig",
    "GateConfig",
    "JournalConfig",
    "LookupConfig",
    "MeshConfig",
    "OutputsConfig",
    "PolicyConfig",
    "ReaderConfig",
    "RouteConfig",
    "RunConfig",
    "Secret",
    "SyncConfig",
    "UploadConfig",
    "WebConfig",
    "database_url",
    "journal_url_beside",
    "load_config",
    "load_config_sources",
    "parse_time_of_day",
]
