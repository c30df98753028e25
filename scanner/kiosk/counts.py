"""Decision counts read from the journal itself, for the page's counters and /metrics.

Counting in the process would reset at every restart and drift from what the journal (and
so vivenu) holds; a GROUP BY over the journal always agrees with it. Only this gate's own
rows are counted: once gates share scans, summing every gate's figures must not count a
shared scan twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Engine, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from scanner.db.driver_sql import describe
from scanner.decide.model import NOT_UPLOADED
from scanner.errors import StoreError
from scanner.journal.schema import journal
from scanner.kiosk.present import reason_label

# Seconds; a decision is meant to take about a millisecond, a slow SD card tens of them.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Tally(NamedTuple):
    result: str       # OK | FAIL
    reason: str
    direction: str    # IN | OUT
    scans: int


class Latencies(NamedTuple):
    cumulative: tuple[int, ...]   # scans at or under each of LATENCY_BUCKETS
    scans: int
    total_seconds: float


def tallies(engine: Engine, gate_id: str) -> list[Tally]:
    c = journal.c
    query = (select(c.result, c.reason, c.direction, func.count())
             .where(c.gate_id == gate_id).group_by(c.result, c.reason, c.direction))
    try:
        with engine.connect() as conn:
            return [Tally(*row) for row in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot count the journal: {describe(exc)}") from exc


def latencies(engine: Engine, gate_id: str,
              buckets: Sequence[float] = LATENCY_BUCKETS) -> Latencies:
    """The journal's read-to-decision times (``latency_ms``) as histogram buckets."""
    ms = journal.c.latency_ms
    columns = [func.sum(case((ms <= bound * 1000, 1), else_=0)) for bound in buckets]
    query = (select(func.count(ms), func.coalesce(func.sum(ms), 0.0), *columns)
             .where(journal.c.gate_id == gate_id))
    try:
        with engine.connect() as conn:
            row = conn.execute(query).one()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read latencies from the journal: {describe(exc)}") from exc
    count, total, *cumulative = row
    return Latencies(tuple(int(n or 0) for n in cumulative), int(count), float(total) / 1000)


def counters(rows: list[Tally], inside: int) -> dict[str, object]:
    """The page's counters: in, out, inside now, and denials by reason (alarms and held
    tickets are no denials: a held ticket's answer is counted)."""
    denied: dict[str, int] = {}
    for row in rows:
        if row.result != "OK" and row.reason not in NOT_UPLOADED:
            denied[row.reason] = denied.get(row.reason, 0) + row.scans
    return {
        "in": sum(r.scans for r in rows if r.result == "OK" and r.direction == "IN"),
        "out": sum(r.scans for r in rows if r.result == "OK" and r.direction == "OUT"),
        "inside": inside,
        "denied": [{"reason": reason, "label": reason_label(reason), "count": n}
                   for reason, n in sorted(denied.items(), key=lambda kv: (-kv[1], kv[0]))],
    }
