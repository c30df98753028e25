"""``gate bench upload``: how fast the outbox drains a backlog into the simulator.

N pending scans are written straight into a fresh journal (one transaction, not timed), then
one ``Outbox.drain_once`` sends them to an in-process ``SimServer`` on loopback over real
HTTP, and the server's record is checked to hold every one. Goal: 10,000 scans in <= 5 s,
i.e. the backlog of a busy gate after an outage clears within seconds.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.stats import goal, goal_line
from scanner.config import DEFAULT_UPLOAD_BATCH

DEFAULT_SCANS = 10_000
# 10,000 scans in 5 s: the goal scales with N as a rate.
GOAL_RATE = 10_000 / 5.0


def queue_scans(journal: Any, event_id: str, count: int) -> None:
    """Write ``count`` granted check-ins of distinct tickets as pending, in one commit."""
    from scanner.decide.model import Decision, Direction, Feedback, Reason
    from scanner.journal.ids import new_scan_id
    from scanner.journal.journal import insert_statement, journal_row
    from scanner.tickets import Ticket

    stamp = "2030-01-01T10:00:00.000Z"
    rows: list[Sequence[Any]] = []
    for i in range(count):
        ticket = Ticket(id=f"t{i:09d}", barcode=f"BENCH{i:09d}", event_id=event_id,
                        status="VALID", ticket_type_id="tt", ticket_name="General admission",
                        seller_id="sel", created_at=stamp, updated_at=stamp)
        decision = Decision(True, Reason.GRANTED, "Welcome", Feedback.GREEN, Direction.IN,
                            ticket.barcode, ticket)
        rows.append(journal_row(decision, gate_id="bench", scan_id=new_scan_id(),
                                scanned_at=stamp, latency_ms=0.0, event_id=None))
    insert = insert_statement(journal.engine.dialect)
    raw = journal.engine.raw_connection()
    try:
        raw.driver_connection.executemany(insert.sql, insert.many(rows))
        raw.driver_connection.commit()
    finally:
        raw.close()


def run(count: int, batch_size: int, workdir: Path) -> dict[str, Any]:
    from scanner.app import Gate
    from scanner.config import ApiConfig, GateConfig, Secret, UploadConfig
    from scanner.sim import SimServer, World

    world = World(seed=11, events=1, tickets_per_event=0)
    event_id = world.event_ids[0]
    server = SimServer(world).start()
    try:
        config = GateConfig(gate_id="bench", db=str(workdir / "upload.db"),
                            api=ApiConfig(url=server.url, token=Secret(server.token)),
                            upload=UploadConfig(batch_size=batch_size))
        with Gate(config) as gate:
            queue_scans(gate.journal, event_id, count)
            outbox = gate.outbox  # built (with its HTTP client) before the clock starts
            started = time.perf_counter()
            report = outbox.drain_once()
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
    rate = count / elapsed if elapsed > 0 else float("inf")
    return {
        "scans": count, "batch_size": batch_size, "seconds": round(elapsed, 3),
        "scans_per_s": round(rate, 1), "requests": report.batches,
        "sent": report.sent, "on_server": len(world.scans), "errors": report.errors,
        "goals": [goal(f"{count} scans drained", elapsed, count / GOAL_RATE, "s")],
    }


@click.command()
@click.option("--scans", "count", type=click.IntRange(min=1), default=DEFAULT_SCANS,
              show_default=True, help="Pending scans to drain.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_UPLOAD_BATCH,
              show_default=True, help="Scans per POST /scans request.")
@click.option("--json", "as_json", is_flag=True, help="Figures as one JSON document.")
def command(count: int, batch_size: int, as_json: bool) -> int:
    """Outbox drain rate against the in-process simulator on loopback."""
    with tempfile.TemporaryDirectory(prefix="gate-bench-upload-") as tmp:
        doc = run(count, batch_size, Path(tmp))
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"drained {doc['sent']} of {count} scans in {doc['seconds']} s "
                   f"({doc['scans_per_s']} scans/s, {doc['requests']} requests); "
                   f"server holds {doc['on_server']}")
        for g in doc["goals"]:
            click.echo(goal_line(g))
    # Anything not on the server is a lost scan: that is a failure, not a slow run.
    return 0 if doc["on_server"] == count and not doc["errors"] else 1
