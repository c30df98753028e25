"""Every gate's records in this gate's database: the ``PeerJournal`` the link talks to.

One table, ``mesh_scans``, holds the records of all gates, this gate's own included (with
its HLC stamp and mesh sequence number, which the journal does not have). A peer's record
is kept as a record of its own gate with ``upload_state = 'peer'``: its origin uploads it,
never this gate. This gate's records are ``'journal'``: the journal uploads them.

Own records are made from the journal (``stamp_journal``), in journal order, after the gate
has acted: so a crash between journal and mesh loses nothing, the next round stamps what
is missing. Peer records are written in batches through ``peer_engine`` (no fsync per
commit: nothing depends on them surviving a power cut, anti-entropy fetches them again
from their origin).

The tables are the journal database's (``scanner.journal.schema``, version 2).
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, pairwise
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, literal_column, select

from scanner.db import faults
from scanner.db.database import Database
from scanner.db.driver_sql import compile_for_driver
from scanner.db.keyed import put_meta
from scanner.decide.model import Direction, PastScan
from scanner.journal.schema import journal_meta, mesh_conflicts, mesh_scans, supervision
from scanner.mesh.hlc import HybridClock, Stamp
from scanner.mesh.message import Record, decision_of
from scanner.tickets import utc_iso
from scanner.zones.escrow import Ledger

PEER, OWN = "peer", "journal"
LINK_STATE_KEY = "mesh_link_state"  # the running link's state, for gate status elsewhere
LEDGERS_KEY = "zone_ledgers"       # every gate's last ledger (scanner.zones.escrow)
_STAMP_BATCH = 500
_DETECT_CHUNK = 500  # tickets per conflict query (SQLite allows 999 parameters)

_RECORD_COLUMNS = ("scan_id", "origin", "seq", "hlc", "ticket_id", "event_id", "barcode",
                   "direction", "result", "reason", "scanned_at")
_c = mesh_scans.c
# A ticket's granted scans at every gate, asked on every decision: plain driver SQL on a
# held connection (through a pooled SQLAlchemy connection it cost about 80 times as much,
# most of a decision's time in a venue). ix_mesh_scans_ticket_hlc reads it in HLC order.
_TICKET_HISTORY = (select(_c.origin, _c.direction, _c.scanned_at, _c.hlc, _c.scan_id)
                   .where(_c.ticket_id == bindparam("ticket_id"),
                          _c.result == literal_column("'OK'"))
                   .order_by(_c.hlc))
_origin = operator.itemgetter(1)  # Record.gate
# One row's values: an own record with its journal row and upload state; a peer's record as
# it is, no journal row, never uploaded here (no tuple made per record).
_OWN_ROW = f"({', '.join('?' * (len(_RECORD_COLUMNS) + 2))})"
_PEER_ROW = f"({', '.join('?' * len(_RECORD_COLUMNS))}, NULL, '{PEER}')"
# Rows are inserted as multi-row VALUES statements: one step inserts them all, where an
# executemany binds, steps and resets once per row and releases the GIL each time (a handoff
# while the gate's other threads wait for it); that per-row work was about 40% of storing a
# peer's record. 999 bound parameters per statement: SQLite's limit before 3.32.
_MAX_PARAMS = 999
# Stamping and anti-entropy run every tick: plain SQL, not SQLAlchemy's per-call compile.
_STAMPED = "SELECT max(journal_seq), max(seq) FROM mesh_scans WHERE origin = ?"
_ANY_UNSTAMPED = "SELECT 1 FROM journal WHERE seq > ? AND gate_id = ? LIMIT 1"
# With who and why of an entry a person or the turnstile made (table supervision), which
# the record carries to the control room; mesh_scans keeps the decision fields only.
_UNSTAMPED = ("SELECT j.seq, j.scan_id, j.ticket_id, j.event_id, j.barcode, j.direction,"
              " j.result, j.reason, j.scanned_at, s.role, s.session, s.why, s.note,"
              " s.ref_scan_id"
              " FROM journal j LEFT JOIN supervision s ON s.scan_id = j.scan_id"
              " WHERE j.seq > ? AND j.gate_id = ? ORDER BY j.seq LIMIT ?")
_HELD_SEQS = "SELECT DISTINCT seq FROM mesh_scans WHERE origin = ? AND seq > ? ORDER BY seq"
_HELD_COUNT = ("SELECT count(DISTINCT seq) FROM mesh_scans"
               " WHERE origin = ? AND seq > ? AND seq <= ?")
# Tickets of admissions after a rowid that were admitted at another gate as well. NOT
# INDEXED: the new rows are walked by rowid (left to itself, SQLite walks the whole ticket
# index for DISTINCT, every batch); o.rowid <> n.rowid drops the row itself from the index
# entry, before its table row is read for its origin.
_CANDIDATES = ("SELECT DISTINCT n.ticket_id FROM mesh_scans n NOT INDEXED"
               " WHERE n.rowid > ? AND n.result = 'OK' AND n.direction = 'IN'"
               " AND n.ticket_id IS NOT NULL AND EXISTS (SELECT 1 FROM mesh_scans o"
               " WHERE o.ticket_id = n.ticket_id AND o.rowid <> n.rowid"
               " AND o.origin <> n.origin AND o.result = 'OK' AND o.direction = 'IN')")


@dataclass(frozen=True, slots=True)
class Conflict:
    ticket_id: str
    first: Record
    second: Record
    detected_at: str

    def to_json(self) -> dict[str, Any]:
        def scan(r: Record) -> dict[str, Any]:
            return {"scan_id": r.scan_id, "gate": r.gate, "scanned_at": r.scanned_at,
                    "hlc": r.hlc, "seq": r.seq}
        return {"ticket_id": self.ticket_id, "barcode": self.first.barcode,
                "event_id": self.first.event_id, "detected_at": self.detected_at,
                "first": scan(self.first), "second": scan(self.second)}


class PeerJournal(Protocol):
    """What the link needs from the gate's storage."""

    def record_peer(self, record: Record) -> bool: ...
    def record_many(self, records: Sequence[Record]) -> int: ...
    def held_ranges(self, origin: str, *, after: int = 0) -> list[tuple[int, int]]: ...
    def local_range(self, first: int, last: int) -> list[Record]: ...
    def stamp_journal(self, clock: HybridClock, *, after: int = 0) -> list[Record]: ...
    def own_max_seq(self) -> int: ...
    def conflicts(self) -> list[Conflict]: ...


