"""``gate bench validate``: decision latency over a large store, with and without the journal.

Builds a SQLite store of N tickets by bulk insert (no HTTP), then times random scans:

(a) decision only: store lookup + journal history + rules (``Gatekeeper.decide``);
(b) the full ``Gatekeeper.check``: (a) plus the durable journal write (fsync'd commit);
floor: the least any durable gate can do on this disk, with the bare ``sqlite3`` module in WAL
    with synchronous=FULL: one indexed ticket lookup plus one fsync'd journal insert.

(b) and the floor run interleaved, scan by scan, so both see the same disk weather (WAL
checkpoints, other processes). Goals: (a) p99 <= 0.5 ms; (b) p99 within 1.5x of the floor.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.stats import goal, goal_line, percentiles

DEFAULT_TICKETS = 1_000_000
DEFAULT_SCANS = 20_000
GOAL_DECIDE_P99_MS = 0.5
GOAL_DURABLE_RATIO = 1.5
BENCH_EVENT = "ev-bench"
_BUILD_CHUNK = 50_000
_WARMUP = 200


def build_store(path: Path, count: int, seed: int = 1) -> list[str]:
    """A store of ``count`` valid tickets of one event, bulk inserted; returns the barcodes."""
    from scanner.store.db import make_engine
    from scanner.store.upsert import COLUMNS, ticket_row
    from scanner.tickets import Ticket

    # Build speed only: the measured connections below run synchronous=FULL.
    engine = make_engine(f"sqlite:///{path}", synchronous="OFF")
    rng = random.Random(seed)
    barcodes = [f"{rng.getrandbits(64):016X}" for _ in range(count)]
    sql = f"INSERT INTO tickets ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    stamp = "2030-01-01T00:00:00.000Z"
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        if not isinstance(conn, sqlite3.Connection):
            raise TypeError("the bench store is built with sqlite3")
        for start in range(0, count, _BUILD_CHUNK):
            rows = [ticket_row(Ticket(
                id=f"t{i:09d}", barcode=barcodes[i], event_id=BENCH_EVENT, status="VALID",
                ticket_type_id="tt-general", ticket_name="General admission",
                seller_id="sel-bench", created_at=stamp, updated_at=stamp), 0)
                for i in range(start, min(start + _BUILD_CHUNK, count))]
            conn.executemany(sql, rows)
        conn.commit()
    finally:
        raw.close()
        engine.dispose()
    return barcodes


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _floor_op(conn: sqlite3.Connection, barcode: str, scan_id: str) -> None:
    conn.execute("SELECT * FROM tickets WHERE barcode = ?", (barcode,)).fetchall()
    with conn:  # commit: the WAL is fsync'd (synchronous=FULL)
        # upload_state 'local' and no ticket: these rows touch neither queue nor history.
        conn.execute("INSERT INTO journal (scan_id, gate_id, barcode, direction, result, reason,"
                     " message, scanned_at, offline, upload_state) VALUES"
                     " (?, 'floor', ?, 'IN', 'OK', 'GRANTED', '', ?, 1, 'local')",
                     (scan_id, barcode, "2030-01-01T00:00:00.000Z"))


def measure(path: Path, barcodes: list[str], scans: int, seed: int = 2) -> dict[str, Any]:
    """Run the three measurements against the store at ``path``."""
    from scanner.app import Gate
    from scanner.config import GateConfig, LookupConfig
    from scanner.decide.model import Direction

    rng = random.Random(seed)
    config = GateConfig(gate_id="bench", db=str(path), events=(BENCH_EVENT,),
                        lookup=LookupConfig(deadline_ms=0))
    picks = [(rng.choice(barcodes), rng.choice((Direction.IN, Direction.OUT)))
             for _ in range(scans)]
    floor_conn = sqlite3.connect(path)
    floor_conn.execute("PRAGMA journal_mode=WAL")
    floor_conn.execute("PRAGMA synchronous=FULL")
    with Gate(config) as gate:
        keeper = gate.gatekeeper
        for n, (barcode, direction) in enumerate(picks[:_WARMUP]):
            keeper.check(barcode, direction)
            _floor_op(floor_conn, barcode, f"warm-{n}")  # warm the floor's cache too
        decide_ms = [_timed(partial(keeper.decide, b, d)) for b, d in picks]
        durable_ms, floor_ms = [], []
        for n, (barcode, direction) in enumerate(picks):
            floor_ms.append(_timed(partial(_floor_op, floor_conn, barcode, f"floor-{n}")))
            durable_ms.append(_timed(partial(keeper.check, barcode, direction)))
    floor_conn.close()
    decide, durable, floor = (percentiles(decide_ms), percentiles(durable_ms),
                              percentiles(floor_ms))
    return {
        "decide": decide, "durable": durable, "floor": floor,
        "goals": [
            goal("decision only p99", decide["p99_ms"], GOAL_DECIDE_P99_MS, "ms"),
            goal("decision + durable journal p99 / floor p99",
                 durable["p99_ms"] / max(floor["p99_ms"], 1e-9), GOAL_DURABLE_RATIO, "x"),
        ],
    }


@click.command()
@click.option("--tickets", "count", type=click.IntRange(min=1), default=DEFAULT_TICKETS,
              show_default=True, help="Tickets in the store.")
@click.option("--scans", type=click.IntRange(min=1), default=DEFAULT_SCANS, show_default=True,
              help="Random scans timed per measurement.")
@click.option("--dir", "where", type=click.Path(file_okay=False), default=None,
              help="Where to build the store (its disk's fsync is what is measured); "
                   "default: a temporary directory.")
@click.option("--json", "as_json", is_flag=True, help="Figures as one JSON document.")
def command(count: int, scans: int, where: str | None, as_json: bool) -> None:
    """Decision latency with and without the durable journal, against the sqlite floor."""
    with tempfile.TemporaryDirectory(dir=where, prefix="gate-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        barcodes = build_store(path, count)
        built_s = time.perf_counter() - started
        doc = {"tickets": count, "scans": scans, "build_s": round(built_s, 2),
               "db": str(path), **measure(path, barcodes, scans)}
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"store: {count} tickets built in {built_s:.1f} s; {scans} scans per row")
    for key, label in (("decide", "(a) decision only"), ("durable", "(b) decision + journal"),
                       ("floor", "floor: sqlite3 lookup + fsync'd insert")):
        f = doc[key]
        click.echo(f"  {label:<40} p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms  "
                   f"max {f['max_ms']:.3f} ms")
    for g in doc["goals"]:
        click.echo(goal_line(g))
