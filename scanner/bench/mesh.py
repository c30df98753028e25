"""``gate bench mesh``: gates of one venue on one local mosquitto.

Every gate is in this process: its own SQLite journal file, MeshStore and Link (its own MQTT
connection and threads), as in the daemon. Three figures:

- spread: a scan journaled at one gate (round robin), until every other gate has stored it;
  goal p99 <= 200 ms on loopback;
- partition: the broker is killed, ``--scans`` scans are journaled on each "side" (each
  gate is alone: half the gates take side one's scans, half side two's), the broker comes
  back, and the time until every gate holds every record is measured (goal 10 s);
- cost: process CPU seconds and RSS growth, divided by the number of gates (an
  approximation: the gates share one interpreter), and the broker's CPU seconds.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.stats import goal, goal_line, percentiles

SPREAD_GOAL_MS = 200.0
CONVERGE_GOAL_S = 10.0


class _Bench:
    def __init__(self, gates: int, workdir: Path) -> None:
        from scanner.journal.journal import Journal
        from scanner.mesh.link import Link, MeshSettings
        from scanner.mesh.localbroker import LocalBroker
        from scanner.mesh.store import MeshStore
        from scanner.store.db import make_journal_engine

        self.broker = LocalBroker(workdir / "broker").start()
        settings = MeshSettings(url=self.broker.url, key=b"bench-venue-key-0123456789",
                                reconnect_min=1, reconnect_max=2, anti_entropy_interval=2.0)
        self.arrivals: dict[str, dict[str, float]] = {}
        self.gates: list[tuple[Any, Any, Any, Any]] = []
        for i in range(gates):
            name = f"g{i:02d}"
            engine = make_journal_engine(f"sqlite:///{workdir / name}.db")
            store = MeshStore(engine, name)
            seen = self.arrivals.setdefault(name, {})

            def heard(records: list[Any], seen: dict[str, float] = seen) -> None:
                now = time.perf_counter()
                for r in records:
                    seen.setdefault(r.scan_id, now)

            link = Link(settings, store, on_records=heard)
            self.gates.append((engine, Journal(engine, name), store, link))
        for *_, link in self.gates:
            link.start()
        self.wait(lambda: all(link.connected.is_set() for *_, link in self.gates), 30)
        self.n = 0

    def scan(self, index: int) -> tuple[str, float]:
        from scanner.decide.model import Decision, Direction, Feedback, Reason
        from scanner.journal.ids import new_scan_id
        from scanner.tickets import Ticket

        _, journal, _, link = self.gates[index]
        self.n += 1
        stamp = "2030-01-01T10:00:00.000Z"
        ticket = Ticket(id=f"t{self.n:09d}", barcode=f"BENCH{self.n:09d}", event_id="ev",
                        status="VALID", ticket_type_id="tt", ticket_name="GA", seller_id="s",
                        created_at=stamp, updated_at=stamp)
        decision = Decision(True, Reason.GRANTED, "Welcome", Feedback.GREEN, Direction.IN,
                            ticket.barcode, ticket)
        scan_id = new_scan_id()
        started = time.perf_counter()
        journal.record(decision, scan_id=scan_id, scanned_at=stamp, latency_ms=0.0)
        link.notify()
        return scan_id, started

    @staticmethod
    def wait(predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        for engine, journal, _, link in self.gates:
            link.stop(timeout=2)
            journal.close()
            engine.dispose()
        self.broker.stop()


def _held(store: Any) -> int:
    return sum(last - first + 1 for o in store.origins() for first, last in store.held_ranges(o))


def run(gates: int, spread_scans: int, partition_scans: int, workdir: Path) -> dict[str, Any]:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    bench = _Bench(gates, workdir)
    try:
        samples: list[float] = []
        for i in range(spread_scans):
            scan_id, started = bench.scan(i % gates)
            origin = f"g{i % gates:02d}"
            others = [g for g in bench.arrivals if g != origin]
            bench.wait(lambda s=scan_id, o=others: all(s in bench.arrivals[g] for g in o), 5)
            samples += [(bench.arrivals[g].get(scan_id, started + 5) - started) * 1000
                        for g in others]
            time.sleep(0.01)
        bench.broker.stop()
        bench.wait(lambda: not any(link.connected.is_set() for *_, link in bench.gates), 30)
        half = max(1, gates // 2)
        for i in range(partition_scans):
            bench.scan(i % half)
            bench.scan(half + i % (gates - half) if gates > 1 else 0)
        total = spread_scans + 2 * partition_scans
        bench.wait(lambda: all(store.own_max_seq() == journal_count
                               for (_, _, store, _), journal_count in
                               zip(bench.gates, _own_counts(bench), strict=True)), 120)
        healed = time.perf_counter()
        bench.broker.start()
        converged = bench.wait(lambda: all(_held(store) >= total
                                           for _, _, store, _ in bench.gates), 300)
        converge_s = time.perf_counter() - healed
        broker_cpu = _proc_cpu(bench.broker.proc.pid) if bench.broker.proc else 0.0
    finally:
        bench.close()
    cpu = time.process_time() - cpu0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    spread = percentiles(samples)
    return {
        "gates": gates, "spread_scans": spread_scans, "partition_scans_per_side": partition_scans,
        "spread": spread, "converged": converged, "converge_s": round(converge_s, 3),
        "cpu_s_per_gate": round(cpu / gates, 3), "rss_mb_per_gate": round(rss_kb / 1024 / gates, 2),
        "broker_cpu_s_after_heal": round(broker_cpu, 3),
        "goals": [goal("spread p99", spread["p99_ms"], SPREAD_GOAL_MS, "ms"),
                  goal("convergence after healing", converge_s if converged else 1e9,
                       CONVERGE_GOAL_S, "s")],
    }


def _own_counts(bench: _Bench) -> list[int]:
    from sqlalchemy import func, select

    from scanner.store.schema import journal

    counts = []
    for engine, *_ in bench.gates:
        with engine.connect() as conn:
            counts.append(int(conn.execute(select(func.count()).select_from(journal)).scalar()))
    return counts


def _proc_cpu(pid: int) -> float:
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@click.command("mesh")
@click.option("--gates", default=50, show_default=True, help="Gates on the one broker.")
@click.option("--spread-scans", default=200, show_default=True,
              help="Scans timed from one gate to every other.")
@click.option("--scans", "partition_scans", default=1000, show_default=True,
              help="Scans on each side of the partition (the issue's goal is 10,000).")
@click.option("--json", "as_json", is_flag=True)
def command(gates: int, spread_scans: int, partition_scans: int, as_json: bool) -> int:
    """Spread latency, convergence after a partition, and cost per gate."""
    with tempfile.TemporaryDirectory(prefix="gate-bench-mesh-") as tmp:
        report = run(gates, spread_scans, partition_scans, Path(tmp))
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return 0
    s = report["spread"]
    click.echo(f"{gates} gates, one mosquitto on loopback")
    click.echo(f"  spread ({spread_scans} scans x {gates - 1} peers): p50 {s['p50_ms']} ms, "
               f"p99 {s['p99_ms']} ms, max {s['max_ms']} ms")
    click.echo(f"  partition: {partition_scans} scans per side, converged "
               f"{report['converged']} in {report['converge_s']} s after healing")
    click.echo(f"  per gate: {report['cpu_s_per_gate']} CPU s, {report['rss_mb_per_gate']} MB RSS;"
               f" broker {report['broker_cpu_s_after_heal']} CPU s after healing")
    for g in report["goals"]:
        click.echo(goal_line(g))
    return 0


