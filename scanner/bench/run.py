"""``gate bench run``: the daemon's own figures, read to relay, start to READY, idle cost.

(a) read-to-relay: a line written into a pty handheld (stamped just before the write) until
    gpiozero's MockPin for the relay goes active (stamped by the pin's own state change,
    ``RelayWatch``), with the daemon in this process (``open_daemon``) so the pin is
    reachable; the simulator runs in its own process. Measured idle and while a
    reconciling full sync of a big simulator event runs in the daemon (kicked on its own
    scheduler), against ``Gatekeeper.check`` (decision + durable journal, what
    ``gate bench validate`` (b) times) in the same run: back to back, as validate does, and
    at the reads' pace, one check after each idle read, after the same pause. The pace
    matters: a disk's fsync after a pause costs more than one right after another (on the
    development VM several times more at p99), and the goal is what the daemon adds to a
    check, not what the disk charges for a pause.
(b) ``gate run`` as a subprocess over a store of N tickets built by bulk insert, a serial
    reader on a pty and a real AF_UNIX notify socket: seconds from spawn to READY=1, then
    RSS and CPU while idle, of the process and its children (the sync process).

Goals: (a) idle p99 <= paced check p99 + 2 ms, p99 under sync <= 2x idle p99; (b) READY
<= 2 s, idle RSS <= 150 MB, idle CPU <= 2 % of one core.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.handheld import PtyHandheld
from scanner.bench.stats import figure_line, goal, goal_line, percentiles
from scanner.config import toml
from scanner.decide.model import Direction

DEFAULT_TICKETS = 1_000_000
DEFAULT_SYNC_TICKETS = 200_000
# A p99 of 200 reads is their second worst: one disk stall decides it.
DEFAULT_SCANS = 400
DEFAULT_IDLE_SECONDS = 20.0
GOAL_IDLE_MARGIN_MS = 2.0
GOAL_UNDER_SYNC_RATIO = 2.0
GOAL_READY_S = 2.0
GOAL_RSS_MB = 150.0
GOAL_CPU_PERCENT = 2.0
# An event the simulator does not know: its one sync at start fails, so idle is idle.
IDLE_EVENT = "ev-bench-idle"
RELAY = 17
RELAY_TIMEOUT = 5.0   # a read whose relay has not moved by then is counted as lost
GAP = 0.01            # after the relay closes again, before the next person
PULSE_S = 0.1         # the relay pulse: reads come at least this far apart
SETTLE = 3.0          # after READY, before idle is measured: the start-up sync and upload
FLOOR_CHECKS = 500
# At most this many reconciles to collect the under-sync samples: a reconcile of unchanged
# tickets upserts none of them, so each holds only a few reads, and a p99 of too few
# reads is just their worst.
SYNC_ROUNDS = 80
TOKEN = "bench-token-not-a-secret"


@contextmanager
def simulator(tmp: Path, tickets: int) -> Iterator[str]:
    """``gate sim`` in its own process (its JSON pages must not share the daemon's GIL)."""
    from scanner.child import as_remote, end, gate_argv, gate_env

    token = tmp / "token"
    token.write_text(TOKEN, encoding="utf-8")
    token.chmod(0o600)  # a secret file others can read is refused
    proc = subprocess.Popen(gate_argv("sim", "--port", "0", "--events", "1", "--tickets",
                                      str(tickets), "--token-file", str(token)),
                            env=gate_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    as_remote(proc.pid)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"serving (\S+)", line)
        if not found:
            raise click.ClickException(f"gate sim did not start: {line.strip()!r}")
        yield found.group(1)
    finally:
        end(proc)


class SyncWatch(logging.Handler):
    """Counts the syncer's report lines: the end of each sync run."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.done = 0
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        if re.search(r"\b(full|reconcile|delta) [+-]", record.getMessage()):
            with self.changed:
                self.done += 1
                self.changed.notify_all()

    def wait_beyond(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.done > count, timeout)


@contextmanager
def quiet_daemon_log(path: Path) -> Iterator[SyncWatch]:
    """The daemon's log goes to a file, as under systemd it goes to the journal (so its cost
    stays in the path), not onto the bench's report."""
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    watch = SyncWatch()
    loggers = [logging.getLogger(name) for name in ("scanner", "apscheduler")]
    saved = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(to_file)
        logger.propagate = False
    loggers[0].setLevel(logging.INFO)
    logging.getLogger("scanner.sync").addHandler(watch)
    try:
        yield watch
    finally:
        for logger, (propagate, level) in zip(loggers, saved, strict=True):
            logger.propagate, logger.level = propagate, level
            logger.removeHandler(to_file)
        logging.getLogger("scanner.sync").removeHandler(watch)
        to_file.close()


