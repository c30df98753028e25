"""Writing pages of tickets: a dialect-aware upsert where the newer ``updatedAt`` wins.

Rules, the same on every backend:

- a ticket not in the store is inserted;
- a stored ticket takes the incoming copy's fields only if the copy is as new or newer
  (``updated_at`` compared as text; normalized ISO strings sort chronologically), so a
  stale copy from an overlapping window never undoes a newer one;
- a row is touched only when its data changes (a newer copy), so the returned count says
  how many tickets really changed, a delta re-reading its overlap reports +0, and a
  reconcile of unchanged tickets writes no ticket row at all (what it saw is marked apart,
  ``scanner.store.seen``, also for a copy older than the stored one);
- a stored ``updated_at`` later than ``trusted_until`` (server time plus a tolerance, given
  by the caller) is not trusted: any incoming copy replaces it, so a ticket stamped far in
  the future cannot pin its row against a later cancellation stamped normally;
- ``overwrite`` (the reconciling full sync) takes the incoming copy whatever its
  ``updatedAt``: the server's current copy is the truth; a row equal to it is left alone.

SQLite and PostgreSQL use ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``, compiled once per
process and dialect with a mark where ``trusted_until`` goes (compiling costs tens of
milliseconds of CPU, and ``trusted_until`` changes with every run), each run writing its own
into the SQL text, and run with the driver's executemany on plain tuples: building per-row
dicts for SQLAlchemy cost more than SQLite's own work on a million-ticket sync. The sync
builds those tuples straight from the server's documents (``stored_row``), with no Ticket in
between. Other dialects fall back to select, insert, update with the same rules.

An indexed column a statement assigns has its index entry rewritten, even to the same
value. The upsert therefore leaves the indexed columns out of its SET, and a first
statement changes ``barcode`` and ``event_id`` only on the rows where they differ, by the
same rules, run only for the rows one read of the page's ids finds stored with other keys.
On a delta that changes a status across a large store, this writes less than half the pages
to the WAL and the disk the journal's fsync shares (an SD card's wear too), and costs the
sync less CPU.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Engine, bindparam, case, literal_column, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from scanner.db.driver_sql import DriverSql, compile_for_driver
from scanner.db.keyed import conflict_insert, lock_for_write
from scanner.store.schema import tickets
from scanner.tickets import Ticket, admissible_values, malformed_ticket

# Ticket's fields are declared in the same order as the table's columns (checked below).
DATA_COLUMNS: tuple[str, ...] = tuple(c.name for c in tickets.c)
assert Ticket._fields == DATA_COLUMNS, "Ticket fields and ticket columns diverge"
assert DATA_COLUMNS.index("updated_at") == 8  # the pager's anchor reads rows by index
PRICE_CATEGORY = DATA_COLUMNS.index("price_category")
ENTRY = DATA_COLUMNS.index("entry")
# Columns in an index besides the key: assigned only when they change (module docstring).
KEY_COLUMNS = ("barcode", "event_id")
BARCODE, EVENT_ID = (DATA_COLUMNS.index(name) for name in KEY_COLUMNS)
# SQLite: the stored rows of a page's ids, given as one JSON array (``Upserter._stored``).
_STORED_ROWS_JSON = ("SELECT " + ", ".join(f't."{name}"' for name in DATA_COLUMNS)
                     + " FROM json_each(?) AS j JOIN tickets AS t ON t.id = j.value")
# The values the keys' statement binds, by their index in a data row.
_KEY_BINDS = {f"in_{name}": DATA_COLUMNS.index(name)
              for name in ("id", *KEY_COLUMNS, "updated_at")}

Row = tuple[Any, ...]
_dumps = orjson.dumps


# ``trusted_until`` is written into the SQL (one statement per run, not a value per row);
# only our own canonical timestamps may go there.
_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# Where a compiled statement's ``trusted_until`` goes: a run replaces it with its own.
_TRUSTED_MARK = "'trusted-until'"


def data_row(ticket: Ticket) -> Row:
    """The ticket's column values in table order, JSON fields encoded, as ``write`` takes."""
    t = ticket
    # Slices of the tuple: a million attribute reads would cost more than SQLite's work.
    price_category, entry = t[PRICE_CATEGORY], t[ENTRY]
    return (*t[:PRICE_CATEGORY],
            None if price_category is None else orjson.dumps(price_category).decode(),
            *t[PRICE_CATEGORY + 1:ENTRY],
            orjson.dumps(entry).decode() if entry else None, t[ENTRY + 1])


