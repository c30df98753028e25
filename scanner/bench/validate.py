"""``gate bench validate``: decision latency over a large store, with and without the journal.

Builds a SQLite store of N tickets by bulk insert (no HTTP), then times random scans:

(a) decision only: store lookup + journal history + rules (``Gatekeeper.decide``);
(b) the full ``Gatekeeper.check``: (a) plus the durable journal write (fsync'd commit);
floor: the least any durable gate can do on this disk, with the bare ``sqlite3`` module in WAL
    with synchronous=FULL: one indexed ticket lookup in the store plus one fsync'd insert in
    the journal's file;
(c) (b) while a sync thread in the same process writes a delta of changed tickets into the
    store, page by page as the sync does (``TicketStore.save_page``, one transaction per
    page of 1,000), against (b) idle in the same run.

(b) and the floor run interleaved, scan by scan, so both see the same disk weather (WAL
checkpoints, other processes). Goals: (a) p99 <= 0.5 ms; (b) p99 within 1.5x of the floor;
(c) p99 under sync <= 2x idle p99, max <= 50 ms, no check refused.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.stats import figure_line, goal, goal_line, percentiles

DEFAULT_TICKETS = 1_000_000
DEFAULT_SCANS = 20_000
GOAL_DECIDE_P99_MS = 0.5
GOAL_DURABLE_RATIO = 1.5
DEFAULT_DELTA = 150_000
GOAL_UNDER_SYNC_RATIO = 2.0
GOAL_UNDER_SYNC_MAX_MS = 50.0
SYNC_PAGE = 1000
BENCH_EVENT = "ev-bench"
_BUILD_CHUNK = 50_000
_WARMUP = 200


def build_store(path: Path, count: int, seed: int = 1) -> list[str]:
    """A store of ``count`` valid tickets of one event, bulk inserted; returns the barcodes."""
    from scanner.store.db import make_engine
    from scanner.store.upsert import COLUMNS, ticket_row

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
            rows = [ticket_row(_bench_ticket(i, barcodes[i], stamp, "General admission"), 0)
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


def _bench_ticket(i: int, barcode: str, updated_at: str, name: str) -> Any:
    from scanner.tickets import Ticket

    return Ticket(id=f"t{i:09d}", barcode=barcode, event_id=BENCH_EVENT, status="VALID",
                  ticket_type_id="tt-general", ticket_name=name, seller_id="sel-bench",
                  created_at="2030-01-01T00:00:00.000Z", updated_at=updated_at)


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _floor_op(store: sqlite3.Connection, journal: sqlite3.Connection, barcode: str,
              scan_id: str) -> None:
    store.execute("SELECT * FROM tickets WHERE barcode = ?", (barcode,)).fetchall()
    with journal:  # commit: the WAL is fsync'd (synchronous=FULL)
        # upload_state 'local' and no ticket: these rows touch neither queue nor history.
        journal.execute("INSERT INTO journal (scan_id, gate_id, barcode, direction, result, reason,"
                     " message, scanned_at, offline, upload_state) VALUES"
                     " (?, 'floor', ?, 'IN', 'OK', 'GRANTED', '', ?, 1, 'local')",
                     (scan_id, barcode, "2030-01-01T00:00:00.000Z"))


def _sync_delta(store: Any, barcodes: list[str], delta: int, done: threading.Event,
                failed: list[BaseException]) -> None:
    """Change ``delta`` tickets page by page, each page one transaction, as a delta does."""
    try:
        for start in range(0, delta, SYNC_PAGE):
            page = [_bench_ticket(i, barcodes[i], "2030-01-02T00:00:00.000Z", "Changed")
                    for i in range(start, min(start + SYNC_PAGE, delta))]
            store.save_page(BENCH_EVENT, page, generation=None)
    except BaseException as exc:  # reported, not swallowed
        failed.append(exc)
    finally:
        done.set()


def _under_sync(keeper: Any, store: Any, picks: list[Any], barcodes: list[str],
                delta: int) -> dict[str, Any]:
    """(c): durable checks while a sync thread writes the delta, and idle ones before."""
    from scanner.errors import StoreError

    idle_ms = [_timed(partial(keeper.check, b, d)) for b, d in picks]
    done, failed = threading.Event(), list[BaseException]()
    syncer = threading.Thread(target=_sync_delta, args=(store, barcodes, delta, done, failed),
                              name="bench-sync")
    busy_ms: list[float] = []
    refused = 0
    started = time.perf_counter()
    syncer.start()
    n = 0
    while not done.is_set():
        barcode, direction = picks[n % len(picks)]
        n += 1
        try:
            busy_ms.append(_timed(partial(keeper.check, barcode, direction)))
        except StoreError:
            refused += 1
    syncer.join()
    if failed:
        raise failed[0]
    return {"idle": percentiles(idle_ms), "under_sync": percentiles(busy_ms),
            "checks_under_sync": len(busy_ms), "refused": refused, "delta": delta,
            "sync_s": round(time.perf_counter() - started, 2)}


def measure(path: Path, barcodes: list[str], scans: int, seed: int = 2,
            delta: int = DEFAULT_DELTA) -> dict[str, Any]:
    """Run the measurements against the store at ``path``."""
    from sqlalchemy.engine import make_url

    from scanner.app import Gate
    from scanner.config import GateConfig, LookupConfig
    from scanner.decide.model import Direction
    from scanner.store.db import journal_url_beside

    rng = random.Random(seed)
    config = GateConfig(gate_id="bench", db=str(path), events=(BENCH_EVENT,),
                        lookup=LookupConfig(deadline_ms=0))
    picks = [(rng.choice(barcodes), rng.choice((Direction.IN, Direction.OUT)))
             for _ in range(scans)]
    with Gate(config) as gate:
        keeper = gate.gatekeeper  # builds the journal's database beside the store
        journal_file = make_url(journal_url_beside(f"sqlite:///{path}")).database or ""
        floor_store, floor_journal = _sqlite(path), _sqlite(Path(journal_file))
        for n, (barcode, direction) in enumerate(picks[:_WARMUP]):
            keeper.check(barcode, direction)
            _floor_op(floor_store, floor_journal, barcode, f"warm-{n}")  # warm it too
        decide_ms = [_timed(lambda b=b, d=d: keeper.decide(b, d)) for b, d in picks]
        durable_ms, floor_ms = [], []
        for n, (barcode, direction) in enumerate(picks):
            floor_ms.append(_timed(partial(_floor_op, floor_store, floor_journal, barcode,
                                           f"floor-{n}")))
            durable_ms.append(_timed(lambda b=barcode, d=direction: keeper.check(b, d)))
        floor_store.close()
        floor_journal.close()
        sync = _under_sync(keeper, gate.store, picks, barcodes, min(delta, len(barcodes)))
    decide, durable, floor = (percentiles(decide_ms), percentiles(durable_ms),
                              percentiles(floor_ms))
    idle_p99, busy = sync["idle"]["p99_ms"], sync["under_sync"]
    return {
        "decide": decide, "durable": durable, "floor": floor, "sync": sync,
        "goals": [
            goal("decision only p99", decide["p99_ms"], GOAL_DECIDE_P99_MS, "ms"),
            goal("decision + durable journal p99 / floor p99",
                 durable["p99_ms"] / max(floor["p99_ms"], 1e-9), GOAL_DURABLE_RATIO, "x"),
            goal("(c) p99 under sync / idle p99", busy["p99_ms"] / max(idle_p99, 1e-9),
                 GOAL_UNDER_SYNC_RATIO, "x"),
            goal("(c) max under sync", busy["max_ms"], GOAL_UNDER_SYNC_MAX_MS, "ms"),
            goal("(c) checks refused under sync", sync["refused"], 0, "checks"),
        ],
    }


@click.command()
@click.option("--tickets", "count", type=click.IntRange(min=1), default=DEFAULT_TICKETS,
              show_default=True, help="Tickets in the store.")
@click.option("--scans", type=click.IntRange(min=1), default=DEFAULT_SCANS, show_default=True,
              help="Random scans timed per measurement.")
@click.option("--delta", type=click.IntRange(min=SYNC_PAGE), default=DEFAULT_DELTA,
              show_default=True,
              help="Tickets the sync thread changes during (c) (at most --tickets).")
@click.option("--dir", "where", type=click.Path(file_okay=False), default=None,
              help="Where to build the store (its disk's fsync is what is measured); "
                   "default: a temporary directory.")
@click.option("--json", "as_json", is_flag=True, help="Figures as one JSON document.")
def command(count: int, scans: int, delta: int, where: str | None, as_json: bool) -> None:
    """Decision latency with and without the durable journal, against the sqlite floor."""
    with tempfile.TemporaryDirectory(dir=where, prefix="gate-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        barcodes = build_store(path, count)
        built_s = time.perf_counter() - started
        doc = {"tickets": count, "scans": scans, "build_s": round(built_s, 2),
               "db": str(path), **measure(path, barcodes, scans, delta=delta)}
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"store: {count} tickets built in {built_s:.1f} s; {scans} scans per row")
    for key, label in (("decide", "(a) decision only"), ("durable", "(b) decision + journal"),
                       ("floor", "floor: sqlite3 lookup + fsync'd insert")):
        f = doc[key]
        click.echo(figure_line(label, f))
    sync = doc["sync"]
    click.echo(figure_line("(c) idle, same run", sync["idle"]))
    click.echo(figure_line(f"(c) under a {sync['delta']}-ticket sync", sync["under_sync"])
               + f"  ({sync['checks_under_sync']} checks in {sync['sync_s']} s,"
                 f" {sync['refused']} refused)")
    for g in doc["goals"]:
        click.echo(goal_line(g))
