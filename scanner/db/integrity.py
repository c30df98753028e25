"""``gate db check``'s checks: is a database sound, page by page and JSON value by value?

SQLite checks its own pages (``PRAGMA integrity_check``, or the cheaper ``quick_check``
that skips index-to-table cross checks); other dialects have no such statement, so there
the report says so and only the stored JSON is checked (it is read in full, so a table a
server cannot read fails too). Which tables hold JSON is each database's to say; the check
of both together is ``scanner.databases.check``. Nothing here writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Column, Engine, Table, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from scanner.db import faults
from scanner.db.driver_sql import describe
from scanner.db.identity import ACCEPT, Identity
from scanner.db.migrations import Schema
from scanner.errors import CorruptStore

# Problems listed per database; past this many, the count says the rest.
MAX_PROBLEMS = 10
_CHUNK = 5000
# (table, key column, JSON column): a column of JSON text, NULL allowed, and its row's key.
JsonColumn = tuple[Table, Column[Any], Column[Any]]


@dataclass
class Finding:
    kind: str                                   # faults.STORE or faults.JOURNAL
    name: str                                   # its file, or URL without password
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        head = f"{self.kind} {self.name}: "
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        if self.ok:
            return head + "ok" + extra
        shown = self.problems[:MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        return (head + "DAMAGED: " + "; ".join(shown) + (f"; and {more} more" if more else "")
                + f"; {faults.remedy(self.kind, self.name)}")

    def to_json(self) -> dict[str, Any]:
        return {"database": self.kind, "name": self.name, "ok": self.ok,
                "problems": self.problems, "notes": self.notes}


class Opened:
    """One database opened for checking (no WAL switch, no schema change)."""

    def __init__(self, url: str, kind: str) -> None:
        parsed = make_url(url)
        self.finding = Finding(kind, faults.database_name(parsed))
        self.engine: Engine | None = None
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite and parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database).expanduser()
            if not path.exists():
                self.finding.notes.append("no such file")
                return
            self.engine = create_engine("sqlite://",
                                        creator=lambda: sqlite3.connect(path))
        else:
            self.engine = create_engine(url)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def inspect(url: str, schema: Schema, quick: bool,
            content: Callable[[Engine, Finding], None]) -> Opened:
    """Open the ``schema`` database at ``url`` read-only, check its pages and, once it is
    created, its ``content`` (a database's own checks: ``json_columns``, ``count_rows``)."""
    opened = Opened(url, schema.kind)
    if opened.engine is None:
        return opened
    finding = opened.finding
    if opened.sqlite:
        _pages(opened.engine, finding, quick)
    else:
        finding.notes.append(f"integrity check not supported on "
                             f"{opened.engine.dialect.name}: use the server's own tools")
    try:
        version = schema.version_of(opened.engine)
    except SQLAlchemyError as exc:
        finding.problems.append(f"schema version unreadable: {describe(exc)}")
        return opened
    except CorruptStore:  # read_version names this engine "sqlite://"; the finding says it
        finding.problems.append(f"schema version unreadable: {schema.meta.name}."
                                f"schema_version is not a version number")
        return opened
    if not version:
        finding.notes.append("empty: not created yet")
    elif version > schema.latest:  # its tables may differ from the ones checked below
        finding.notes.append(f"schema {version} is newer than this gate-scanner "
                             f"({schema.latest}), which refuses to open it: upgrade the "
                             f"software")
    else:
        content(opened.engine, finding)
    return opened


def _pages(engine: Engine, finding: Finding, quick: bool) -> None:
    pragma = "quick_check" if quick else "integrity_check"
    try:
        with engine.connect() as conn:
            rows = [r[0] for r in conn.exec_driver_sql(f"PRAGMA {pragma}({MAX_PROBLEMS})")]
    except SQLAlchemyError as exc:
        finding.problems.append(describe(exc))
        return
    if rows != ["ok"]:
        finding.problems.extend(line for row in rows for line in str(row).splitlines()
                                if line and not line.startswith("***"))
    else:
        finding.notes.append(pragma)


def json_columns(engine: Engine, finding: Finding, columns: Sequence[JsonColumn]) -> None:
    """Every value of each JSON column parses."""
    checked = 0
    for table, key, column in columns:
        bad: list[str] = []
        try:
            for ident, text in _stream(engine, table, key, column):
                checked += 1
                if not _parses(text):
                    bad.append(str(ident))
        except SQLAlchemyError as exc:
            finding.problems.append(f"{table.name} unreadable: {describe(exc)}")
            continue
        if bad:
            finding.problems.append(f"{table.name}.{column.name}: {len(bad)} row(s) not JSON "
                                    f"(first: {bad[0]!r})")
    finding.notes.append(f"{checked} JSON values")


def json_keys(engine: Engine, finding: Finding, table: Table, prefix: str) -> None:
    """Every value of a key/value ``table`` whose key starts with ``prefix`` parses."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(table.c.key, table.c.value).where(
                table.c.key.startswith(prefix, autoescape=True))).all()
    except SQLAlchemyError as exc:
        finding.problems.append(f"{table.name} unreadable: {describe(exc)}")
        return
    finding.problems.extend(f"{table.name} {key!r} not JSON" for key, value in rows
                            if not _parses(value))


def _stream(engine: Engine, table: Table, key: Column[Any],
            column: Column[Any]) -> Iterator[tuple[Any, str]]:
    """Every non-NULL value of ``column`` with its row's key, a chunk per query."""
    last: Any = None
    while True:
        query = select(key, column).where(column.is_not(None)).order_by(key).limit(_CHUNK)
        if last is not None:
            query = query.where(key > last)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield from ((row[0], row[1]) for row in rows)
        last = rows[-1][0]


def _parses(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def count_rows(engine: Engine | None, finding: Finding, column: Column[Any],
               noun: str) -> None:
    """Read every row of ``column``'s table once (a server's table is then read in full)
    and note how many ``noun``s it holds."""
    if engine is None:
        return
    table = column.table
    try:
        with engine.connect() as conn:
            if conn.dialect.has_table(conn, table.name):
                rows = sum(1 for _ in conn.execute(select(column)))
                finding.notes.append(f"{rows} {noun}(s)")
    except SQLAlchemyError as exc:
        finding.problems.append(f"{table.name} unreadable: {describe(exc)}")


def match(store: Opened, journal: Opened, identity: Identity) -> None:
    """Whether the journal is the one the store recorded (``identity``)."""
    if store.engine is None or not store.finding.ok or not journal.finding.ok:
        return
    try:
        known = identity.known_journal(store.engine)
        found = identity.journal_id(journal.engine) if journal.engine else None
    except SQLAlchemyError as exc:
        journal.finding.problems.append(f"journal id unreadable: {describe(exc)}")
        return
    if known is not None and found != known:
        journal.finding.problems.append(
            f"not the journal the store recorded ({known}; this one: {found or 'none'}); "
            f"point journal_db at it, or accept this one: {ACCEPT}")
