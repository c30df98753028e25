"""Per-event sync progress: the cursor of a full sync in progress and the delta watermark.

These functions take a ``Connection`` so the caller can write a page of tickets and the
cursor that follows it in one transaction: a run killed at any instant leaves either both
or neither, and the next run resumes exactly after the last committed page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select

from scanner.store.keyed import put_row
from scanner.store.schema import sync_state


@dataclass(frozen=True)
class SyncState:
    event_id: str
    # The full-sync generation last started; tickets it saw carry it in ``sync_gen``.
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


def _from_row(row: Any) -> SyncState:
    anchor = tuple(orjson.loads(row.full_anchor)) if row.full_anchor else ()
    return SyncState(event_id=row.event_id, generation=row.generation,
                     full_until=row.full_until, full_skip=row.full_skip, full_anchor=anchor,
                     full_total=row.full_total, last_full_at=row.last_full_at,
                     delta_until=row.delta_until, last_sync_at=row.last_sync_at,
                     server_total=row.server_total)


def load(conn: Connection, event_id: str) -> SyncState | None:
    row = conn.execute(select(sync_state).where(sync_state.c.event_id == event_id)).first()
    return None if row is None else _from_row(row)


def load_all(conn: Connection) -> list[SyncState]:
    rows = conn.execute(select(sync_state).order_by(sync_state.c.event_id))
    return [_from_row(row) for row in rows]


def _write(conn: Connection, event_id: str, **values: Any) -> None:
    put_row(conn, sync_state, {"event_id": event_id}, values)


def begin_full(conn: Connection, event_id: str, until: str) -> int:
    """Start a full sync pinned at ``until``; returns its new generation."""
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
    """Forget a full sync in progress; the next run starts a new one (new generation)."""
    _write(conn, event_id, full_until=None, full_skip=None, full_anchor=None,
           full_total=None)
