"""Journal entries no read made, with who made them and why (table ``supervision``).

An override of a denial, the answer to a held ticket and a passage alarm are journal
entries like any decision: presence, history, the upload queue, ``gate journal`` and the
venue mesh see them as they see a scan. Beside each, in the same transaction, the
``supervision`` row says who (a role and a tag of the kiosk session, never the session
itself), why (a code and the supervisor's own words) and which scan it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from scanner.db.keyed import lock_for_write
from scanner.decide.model import Decision
from scanner.errors import AlreadyAnswered
from scanner.journal.journal import ROW_COLUMNS, SUPERVISION_COLUMNS, Journal, journal_row
from scanner.journal.schema import journal as journal_table
from scanner.journal.schema import supervision

MAX_NOTE = 200  # a reason in a supervisor's words, not a report


@dataclass(frozen=True, slots=True)
class Who:
    """Who made an entry: ``role`` supervisor, steward, button (the wired confirm button)
    or gate (the gate itself: a timeout, a passage alarm)."""

    role: str
    session: str | None = None     # a tag of the kiosk session
    why: str | None = None         # a code of the short list
    note: str | None = None        # free text, one line


def record(journal: Journal, decision: Decision, *, scan_id: str, scanned_at: str, who: Who,
           answers: str | None = None, event_id: str | None = None) -> None:
    """Journal ``decision`` with its ``supervision`` row, durably, in one transaction.

    ``answers``: the scan it answers; raises AlreadyAnswered when an entry answers it
    already (a second override of one denial would admit one ticket twice)."""
    row = dict(zip(ROW_COLUMNS, journal_row(decision, gate_id=journal.gate_id,
                                            scan_id=scan_id, scanned_at=scanned_at,
                                            latency_ms=0.0, event_id=event_id), strict=True))
    with journal.writing() as conn:
        lock_for_write(conn, supervision)  # two answers to one scan: the second sees the first
        if answers is not None and conn.execute(
                select(supervision.c.scan_id)
                .where(supervision.c.ref_scan_id == answers)).first() is not None:
            raise AlreadyAnswered(f"scan {answers} was answered already")
        conn.execute(insert(journal_table).values(row))
        conn.execute(insert(supervision).values(
            scan_id=scan_id, ref_scan_id=answers, role=who.role, session=who.session,
            why=who.why, note=who.note))


def entry(journal: Journal, scan_id: str) -> dict[str, Any] | None:
    """The journal row of ``scan_id`` with its supervision columns, or None."""
    cols = journal_table.c
    query = (select(journal_table, *SUPERVISION_COLUMNS).outerjoin(
        supervision, supervision.c.scan_id == cols.scan_id).where(cols.scan_id == scan_id))
    with journal.reading() as conn:
        found = conn.execute(query).mappings().first()
    return {str(k): v for k, v in found.items()} if found is not None else None


def answered(journal: Journal, scan_id: str) -> str | None:
    """The entry that answers ``scan_id`` (an override, a confirmation), if one does."""
    with journal.reading() as conn:
        return conn.execute(select(supervision.c.scan_id)
                            .where(supervision.c.ref_scan_id == scan_id)).scalar()