def stored_row(doc: Any) -> tuple[Row, str | None]:
    """``parse_ticket`` for the store: the document's data columns as ``data_row`` gives
    them, and the line naming its bad fields if it is not admissible. Rows index as
    Ticket does (``row[0]`` the id, ``row[8]`` its ``updatedAt``), which is all the pager
    reads of them."""
    values = admissible_values(doc)
    if values is None:
        ticket, problem = malformed_ticket(doc)
        return data_row(ticket), problem
    price_category, entry = values[PRICE_CATEGORY], values[ENTRY]
    if price_category is not None:
        values[PRICE_CATEGORY] = _dumps(price_category).decode()
    values[ENTRY] = _dumps(entry).decode() if entry else None
    return tuple(values), None


def row_ticket(row: Sequence[Any]) -> Ticket:
    """The inverse of ``data_row``."""
    values = list(row)
    if values[PRICE_CATEGORY] is not None:
        values[PRICE_CATEGORY] = orjson.loads(values[PRICE_CATEGORY])
    values[ENTRY] = tuple(orjson.loads(values[ENTRY])) if values[ENTRY] else ()
    return Ticket(*values)


def _repeats_an_id(rows: Sequence[Row]) -> bool:
    return len({row[0] for row in rows}) < len(rows)


class _Rules(NamedTuple):
    values: dict[str, ColumnElement[Any]]  # the SET clause
    changes: ColumnElement[bool]           # the WHERE: the row changes at all
    as_new: ColumnElement[bool]            # the incoming copy's fields win


def _trusted_sql(trusted_until: str) -> str:
    """``trusted_until`` as an SQL literal, refused unless it is a canonical timestamp."""
    if not _CANONICAL.fullmatch(trusted_until):
        raise ValueError(f"trusted_until is not a canonical timestamp: {trusted_until!r}")
    return f"'{trusted_until}'"


def _merge_rules(incoming: Callable[[str], ColumnElement[Any]], trusted: str | None,
                 overwrite: bool) -> _Rules:
    """SET clause and WHERE of an update of the stored row by an ``incoming`` copy;
    ``trusted`` is the SQL of ``trusted_until`` (``_trusted_sql`` or the mark)."""
    stored = tickets.c
    as_new: ColumnElement[bool] = incoming("updated_at") >= stored.updated_at
    if trusted is not None:
        as_new = or_(as_new, stored.updated_at > literal_column(trusted))
    if overwrite:
        as_new = true()
    values: dict[str, ColumnElement[Any]] = {
        name: case((as_new, incoming(name)), else_=stored[name])
        for name in DATA_COLUMNS if name != "id"}
    # The reconcile takes the server's copy, but writes only a row that differs from it: an
    # unchanged ticket, most of a reconcile, is not written at all.
    changes: ColumnElement[bool] = or_(*(stored[name].is_distinct_from(incoming(name))
                                         for name in DATA_COLUMNS if name != "id")) \
        if overwrite else incoming("updated_at") > stored.updated_at
    if trusted is not None and not overwrite:
        changes = or_(changes, as_new & (incoming("updated_at") != stored.updated_at))
    return _Rules(values, changes, as_new)


