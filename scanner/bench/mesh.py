"""``gate bench mesh``: gates of one venue on one local mosquitto.

The gates run in ``--processes`` worker processes (gates dealt round robin; by default one
process per gate), each gate with its own SQLite journal file, MeshStore and Link (its own
MQTT connection and threads), as in the daemon: one gate per device in the field, so gates
sharing an interpreter measure its lock, not the mesh (with ten gates to a process, GIL
hand-offs between them were a quarter of the catch-up's CPU). Fewer processes save memory
on a small machine. The parent only drives them over pipes. Three figures:

- spread: a scan journaled at one gate (round robin), until every other gate has heard it
  (its decisions count it; it is written within the link's ``STORE_DELAY``), times on
  the system-wide monotonic clock; goal p99 <= 200 ms on loopback;
- partition: the broker is killed, ``--scans`` scans are journaled on each "side" (each
  gate is alone: half the gates take side one's scans, half side two's; the split's
  duration does not matter, its backlog does), the broker comes back, and the time until
  every gate holds every record is measured (goal 10 s);
- cost: each worker's CPU seconds and peak RSS, divided by its gates, and the broker's CPU
  seconds after healing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.stats import goal, goal_line, percentiles

SPREAD_GOAL_MS = 200.0
CONVERGE_GOAL_S = 10.0
KEY = b"bench-venue-key-0123456789"


class _Gates:
    """The gates of one worker process."""

    def __init__(self, names: list[str], url: str, workdir: Path) -> None:
        from scanner.databases import make_journal_engine
        from scanner.journal.journal import Journal
        from scanner.mesh.broker_settings import MeshSettings
        from scanner.mesh.link import Link
        from scanner.mesh.paho_broker import PahoBroker
        from scanner.mesh.peer_journal import MeshStore

        settings = MeshSettings(url=url, key=KEY, anti_entropy_interval=2.0)
        self.arrivals: dict[str, dict[str, float]] = {}
        self.timing = True
        self.gates: list[tuple[Any, Any, Any, Any, Any]] = []
        for name in names:
            url_db = f"sqlite:///{workdir / name}.db"
            engine = make_journal_engine(url_db)
            peers = make_journal_engine(url_db, synchronous="NORMAL")
            store = MeshStore(engine, name, peer_engine=peers)
            seen = self.arrivals.setdefault(name, {})

            def heard(records: list[Any], seen: dict[str, float] = seen) -> None:
                if self.timing:
                    now = time.monotonic()
                    for r in records:
                        seen.setdefault(r.scan_id, now)

            link = Link(settings, store, PahoBroker(settings, f"gate-{name}"),
                        on_records=heard)
            self.gates.append((engine, peers, Journal(engine, name), store, link))
        # One plain read-only connection per gate for the bench's polling: cheaper than a
        # pool checkout, and it never takes a lock a gate waits for (WAL readers).
        self.probes = [sqlite3.connect(f"file:{workdir / name}.db?mode=ro", uri=True,
                                       check_same_thread=False) for name in names]
        for *_, link in self.gates:
            link.start()
        self.n = 0

    def scan(self, index: int) -> tuple[str, float]:
        from scanner.decide.model import Decision, Direction, Feedback, Reason
        from scanner.journal.ids import new_scan_id
        from scanner.tickets import Ticket

        _, _, journal, store, link = self.gates[index]
        self.n += 1
        stamp = "2030-01-01T10:00:00.000Z"
        code = f"{store.gate_id}{self.n:09d}"
        ticket = Ticket(id=f"t{code}", barcode=f"BENCH{code}", event_id="ev",
                        status="VALID", ticket_type_id="tt", ticket_name="GA", seller_id="s",
                        created_at=stamp, updated_at=stamp)
        decision = Decision(True, Reason.GRANTED, "Welcome", Feedback.GREEN, Direction.IN,
                            ticket.barcode, ticket)
        scan_id = new_scan_id()
        started = time.monotonic()
        journal.record(decision, scan_id=scan_id, scanned_at=stamp, latency_ms=0.0)
        link.notify()
        return scan_id, started

    def answer(self, command: str, arg: Any) -> Any:
        if command == "scan":
            return self.scan(arg)
        if command == "scans":
            for index, count in arg:
                for _ in range(count):
                    self.scan(index)
            return None
        if command == "connected":
            return sum(link.connected.is_set() for *_, link in self.gates)
        if command == "has":  # gates here, other than its origin, holding this scan
            return sum(arg in seen for seen in self.arrivals.values())
        if command == "arrivals":
            self.timing = False
            return {g: {s: seen[s] for s in arg if s in seen} for g, seen in self.arrivals.items()}
        if command == "stamped":  # every gate has stamped all its journal
            return all(store.own_max_seq() == journal.stats()["queue_depth"]
                       for _, _, journal, store, _ in self.gates)
        if command == "held":  # polled while the gates catch up: it must cost them nothing
            return [_count(conn, "max(rowid)") for conn in self.probes]
        if command == "counted":
            return [_count(conn, "count(*)") for conn in self.probes]
        if command == "replayed":  # records republished on request (not in the backlogs)
            return sum(link.replayed for *_, link in self.gates)
        if command == "cost":
            use = resource.getrusage(resource.RUSAGE_SELF)
            return use.ru_utime + use.ru_stime, use.ru_maxrss
        raise ValueError(command)

    def close(self) -> None:
        for probe in self.probes:
            probe.close()
        for engine, peers, journal, _, link in self.gates:
            link.close(timeout=2)
            journal.close()
            peers.dispose()
            engine.dispose()


def _count(conn: sqlite3.Connection, what: str) -> int:
    """Rows are never deleted (and an ignored insert takes no rowid), so max(rowid) is the
    count at the cost of one index step; count(*) confirms it once at the end."""
    return int(conn.execute(f"SELECT {what} FROM mesh_scans").fetchone()[0] or 0)


def _worker(pipe: Connection, names: list[str], url: str, workdir: str) -> None:
    from scanner.app.daemon import favour_decisions

    gates = _Gates(names, url, Path(workdir))
    favour_decisions()  # as gate run sets its process up once built
    serve(pipe, gates.answer, gates.close)


def serve(pipe: Connection, answer: Callable[[str, Any], Any],
          close: Callable[[], None]) -> None:
    """A bench child's loop: answer the parent's commands until "stop", then close what it
    runs and say so."""
    try:
        while True:
            command, arg = pipe.recv()
            if command == "stop":
                break
            pipe.send(answer(command, arg))
    finally:
        close()
        pipe.send("stopped")


class _Venue:
    """The parent's view: which worker holds which gate, and a way to ask all of them."""

    def __init__(self, gates: int, processes: int, url: str, workdir: Path) -> None:
        names = [f"g{i:02d}" for i in range(gates)]
        processes = max(1, min(processes or gates, gates))
        self.where = {i: (i % processes, i // processes) for i in range(gates)}
        context = mp.get_context("spawn")  # no inherited threads or sockets
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for p in range(processes):
            mine, theirs = context.Pipe()
            proc = context.Process(target=_worker, args=(theirs, names[p::processes], url,
                                                         str(workdir)), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)
        self.names = names

    def ask(self, worker: int, command: str, arg: Any = None) -> Any:
        self.pipes[worker].send((command, arg))
        return self.pipes[worker].recv()

    def ask_all(self, command: str, arg: Any = None) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, arg))
        return [pipe.recv() for pipe in self.pipes]

    def scan(self, gate: int) -> tuple[str, float]:
        worker, index = self.where[gate]
        return self.ask(worker, "scan", index)  # type: ignore[no-any-return]

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("stop", None))
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            if pipe.poll(30):
                pipe.recv()
            proc.join(10)


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Whether ``predicate`` held within ``timeout`` seconds, asked every ``every``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def run(gates: int, spread_scans: int, partition_scans: int, processes: int,
        workdir: Path) -> dict[str, Any]:
    from scanner.mesh.localbroker import LocalBroker

    broker = LocalBroker(workdir / "broker").start()
    venue = _Venue(gates, processes, broker.url, workdir)
    try:
        if not wait_until(lambda: sum(venue.ask_all("connected")) == gates, 60):
            raise click.ClickException("the gates did not all connect to the broker")
        timed: list[tuple[str, int, float]] = []
        for i in range(spread_scans):
            scan_id, started = venue.scan(i % gates)
            timed.append((scan_id, i % gates, started))
            def everywhere(s: str = scan_id) -> bool:
                return bool(sum(venue.ask_all("has", s)) >= gates - 1)

            wait_until(everywhere, 5, 0.002)
            time.sleep(0.01)
        arrivals: dict[str, dict[str, float]] = {}
        for part in venue.ask_all("arrivals", [s for s, _, _ in timed]):
            arrivals.update(part)
        samples = [(arrivals[g].get(scan_id, started + 5) - started) * 1000
                   for scan_id, origin, started in timed
                   for g in venue.names if g != venue.names[origin]]
        broker.stop()
        wait_until(lambda: sum(venue.ask_all("connected")) == 0, 30)
        half = max(1, gates // 2)
        sides = [list(range(half)), list(range(half, gates)) or [0]]
        plan: dict[int, dict[int, int]] = {}
        for side in sides:
            for n in range(partition_scans):
                worker, index = venue.where[side[n % len(side)]]
                plan.setdefault(worker, {}).setdefault(index, 0)
                plan[worker][index] += 1
        for worker, counts in plan.items():
            venue.pipes[worker].send(("scans", list(counts.items())))
        for worker in plan:
            venue.pipes[worker].recv()
        wait_until(lambda: all(venue.ask_all("stamped")), 300, 0.2)
        total = spread_scans + 2 * partition_scans
        before = venue.ask_all("cost")
        healed = time.monotonic()
        broker.start()
        converged = wait_until(lambda: all(n >= total for held in venue.ask_all("held")
                                      for n in held), 300, 0.1)
        converge_s = time.monotonic() - healed
        costs = venue.ask_all("cost")
        broker_cpu = _proc_cpu(broker.proc.pid) if broker.proc else 0.0
        replayed = sum(venue.ask_all("replayed"))
        converged = converged and all(n == total for counted in venue.ask_all("counted")
                                      for n in counted)
    finally:
        venue.close()
        broker.stop()
    per_worker = [len(venue.names[w::len(venue.pipes)]) for w in range(len(venue.pipes))]
    cpu = sum(c for c, _ in costs)
    catch_up_cpu = cpu - sum(c for c, _ in before)
    rss_mb = max(rss / 1024 / n for (_, rss), n in zip(costs, per_worker, strict=True))
    spread = percentiles(samples)
    return {
        "gates": gates, "processes": len(per_worker), "spread_scans": spread_scans,
        "partition_scans_per_side": partition_scans, "spread": spread,
        "converged": converged, "converge_s": round(converge_s, 3),
        "cpu_s_per_gate": round(cpu / gates, 3), "rss_mb_per_gate": round(rss_mb, 2),
        "catch_up_cpu_s_per_gate": round(catch_up_cpu / gates, 3),
        "rss_mb_per_process": round(max(rss for _, rss in costs) / 1024, 1),
        "broker_cpu_s_after_heal": round(broker_cpu, 3), "replayed_records": replayed,
        "goals": [goal("spread p99", spread["p99_ms"], SPREAD_GOAL_MS, "ms"),
                  goal("convergence after healing", converge_s if converged else 1e9,
                       CONVERGE_GOAL_S, "s")],
    }


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@click.command("mesh")
@click.option("--gates", default=50, show_default=True, help="Gates on the one broker.")
@click.option("--processes", default=0, show_default=True,
              help="Worker processes the gates are dealt to (0: one per gate, as each gate "
                   "is a device of its own; fewer save memory and add GIL contention).")
@click.option("--spread-scans", default=200, show_default=True,
              help="Scans timed from one gate to every other.")
@click.option("--scans", "partition_scans", default=10000, show_default=True,
              help="Scans on each side of the partition.")
@click.option("--json", "as_json", is_flag=True)
def command(gates: int, processes: int, spread_scans: int, partition_scans: int,
            as_json: bool) -> int:
    """Spread latency, convergence after a partition, and cost per gate."""
    with tempfile.TemporaryDirectory(prefix="gate-bench-mesh-") as tmp:
        report = run(gates, spread_scans, partition_scans, processes, Path(tmp))
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return 0
    s = report["spread"]
    click.echo(f"{gates} gates in {report['processes']} processes, one mosquitto on loopback")
    click.echo(f"  spread ({spread_scans} scans x {gates - 1} peers): p50 {s['p50_ms']} ms, "
               f"p99 {s['p99_ms']} ms, max {s['max_ms']} ms")
    click.echo(f"  partition: {partition_scans} scans per side, converged "
               f"{report['converged']} in {report['converge_s']} s after healing")
    click.echo(f"  per gate: {report['cpu_s_per_gate']} CPU s ({report['catch_up_cpu_s_per_gate']}"
               f" of them catching up), {report['rss_mb_per_gate']} MB RSS"
               f" ({report['rss_mb_per_process']} MB per process);"
               f" broker {report['broker_cpu_s_after_heal']} CPU s after healing;"
               f" {report['replayed_records']} records replayed on request")
    for g in report["goals"]:
        click.echo(goal_line(g))
    return 0
