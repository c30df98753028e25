"""Per-event sync progress: the cursor of a full sync in progress and the delta watermark.

These functions take a ``Connection`` so the caller can write a page of tickets and the
cursor that follows it in one transaction: a run killed at any instant leaves either both
or neither, and the next run resumes exactly after the last committed page.

Deletions a reconciling sync held back (see ``scanner.sync.syncer``) are kept as one ``meta``
key per event: they are rare, read only by ``gate status`` and the next sync, and need no
column of their own. Every time written here is server time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select

from scanner.db.faults import STORE, damaged, database_name, loads
from scanner.db.keyed import put_meta, put_row
from scanner.store.schema import meta, sync_state

HELD_KEY_PREFIX = "held_deletions:"


@dataclass(frozen=True)
class SyncState:
    event_id: str
    # Full syncs of the event begun so far (what they saw is in ``full_seen``).
    generation: int = 0
    # Set while a full sync is in progress: its pinned upper bound and paging cursor.
    full_until: str | None = None
    full_skip: int | None = None
    full_anchor: tuple[str, ...] = ()
    full_total: int | None = None
    last_full_at: str | None = None
    delta_until: str | None = None
    last_sync_at: str | None = None
    server_total: int | None = None

    @property
    def full_in_progress(self) -> bool:
        return self.full_until is not None


@dataclass(frozen=True)
class HeldDeletions:
    """Deletions a reconciling sync would have made and did not: nothing was deleted."""

    event_id: str
    count: int                 # tickets it would have deleted
    stored: int                # tickets of the event in the store at that moment
    kind: str                  # "sweep": unlisted tickets | "total": the listing's total fell
    server_total: int | None   # the listing's total as the server gave it
    at: str

    @property
    def why(self) -> str:
        if self.kind == "total":
            return f"the listing's total fell to {self.server_total}"
        return "the server no longer lists them"

    def describe(self) -> str:
        return f"{self.count} of {self.stored} tickets ({self.why})"

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "stored": self.stored, "kind": self.kind,
                "server_total": self.server_total, "at": self.at, "why": self.why}


def _json(conn: Connection, text: str, where: str) -> Any:
    return loads(text, STORE, database_name(conn.engine.url), where)


def _from_row(conn: Connection, row: Any) -> SyncState:
    anchor = tuple(_json(conn, row.full_anchor, f"the sync cursor of {row.event_id}")) \
        if row.full_anchor else ()
    return SyncState(event_id=row.event_id, generation=row.generation,
                     full_until=row.full_until, full_skip=row.full_skip, full_anchor=anchor,
                     full_total=row.full_total, last_full_at=row.last_full_at,
                     delta_until=row.delta_until, last_sync_at=row.last_sync_at,
                     server_total=row.server_total)


def load(conn: Connection, event_id: str) -> SyncState | None:
    row = conn.execute(select(sync_state).where(sync_state.c.event_id == event_id)).first()
    return None if row is None else _from_row(conn, row)


def load_all(conn: Connection) -> list[SyncState]:
    rows = conn.execute(select(sync_state).order_by(sync_state.c.event_id))
    return [_from_row(conn, row) for row in rows]


def _write(conn: Connection, event_id: str, **values: Any) -> None:
    put_row(conn, sync_state, {"event_id": event_id}, values)


def begin_full(conn: Connection, event_id: str, until: str) -> int:
    """Start a full sync pinned at ``until``; returns how many have begun. Its seen marks
    are the caller's to clear (``scanner.store.seen``)."""
    current = load(conn, event_id)
    generation = (current.generation if current else 0) + 1
    _write(conn, event_id, generation=generation, full_until=until, full_skip=0,
           full_anchor=None, full_total=None)
    return generation


def save_cursor(conn: Connection, event_id: str, *, skip: int, anchor: tuple[str, ...],
                total: int | None) -> None:
    _write(conn, event_id, full_skip=skip, full_anchor=orjson.dumps(list(anchor)).decode(),
           full_total=total)


def finish_full(conn: Connection, event_id: str, *, delta_until: str, at: str,
                server_total: int | None) -> None:
    _write(conn, event_id, full_until=None, full_skip=None, full_anchor=None,
           full_total=None, last_full_at=at, delta_until=delta_until, last_sync_at=at,
           server_total=server_total)


def finish_delta(conn: Connection, event_id: str, *, delta_until: str, at: str) -> None:
    _write(conn, event_id, delta_until=delta_until, last_sync_at=at)


def abandon_full(conn: Connection, event_id: str) -> None:
    """Forget a full sync in progress; the next run starts a new one."""
    _write(conn, event_id, full_until=None, full_skip=None, full_anchor=None,
           full_total=None)


def hold_full(conn: Connection, event_id: str, *, at: str) -> None:
    """Close a full sync whose deletions were held without finishing it: the cursor is
    dropped, and the next reconcile comes after ``reconcile_every`` as if it had run (deltas
    go on meanwhile), unless the event never finished a full sync and has no delta window."""
    current = load(conn, event_id)
    closed = {"last_full_at": at} if current is not None and current.delta_until else {}
    _write(conn, event_id, full_until=None, full_skip=None, full_anchor=None,
           full_total=None, last_sync_at=at, **closed)


def save_held(conn: Connection, held: HeldDeletions) -> None:
    put_meta(conn, HELD_KEY_PREFIX + held.event_id,
             orjson.dumps(held.to_json()).decode(), meta)


def clear_held(conn: Connection, event_id: str) -> None:
    conn.execute(meta.delete().where(meta.c.key == HELD_KEY_PREFIX + event_id))


def load_held(conn: Connection) -> dict[str, HeldDeletions]:
    rows = conn.execute(select(meta.c.key, meta.c.value)
                        .where(meta.c.key.startswith(HELD_KEY_PREFIX, autoescape=True)))
    found = {}
    for key, value in rows:
        event_id = key[len(HELD_KEY_PREFIX):]
        doc = _json(conn, value, f"meta {key!r}")
        try:
            found[event_id] = HeldDeletions(event_id=event_id, count=doc["count"],
                                            stored=doc["stored"], kind=doc["kind"],
                                            server_total=doc["server_total"], at=doc["at"])
        except (KeyError, TypeError) as exc:  # JSON, but not the document written
            raise damaged(STORE, database_name(conn.engine.url),
                          f"meta {key!r} is not a held-deletions record") from exc
    return found
