"""The durable scan journal: every decision, granted or denied, written before the gate acts.

Durability policy: one transaction per scan, committed before ``record`` returns. On SQLite
the engine runs WAL with ``synchronous=FULL``, so that commit fsyncs the WAL: a scan whose
``record`` returned survives a crash or a power cut (on a database server the commit is as
durable as the server is configured to make it). Measured with ``gate bench validate``
(1,000,000 tickets, 20,000 scans, development VM): a bare sqlite3 lookup plus fsync'd insert
takes p50 0.20 ms / p99 0.62 ms, the whole ``Gatekeeper.check`` p50 0.27 ms / p99 0.88 ms,
so the fsync is most of the cost (an SD card on a Pi is slower). Batching commits would be
cheaper but could lose a scan whose gate had already opened; a gate cannot afford that.

Presence and history are derived from the journal itself (granted scans only), so there is
no second table that could disagree with it. The journal also is the upload queue:
``upload_state`` goes ``pending`` -> ``sent`` | ``rejected``; ``local`` marks scans the API
cannot take (reads shorter than 8 characters, malformed reads, scans without an event),
which are kept and counted but never uploaded.

The scan path (``record`` and ``history``) runs statements compiled once for the engine's
dialect on one driver connection held for the life of the journal: SQLAlchemy's
per-statement cost (~30-70 µs with a pool checkout) would be most of the history budget.
On SQLite that is the bare sqlite3 connection, as fast as hand-written SQL; on a server
the same code speaks the driver's paramstyle. Everything else goes through the engine, in
SQL every dialect runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Engine,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnClause

from scanner.db import faults
from scanner.db.database import Database
from scanner.db.driver_sql import DriverSql, compile_for_driver
from scanner.db.keyed import put_meta
from scanner.decide.barcode import MIN_READ_LENGTH
from scanner.decide.model import (
    ALARMS,
    NOT_UPLOADED,
    Decision,
    Direction,
    PastScan,
    Reason,
    ScanHistory,
)
from scanner.journal.schema import journal as journal_table
from scanner.journal.schema import journal_meta as meta
from scanner.journal.schema import supervision
from scanner.tickets import normalize_iso

PENDING, SENT, REJECTED, LOCAL = "pending", "sent", "rejected", "local"

_CLOCK_OFFSET_KEY = "clock_offset"
_CLOCK_STAMP_KEY = "clock_offset_stamp"
_SERVER_SEEN_KEY = "server_seen"
_SERVER_CLOCK_KEY = "server_clock"
_LAST_UPLOAD_KEY = "last_upload"
_WRITE_PROBE_KEY = "write_probe"
# Rows fetched per query while streaming an audit, so no read transaction stays open long.
_ENTRIES_CHUNK = 1000

# The values ``journal_row`` gives, in order (the table's own order, without ``seq``).
ROW_COLUMNS = ("scan_id", "gate_id", "event_id", "ticket_id", "barcode", "direction",
               "result", "reason", "message", "scanned_at", "offline", "latency_ms",
               "upload_state", "upload_error")
_cols = journal_table.c
# A literal, not a bind: the compiled statement then takes exactly the named values.
_GRANTED: ColumnClause[str] = literal_column("'OK'")
# A grant counts for history and presence unless the passage sensor said nobody went
# through ("opened, not passed"): NULL (no sensor, or not yet known) counts.
# (IS NOT is NULL-safe: NULL IS NOT false holds.)
_PASSED = _cols.passed.is_not(False)
# ix_journal_ticket_seq holds (ticket_id, seq), so this reads in seq order, no sort.
_HISTORY = (select(_cols.direction, _cols.scanned_at, _cols.gate_id)
            .where(_cols.ticket_id == bindparam("ticket_id"), _cols.result == _GRANTED,
                   _PASSED)
            .order_by(_cols.seq))
# Presence: each ticket's latest granted scan, counted per event when it is an IN. A
# correlated MAX(seq), because SQLite's shortcut (bare columns beside MAX) is not SQL other
# databases accept.
_latest = journal_table.alias("latest")
_LAST_GRANTED_SEQ = (select(func.max(_latest.c.seq))
                     .where(_latest.c.ticket_id == _cols.ticket_id,
                            _latest.c.result == _GRANTED,
                            _latest.c.passed.is_not(False))
                     .scalar_subquery())
_INSIDE = (select(_cols.event_id, func.count())
           .where(_cols.result == _GRANTED, _cols.direction == "IN", _PASSED,
                  _cols.ticket_id.is_not(None), _cols.seq == _LAST_GRANTED_SEQ)
           .group_by(_cols.event_id))


# Who made an entry and why, beside each row of an audit (scanner.journal.supervision).
SUPERVISION_COLUMNS = (supervision.c.ref_scan_id.label("answers"), supervision.c.role,
                       supervision.c.session, supervision.c.why, supervision.c.note)
SUPERVISION_NAMES = ("answers", "role", "session", "why", "note")

# The daemon's follow-ups to a grant, by scan id (the unique index finds the row).
_ACTUATED = (update(journal_table).where(_cols.scan_id == bindparam("scan_id"))
             .values(actuated_at=bindparam("at")))
_PASSAGE = (update(journal_table).where(_cols.scan_id == bindparam("scan_id"))
            .values(passed=bindparam("passed")))


def insert_statement(dialect: Dialect) -> DriverSql:
    """The journal INSERT in the driver's SQL, taking ``journal_row``'s values."""
    # inline(): no RETURNING of the new seq, which nothing on the scan path reads.
    stmt = insert(journal_table).values({name: bindparam(name) for name in ROW_COLUMNS})
    return compile_for_driver(stmt.inline(), dialect, ROW_COLUMNS)


@dataclass(frozen=True, slots=True)
class QueuedScan:
    """One journaled scan waiting for upload."""

    seq: int
    scan_id: str
    event_id: str
    ticket_id: str | None
    barcode: str
    scanned_at: str
    result: str        # OK | FAIL
    direction: str     # IN | OUT


def upload_state_for(decision: Decision, event_id: str | None) -> tuple[str, str | None]:
    """Whether a scan can be uploaded, and if not, why (kept in ``upload_error``)."""
    if decision.reason is Reason.MALFORMED_READ:
        return LOCAL, "not a barcode: the API cannot take it"
    if decision.reason in NOT_UPLOADED:
        return LOCAL, "not a scan: an alarm, or a held ticket whose answer is uploaded"
    if len(decision.barcode) < MIN_READ_LENGTH:
        return LOCAL, f"barcode shorter than {MIN_READ_LENGTH} characters: the API cannot take it"
    if event_id is None:
        return LOCAL, "no event: the barcode matched no ticket and the gate serves no single event"
    return PENDING, None


def journal_row(decision: Decision, *, gate_id: str, scan_id: str, scanned_at: str,
                latency_ms: float, event_id: str | None) -> tuple[Any, ...]:
    """The values ``insert_statement`` takes for one decision (see ``Journal.record``)."""
    event = decision.event_id or event_id
    state, why = upload_state_for(decision, event)
    ticket = decision.ticket
    return (scan_id, gate_id, event, ticket.id if ticket else None, decision.barcode,
            decision.direction.value, decision.result, decision.reason.value,
            decision.message, scanned_at, decision.offline, latency_ms, state, why)


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A journal row as plain JSON-ready values (SQLite gives its booleans as 0 and 1)."""
    # str(): SQLAlchemy's quoted_name keys are str subclasses JSON encoders refuse.
    plain = {str(key): value for key, value in row.items()}
    plain["offline"] = bool(plain["offline"])
    if plain["passed"] is not None:
        plain["passed"] = bool(plain["passed"])
    return plain