class RelayWatch:
    """The relay's MockPin, observed by the pin itself: its state change is wrapped so the
    thread that drives the pin stamps the edge (``time.monotonic_ns``, the clock of
    ``PtyHandheld.scan``) and wakes the bench. Nothing polls the pin, so the bench's own
    thread takes no GIL turns from the daemon while a read is on its way."""

    def __init__(self, pin: Any) -> None:
        self._changed = threading.Condition()
        self._edges: list[tuple[int, bool]] = []
        change = pin._change_state  # MockPin's one place a state is set (and recorded)

        def observed(value: bool) -> bool:
            changed: bool = change(value)
            if changed:
                stamp = time.monotonic_ns()
                with self._changed:
                    self._edges.append((stamp, bool(value)))
                    self._changed.notify_all()
            return changed

        pin._change_state = observed

    def clear(self) -> None:
        with self._changed:
            self._edges.clear()

    def wait_edge(self, state: bool, timeout: float) -> int | None:
        """The stamp of the first recorded edge to ``state`` since ``clear``, waiting for it
        at most ``timeout`` seconds; None if it did not come."""
        def found() -> int | None:
            return next((at for at, value in self._edges if value == state), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None, timeout)
            return found()


def read_to_relay_ms(handheld: PtyHandheld, relay: RelayWatch, code: str) -> float | None:
    """One read: write ``code``, wait for the relay pin's rise and its fall again; the
    milliseconds from the write to the rise, None when it did not rise (a lost read)."""
    relay.clear()
    written = handheld.scan(code)
    risen = relay.wait_edge(True, RELAY_TIMEOUT)
    if risen is None:
        return None
    relay.wait_edge(False, RELAY_TIMEOUT)
    time.sleep(GAP)
    return (risen - written) / 1e6


def _check_ms(keeper: Any, code: str) -> float:
    """One ``Gatekeeper.check`` (decision + durable journal) straight on the gatekeeper."""
    started = time.perf_counter()
    keeper.check(code, Direction.IN)
    return (time.perf_counter() - started) * 1000


def granted_barcodes(gate: Any, event_id: str, count: int) -> list[str]:
    keeper = gate.gatekeeper
    codes: list[str] = []
    for ticket in gate.store.iter_tickets(event_id):
        if keeper.decide(ticket.barcode, Direction.IN).granted:
            codes.append(ticket.barcode)
            if len(codes) == count:
                break
    if len(codes) < count:
        raise click.ClickException(f"only {len(codes)} admissible tickets in the simulator's "
                                   f"event; raise --sync-tickets")
    return codes