class _Statements(NamedTuple):
    """A run's compiled upserts: ``lean`` after ``keys``, or ``full`` alone."""
    full: DriverSql
    lean: DriverSql
    keys: str                              # the key columns' UPDATE, driver SQL
    key_params: Callable[[Sequence[Row]], Any]

    def trusting(self, trusted_until: str) -> _Statements:
        """These statements with ``trusted_until`` in place of the mark."""
        literal = _trusted_sql(trusted_until)
        return self._replace(full=self.full._replace(sql=self.full.sql.replace(_TRUSTED_MARK,
                                                                              literal)),
                             lean=self.lean._replace(sql=self.lean.sql.replace(_TRUSTED_MARK,
                                                                              literal)),
                             keys=self.keys.replace(_TRUSTED_MARK, literal))


# (the dialect's kind, paramstyle and server version, trusted_until given, overwrite) ->
# the statements compiled with the mark; shared by every store of the process.
_compiled: dict[tuple[Any, ...], _Statements] = {}


class Upserter:
    """Writes data rows (``data_row``, ``stored_row``) into ``tickets`` within a caller's
    transaction."""

    def __init__(self, engine: Engine, *, force_generic: bool = False) -> None:
        self._dialect = engine.dialect
        self._insert = None if force_generic else conflict_insert(self._dialect)
        # (trusted_until, overwrite) -> compiled statement; a run uses one or two.
        self._driver: dict[tuple[str | None, bool], _Statements] = {}
        self._update: dict[tuple[str | None, bool], Any] = {}

    def write(self, conn: Connection, rows: Sequence[Row], *,
              trusted_until: str | None = None, overwrite: bool = False) -> int:
        """Upsert ``rows``; returns how many tickets were inserted or changed."""
        if not rows:
            return 0
        if self._insert is None:
            return self._write_generic(conn, rows, (trusted_until, overwrite))
        mode = (trusted_until, overwrite)
        compiled = self._driver.get(mode)
        if compiled is None:
            if len(self._driver) > 8:  # one entry per run: keep the cache small
                self._driver.clear()
            compiled = self._driver[mode] = self._statements(*mode)
        if _repeats_an_id(rows):
            # The keys' statement would judge the second copy against the row before the
            # first was written; which copy is left to the statement's rules alone.
            upsert = compiled.full
        else:
            stored = self._stored(conn, rows)
            rows = [row for row in rows if stored.get(row[0]) != row]
            if not rows:
                return 0
            moved = [row for row in rows if (old := stored.get(row[0])) is not None
                     and (old[BARCODE] != row[BARCODE] or old[EVENT_ID] != row[EVENT_ID])]
            if moved:
                conn.exec_driver_sql(compiled.keys, compiled.key_params(moved))
            upsert = compiled.lean
        return max(conn.exec_driver_sql(upsert.sql, upsert.many(rows)).rowcount, 0)

    def split_unchanged(self, conn: Connection,
                        rows: list[Row]) -> tuple[list[Row], list[str]]:
        """``rows`` that differ from their stored copy, and the ids of those equal to it
        (which no write would change), as the store reads now; all of them differ when an
        id repeats. A writer in slices writes only the first (``write`` reads them again
        under the lock)."""
        if not rows or self._insert is None or _repeats_an_id(rows):
            return rows, []
        stored = self._stored(conn, rows)
        differ: list[Row] = []
        same: list[str] = []
        for row in rows:
            if stored.get(row[0]) == row:
                same.append(row[0])
            else:
                differ.append(row)
        return differ, same

    def _stored(self, conn: Connection, rows: Sequence[Row]) -> dict[str, Row]:
        """The stored copies of ``rows``' tickets by id, read under the write lock so they
        are what the statements after it change (``keyed.lock_for_write``). One read of
        the page's ids costs less than the statements it spares: the upsert of a row equal
        to its copy (most of a reconcile) and the keys' UPDATE stepped per row."""
        lock_for_write(conn)
        ids = [row[0] for row in rows]
        if conn.dialect.name == "sqlite":
            found = conn.exec_driver_sql(_STORED_ROWS_JSON, (_dumps(ids).decode(),))
        else:
            found = conn.execute(select(tickets).where(tickets.c.id.in_(ids))
                                 .with_for_update())
        return {row[0]: tuple(row) for row in found}

    def _statements(self, trusted_until: str | None, overwrite: bool) -> _Statements:
        """A run's statements: compiled once per dialect, ``trusted_until`` put in."""
        dialect = self._dialect
        key = (type(dialect), dialect.paramstyle, dialect.server_version_info,
               trusted_until is not None, overwrite)
        compiled = _compiled.get(key)
        if compiled is None:
            compiled = _compiled[key] = self._compile(trusted_until is not None, overwrite)
        return compiled if trusted_until is None else compiled.trusting(trusted_until)

    def _compile(self, trusted: bool, overwrite: bool) -> _Statements:
        insert = self._insert
        assert insert is not None
        values: dict[str, ColumnElement[Any]] = {name: bindparam(name) for name in DATA_COLUMNS}
        mark = _TRUSTED_MARK if trusted else None

        def upsert(leave_out: tuple[str, ...]) -> DriverSql:
            stmt = insert(tickets).values(values)
            rules = _merge_rules(lambda name: stmt.excluded[name], mark, overwrite)
            set_ = {k: v for k, v in rules.values.items() if k not in leave_out}
            stmt = stmt.on_conflict_do_update(index_elements=[tickets.c.id], set_=set_,
                                              where=rules.changes)
            return compile_for_driver(stmt, self._dialect, DATA_COLUMNS)

        lean = upsert(KEY_COLUMNS)
        rules = _merge_rules(lambda name: bindparam(f"in_{name}"), mark, overwrite)
        stored = tickets.c
        differs = or_(*(stored[name].is_distinct_from(bindparam(f"in_{name}"))
                        for name in KEY_COLUMNS))
        # A reconcile's copy wins whenever it differs, and here its keys do: its ``changes``
        # (every column compared) would only bind the whole row again.
        where = (rules.as_new, differs) if overwrite else (rules.changes, rules.as_new, differs)
        keys = (tickets.update()
                .where(stored.id == bindparam("in_id"), *where)
                .values({name: bindparam(f"in_{name}") for name in KEY_COLUMNS})
                .compile(dialect=self._dialect))
        # Positional drivers: a bind used twice is two positions, picked from the row.
        pick = itemgetter(*(_KEY_BINDS[name] for name in keys.positiontup or ())) \
            if keys.positional else None

        def key_params(rows: Sequence[Row]) -> Any:
            if pick is None:
                return [{n: r[i] for n, i in _KEY_BINDS.items()} for r in rows]
            return [pick(r) for r in rows]

        full = upsert(())
        # (overwrite takes every copy: no trusted_until in its SQL)
        assert not trusted or overwrite or all(_TRUSTED_MARK in sql
                                               for sql in (full.sql, lean.sql))
        return _Statements(full, lean, str(keys), key_params)

    def _write_generic(self, conn: Connection, rows: Sequence[Row],
                       mode: tuple[str | None, bool]) -> int:
        update = self._update.get(mode)
        if update is None:
            trusted_until, overwrite = mode
            rules = _merge_rules(lambda name: bindparam(f"in_{name}"),
                                 None if trusted_until is None else _trusted_sql(trusted_until),
                                 overwrite)
            update = self._update[mode] = (tickets.update()
                                           .where(tickets.c.id == bindparam("in_id"),
                                                  rules.changes)
                                           .values(rules.values))
        newest: dict[str, Row] = {}
        for row in rows:  # the same id twice in one batch: keep the newer copy
            seen = newest.get(row[0])
            if seen is None or row[8] >= seen[8]:
                newest[row[0]] = row
        existing = set(conn.scalars(select(tickets.c.id).where(
            tickets.c.id.in_(list(newest)))))
        fresh = [dict(zip(DATA_COLUMNS, r, strict=True)) for i, r in newest.items()
                 if i not in existing]
        changed = 0
        if fresh:
            conn.execute(tickets.insert(), fresh)
            changed += len(fresh)
        stale = [{f"in_{c}": v for c, v in zip(DATA_COLUMNS, r, strict=True)}
                 for i, r in newest.items() if i in existing]
        if stale:
            changed += max(conn.execute(update, stale).rowcount, 0)
        return changed