class Journal(Database):
    def __init__(self, engine: Engine, gate_id: str) -> None:
        super().__init__(engine, faults.JOURNAL)
        self.gate_id = gate_id
        self._lock = threading.Lock()  # the held connection serves one thread at a time
        self._held = self.held()
        self._insert = insert_statement(engine.dialect)
        self._history = compile_for_driver(_HISTORY, engine.dialect, ("ticket_id",))
        self._actuated = compile_for_driver(_ACTUATED, engine.dialect, ("at", "scan_id"))
        self._passage = compile_for_driver(_PASSAGE, engine.dialect, ("passed", "scan_id"))

    # -- the scan path -------------------------------------------------------------------

    @property
    def _conn(self) -> Any:
        """The driver connection the scan path uses (sqlite3.Connection on SQLite)."""
        return self._held.get()

    def record(self, decision: Decision, *, scan_id: str, scanned_at: str, latency_ms: float,
               event_id: str | None = None) -> None:
        """Write one decision durably; when this returns, the scan survives a power cut.

        ``event_id`` files a scan without a ticket (an unknown barcode) under an event so it
        can be uploaded; a scan of a ticket always goes under the ticket's event. Raises
        StoreError if the write fails: the gate must then stay closed.
        """
        row = journal_row(decision, gate_id=self.gate_id, scan_id=scan_id,
                          scanned_at=scanned_at, latency_ms=latency_ms, event_id=event_id)
        try:
            with self._lock:
                # Commits (and on SQLite fsyncs) before returning; a fault rolls back.
                self._held.execute(self._insert, row, commit=True)
        except self._held.errors as exc:
            raise self.fault(exc, f"cannot journal scan {scan_id}") from exc

    def mark_actuated(self, scan_id: str, at_iso: str) -> bool:
        """Note when the gate acted on scan ``scan_id``; False if no such scan."""
        return self._follow_up(self._actuated, (at_iso, scan_id), scan_id)

    def mark_passed(self, scan_id: str, passed: bool) -> bool:
        """Note whether the person went through. ``passed=False`` ("opened, not passed")
        takes the grant out of presence and history; False if no such scan."""
        return self._follow_up(self._passage, (bool(passed), scan_id), scan_id)

    def _follow_up(self, stmt: DriverSql, values: tuple[Any, ...], scan_id: str) -> bool:
        try:
            with self._lock:
                return self._held.write(stmt, values) == 1
        except self._held.errors as exc:
            raise self.fault(exc, f"cannot update scan {scan_id}") from exc

    def history(self, ticket_id: str) -> ScanHistory:
        """Granted scans of one ticket on this gate's journal, oldest first."""
        try:
            with self._lock:
                rows = self._held.execute(self._history, (ticket_id,))
        except self._held.errors as exc:
            raise self.fault(exc, "cannot read the journal") from exc
        return ScanHistory(tuple(PastScan(Direction(d), at, gate) for d, at, gate in rows))

    def close(self) -> None:
        with self._lock:
            super().close()

    # -- presence and status -------------------------------------------------------------

    def inside_counts(self) -> dict[str, int]:
        """Tickets whose latest granted scan is an IN, per event."""
        with self.reading() as conn:
            return {event: count for event, count in conn.execute(_INSIDE)}

    def stats(self) -> dict[str, Any]:
        """The upload queue's figures. Presence is ``inside_counts`` (a heavier query that
        ``gate upload`` has no use for)."""
        state = journal_table.c.upload_state
        query = select(state, func.count()).where(state.in_((PENDING, REJECTED, LOCAL)))
        with self.reading() as conn:
            counts: dict[str, int] = {s: n for s, n in conn.execute(query.group_by(state))}
            last = conn.execute(select(meta.c.value)
                                .where(meta.c.key == _LAST_UPLOAD_KEY)).scalar()
        return {
            "queue_depth": counts.get(PENDING, 0),
            "rejected": counts.get(REJECTED, 0),
            "local_only": counts.get(LOCAL, 0),
            "last_upload": last,
        }

    def newest_scanned_at(self) -> str | None:
        """The latest ``scanned_at`` journaled (the clock guard's reference), or None."""
        with self.reading() as conn:
            newest: str | None = conn.execute(select(func.max(journal_table.c.scanned_at))
                                              ).scalar()
        return newest

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """This gate's last ``limit`` decisions, newest first (alarms and releases left
        out: nobody scanned them): what the page lists as recent scans after a restart."""
        cols = journal_table.c
        query = (select(cols.scan_id, cols.ticket_id, cols.barcode, cols.direction,
                        cols.result, cols.reason, cols.message, cols.scanned_at, cols.offline,
                        cols.passed)
                 .where(cols.gate_id == self.gate_id,
                        cols.reason.not_in([reason.value for reason in ALARMS]))
                 .order_by(cols.seq.desc()).limit(limit))
        with self.reading() as conn:
            return [_plain(row) for row in conn.execute(query).mappings()]

    def entries(self, since: str | None = None,
                until: str | None = None) -> Iterator[dict[str, Any]]:
        """Every journaled scan in journal order, scanned at or after ``since`` and before
        ``until`` (ISO times) if given, with who made it and why when a person or an alarm
        did (``scanner.journal.supervision``; None for a read).

        Raises ValueError for a bound that is not an ISO-8601 time.
        """
        start = normalize_iso(since) if since else None
        end = normalize_iso(until) if until else None
        cols = journal_table.c
        last_seq = 0
        while True:
            query = (select(journal_table, *SUPERVISION_COLUMNS)
                     .outerjoin(supervision, supervision.c.scan_id == cols.scan_id)
                     .where(cols.seq > last_seq))
            if start is not None:
                query = query.where(cols.scanned_at >= start)
            if end is not None:
                query = query.where(cols.scanned_at < end)
            with self.reading() as conn:
                rows = conn.execute(query.order_by(cols.seq).limit(_ENTRIES_CHUNK)).mappings()
                chunk = [_plain(row) for row in rows]
            if not chunk:
                return
            yield from chunk
            last_seq = chunk[-1]["seq"]

    # -- the upload queue ----------------------------------------------------------------

    def pending_events(self) -> list[str]:
        """Events with scans waiting for upload."""
        cols = journal_table.c
        query = (select(cols.event_id).where(cols.upload_state == PENDING)
                 .where(cols.event_id.is_not(None)).distinct().order_by(cols.event_id))
        with self.reading() as conn:
            return list(conn.execute(query).scalars())

    def pending(self, event_id: str, limit: int) -> list[QueuedScan]:
        """The oldest ``limit`` scans of one event waiting for upload, oldest first."""
        cols = journal_table.c
        query = (select(cols.seq, cols.scan_id, cols.event_id, cols.ticket_id, cols.barcode,
                        cols.scanned_at, cols.result, cols.direction)
                 .where(cols.upload_state == PENDING, cols.event_id == event_id)
                 .order_by(cols.seq).limit(limit))
        with self.reading() as conn:
            return [QueuedScan(*row) for row in conn.execute(query)]

    def mark_sent(self, seqs: Iterable[int], at: str) -> int:
        """Mark scans the server acknowledged; returns how many changed state."""
        seqs = list(seqs)
        cols = journal_table.c
        # Only pending rows move: a scan is sent or rejected once, never both.
        stmt = (update(journal_table).where(cols.seq.in_(seqs), cols.upload_state == PENDING)
                .values(upload_state=SENT, uploaded_at=at, upload_error=None))
        with self.writing() as conn:
            changed = conn.execute(stmt).rowcount
            put_meta(conn, _LAST_UPLOAD_KEY, at, meta)
        return changed

    def mark_rejected(self, seq: int, error: str) -> bool:
        """Park one scan the server refused, with its answer; it no longer blocks the queue."""
        cols = journal_table.c
        stmt = (update(journal_table).where(cols.seq == seq, cols.upload_state == PENDING)
                .values(upload_state=REJECTED, upload_error=error))
        with self.writing() as conn:
            return conn.execute(stmt).rowcount == 1

    def check_writable(self) -> None:
        """Raise StoreError unless a write commits now (a read-only or full disk fails it):
        the outbox asks before sending what it must then be able to mark sent."""
        with self.writing() as conn:
            put_meta(conn, _WRITE_PROBE_KEY, "ok", meta)

    def requeue_rejected(self) -> int:
        """Put every rejected scan back in the queue (after the cause was fixed)."""
        cols = journal_table.c
        stmt = (update(journal_table).where(cols.upload_state == REJECTED)
                .values(upload_state=PENDING))
        with self.writing() as conn:
            return conn.execute(stmt).rowcount

    # -- the server-clock offset ---------------------------------------------------------

    def saved_clock_offset(self) -> float | None:
        """The last server-minus-device offset saved, so an offline restart still corrects."""
        with self.reading() as conn:
            value = conn.execute(select(meta.c.value)
                                 .where(meta.c.key == _CLOCK_OFFSET_KEY)).scalar()
        return float(value) if value is not None else None

    def saved_clock_stamp(self) -> str | None:
        """The device clock's stamp (``scanner.clock.ClockStamp``) the offset was taken at."""
        with self.reading() as conn:
            return conn.execute(select(meta.c.value)
                                .where(meta.c.key == _CLOCK_STAMP_KEY)).scalar()

    def server_seen(self) -> str | None:
        """The server time last adopted (``scanner.clock_guard.ServerSeen`` as text)."""
        return self._meta(_SERVER_SEEN_KEY)

    def server_clock(self) -> str | None:
        """The verdict on the server's last Date (``scanner.journal.offset``), so ``gate
        status`` in another process tells what the daemon found."""
        return self._meta(_SERVER_CLOCK_KEY)

    def save_server_clock(self, text: str) -> None:
        with self.writing() as conn:
            put_meta(conn, _SERVER_CLOCK_KEY, text, meta)

    def _meta(self, key: str) -> str | None:
        with self.reading() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def save_clock_offset(self, offset: float, stamp: str = "", *,
                          seen: str | None = None) -> None:
        with self.writing() as conn:
            put_meta(conn, _CLOCK_OFFSET_KEY, repr(float(offset)), meta)
            put_meta(conn, _CLOCK_STAMP_KEY, stamp, meta)
            if seen is not None:
                put_meta(conn, _SERVER_SEEN_KEY, seen, meta)
