"""Engines from database URLs, tuned alike for the ticket store and the journal.

SQLite runs in WAL mode so a writer never blocks the gate's reads, with the ``synchronous``
each database asks for; a database server gets a pre-ping. Every engine is watched for
damage (``faults.watch``), and a schema is prepared (``prepare``) with its faults as one
line naming the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from scanner.db import faults
from scanner.db.driver_sql import describe
from scanner.errors import StoreError

# Writers (the sync, the upload worker) may wait this long for another writer's commit.
# The scan path never does: the journal has its own database, and the store's scan-path
# reads are WAL reads (see SCAN_BUSY_TIMEOUT_MS in driver_sql).
WRITER_BUSY_TIMEOUT_S = 30
PREPARE_ATTEMPTS = 3
PREPARE_RETRY_S = 0.2


def open_engine(url: str, synchronous: str, kind: str) -> tuple[Engine, str]:
    """An engine for ``url`` (a ``kind`` of database: ``faults.STORE`` or ``JOURNAL``) and
    the name errors give it (the file, or the URL without its password)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError for garbage
        raise StoreError(f"database URL is not valid: {exc}") from None
    name = faults.database_name(parsed)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create database folder {folder}: "
                                 f"{exc.strerror}") from exc
        kwargs["connect_args"] = {"check_same_thread": False,
                                  "timeout": WRITER_BUSY_TIMEOUT_S}
    else:
        # A database server can restart under a running gate: test each connection as it
        # leaves the pool (one round trip, never on the scan path, whose connections are
        # held) so a dead one is replaced, with every other connection from before.
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # a missing driver, say
        raise StoreError(f"cannot open database {name}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        _tune_sqlite(engine, synchronous)
    faults.watch(engine, kind)
    return engine, name


def prepare(engine: Engine, name: str, migrate: Callable[[], None]) -> None:
    """Run ``migrate``; any fault is one StoreError naming the database, the engine closed.

    Two processes starting on a fresh install (the sync and upload services) may create the
    same tables at once, and SQLite runs DDL outside a transaction: the loser's "already
    exists" is retried, and the retry finds the schema (each step re-reads the version).
    """
    for attempt in range(PREPARE_ATTEMPTS):
        try:
            migrate()
            return
        except SQLAlchemyError as exc:
            if attempt + 1 < PREPARE_ATTEMPTS:
                time.sleep(PREPARE_RETRY_S)
                continue
            engine.dispose()
            # describe(): not every SQLAlchemyError wraps a driver error (``orig``).
            raise StoreError(f"cannot prepare database {name}: {describe(exc)}") from exc
        except StoreError:
            engine.dispose()
            raise


def _tune_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={WRITER_BUSY_TIMEOUT_S * 1000}")
        cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def sqlite_file_missing(url: str) -> bool:
    path = sqlite_file(url)
    return path is not None and not path.exists()


def same_database(a: str, b: str) -> bool:
    """Whether two URLs name one database (in-memory SQLite ones never do)."""
    left, right = make_url(a), make_url(b)
    if left.get_backend_name() == right.get_backend_name() == "sqlite":
        if not left.database or not right.database or ":memory:" in (left.database,
                                                                     right.database):
            return False
        return Path(left.database).expanduser().resolve() == \
            Path(right.database).expanduser().resolve()
    return left.render_as_string(hide_password=False) == \
        right.render_as_string(hide_password=False)
