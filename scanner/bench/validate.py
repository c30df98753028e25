"""``gate bench validate``: decision latency over a large store, with and without the journal.

Builds a SQLite store of the simulator's N tickets by bulk insert (no HTTP), as if a full
sync had just finished, then times random scans:

(a) decision only: store lookup + journal history + rules (``Gatekeeper.decide``);
(b) the full ``Gatekeeper.check``: (a) plus the durable journal write (fsync'd commit);
floor: the least any durable gate can do on this disk, with the bare ``sqlite3`` module in WAL
    with synchronous=FULL: one indexed ticket lookup in the store plus one fsync'd insert in
    the journal's file;
(c) (b) while ``gate run``'s syncer (``Gate.run_syncer``: the Syncer in a child process,
    ``[run] sync_process``) syncs a delta of changed tickets from the simulator (``gate
    sim``, in its own process too) into the same store, against (b) idle in the same run;
    then again with a second delta synced by a Syncer in a thread of this process, as
    ``gate run`` did before, for comparison (no goal).

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
_BUILD_CHUNK = 50_000
_WARMUP = 200


def build_store(path: Path, count: int) -> tuple[str, list[str]]:
    """The simulator's event of ``count`` tickets (``World``'s defaults, as ``gate sim``
    serves it), bulk inserted as a first full sync leaves them; its id and the barcodes."""
    from scanner.databases import make_engine
    from scanner.sim.world import World
    from scanner.store.upsert import DATA_COLUMNS, data_row
    from scanner.tickets import parse_ticket

    world = World(events=1, tickets_per_event=count)
    [event_id] = world.event_ids
    # Build speed only: the measured connections below run the store's own level.
    engine = make_engine(f"sqlite:///{path}", synchronous="OFF")
    sql = (f"INSERT INTO tickets ({', '.join(DATA_COLUMNS)})"
           f" VALUES ({', '.join('?' * len(DATA_COLUMNS))})")
    barcodes: list[str] = []
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        if not isinstance(conn, sqlite3.Connection):
            raise TypeError("the bench store is built with sqlite3")
        for start in range(0, count, _BUILD_CHUNK):
            docs, _total = world.page(event_id, top=_BUILD_CHUNK, skip=start)
            tickets = [parse_ticket(doc)[0] for doc in docs]
            barcodes += [t.barcode for t in tickets]
            conn.executemany(sql, [data_row(t) for t in tickets])
        conn.commit()
    finally:
        raw.close()
        engine.dispose()
    return event_id, barcodes


def _synced(path: Path, event_id: str, count: int) -> None:
    """Record the full sync the bulk insert stands for, so the Syncer's next run is a
    delta from now. Its sync state only: a store just built has nothing to sweep."""
    from scanner.clock import utc_now
    from scanner.databases import make_engine
    from scanner.store import sync_state
    from scanner.tickets import utc_iso

    engine = make_engine(f"sqlite:///{path}")
    try:
        now = utc_iso(utc_now())
        with engine.begin() as conn:
            if sync_state.begin_full(conn, event_id, now) != 1:
                raise RuntimeError("the bench store was synced before")
            sync_state.finish_full(conn, event_id, delta_until=now, at=now,
                                   server_total=count)
    finally:
        engine.dispose()


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


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


def _wait_for_stamps(control: Any, event_id: str) -> None:
    """Wait until the clock passes the newest change's ``updatedAt``: the simulator stamps
    a burst of changes a millisecond apart, ahead of its clock, and a delta ends at server
    time, so without the wait it would leave most of a large burst to the next run."""
    from scanner.tickets import parse_iso
    from scanner.vivenu.urls import API_PREFIX

    path = f"{API_PREFIX}/tickets/v2/{event_id}"
    since = {"from": "2026-01-01T00:00:00.000Z"}
    total = control.get(path, params={"top": 1, "skip": 0, **since}).json()["total"]
    if not total:
        return
    [newest] = control.get(path, params={"top": 1, "skip": total - 1, **since}).json()["docs"]
    ahead = parse_iso(newest["updatedAt"]).timestamp() - time.time()
    time.sleep(max(0.0, ahead) + 1.0)


def _under_sync(keeper: Any, syncer: Any, picks: list[Any], delta: int) -> dict[str, Any]:
    """(c): durable checks while ``syncer`` syncs the delta in a thread, and idle ones
    before."""
    from scanner.errors import StoreError

    idle_ms = [_timed(partial(keeper.check, b, d)) for b, d in picks]
    done, reports, failed = threading.Event(), list[Any](), list[BaseException]()

    def sync() -> None:
        try:
            reports.extend(syncer.run_once())
        except BaseException as exc:  # reported, not swallowed
            failed.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=sync, name="bench-sync")
    busy_ms: list[float] = []
    refused = 0
    started = time.perf_counter()
    thread.start()
    n = 0
    at: list[float] = []
    while not done.is_set():
        barcode, direction = picks[n % len(picks)]
        n += 1
        offset = time.perf_counter() - started
        try:
            busy_ms.append(_timed(partial(keeper.check, barcode, direction)))
            at.append(offset)
        except StoreError:
            refused += 1
    thread.join()
    # Where the worst checks fell in the sync's span, to tell its phases apart.
    worst = sorted(zip(busy_ms, at, strict=True), reverse=True)[:5]
    if failed:
        raise failed[0]
    [report] = reports
    return {"idle": percentiles(idle_ms), "under_sync": percentiles(busy_ms),
            "checks_under_sync": len(busy_ms), "refused": refused, "delta": delta,
            "worst": [{"ms": round(ms, 3), "at_s": round(t, 3)} for ms, t in worst],
            "delta_upserted": report.upserted, "mode": report.mode,
            "sync_s": round(time.perf_counter() - started, 2)}


def measure(path: Path, event_id: str, barcodes: list[str], scans: int, seed: int = 2,
            delta: int = DEFAULT_DELTA) -> dict[str, Any]:
    """Run the measurements against the store at ``path``, built by ``build_store``."""
    import httpx
    from sqlalchemy.engine import make_url

    from scanner.app import Gate
    from scanner.app.daemon import favour_decisions
    from scanner.bench.sync_runs import start_sim
    from scanner.config import ApiConfig, GateConfig, LookupConfig, Secret
    from scanner.decide.model import Direction
    from scanner.sim.server import DEFAULT_TOKEN

    _synced(path, event_id, len(barcodes))
    delta = min(delta, len(barcodes))
    rng = random.Random(seed)
    picks = [(rng.choice(barcodes), rng.choice((Direction.IN, Direction.OUT)))
             for _ in range(scans)]
    sim, url = start_sim(len(barcodes))
    try:
        config = GateConfig(gate_id="bench", db=str(path), events=(event_id,),
                            api=ApiConfig(url=url, token=Secret(DEFAULT_TOKEN)),
                            lookup=LookupConfig(deadline_ms=0))
        with Gate(config) as gate:
            keeper = gate.gatekeeper  # builds the journal's database beside the store
            journal_file = make_url(config.journal_db_url).database or ""
            floor_store, floor_journal = _sqlite(path), _sqlite(Path(journal_file))
            for n, (barcode, direction) in enumerate(picks[:_WARMUP]):
                keeper.check(barcode, direction)
                _floor_op(floor_store, floor_journal, barcode, f"warm-{n}")  # warm it too
            decide_ms = [_timed(partial(keeper.decide, b, d)) for b, d in picks]
            durable_ms, floor_ms = [], []
            for n, (barcode, direction) in enumerate(picks):
                floor_ms.append(_timed(partial(_floor_op, floor_store, floor_journal,
                                               barcode, f"floor-{n}")))
                durable_ms.append(_timed(partial(keeper.check, barcode, direction)))
            floor_store.close()
            floor_journal.close()
            # As in gate run after its first sync: the process set up as the daemon sets
            # itself up, the sync process up, the run a delta.
            favour_decisions()
            gate.run_syncer.run_once()
            runs = {}
            for name, syncer in (("sync", gate.run_syncer), ("thread", gate.syncer)):
                # Changing 150,000 tickets of a 1,000,000-ticket world takes the simulator
                # a while.
                with httpx.Client(base_url=url, headers={"token": DEFAULT_TOKEN},
                                  timeout=300.0) as control:
                    control.post("/_sim/mutate", json={"n": delta, "kind": "change",
                                                       "event_id": event_id}).raise_for_status()
                    _wait_for_stamps(control, event_id)
                runs[name] = _under_sync(keeper, syncer, picks, delta)
            sync = runs["sync"]
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    decide, durable, floor = (percentiles(decide_ms), percentiles(durable_ms),
                              percentiles(floor_ms))
    idle_p99, busy = sync["idle"]["p99_ms"], sync["under_sync"]
    return {
        "decide": decide, "durable": durable, "floor": floor, "sync": sync,
        "sync_thread": runs["thread"],
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
@click.option("--delta", type=click.IntRange(min=1), default=DEFAULT_DELTA,
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
        event_id, barcodes = build_store(path, count)
        built_s = time.perf_counter() - started
        doc = {"tickets": count, "scans": scans, "build_s": round(built_s, 2),
               "db": str(path), **measure(path, event_id, barcodes, scans,
                                                   delta=delta)}
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"store: {count} tickets built in {built_s:.1f} s; {scans} scans per row")
    for key, label in (("decide", "(a) decision only"), ("durable", "(b) decision + journal"),
                       ("floor", "floor: sqlite3 lookup + fsync'd insert")):
        f = doc[key]
        click.echo(figure_line(label, f, 58))
    for key, how in (("sync", "gate run's sync process"), ("sync_thread", "a sync thread")):
        sync = doc[key]
        click.echo(figure_line(f"(c) idle, before {how}", sync["idle"], 58))
        click.echo(figure_line(f"(c) under a {sync['delta']}-change sync, {how}",
                               sync["under_sync"], 58)
                   + f"  ({sync['checks_under_sync']} checks in {sync['sync_s']} s,"
                     f" {sync['refused']} refused; the {sync['mode']} changed"
                     f" {sync['delta_upserted']} tickets; worst at"
                     f" {', '.join(str(w['at_s']) for w in sync['worst'][:3])} s)")
    for g in doc["goals"]:
        click.echo(goal_line(g))
