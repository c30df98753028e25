"""The offline ticket store: what the gate decides against when the network is gone.

``TicketStore`` is the one object the rest of the gate uses for tickets, events, device
settings and sync progress. It works on any SQLAlchemy engine; SQLite in WAL mode is what a
gate runs, so the sync writer never blocks the decision path's reads.

``by_barcode`` is the decision hot path: an indexed lookup through a statement compiled
once, run on a per-thread driver connection held open, which skips SQLAlchemy's
per-execution work (pool checkout, cache lookup, result wrapping) that would otherwise
dominate a sub-50-µs lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, bindparam, func, select

from scanner.clock import Clock, utc_now
from scanner.db import faults
from scanner.db.database import Database
from scanner.db.driver_sql import SCAN_BUSY_TIMEOUT_MS, HeldConnection, compile_for_driver
from scanner.db.keyed import holds_other_than
from scanner.store import events_settings, seen
from scanner.store import sync_state as state
from scanner.store.batch import COMMIT_EVERY_S, PageBatch
from scanner.store.schema import meta, tickets
from scanner.store.sync_state import HeldDeletions, SyncState
from scanner.store.upsert import DATA_COLUMNS, Upserter, data_row, row_ticket
from scanner.tickets import Ticket, utc_iso

_DATA = [tickets.c[name] for name in DATA_COLUMNS]
# Rows fetched per round trip when streaming the whole store.
STREAM_CHUNK = 1000
# Tickets deleted per transaction by the reconciling sweep: each chunk holds the write lock
# for a few milliseconds, so a scan's write never queues behind a sweep of the whole event.
SWEEP_CHUNK = 500
# Tickets the sweep walks per read, looking for those without a seen mark: a reconcile
# usually finds none, and one read per few thousand keeps the walk's overhead small.
SWEEP_WALK = 5000
# Seen marks deleted per transaction once a full sync is closed (or before one begins):
# short keys, so many to a chunk for the same few milliseconds of lock.
CLEAR_CHUNK = 5000


class TicketStore(Database):
    def __init__(self, engine: Engine, *, clock: Clock = utc_now,
                 force_generic_upsert: bool = False) -> None:
        super().__init__(engine, faults.STORE)
        self._clock = clock
        self._upserter = Upserter(engine, force_generic=force_generic_upsert)
        self._by_barcode = compile_for_driver(
            select(*_DATA).where(tickets.c.barcode == bindparam("barcode")), engine.dialect,
            ("barcode",))
        self._settings_version = compile_for_driver(
            select(meta.c.value).where(meta.c.key == bindparam("key")), engine.dialect,
            ("key",))
        self._local = threading.local()  # each thread's held lookup connection

    def _now(self) -> str:
        return utc_iso(self._clock())

    # -- tickets -----------------------------------------------------------------------

    def upsert(self, batch: list[Ticket], *, seen_by: str | None = None,
               trusted_until: str | None = None, overwrite: bool = False) -> int:
        """Insert or update ``batch`` in one transaction (newer ``updatedAt`` wins, within
        ``trusted_until``; ``overwrite`` takes every copy; see ``scanner.store.upsert``);
        ``seen_by`` marks them as listed by that event's full sync (``scanner.store.seen``).
        Returns how many tickets were inserted or changed."""
        rows = [data_row(t) for t in batch]
        with self.writing() as conn:
            changed = self._upserter.write(conn, rows, trusted_until=trusted_until,
                                           overwrite=overwrite)
            if seen_by is not None:
                seen.mark(conn, seen_by, [t.id for t in batch])
            return changed

    def by_barcode(self, barcode: str) -> list[Ticket]:
        """Every stored ticket with this barcode (one per event that sold it)."""
        held = self._reader()
        try:
            rows = held.execute(self._by_barcode, (barcode,))
        except held.errors as exc:
            raise self.fault(exc, "ticket lookup failed") from exc
        return [self._ticket(row) for row in rows]

    def get(self, ticket_id: str) -> Ticket | None:
        with self.reading() as conn:
            row = conn.execute(select(*_DATA).where(tickets.c.id == ticket_id)).first()
        return None if row is None else self._ticket(row)

    def count(self, event_id: str | None = None) -> int:
        query = select(func.count()).select_from(tickets)
        if event_id is not None:
            query = query.where(tickets.c.event_id == event_id)
        with self.reading() as conn:
            return int(conn.execute(query).scalar_one())

    def serves_other_events(self, event_id: str) -> bool:
        """Whether the store holds tickets of an event other than ``event_id``: the gate
        may be deciding against them."""
        with self.reading() as conn:
            return holds_other_than(conn, tickets.c.event_id, event_id)

    def counts_by_event(self) -> dict[str, int]:
        query = select(tickets.c.event_id, func.count()).group_by(tickets.c.event_id)
        with self.reading() as conn:
            return {event_id: int(n) for event_id, n in conn.execute(query)}

    def iter_tickets(self, event_id: str | None = None) -> Iterator[Ticket]:
        """Every ticket (of one event), ordered by id, streamed in constant memory."""
        query = select(*_DATA).order_by(tickets.c.id)
        if event_id is not None:
            query = query.where(tickets.c.event_id == event_id)
        with self.reading() as conn:
            result = conn.execution_options(yield_per=STREAM_CHUNK).execute(query)
            for row in result:
                yield self._ticket(row)

    def sweep(self, event_id: str, *, chunk: int = SWEEP_CHUNK, walk: int = SWEEP_WALK) -> int:
        """Delete the event's tickets the full sync in progress has not marked seen: walk
        them by id, ``walk`` per read, and delete those unmarked ``chunk`` at a time, each
        chunk its own transaction (none where nothing is unmarked). A run killed between
        chunks leaves its full sync open, and the resumed run sweeps the rest (the marks
        stay)."""
        swept, after = 0, None
        while True:
            with self.reading() as conn:
                after, doomed = seen.unseen_ids(conn, event_id, after, walk)
            for start in range(0, len(doomed), chunk):
                with self.writing() as conn:
                    swept += seen.delete_unseen(conn, event_id, doomed[start:start + chunk])
            if after is None:
                return swept

    def unseen(self, event_id: str) -> int:
        """How many of the event's tickets the full sync in progress has not marked seen."""
        with self.reading() as conn:
            return seen.unseen(conn, event_id)

    def seen_marks(self, event_id: str) -> int:
        """How many seen marks the event's full sync holds (for tests and diagnosis)."""
        with self.reading() as conn:
            return seen.count(conn, event_id)

    # -- sync progress -----------------------------------------------------------------

    def sync_state(self, event_id: str) -> SyncState | None:
        with self.reading() as conn:
            return state.load(conn, event_id)

    def sync_states(self) -> dict[str, dict[str, Any]]:
        """For ``gate status``: per event, when it last synced and what the server said."""
        with self.reading() as conn:
            found = state.load_all(conn)
            held = state.load_held(conn)
        states: dict[str, dict[str, Any]] = {
            s.event_id: {"last_sync": s.last_sync_at, "last_full": s.last_full_at,
                         "server_total": s.server_total, "delta_until": s.delta_until,
                         "generation": s.generation, "full_in_progress": s.full_in_progress,
                         "full_skip": s.full_skip, "full_total": s.full_total,
                         "held_deletions": None} for s in found}
        for event_id, h in held.items():
            states.setdefault(event_id, {})["held_deletions"] = h.to_json()
        return states

    def begin_full(self, event_id: str, until: str) -> int:
        """Record the start of a full sync pinned at ``until``, with no seen marks; returns
        how many full syncs of the event have begun (``generation``)."""
        with self.writing() as conn:
            current = state.load(conn, event_id)
            if current is not None and current.full_in_progress:
                # Closed before its marks go, so a kill while they are cleared cannot
                # leave it open, to resume with half of them.
                state.abandon_full(conn, event_id)
        self._clear_marks(event_id)  # a closed run's leftovers (held, abandoned, killed)
        with self.writing() as conn:
            seen.clear(conn, event_id)  # none left: the marks and the start are one state
            return state.begin_full(conn, event_id, until)

    def page_batch(self, *, commit_every: float = COMMIT_EVERY_S, in_service: bool = False,
                   new_event: bool = False) -> PageBatch:
        """A writer of a listing's pages, several to a transaction of up to
        ``commit_every`` seconds, each page with its cursor, or, ``in_service`` (the gate
        decides against the store meanwhile), in slices gentle on the journal's disk, or,
        ``new_event`` (a new event's first full sync beside served ones), in bulk with
        seldom checkpoints (``scanner.store.batch``)."""
        return PageBatch(self.engine, self._upserter, self._name, commit_every=commit_every,
                         in_service=in_service, new_event=new_event)

    def save_page(self, event_id: str, batch: list[Ticket], *, mark: bool = False,
                  skip: int | None = None, anchor: tuple[str, ...] = (),
                  total: int | None = None, trusted_until: str | None = None,
                  overwrite: bool = False) -> int:
        """Upsert one page (as ``upsert``; ``mark``: with its seen marks) and, for a full
        sync (``skip`` given), the cursor after it, in one transaction: a kill at any
        instant leaves all or none."""
        with self.page_batch(commit_every=0) as pages:
            return pages.save_page(event_id, batch, mark=mark, skip=skip, anchor=anchor,
                                   total=total, trusted_until=trusted_until,
                                   overwrite=overwrite)

    def finish_full(self, event_id: str, *, delta_until: str, server_total: int | None,
                    at: str | None = None, unseen: int | None = None) -> int:
        """Sweep what the full sync did not see (in chunks), then close it, forget any
        deletions held earlier and its seen marks; returns tickets swept. A kill before
        the close leaves the sync open with its marks: the next run resumes and sweeps.
        ``unseen``: ``unseen()`` as the caller just counted it (None: not counted); with
        0 the sweep's walk of every ticket is skipped, there being nothing to delete."""
        swept = self.sweep(event_id) if unseen != 0 else 0
        with self.writing() as conn:
            state.finish_full(conn, event_id, delta_until=delta_until, at=at or self._now(),
                              server_total=server_total)
            state.clear_held(conn, event_id)
        self._clear_marks(event_id)
        return swept

    def hold_full(self, held: HeldDeletions, *, delta_until: str | None = None,
                  server_total: int | None = None) -> None:
        """Close a full sync without deleting anything and record why. ``delta_until`` is
        given when the run paged everything (its tickets are written; only the sweep is
        held), None when it stopped early because the listing's total collapsed."""
        with self.writing() as conn:
            if delta_until is not None:
                state.finish_full(conn, held.event_id, delta_until=delta_until, at=held.at,
                                  server_total=server_total)
            else:
                state.hold_full(conn, held.event_id, at=held.at)
            state.save_held(conn, held)
        self._clear_marks(held.event_id)

    def held_deletions(self) -> dict[str, HeldDeletions]:
        with self.reading() as conn:
            return state.load_held(conn)

    def finish_delta(self, event_id: str, *, until: str, at: str | None = None) -> None:
        with self.writing() as conn:
            state.finish_delta(conn, event_id, delta_until=until, at=at or self._now())

    def abandon_full(self, event_id: str) -> None:
        with self.writing() as conn:
            state.abandon_full(conn, event_id)
        self._clear_marks(event_id)

    def _clear_marks(self, event_id: str) -> None:
        """Delete the seen marks of an event whose full sync is closed (or not yet begun),
        ``CLEAR_CHUNK`` per transaction: a kill midway leaves marks no run reads, since
        ``begin_full`` clears them again before it opens the next sync. All at once when
        they are the only event's marks (``seen.clear_if_alone``)."""
        with self.writing() as conn:
            if seen.clear_if_alone(conn, event_id):
                return
        while True:
            with self.writing() as conn:
                if seen.clear(conn, event_id, limit=CLEAR_CHUNK) < CLEAR_CHUNK:
                    return

    # -- events and device settings ----------------------------------------------------

    def save_events(self, docs: list[dict[str, Any]]) -> None:
        with self.writing() as conn:
            events_settings.save_events(conn, docs, self._now())

    def events(self) -> list[dict[str, Any]]:
        with self.reading() as conn:
            return events_settings.load_events(conn)

    def save_settings(self, me: dict[str, Any]) -> None:
        with self.writing() as conn:
            events_settings.save_settings(conn, me, self._now())

    def settings(self) -> dict[str, Any] | None:
        with self.reading() as conn:
            return events_settings.load_settings(conn)

    def settings_version(self) -> str | None:
        """A token that changes whenever ``save_settings`` stores an answer; a few µs, for
        the scan path (None before the first save)."""
        held = self._reader()
        try:
            rows = held.execute(self._settings_version, (events_settings.SETTINGS_VERSION_KEY,))
        except held.errors as exc:
            raise self.fault(exc, "settings lookup failed") from exc
        return rows[0][0] if rows else None

    # -- plumbing ----------------------------------------------------------------------

    def _ticket(self, row: Any) -> Ticket:
        """A stored row as a Ticket; JSON columns that no longer parse are damage."""
        try:
            return row_ticket(row)
        except ValueError as exc:  # orjson.JSONDecodeError, in price_category or entry
            raise faults.damaged(faults.STORE, self._name,
                                 "a ticket's JSON column holds text that is not JSON") from exc

    def _reader(self) -> HeldConnection:
        held = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = self.held(busy_timeout_ms=SCAN_BUSY_TIMEOUT_MS)
        return held
