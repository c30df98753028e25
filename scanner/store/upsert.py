"""Writing pages of tickets: a dialect-aware upsert where the newer ``updatedAt`` wins.

Rules, the same on every backend:

- a ticket not in the store is inserted;
- a stored ticket takes the incoming copy's fields only if the copy is as new or newer
  (``updated_at`` compared as text; normalized ISO strings sort chronologically), so a
  stale copy from an overlapping window never undoes a newer one;
- ``sync_gen`` only grows: a full sync marks every ticket it saw, even a copy older than the
  stored one (the ticket still exists, so the reconciling sweep must keep it);
- a row is touched only when something changes (a newer copy or a higher generation), so
  the returned count says how many tickets really changed and a delta re-reading its
  overlap reports +0.

SQLite and PostgreSQL use ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``, compiled once and
run with the driver's executemany on plain tuples: building per-row dicts for SQLAlchemy
cost more than SQLite's own work on a million-ticket sync. Other dialects fall back to
select, insert, update with the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, case, or_, select
from sqlalchemy.sql.elements import ColumnElement

from scanner.store.driver_sql import DriverSql, compile_for_driver
from scanner.store.keyed import conflict_insert
from scanner.store.schema import tickets
from scanner.tickets import Ticket

# Ticket's fields are declared in the same order as the table's columns (checked below).
COLUMNS: tuple[str, ...] = tuple(c.name for c in tickets.c)
DATA_COLUMNS = COLUMNS[:-1]
assert COLUMNS[-1] == "sync_gen"
assert Ticket._fields == DATA_COLUMNS, "Ticket fields and ticket columns diverge"
PRICE_CATEGORY = DATA_COLUMNS.index("price_category")
ENTRY = DATA_COLUMNS.index("entry")

Row = tuple[Any, ...]


def ticket_row(ticket: Ticket, generation: int) -> Row:
    """The ticket's column values in table order, JSON fields encoded."""
    t = ticket
    return (t.id, t.barcode, t.event_id, t.status, t.ticket_type_id, t.ticket_name,
            t.seller_id, t.created_at, t.updated_at, t.name, t.price_category_id,
            t.category_ref, t.parent_event_id,
            None if t.price_category is None else orjson.dumps(t.price_category).decode(),
            t.area, t.row, t.seat, t.discount_id, t.discount,
            orjson.dumps(t.entry).decode() if t.entry else None,
            t.slot_start, generation)


def row_ticket(row: Sequence[Any]) -> Ticket:
    """The inverse of ``ticket_row`` for the data columns."""
    values = list(row)
    if values[PRICE_CATEGORY] is not None:
        values[PRICE_CATEGORY] = orjson.loads(values[PRICE_CATEGORY])
    values[ENTRY] = tuple(orjson.loads(values[ENTRY])) if values[ENTRY] else ()
    return Ticket(*values)


def _merge_rules(incoming: Callable[[str], ColumnElement[Any]]
                 ) -> tuple[dict[str, ColumnElement[Any]], ColumnElement[bool]]:
    """SET clause and WHERE of an update of the stored row by an ``incoming`` copy."""
    stored = tickets.c
    as_new = incoming("updated_at") >= stored.updated_at
    values: dict[str, ColumnElement[Any]] = {
        name: case((as_new, incoming(name)), else_=stored[name])
        for name in DATA_COLUMNS if name != "id"}
    values["sync_gen"] = case((incoming("sync_gen") > stored.sync_gen, incoming("sync_gen")),
                              else_=stored.sync_gen)
    changes = or_(incoming("updated_at") > stored.updated_at,
                  incoming("sync_gen") > stored.sync_gen)
    return values, changes


class Upserter:
    """Writes rows built by ``ticket_row`` into ``tickets`` within a caller's transaction."""

    def __init__(self, engine: Engine, *, force_generic: bool = False) -> None:
        dialect = engine.dialect
        self._driver: DriverSql | None = None
        insert = None if force_generic else conflict_insert(dialect)
        if insert is not None:
            stmt = insert(tickets)
            values, changes = _merge_rules(lambda name: stmt.excluded[name])
            stmt = stmt.on_conflict_do_update(index_elements=[tickets.c.id], set_=values,
                                              where=changes)
            self._driver = compile_for_driver(stmt, dialect, COLUMNS)
        else:
            values, changes = _merge_rules(lambda name: bindparam(f"in_{name}"))
            self._update = (tickets.update()
                            .where(tickets.c.id == bindparam("in_id"), changes)
                            .values(values))

    def write(self, conn: Connection, rows: list[Row]) -> int:
        """Upsert ``rows``; returns how many tickets were inserted or changed."""
        if not rows:
            return 0
        if self._driver is not None:
            return max(conn.exec_driver_sql(self._driver.sql,
                                            self._driver.many(rows)).rowcount, 0)
        return self._write_generic(conn, rows)

    def _write_generic(self, conn: Connection, rows: list[Row]) -> int:
        newest: dict[str, Row] = {}
        for row in rows:  # the same id twice in one batch: keep the newer copy
            seen = newest.get(row[0])
            if seen is None or (row[8], row[-1]) >= (seen[8], seen[-1]):
                newest[row[0]] = row
        existing = set(conn.scalars(select(tickets.c.id).where(
            tickets.c.id.in_(list(newest)))))
        fresh = [dict(zip(COLUMNS, r, strict=True)) for i, r in newest.items()
                 if i not in existing]
        changed = 0
        if fresh:
            conn.execute(tickets.insert(), fresh)
            changed += len(fresh)
        stale = [{f"in_{c}": v for c, v in zip(COLUMNS, r, strict=True)}
                 for i, r in newest.items() if i in existing]
        if stale:
            changed += max(conn.execute(self._update, stale).rowcount, 0)
        return changed
