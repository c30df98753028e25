"""Statements compiled once into the driver's own SQL, run on a driver connection held
open, for the paths where SQLAlchemy's per-execution work (pool checkout, cache lookup,
result wrapping) would cost more than the database: the ticket lookup, the journal's scan
path, a page of upserts.

Compiling for the engine's dialect keeps these paths portable: the SQL carries the driver's
paramstyle (``?`` for sqlite3, ``%(name)s`` for psycopg), and ``params`` shapes the values
to match, so callers always pass plain tuples in the order they named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Engine, PoolProxiedConnection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from scanner.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIModule

# How long a scan-path read of the ticket store may wait for a lock. WAL readers take no
# lock a writer holds, so this bounds only SQLite's rare reader stalls (WAL recovery, a
# WAL reset): a decision never waits the writers' 30 s behind the sync.
SCAN_BUSY_TIMEOUT_MS = 5
# A read that still met such a stall is tried again this many times, each on a fresh
# connection, before the check fails: a rare stall must cost the visitor milliseconds, not
# a refused scan.
SCAN_BUSY_RETRIES = 3


def describe(exc: BaseException) -> str:
    """A database fault in one line: the driver's error (wrapped by SQLAlchemy or not),
    without the SQL and DETAIL lines some drivers append."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


class DriverSql(NamedTuple):
    sql: str
    # None: the driver takes the values positionally, in the order they were named.
    names: tuple[str, ...] | None

    def params(self, values: Sequence[Any]) -> Any:
        """One execution's parameters from values in the named order."""
        return values if self.names is None else dict(zip(self.names, values, strict=True))

    def many(self, rows: Sequence[Sequence[Any]]) -> Any:
        """An executemany's parameters; positional rows pass through untouched."""
        return rows if self.names is None else [self.params(row) for row in rows]


def compile_for_driver(stmt: ClauseElement, dialect: Dialect,
                       names: tuple[str, ...]) -> DriverSql:
    """``stmt`` as the driver's SQL; its bind parameters must be exactly ``names``."""
    compiled = stmt.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):  # DDL has no parameters to order
        raise TypeError(f"not a statement with parameters: {type(stmt).__name__}")
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    if order is None:
        return DriverSql(str(compiled), names)
    if order != names:  # a dialect numbering binds in its own order
        raise ValueError(f"bind parameters {order} differ from {names}")
    return DriverSql(str(compiled), None)


class HeldConnection:
    """One driver connection kept open across calls, for one thread (or under a lock).

    Checked out through the engine, so its connect hooks ran (WAL and its synchronous on
    SQLite). After any driver fault the connection is dropped and the next call opens a
    fresh one: a database server that restarted must not fail every call until the gate
    restarts.
    """

    def __init__(self, engine: Engine, what: str, *, busy_timeout_ms: int | None = None) -> None:
        self._engine = engine
        self._what = what
        # SQLite only: this connection's own lock wait, set while it is held and put back
        # before it returns to the pool (other users of the pool are writers).
        self._busy_ms = busy_timeout_ms if engine.dialect.name == "sqlite" else None
        self._proxy: PoolProxiedConnection | None = None
        # PEP 249: every driver module has an ``Error`` base for its own faults.
        self.errors: type[DBAPIModule.Error] = engine.dialect.loaded_dbapi.Error

    def get(self) -> Any:
        """The driver's connection (sqlite3.Connection, psycopg.Connection, ...)."""
        if self._proxy is None:
            try:
                self._proxy = self._engine.raw_connection()
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot open {self._what}: {describe(exc)}") from exc
            driver = self._proxy.driver_connection
            if self._busy_ms is not None and driver is not None:
                driver.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        return self._proxy.driver_connection

    def execute(self, stmt: DriverSql, values: Sequence[Any], *,
                commit: bool = False) -> list[Any]:
        """Run one statement and end its transaction: commit a write, roll back a read (so
        a server's snapshot is never pinned; free when sqlite3 opened none). Returns the
        rows, if any. A driver fault (``self.errors``) drops the connection and propagates
        for the caller to translate."""
        return self._run(stmt, values, commit=commit)[0]

    def write(self, stmt: DriverSql, values: Sequence[Any]) -> int:
        """Run one write and commit it; returns the rows it changed."""
        return self._run(stmt, values, commit=True)[1]

    def _run(self, stmt: DriverSql, values: Sequence[Any], *,
             commit: bool) -> tuple[list[Any], int]:
        retried, stalls = False, 0
        while True:
            conn = self.get()
            try:
                return _run(conn, stmt, values, commit=commit)
            except self.errors as exc:
                lost = self._engine.dialect.is_disconnect(exc, conn, None)
                self.drop()
                if not commit and self._busy_ms is not None and _is_busy(exc) \
                        and stalls < SCAN_BUSY_RETRIES:
                    stalls += 1
                    continue
                # A read that found its connection closed by the server (a restart) runs
                # once more on a fresh one. A write does not: it may have committed before
                # the connection died, and the caller must know it failed.
                if commit or not lost or retried:
                    raise
                retried = True

    def drop(self) -> None:
        """Discard the connection (its open transaction, if any, is rolled back)."""
        if self._proxy is not None:
            proxy, self._proxy = self._proxy, None
            proxy.invalidate()

    def close(self) -> None:
        """Return the connection to the engine's pool."""
        if self._proxy is not None:
            proxy, self._proxy = self._proxy, None
            if self._busy_ms is not None:
                proxy.invalidate()  # not back to the pool with the short lock wait
                return
            proxy.close()


def _is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" (SQLITE_BUSY), which a short lock wait gives up on."""
    return "locked" in str(exc) or "busy" in str(exc)


def _run(conn: Any, stmt: DriverSql, values: Sequence[Any], *,
         commit: bool) -> tuple[list[Any], int]:
    cursor = conn.cursor()
    try:
        cursor.execute(stmt.sql, stmt.params(values))
        rows = cursor.fetchall() if cursor.description is not None else []
        changed = cursor.rowcount
    finally:
        cursor.close()
    if commit:
        conn.commit()
    else:
        conn.rollback()
    return rows, changed