def measure_latency(tmp: Path, sync_tickets: int, scans: int) -> dict[str, Any]:
    """(a): the daemon in this process, the simulator in its own."""
    from scanner.app import Gate
    from scanner.app.daemon import open_daemon
    from scanner.config import (
        ApiConfig,
        GateConfig,
        LookupConfig,
        OutputsConfig,
        ReaderConfig,
        RunConfig,
        Secret,
        SyncConfig,
    )
    from scanner.sim import World

    event_id = World(seed=7, events=1, tickets_per_event=0).event_ids[0]
    with simulator(tmp, sync_tickets) as url, PtyHandheld() as handheld, \
            quiet_daemon_log(tmp / "daemon.log") as syncs:
        config = GateConfig(
            gate_id="bench-run", db=str(tmp / "latency.db"), events=(event_id,),
            api=ApiConfig(url=url, token=Secret(TOKEN), retries=0),
            lookup=LookupConfig(deadline_ms=0),
            # Every sync run is a full reconcile; the scheduler's own runs only at start.
            sync=SyncConfig(reconcile_every=1.0),
            readers=(ReaderConfig(source="serial", port=handheld.port, dedup_window=0.0),),
            outputs=OutputsConfig(pin_factory="mock", relay_pin=RELAY,
                                  relay_pulse_ms=int(PULSE_S * 1000)),
            run=RunConfig(sync_interval=900))
        with Gate(config) as gate:
            daemon = open_daemon(gate).start()
            try:
                if not syncs.wait_beyond(0, 600):
                    raise click.ClickException("the daemon's first sync did not finish")
                codes = iter(granted_barcodes(gate, event_id, 3 * scans + FLOOR_CHECKS))
                keeper, relay = gate.gatekeeper, RelayWatch(gate.outputs.factory.pin(RELAY))
                check_ms = [_check_ms(keeper, next(codes)) for _ in range(FLOOR_CHECKS)]
                def timed() -> float | None:
                    ms = read_to_relay_ms(handheld, relay, next(codes))
                    if ms is None and daemon.exit_code is not None:  # not 5 s for each read
                        raise click.ClickException(f"the daemon exited ({daemon.exit_code}) "
                                                   "during the run")
                    return ms

                idle, paced_ms = [], []
                for _ in range(scans):
                    idle.append(timed())
                    paced_ms.append(_check_ms(keeper, next(codes)))
                    time.sleep(PULSE_S + GAP)  # the next read comes after as long a pause
                busy: list[float | None] = []
                rounds = 0
                while len(busy) < scans and rounds < SYNC_ROUNDS:
                    rounds += 1
                    before = syncs.done
                    gate.scheduler.kick("sync")
                    while syncs.done == before and len(busy) < scans:
                        busy.append(timed())
                    syncs.wait_beyond(before, 600)  # the next round starts a fresh sync
            finally:
                daemon.stop(60)
    lost = sum(x is None for x in idle + busy)
    return {"sync_tickets": sync_tickets, "check": percentiles(check_ms),
            "paced_check": percentiles(paced_ms),
            "idle": percentiles([x for x in idle if x is not None]),
            "under_sync": percentiles([x for x in busy if x is not None]),
            "under_sync_scans": len(busy), "sync_rounds": rounds, "lost": lost}


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gate run's sync process): the gate's cost is theirs."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending += [int(child) for child in (task / "children").read_text().split()]
            except OSError:  # the task ended meanwhile
                continue
    return found


def _tree_cpu_s(pid: int) -> float:
    return sum(_proc_cpu_s(p) for p in _tree(pid))




