"""``gate db check``: is each database sound, page by page and JSON column by JSON column?

SQLite checks its own pages (``PRAGMA integrity_check``, or the cheaper ``quick_check``
that skips index-to-table cross checks); other dialects have no such statement, so there
the report says so and only the stored JSON is checked (it is read in full, so a table a
server cannot read fails too). Nothing is written, except the store's damage marker
(``faults.mark_damaged``), set or cleared by what was found.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Column, Engine, Table, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from scanner.errors import CorruptStore
from scanner.journal.schema import journal, journal_meta
from scanner.store import faults, identity, migrations
from scanner.store.driver_sql import describe
from scanner.store.schema import device_settings, meta, sync_state, tickets
from scanner.store.sync_state import HELD_KEY_PREFIX

# Problems listed per database; past this many, the count says the rest.
MAX_PROBLEMS = 10
_CHUNK = 5000
# (table, key column, JSON column) of the ticket store; NULL is allowed in each.
_JSON_COLUMNS = ((device_settings, device_settings.c.key, device_settings.c.value),
                 (sync_state, sync_state.c.event_id, sync_state.c.full_anchor),
                 (tickets, tickets.c.id, tickets.c.price_category),
                 (tickets, tickets.c.id, tickets.c.entry))


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


def check(store_url: str, journal_url: str, *, quick: bool = False) -> list[Finding]:
    """One finding per database (one in all when both share a database)."""
    same = make_url(store_url) == make_url(journal_url)
    store = _inspect(store_url, faults.STORE, quick)
    found = [store.finding]
    if not same:
        journal_db = _inspect(journal_url, faults.JOURNAL, quick)
        found.append(journal_db.finding)
        _match(store, journal_db)
        journal_db.close()
    else:
        _journal_rows(store.engine, store.finding)
    if store.finding.ok:
        faults.clear_damaged(store.finding.name)
    else:
        faults.mark_damaged(store.finding.name, store.finding.problems[0])
    store.close()
    return found


class _Opened:
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


def _inspect(url: str, kind: str, quick: bool) -> _Opened:
    opened = _Opened(url, kind)
    if opened.engine is None:
        return opened
    finding = opened.finding
    if opened.sqlite:
        _pages(opened.engine, finding, quick)
    else:
        finding.notes.append(f"integrity check not supported on "
                             f"{opened.engine.dialect.name}: use the server's own tools")
    table = meta if kind == faults.STORE else journal_meta
    try:
        with opened.engine.connect() as conn:
            version = migrations.read_version(conn, table)
    except SQLAlchemyError as exc:
        finding.problems.append(f"schema version unreadable: {describe(exc)}")
        return opened
    except CorruptStore:  # read_version names this engine "sqlite://"; the finding says it
        finding.problems.append(f"schema version unreadable: {table.name}.schema_version "
                                f"is not a number")
        return opened
    if not version:
        finding.notes.append("empty: not created yet")
    elif kind == faults.STORE:
        _store_json(opened.engine, finding)
    else:
        _journal_rows(opened.engine, finding)
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


def _store_json(engine: Engine, finding: Finding) -> None:
    checked = 0
    for table, key, column in _JSON_COLUMNS:
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
    try:
        with engine.connect() as conn:
            held = conn.execute(select(meta.c.key, meta.c.value).where(
                meta.c.key.startswith(HELD_KEY_PREFIX, autoescape=True))).all()
    except SQLAlchemyError as exc:
        finding.problems.append(f"meta unreadable: {describe(exc)}")
        return
    finding.problems.extend(f"meta {key!r} not JSON" for key, value in held
                            if not _parses(value))
    finding.notes.append(f"{checked} JSON values")


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


def _journal_rows(engine: Engine | None, finding: Finding) -> None:
    """Read every scan once (a server's table is then read in full)."""
    if engine is None:
        return
    try:
        with engine.connect() as conn:
            if conn.dialect.has_table(conn, journal.name):
                scans = sum(1 for _ in conn.execute(select(journal.c.seq)))
                finding.notes.append(f"{scans} scan(s)")
    except SQLAlchemyError as exc:
        finding.problems.append(f"journal unreadable: {describe(exc)}")


def _match(store: _Opened, journal_db: _Opened) -> None:
    """Whether the journal is the one the store recorded (``identity``)."""
    if store.engine is None or not store.finding.ok or not journal_db.finding.ok:
        return
    try:
        known = identity.known_journal(store.engine)
        found = identity.journal_id(journal_db.engine) if journal_db.engine else None
    except SQLAlchemyError as exc:
        journal_db.finding.problems.append(f"journal id unreadable: {describe(exc)}")
        return
    if known is not None and found != known:
        journal_db.finding.problems.append(
            f"not the journal the store recorded ({known}; this one: {found or 'none'}); "
            f"point journal_db at it, or accept this one: {identity.ACCEPT}")
