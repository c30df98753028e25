"""Engine construction and schema migrations for the local store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from scanner.errors import StoreError
from scanner.store import migrations
from scanner.store.schema import SCHEMA_VERSION, meta, metadata


def make_engine(url: str, *, synchronous: str = "FULL") -> Engine:
    """An engine for ``url``, its schema created or migrated to ``SCHEMA_VERSION``.

    SQLite runs in WAL mode so the sync writer never blocks the gate's reads, with
    ``synchronous=FULL`` so a committed scan survives power loss (the WAL is fsync'd on
    every commit).
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError for garbage
        raise StoreError(f"database URL is not valid: {exc}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create database folder {folder}: "
                                 f"{exc.strerror}") from None
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # A database server can restart under a running gate: test each connection as it
        # leaves the pool (one round trip, never on the scan path, whose connections are
        # held) so a dead one is replaced, with every other connection from before.
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # a missing driver, say
        raise StoreError(f"cannot open database {parsed.render_as_string()}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        _tune_sqlite(engine, synchronous)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot prepare database {parsed.render_as_string()}: "
                         f"{exc.__class__.__name__}: {exc.orig or exc}") from None
    return engine


def _tune_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def schema_version(engine: Engine) -> int:
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "meta"):
            return 0
        row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row[0]) if row else 0


def migrate(engine: Engine) -> None:
    """Create a fresh database at the current version, or step an older one up to it."""
    current = schema_version(engine)
    if current > SCHEMA_VERSION:
        raise StoreError(f"database schema {current} is newer than this gate-scanner "
                         f"({SCHEMA_VERSION}); upgrade the software")
    if current == SCHEMA_VERSION:
        return
    with engine.begin() as conn:
        if current == 0 and not engine.dialect.has_table(conn, "tickets"):
            metadata.create_all(conn)
        else:
            for version in range(current + 1, SCHEMA_VERSION + 1):
                migrations.STEPS[version](conn)
        migrations.set_version(conn, SCHEMA_VERSION)