def missing_ranges(held: Sequence[tuple[int, int]], upto: int, *,
                   after: int = 0) -> list[tuple[int, int]]:
    """The inclusive ranges of ``after``+1..``upto`` not covered by ``held`` (sorted,
    disjoint)."""
    gaps: list[tuple[int, int]] = []
    expect = after + 1
    for first, last in held:
        if first > upto:
            break
        if first > expect:
            gaps.append((expect, first - 1))
        expect = max(expect, last + 1)
    if expect <= upto:
        gaps.append((expect, upto))
    return gaps


class MeshStore(Database):
    """``engine`` is the journal database; ``peer_engine`` (default: the same) is the same
    database opened without a full fsync per commit, for peers' records: losing the last
    of them in a power cut costs a replay from their origin, while a gate receiving 49
    peers' scans would otherwise fsync 49 times for each. Own records are stamped through
    ``engine``: their sequence numbers are announced, so they must outlive a crash."""

    def __init__(self, engine: Engine, gate_id: str, *,
                 peer_engine: Engine | None = None) -> None:
        super().__init__(engine, faults.JOURNAL)
        self.peer_engine = peer_engine or engine
        self.gate_id = gate_id
        self._lock = threading.Lock()  # stamping must hand out each sequence number once
        self._stamped: int | None = None   # the last journal row this store stamped
        self._own_top: int | None = None   # the highest own sequence number, once stamped
        self._history_lock = threading.Lock()  # the held connection: one thread at a time
        self._history_held = self.held()
        self._history = compile_for_driver(_TICKET_HISTORY, engine.dialect, ("ticket_id",))
        # Peers' granted records received and not written yet, by ticket: ``history`` sees
        # them at once, however long the link waits to write a batch.
        self._staged: dict[str, dict[str, Record]] = {}
        self._staged_lock = threading.Lock()

    # -- writing -------------------------------------------------------------------------

    def record_peer(self, record: Record) -> bool:
        """Keep one peer's record; False if it was held already (idempotent by scan id)."""
        return self.record_many([record]) == 1

    def stage(self, records: Iterable[Record]) -> None:
        """Peer records received, to be kept by a later ``record_many``: the granted ones
        count in ``history`` meanwhile (a decision never waits for a batch to be written)."""
        with self._staged_lock:
            for r in records:
                if r.result == "OK" and r.ticket_id is not None and r.gate != self.gate_id:
                    self._staged.setdefault(r.ticket_id, {})[r.scan_id] = r

    def record_many(self, records: Sequence[Record]) -> int:
        """Keep peer records in one transaction; returns how many were new. Staged ones
        among them are unstaged, kept or not (a failed write is asked for again)."""
        rows = [r for r in records if r.gate != self.gate_id] \
            if self.gate_id in map(_origin, records) else records
        try:
            # A peer's who and why are its own journal's: kept here are the decision fields.
            return self._insert(list(map(decision_of, rows)), self.peer_engine, _PEER_ROW) \
                if rows else 0
        finally:
            if self._staged:
                self._unstage(rows)

    def _unstage(self, records: Iterable[Record]) -> None:
        with self._staged_lock:
            for r in records:
                if r.ticket_id is not None and (held := self._staged.get(r.ticket_id)):
                    held.pop(r.scan_id, None)
                    if not held:
                        del self._staged[r.ticket_id]

    def stamp_journal(self, clock: HybridClock, *, after: int = 0) -> list[Record]:
        """Make mesh records of journal rows not stamped yet, in journal order, numbered
        after every own sequence number held and after ``after`` (one used before a wipe).

        The link calls this every tick: when the journal has nothing after the last row
        this store stamped, one indexed probe answers (the full read below re-reads the
        maxima from the database, so the remembered row is only ever a shortcut)."""
        with self._lock:
            if self._stamped is not None:
                with self.reading() as conn:
                    if conn.exec_driver_sql(_ANY_UNSTAMPED,
                                            (self._stamped, self.gate_id)).first() is None:
                        return []
            with self.writing() as conn:
                done, seq = conn.exec_driver_sql(_STAMPED, (self.gate_id,)).one()
                done, seq = done or 0, max(seq or 0, after)
                rows = conn.exec_driver_sql(_UNSTAMPED,
                                            (done, self.gate_id, _STAMP_BATCH)).all()
            self._stamped, self._own_top = done, seq
            if not rows:
                return []
            records, values = [], []
            for jseq, scan_id, ticket, event, barcode, direction, result, reason, at, \
                    *who in rows:
                seq += 1
                record = Record(scan_id, self.gate_id, seq, str(clock.now()), ticket, event,
                                barcode, direction, result, reason, at, *who)
                records.append(record)
                values.append((*decision_of(record), jseq, OWN))
            self._insert(values, self.engine, _OWN_ROW)
            self._stamped, self._own_top = values[-1][-2], seq
            return records

    def _insert(self, rows: Sequence[tuple[Any, ...]], engine: Engine, row: str) -> int:
        """Plain tuples, as few multi-row statements (SQLAlchemy's per-row parameter
        handling cost more than SQLite's insert); a scan id held already is skipped by the
        primary key. ``row`` is one row's VALUES (``_OWN_ROW``, ``_PEER_ROW``)."""
        step = _MAX_PARAMS // row.count("?")
        with self.writing(engine) as conn:
            mark = conn.exec_driver_sql("SELECT max(rowid) FROM mesh_scans").scalar() or 0
            new = 0
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                new += conn.exec_driver_sql(_insert_sql(row, len(chunk)),
                                            tuple(chain.from_iterable(chunk))).rowcount
            if new:
                self._detect(conn, mark)
        return new

    def _detect(self, conn: Connection, mark: int) -> None:
        """Record every pair of admissions at different gates with no check-out between,
        for the tickets of the rows inserted after rowid ``mark``. One set-based query
        finds the few tickets admitted at another gate too (a replay brings thousands of
        rows, nearly all of tickets seen nowhere else); only those are looked at in order."""
        tickets = list(conn.exec_driver_sql(_CANDIDATES, (mark,)).scalars())
        found: list[dict[str, str]] = []
        now = utc_iso_now()
        for start in range(0, len(tickets), _DETECT_CHUNK):
            rows = conn.execute(select(_c.ticket_id, _c.scan_id, _c.origin, _c.direction)
                                .where(_c.ticket_id.in_(tickets[start:start + _DETECT_CHUNK]),
                                       _c.result == "OK")
                                .order_by(_c.ticket_id, _c.hlc)).all()
            found += [{"first_scan_id": a.scan_id, "second_scan_id": b.scan_id,
                       "ticket_id": a.ticket_id, "detected_at": now}
                      for a, b in pairwise(rows) if a.ticket_id == b.ticket_id
                      and a.direction == b.direction == "IN" and a.origin != b.origin]
        if found:
            conn.execute(insert(mesh_conflicts).prefix_with("OR IGNORE"), found)

    def save_link_state(self, state: dict[str, Any], saved_at: str) -> None:
        """The link's state (connected, peers, deciding alone since, drops) in
        ``journal_meta``, so ``gate status`` in another process can show it with its age."""
        value = orjson.dumps({"saved_at": saved_at, "state": state}).decode()
        with self.writing(self.peer_engine) as conn:  # no fsync: it is a view
            put_meta(conn, LINK_STATE_KEY, value, journal_meta)

    def link_state(self) -> tuple[dict[str, Any], str] | None:
        """What ``save_link_state`` saved last, and when (ISO UTC); None if never."""
        with self.reading() as conn:
            value = conn.execute(select(journal_meta.c.value)
                                 .where(journal_meta.c.key == LINK_STATE_KEY)).scalar()
        if value is None:
            return None
        try:
            doc = orjson.loads(value)
            return dict(doc["state"]), str(doc["saved_at"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # a damaged view is no view; the next save replaces it

    def save_ledgers(self, ledgers: list[Ledger]) -> None:
        """The gate's own zone ledger and the last heard of every other gate, durably
        (``engine``: fsync'd): the own one is saved before it is published, as its counts
        only grow and places must never be given twice; the others give a restarted gate
        (and ``gate zones``) every gate's zone at once."""
        value = orjson.dumps([ledger.to_json() for ledger in ledgers]).decode()
        with self.writing(self.engine) as conn:
            put_meta(conn, LEDGERS_KEY, value, journal_meta)

    def ledgers(self) -> list[Ledger]:
        """What ``save_ledgers`` saved last; a damaged entry is left out (said by the
        caller when its own is missing)."""
        with self.reading() as conn:
            value = conn.execute(select(journal_meta.c.value)
                                 .where(journal_meta.c.key == LEDGERS_KEY)).scalar()
        try:
            docs = orjson.loads(value) if value else []
        except orjson.JSONDecodeError:
            return []
        found: list[Ledger] = []
        for doc in docs if isinstance(docs, list) else []:
            try:
                found.append(Ledger.from_json(doc))
            except ValueError:
                continue
        return found

    # -- reading -------------------------------------------------------------------------

    def held_ranges(self, origin: str, *, after: int = 0) -> list[tuple[int, int]]:
        """The sequence numbers of ``origin`` after ``after`` held here, as sorted
        inclusive ranges (``after``: what is known complete, so not read again)."""
        with self.reading() as conn:
            return _ranges(conn.exec_driver_sql(_HELD_SEQS, (origin, after)).scalars())

    def holds_all(self, origin: str, upto: int, *, after: int = 0) -> bool:
        """Whether every sequence number after..``upto`` of ``origin`` is held (one count
        over the new part only: ``after`` is what was found complete before)."""
        with self.reading() as conn:
            held = conn.exec_driver_sql(_HELD_COUNT, (origin, after, upto)).scalar()
        return int(held or 0) >= upto - after

    def held_max(self, origin: str) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(func.max(_c.seq))
                                    .where(_c.origin == origin)).scalar() or 0)

    def held_maxima(self) -> dict[str, int]:
        """Every origin's highest sequence number held, in one query (status, kiosk)."""
        with self.reading() as conn:
            return dict(conn.execute(select(_c.origin, func.max(_c.seq))
                                     .group_by(_c.origin)).all())

    def own_max_seq(self) -> int:
        """Only this store stamps own records: after its first stamp it knows the answer
        (the link asks every round, to announce it)."""
        top = self._own_top
        return self.held_max(self.gate_id) if top is None else top

    def origins(self) -> list[str]:
        with self.reading() as conn:
            return list(conn.execute(select(_c.origin).distinct()).scalars())

    def local_range(self, first: int, last: int) -> list[Record]:
        """This gate's own records with sequence numbers first..last, for a replay."""
        return self._records(and_(_c.origin == self.gate_id, _c.seq >= first, _c.seq <= last))

    def records(self) -> list[Record]:
        """Every record held, in HLC order (audits, and the tests' convergence checks)."""
        return self._records(None)

    def history(self, ticket_id: str) -> list[tuple[str, PastScan]]:
        """The granted scans of one ticket at every gate, as (origin, scan), in HLC order."""
        held = self._history_held
        with self._staged_lock:  # before the read: a record written meanwhile is in both
            staged = list(self._staged.get(ticket_id, {}).values())
        try:
            with self._history_lock:
                rows = held.execute(self._history, (ticket_id,))
        except held.errors as exc:
            raise self.fault(exc, "cannot read the mesh's records") from exc
        if staged:
            stored = {scan_id for *_, scan_id in rows}
            rows = sorted([*rows, *((r.gate, r.direction, r.scanned_at, r.hlc, r.scan_id)
                                    for r in staged if r.scan_id not in stored)],
                          key=operator.itemgetter(3))
        return [(origin, PastScan(Direction(d), at, origin)) for origin, d, at, *_ in rows]

    def venue_counts(self) -> dict[str, int]:
        """The whole venue's counters from every gate's records: admissions, check-outs,
        and tickets inside now (latest granted scan by HLC is an IN)."""
        granted = and_(_c.result == "OK", _c.ticket_id.is_not(None))
        latest = select(_c.direction, func.row_number().over(
            partition_by=_c.ticket_id, order_by=_c.hlc.desc()).label("n")) \
            .where(granted).subquery()
        with self.reading() as conn:
            moves: dict[str, int] = dict(conn.execute(
                select(_c.direction, func.count()).where(granted)
                .group_by(_c.direction)).all())
            inside = conn.execute(select(func.count()).select_from(latest)
                                  .where(latest.c.n == 1, latest.c.direction == "IN")).scalar()
        return {"inside": int(inside or 0), "in": int(moves.get("IN", 0)),
                "out": int(moves.get("OUT", 0))}

    def conflict_count(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(mesh_conflicts)).scalar()
                       or 0)

    def max_stamp(self, origin: str | None = None) -> Stamp | None:
        """The latest stamp held, of every gate or of ``origin`` alone."""
        query = select(func.max(_c.hlc))
        if origin is not None:
            query = query.where(_c.origin == origin)
        with self.reading() as conn:
            top = conn.execute(query).scalar()
        return Stamp.parse(top) if top else None

    def conflicts(self) -> list[Conflict]:
        first, second = mesh_scans.alias("first"), mesh_scans.alias("second")
        k = mesh_conflicts.c
        cols = [*(first.c[n] for n in _RECORD_COLUMNS), *(second.c[n] for n in _RECORD_COLUMNS)]
        query = (select(k.ticket_id, k.detected_at, *cols)
                 .join(first, first.c.scan_id == k.first_scan_id)
                 .join(second, second.c.scan_id == k.second_scan_id)
                 .order_by(first.c.hlc))
        n = len(_RECORD_COLUMNS)
        with self.reading() as conn:
            return [Conflict(row[0], Record(*row[2:2 + n]), Record(*row[2 + n:]), row[1])
                    for row in conn.execute(query)]

    def _records(self, where: Any) -> list[Record]:
        """Records with who and why for this gate's own entries (its supervision rows)."""
        who = supervision.c
        query = (select(*(_c[n] for n in _RECORD_COLUMNS), who.role, who.session, who.why,
                        who.note, who.ref_scan_id)
                 .outerjoin(supervision, supervision.c.scan_id == _c.scan_id)
                 .order_by(_c.hlc))
        if where is not None:
            query = query.where(where)
        with self.reading() as conn:
            return [Record(*row) for row in conn.execute(query)]


@functools.lru_cache(maxsize=256)
def _insert_sql(row: str, rows: int) -> str:
    """An INSERT OR IGNORE of ``rows`` rows of values ``row`` (a batch's tail has its own
    length; both the text and sqlite3's prepared statement are kept per length)."""
    return (f"INSERT OR IGNORE INTO mesh_scans ({', '.join(_RECORD_COLUMNS)}, journal_seq,"
            f" upload_state) VALUES {', '.join([row] * rows)}")


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for seq in seqs:
        if spans and seq == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], seq)
        else:
            spans.append((seq, seq))
    return spans


def utc_iso_now() -> str:
    return utc_iso(datetime.now(UTC))
