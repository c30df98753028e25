"""Seen marks: the ticket ids the full sync in progress of an event has listed.

A reconciling sync must drop the event's tickets the server no longer lists, and most of a
reconcile's tickets are unchanged. Marking them in the ticket rows (the ``sync_gen`` column
before schema 4) rewrote every row and its index entries: on a 200,000-ticket store about
116 MB of random page writes, whose checkpoints stall the journal's fsync on the same disk.
A mark here is one short key in a narrow table, appended near its neighbours.

The life of the marks of an event: ``clear`` when a full sync begins (a resumed one keeps
them), ``mark`` with each page in the page's transaction (so a commit holds whole pages,
their marks and the cursor), the sweep deletes the event's tickets without one
(``unseen_ids``, chunk by chunk), and ``clear`` again once the sync is closed. A mark is
keyed by the listing's event, so a ticket listed under another event than its row says is
only ever swept by its own event's listing.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import Connection, and_, exists, func, select
from sqlalchemy.sql.elements import ColumnElement

from scanner.db.keyed import conflict_insert, holds_other_than, lock_for_write
from scanner.store.schema import full_seen, tickets

# SQLite: a page's marks in one statement, its ids one JSON array (one bound value, where
# an executemany would step the statement once per id).
_MARK_JSON = ("INSERT OR IGNORE INTO full_seen (event_id, id) "
              "SELECT ?, value FROM json_each(?)")


def mark(conn: Connection, event_id: str, ids: Sequence[str]) -> None:
    """Mark ``ids`` as listed by the full sync of ``event_id``; marks already there stay."""
    if not ids:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_MARK_JSON, (event_id, orjson.dumps(list(ids)).decode()))
        return
    rows = [{"event_id": event_id, "id": i} for i in dict.fromkeys(ids)]
    insert = conflict_insert(conn.dialect)
    if insert is not None:
        conn.execute(insert(full_seen).on_conflict_do_nothing(), rows)
        return
    there = set(conn.scalars(select(full_seen.c.id).where(
        full_seen.c.event_id == event_id, full_seen.c.id.in_([r["id"] for r in rows]))))
    fresh = [r for r in rows if r["id"] not in there]
    if fresh:
        conn.execute(full_seen.insert(), fresh)


def clear(conn: Connection, event_id: str, *, limit: int | None = None) -> int:
    """Delete the event's marks (at most ``limit`` of them); returns how many."""
    where = full_seen.c.event_id == event_id
    if limit is not None:
        first = select(full_seen.c.id).where(where).order_by(full_seen.c.id).limit(limit)
        where = and_(where, full_seen.c.id.in_(first.scalar_subquery()))
    return max(conn.execute(full_seen.delete().where(where)).rowcount, 0)


def clear_if_alone(conn: Connection, event_id: str) -> bool:
    """SQLite: delete every mark in one statement if all of them are the event's (the usual
    gate syncs one event), and say whether it did. A DELETE without WHERE frees the table's
    pages (SQLite's truncate optimization) where ``clear`` rewrites each of them, and with
    ``secure_delete`` at FAST for it (Debian builds SQLite with it on) the freed pages are
    not zeroed either: a page of marks holds ticket ids alone, no one's data, and zeroing
    them wrote as much to the journal's disk as the marks had. Other dialects: False."""
    if conn.dialect.name != "sqlite":
        return False
    lock_for_write(conn)  # before the check: no other sync's marks come between
    if holds_other_than(conn, full_seen.c.event_id, event_id):
        return False
    before = conn.exec_driver_sql("PRAGMA secure_delete").scalar_one()
    conn.exec_driver_sql("PRAGMA secure_delete=FAST")
    try:
        conn.exec_driver_sql("DELETE FROM full_seen")
    finally:
        conn.exec_driver_sql(f"PRAGMA secure_delete={int(before)}")
    return True


def count(conn: Connection, event_id: str) -> int:
    """How many ticket ids of the event are marked."""
    return int(conn.execute(select(func.count()).select_from(full_seen)
                            .where(full_seen.c.event_id == event_id)).scalar_one())


def _unmarked(event_id: str) -> ColumnElement[bool]:
    return ~exists().where(full_seen.c.event_id == event_id, full_seen.c.id == tickets.c.id)


def unseen(conn: Connection, event_id: str) -> int:
    """How many of the event's tickets have no mark."""
    query = select(func.count()).select_from(tickets).where(
        tickets.c.event_id == event_id, _unmarked(event_id))
    return int(conn.execute(query).scalar_one())


def delete_unseen(conn: Connection, event_id: str, ids: Sequence[str]) -> int:
    """Delete those of ``ids`` that are the event's tickets without a mark (checked again
    here, in the deleting transaction); returns how many."""
    if not ids:
        return 0
    doomed = tickets.delete().where(tickets.c.event_id == event_id,
                                    tickets.c.id.in_(list(ids)), _unmarked(event_id))
    return max(conn.execute(doomed).rowcount, 0)


def unseen_ids(conn: Connection, event_id: str, after: str | None,
               limit: int) -> tuple[str | None, list[str]]:
    """Walk the event's next ``limit`` tickets by id after ``after`` (None: from the first):
    the last id walked (None when there were none) and those of them without a mark."""
    where = [tickets.c.event_id == event_id]
    if after is not None:
        where.append(tickets.c.id > after)
    walked = select(tickets.c.id, _unmarked(event_id).label("unseen")).where(*where) \
        .order_by(tickets.c.id).limit(limit)
    rows = conn.execute(walked).all()
    if not rows:
        return None, []
    return rows[-1][0], [i for i, gone in rows if gone]