def measure_start(tmp: Path, tickets: int, idle_seconds: float, url: str) -> dict[str, Any]:
    """(b): ``gate run`` as a subprocess over a big store: READY, then idle RSS and CPU."""
    from scanner.bench.validate import build_store
    from scanner.child import gate_argv, gate_env

    db = tmp / "start.db"
    started = time.perf_counter()
    build_store(db, tickets)
    built_s = time.perf_counter() - started
    token = tmp / "token"
    token.write_text(TOKEN, encoding="utf-8")
    token.chmod(0o600)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp / "notify"))
    with PtyHandheld() as handheld:
        config = tmp / "start.toml"
        config.write_text(toml.dumps({
            "gate_id": "bench-start", "db": str(db), "events": [IDLE_EVENT],
            "api": {"url": url, "retries": 0}, "lookup": {"deadline_ms": 0},
            "outputs": {"pin_factory": "mock", "relay_pin": RELAY},
            "readers": [{"source": "serial", "port": handheld.port}],
        }), encoding="utf-8")
        env = gate_env(GATE_CONFIG=str(config), GATE_API_TOKEN_FILE=str(token),
                       NOTIFY_SOCKET=str(tmp / "notify"))
        with (tmp / "start.log").open("wb") as log:
            spawned = time.monotonic()
            proc = subprocess.Popen(gate_argv("run"), env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            try:
                ready_s = _wait_ready(notify, proc, spawned)
                time.sleep(SETTLE)
                cpu0, t0 = _tree_cpu_s(proc.pid), time.monotonic()
                time.sleep(idle_seconds)
                cpu1, t1 = _tree_cpu_s(proc.pid), time.monotonic()
                tree = _tree(proc.pid)
                # Summed RSS: pages the processes share count twice, so it never flatters.
                rss, processes = sum(_proc_rss_mb(p) for p in tree), len(tree)
            finally:
                proc.terminate()
                code = proc.wait(60)
                notify.close()
    return {"tickets": tickets, "build_s": round(built_s, 2), "ready_s": round(ready_s, 3),
            "idle_s": round(t1 - t0, 1), "rss_mb": round(rss, 1), "processes": processes,
            "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 2), "exit": code}


def _wait_ready(notify: socket.socket, proc: subprocess.Popen[bytes], spawned: float) -> float:
    notify.settimeout(0.2)
    while time.monotonic() - spawned < 120:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            if proc.poll() is not None:
                raise click.ClickException(
                    f"gate run exited {proc.returncode} before READY") from None
            continue
        if "READY=1" in message.split("\n"):
            return time.monotonic() - spawned
    raise click.ClickException("gate run sent no READY=1 within 120 s")


def run_bench(tickets: int, sync_tickets: int, scans: int, idle_seconds: float,
              where: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=where, prefix="gate-bench-run-") as name:
        tmp = Path(name)
        latency = measure_latency(tmp, sync_tickets, scans)
        with simulator(tmp, 10) as url:
            start = measure_start(tmp, tickets, idle_seconds, url)
    idle_p99, check_p99 = latency["idle"]["p99_ms"], latency["paced_check"]["p99_ms"]
    return {
        "latency": latency, "start": start,
        "goals": [
            goal("read-to-relay idle p99 - check p99 at the reads' pace", idle_p99 - check_p99,
                 GOAL_IDLE_MARGIN_MS, "ms"),
            goal("read-to-relay p99 under sync / idle p99",
                 latency["under_sync"]["p99_ms"] / max(idle_p99, 1e-9), GOAL_UNDER_SYNC_RATIO,
                 "x"),
            goal("reads lost (no relay within 5 s)", latency["lost"], 0, "reads"),
            goal(f"READY=1 after spawn ({tickets} tickets)", start["ready_s"], GOAL_READY_S,
                 "s"),
            goal("idle RSS", start["rss_mb"], GOAL_RSS_MB, "MB"),
            goal("idle CPU", start["cpu_percent"], GOAL_CPU_PERCENT, "% of one core"),
        ],
    }


@click.command()
@click.option("--tickets", type=click.IntRange(min=1), default=DEFAULT_TICKETS,
              show_default=True, help="Tickets in the store gate run starts on.")
@click.option("--sync-tickets", type=click.IntRange(min=100), default=DEFAULT_SYNC_TICKETS,
              show_default=True, help="Tickets of the simulator's event the daemon syncs.")
@click.option("--scans", type=click.IntRange(min=10), default=DEFAULT_SCANS,
              show_default=True, help="Reads timed idle, and again under sync.")
@click.option("--idle-seconds", type=click.FloatRange(min=1), default=DEFAULT_IDLE_SECONDS,
              show_default=True, help="How long idle CPU is measured.")
@click.option("--dir", "where", type=click.Path(file_okay=False), default=None,
              help="Where the stores are built (default: a temporary directory).")
@click.option("--json", "as_json", is_flag=True, help="Figures as one JSON document.")
def command(tickets: int, sync_tickets: int, scans: int, idle_seconds: float,
            where: str | None, as_json: bool) -> None:
    """Read-to-relay latency idle and under sync, READY time, idle RSS and CPU of gate run."""
    doc = run_bench(tickets, sync_tickets, scans, idle_seconds, where)
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    lat, start = doc["latency"], doc["start"]
    click.echo(f"(a) read-to-relay, daemon in process, {scans} reads per row, mock relay")
    click.echo(figure_line("Gatekeeper.check (decision + journal)", lat["check"], 46)
               + "  (back to back)")
    click.echo(figure_line("Gatekeeper.check at the reads' pace", lat["paced_check"], 46)
               + "  (one after each idle read)")
    click.echo(figure_line("read-to-relay idle", lat["idle"], 46))
    click.echo(figure_line(f"read-to-relay under a {lat['sync_tickets']}-ticket reconcile",
                       lat["under_sync"], 46)
               + f"  ({lat['under_sync_scans']} reads over {lat['sync_rounds']} sync(s))")
    click.echo(f"(b) gate run over {start['tickets']} tickets (built in {start['build_s']} s):"
               f" READY=1 after {start['ready_s']} s; idle {start['idle_s']} s, "
               f"{start['processes']} processes: RSS {start['rss_mb']} MB, CPU "
               f"{start['cpu_percent']} % of one core; exit {start['exit']}")
    for g in doc["goals"]:
        click.echo(goal_line(g))
