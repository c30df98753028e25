"""``gate bench venue``: a venue of gates with zones on one mosquitto, and its control room.

Every gate is a whole ``gate run`` daemon in a process of its own (store, journal, mesh
link, zone book, act stage with a MockPin relay), reading from a pty handheld at a steady
rate; ``gate control`` runs as a process of its own. The parent drives the gates over
pipes and watches the control room's event stream. Figures:

- read-to-relay: a read written into the gate's pty until its relay pin rises (the pin
  stamps its own edge), at each rate of ``--rates`` (persons per hour per lane), after
  ``--warmup`` seconds of reading that are not counted; the highest rate whose goals all
  hold is reported;
- zone count spread: a granted scan (its relay) until every other gate's zone book counts
  it, and until the control room's page stream carries it;
- partition: the broker is killed for ``--partition`` seconds while every gate goes on
  reading into capped zones; the maximum ever inside each capped zone (by the union of all
  records in HLC order) against its capacity, and the seconds after healing until every
  gate and the control room count the same;
- cost: CPU seconds and peak RSS per gate process and of the control room.

Goals: read-to-relay p99 <= 10 ms at 1,200/h; spread p99 <= 500 ms; 0 admissions beyond
capacity; equal counts within 10 s of healing.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import click
import orjson

from scanner.bench.mesh import serve, wait_until
from scanner.bench.stats import goal, goal_line, percentiles

RELAY_GOAL_MS = 10.0
SPREAD_GOAL_MS = 500.0
CONVERGE_GOAL_S = 10.0
BASE_RATE = 1200
RELAY = 17
KEY = b"bench-venue-key-0123456789abcdef"
MINTER = "g00"
TICKETS_PER_GATE = 4000
ZONE_NAMES = ("grounds", "stand-a", "stand-b", "lounge")
# Gates started at once: more only queue for the same cores, and each batch waits for the
# READY=1 of all of the one before.
START_BATCH = 6
START_TIMEOUT = 180.0   # one batch to READY=1 on a loaded machine (alone: 2-5 s)
CONNECT_TIMEOUT = 120.0  # every gate on the broker and holding its places, after all started
ANSWER_TIMEOUT = 60.0   # a question to a gate (its every record, after a split)
READ_TIMEOUT = 5.0      # one read: its relay rises, then falls after its 100 ms pulse
STOP_TIMEOUT = 60.0     # every gate to stop, in all, before what is left is killed
LOG_NAME = "gate.log"
LOG_LINES = 3           # of a failed gate's log, in its one line
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def zone_tables(zones: int, capacities: dict[str, int]) -> list[dict[str, Any]]:
    """Up to four zones: the grounds, two stands in them, a lounge in the first stand."""
    parents = {"grounds": None, "stand-a": "grounds", "stand-b": "grounds",
               "lounge": "stand-a"}
    tables = []
    for name in ZONE_NAMES[:max(1, min(zones, 4))]:
        table: dict[str, Any] = {"id": name}
        if parents[name]:
            table["parent"] = parents[name]
        if name in capacities:
            table["capacity"] = capacities[name]
        tables.append(table)
    return tables


class _Gate:
    """One gate: ``gate run``'s daemon in this process, a pty handheld, the relay's pin."""

    def __init__(self, name: str, zone: str, tables: list[dict[str, Any]], url: str | None,
                 workdir: Path) -> None:
        from scanner.app import Gate
        from scanner.app.daemon import open_daemon
        from scanner.bench.handheld import PtyHandheld
        from scanner.bench.run import RelayWatch
        from scanner.config import (
            ApiConfig,
            GateConfig,
            LookupConfig,
            MeshConfig,
            OutputsConfig,
            ReaderConfig,
            RunConfig,
            Secret,
            WebConfig,
        )
        from scanner.config.zones import parse_zones
        from scanner.mesh.localbroker import password
        from scanner.tickets import Ticket

        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        creds = folder / "creds"
        creds.write_text(f"{name}:{password(name)}\n")
        creds.chmod(0o600)
        self.handheld = PtyHandheld()
        config = GateConfig(
            gate_id=name, db=str(folder / "gate.db"), events=("ev-venue",),
            api=ApiConfig(url="http://127.0.0.1:9", token=Secret("bench-token"), retries=0),
            lookup=LookupConfig(deadline_ms=0),
            readers=(ReaderConfig(source="serial", port=self.handheld.port,
                                  dedup_window=0.0),),
            outputs=OutputsConfig(pin_factory="mock", relay_pin=RELAY, relay_pulse_ms=100),
            run=RunConfig(sync_interval=3600), web=WebConfig(enabled=False),
            mesh=MeshConfig() if url is None else MeshConfig(
                url=url, key_file=str(workdir / "venue.key"), credentials_file=str(creds),
                minter=MINTER),
            zone=zone, zones=parse_zones(tables))
        self.gate = Gate(config)
        stamp = "2030-01-01T10:00:00.000Z"
        self.gate.store.upsert([Ticket(id=f"t-{name}-{n}", barcode=f"V{name}{n:06d}",
                                       event_id="ev-venue", status="VALID",
                                       ticket_type_id="tt", ticket_name="GA", seller_id="s",
                                       created_at=stamp, updated_at=stamp)
                                for n in range(TICKETS_PER_GATE)])
        self.name = name
        self.next = 0
        self.counted: dict[str, float] = {}  # ticket id -> when this gate's book counted it
        book = self.gate.zones
        record = book.record

        def timed(scan_id: str, gate: str, *args: Any, **kw: Any) -> bool:
            new = record(scan_id, gate, *args, **kw)
            if new and gate != name and args[1] is not None:
                self.counted.setdefault(args[1], time.monotonic())
            return new

        book.record = timed  # type: ignore[method-assign]
        self.daemon = open_daemon(self.gate).start()
        self.relay = RelayWatch(self.gate.outputs.factory.pin(RELAY))
        self.link = self.gate.mesh_link

    def read(self) -> tuple[str, float | None, float]:
        """One person: (ticket id, read-to-relay ms or None when denied, relay time)."""
        n, self.next = self.next, self.next + 1
        self.relay.clear()
        written = self.handheld.scan(f"V{self.name}{n:06d}")
        risen = self.relay.wait_edge(True, 1.0)
        if risen is None:
            return f"t-{self.name}-{n}", None, time.monotonic()
        self.relay.wait_edge(False, 1.0)
        return f"t-{self.name}-{n}", (risen - written) / 1e6, risen / 1e9

    def answer(self, command: str, arg: Any) -> Any:
        if command == "connected":
            return self.link is not None and self.link.connected.is_set()
        if command == "ready":  # holds a place in every capped zone it admits into
            book = self.gate.zones
            return all(book.rights(z) > 0 for z in book.tree.path(book.zone)
                       if book.tree[z].capacity is not None)
        if command == "read":
            return self.read()
        if command == "counted":
            return {t: self.counted[t] for t in arg if t in self.counted}
        if command == "counts":
            return self.gate.zones.counts(self.gate.clock())
        if command == "records":  # every record held, for the safety replay (one gate)
            assert self.gate.mesh_store is not None
            return [tuple(r) for r in self.gate.mesh_store.records()]
        if command == "cost":
            use = resource.getrusage(resource.RUSAGE_SELF)
            return use.ru_utime + use.ru_stime, use.ru_maxrss / 1024
        raise ValueError(command)

    def close(self) -> None:
        self.daemon.stop(30)
        self.gate.close()
        self.handheld.close()


def _worker(pipe: Connection, name: str, zone: str, tables: list[dict[str, Any]],
            url: str | None, workdir: str, notify: str) -> None:
    """One gate's process: its warnings into its own log file (the parent shows the tail
    of a gate that fails), READY=1 to the parent's notify socket as systemd hears it."""
    import logging

    folder = Path(workdir) / name
    folder.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(folder / LOG_NAME, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("scanner")
    logger.addHandler(to_file)
    logger.setLevel(logging.WARNING)  # the decision lines stay out of the path, as at INFO
    logger.propagate = False
    os.environ["NOTIFY_SOCKET"] = notify
    try:
        gate = _Gate(name, zone, tables, url, Path(workdir))
    except Exception as exc:  # said to the parent in one line; the log file has the rest
        logger.error("the gate did not start: %s", exc)
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    serve(pipe, gate.answer, gate.close)


class _Notices(threading.Thread):
    """The parent's notify socket, as systemd's: every gate's datagrams, the sender known
    by the credentials the kernel attaches (SO_PASSCRED). Drained for the whole run, so a
    gate's STATUS= never waits on a full socket."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="notices")
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.5)  # to see ``stopped``
        self.ready: set[int] = set()   # pids that said READY=1
        self.changed = threading.Condition()
        self.stopped = threading.Event()

    def run(self) -> None:
        room = socket.CMSG_SPACE(_UCRED.size)
        while not self.stopped.is_set():
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, room)
            except TimeoutError:
                continue
            except OSError:  # closed: the run is over
                return
            pid = next((_UCRED.unpack(d[:_UCRED.size])[0] for level, kind, d in ancillary
                        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS),
                       None)
            if pid is not None and b"READY=1" in data.split(b"\n"):
                with self.changed:
                    self.ready.add(pid)
                    self.changed.notify_all()

    def wait(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)

    def close(self) -> None:
        self.stopped.set()
        self.join(2)
        self.sock.close()


class GateFailed(click.ClickException):
    """A gate that did not start or stopped answering, named in one line."""


class _Stream(threading.Thread):
    """The control room's page stream: when each scan first appeared on it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[str, float] = {}
        self.stopped = threading.Event()
        self.first = threading.Event()  # the first frame arrived: the page is live

    def run(self) -> None:
        import httpx

        while not self.stopped.is_set():
            try:
                with httpx.stream("GET", f"{self.url}/events", timeout=None) as answer:
                    for line in answer.iter_lines():
                        if self.stopped.is_set():
                            return
                        if line.startswith("data: "):
                            now = time.monotonic()
                            self.first.set()
                            for entry in orjson.loads(line[6:])["log"]:
                                self.seen.setdefault(entry["scan_id"], now)
            except Exception:  # the room restarting: look again
                time.sleep(0.2)


class _Venue:
    """The gates' processes, started in batches, and bounded questions to them: a gate that
    does not start or stops answering is named with the end of its log, never waited for
    without end."""

    def __init__(self, gates: int, tables: list[dict[str, Any]], url: str,
                 workdir: Path) -> None:
        zones = [t["id"] for t in tables]
        self.names = [f"g{i:02d}" for i in range(gates)]
        self.zone_of = {n: zones[i % len(zones)] for i, n in enumerate(self.names)}
        self.tables = tables
        self.url = url
        self.workdir = workdir
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        self.notices = _Notices(workdir / "notify")
        self.notices.start()

    def start(self, batch: int = START_BATCH, timeout: float = START_TIMEOUT) -> None:
        """Start the gates ``batch`` at a time, each batch once all of the one before said
        READY=1: sixty daemons building their stores at once only queue for the same cores,
        and a wait on each gate's word, not on a fixed time, holds on a slow machine and
        ends early on a quick one."""
        context = mp.get_context("spawn")
        for first in range(0, len(self.names), batch):
            for name in self.names[first:first + batch]:
                mine, theirs = context.Pipe()
                proc = context.Process(
                    target=_worker, name=f"gate-{name}", daemon=True,
                    args=(theirs, name, self.zone_of[name], self.tables, self.url,
                          str(self.workdir), str(self.notices.path)))
                proc.start()
                self.pipes.append(mine)
                self.procs.append(proc)
            self._await_ready(range(first, len(self.procs)), timeout)

    def _await_ready(self, indices: range, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(indices)
        while waiting:
            for i in sorted(waiting):
                if self.procs[i].pid in self.notices.ready:
                    waiting.discard(i)
                elif self.pipes[i].poll(0) or not self.procs[i].is_alive():
                    raise GateFailed(self.failure(i, self._why_not_started(i)))
            if waiting and time.monotonic() >= deadline:
                late = ", ".join(self.names[i] for i in sorted(waiting))
                raise GateFailed(self.failure(min(waiting), f"not ready within "
                                              f"{timeout:.0f} s (nor were: {late})"))
            if waiting:
                self.notices.wait(0.2)

    def _why_not_started(self, i: int) -> str:
        """What a gate that said something else than READY=1, or ended, said or did."""
        with contextlib.suppress(EOFError, OSError):
            said = self.pipes[i].recv()
            if isinstance(said, tuple) and said[0] == "failed":
                return f"did not start: {said[1]}"
        self.procs[i].join(5)
        return f"ended with exit code {self.procs[i].exitcode} while starting"

    def failure(self, i: int, what: str) -> str:
        """One line: the gate, what went wrong, the last lines of its log."""
        try:
            lines = (self.workdir / self.names[i] / LOG_NAME).read_text(
                encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        tail = " | ".join(line.strip() for line in lines[-LOG_LINES:]) or "its log is empty"
        return f"gate {self.names[i]} {what}; log: {tail}"

    def _ask(self, i: int, command: str, arg: Any) -> None:
        try:
            self.pipes[i].send((command, arg))
        except OSError as exc:
            raise GateFailed(self.failure(i, f"is gone ({self._ended(i)})")) from exc

    def _answer(self, i: int, command: str, deadline: float) -> Any:
        try:
            if self.pipes[i].poll(max(0.0, deadline - time.monotonic())):
                return self.pipes[i].recv()
        except (EOFError, OSError) as exc:
            raise GateFailed(self.failure(i, f"is gone ({self._ended(i)})")) from exc
        alive = "" if self.procs[i].is_alive() else f" ({self._ended(i)})"
        raise GateFailed(self.failure(i, f"did not answer {command!r} in time{alive}"))

    def _ended(self, i: int) -> str:
        self.procs[i].join(1)
        code = self.procs[i].exitcode
        return "still running" if code is None else f"exit code {code}"

    def ask_one(self, command: str, arg: Any = None, timeout: float = ANSWER_TIMEOUT) -> Any:
        self._ask(0, command, arg)
        return self._answer(0, command, time.monotonic() + timeout)

    def ask_all(self, command: str, arg: Any = None,
                timeout: float = ANSWER_TIMEOUT) -> list[Any]:
        for i in range(len(self.pipes)):
            self._ask(i, command, arg)
        deadline = time.monotonic() + timeout
        return [self._answer(i, command, deadline) for i in range(len(self.pipes))]

    def waiting_for(self, command: str, timeout: float) -> list[str]:
        """The gates that do not answer ``command`` with True within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            late = [n for n, yes in zip(self.names, self.ask_all(command), strict=True)
                    if not yes]
            if not late or time.monotonic() >= deadline:
                return late
            time.sleep(0.2)

    def reads(self, rate: float, seconds: float) -> list[tuple[str, str, float | None, float]]:
        """Every gate reads one person every 3600/rate s for ``seconds``, the gates spread
        evenly over that interval: (gate, ticket, ms or None, relay time)."""
        gap = 3600.0 / rate
        start = time.monotonic() + 0.2
        rounds = max(1, int(seconds / gap))
        done: list[tuple[str, str, float | None, float]] = []
        for r in range(rounds):
            for i in range(len(self.pipes)):
                due = start + r * gap + i * gap / len(self.pipes)
                time.sleep(max(0.0, due - time.monotonic()))
                self._ask(i, "read", None)
                # A read takes its relay pulse; the next gate waits that.
                ticket, ms, at = self._answer(i, "read", time.monotonic() + READ_TIMEOUT)
                done.append((self.names[i], ticket, ms, at))
        return done

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Every gate asked to stop, then waited for at most ``timeout`` s in all; what is
        left is terminated, then killed."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop", None))
        deadline = time.monotonic() + timeout
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(max(0.0, deadline - time.monotonic())):
                    pipe.recv()
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self.notices.close()


def _max_inside(records: list[tuple[Any, ...]], tables: list[dict[str, Any]],
                zone_of: dict[str, str]) -> dict[str, int]:
    """Each zone's highest count ever, replaying every granted record in HLC order."""
    from datetime import UTC, datetime

    from scanner.config.zones import parse_zones
    from scanner.zones.presence import Occupancy

    occupancy = Occupancy(parse_zones(tables), zone_of.__getitem__, tz=UTC)
    top: dict[str, int] = {}
    now = datetime.now(UTC)
    for r in sorted(records, key=lambda r: r[3]):
        scan_id, gate, _seq, hlc, ticket, _ev, _bc, direction, result = r[:9]
        if result == "OK" and occupancy.add(ticket, hlc, scan_id, gate, direction, r[10]):
            for zone, n in occupancy.counts(now).items():
                top[zone] = max(top.get(zone, 0), n)
    return top


def _control_room(workdir: Path, url: str, tables: list[dict[str, Any]],
                  port: int) -> subprocess.Popen[bytes]:
    from scanner.config import toml
    from scanner.mesh.localbroker import password

    creds = workdir / "control.creds"
    creds.write_text(f"control:{password('control')}\n")
    creds.chmod(0o600)
    config = workdir / "control.toml"
    config.write_text(toml.dumps({
        "gate_id": "control", "web": {"port": port},
        "mesh": {"url": url, "key_file": str(workdir / "venue.key"),
                 "credentials_file": str(creds), "minter": MINTER},
        "zones": tables,
    }), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "scanner.cli.main", "--config", str(config),
                             "control"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "GATE_API_TOKEN": "unused-bench-token"})


def _below_ephemeral(broker: Any) -> None:
    """The broker on a port below the ephemeral range: while it is down, a gate's connect
    from an ephemeral port to that very port can connect to itself (TCP simultaneous open)
    and hold the port, so the broker cannot come back."""
    import socket

    for port in range(20000, 32000, 7):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        text = broker.conf.read_text().replace(f"listener {broker.port} ", f"listener {port} ")
        broker.conf.write_text(text)
        broker.port = port
        return


def _restart(broker: Any) -> None:
    """The broker back on its port. The gates' reconnect attempts during the split take
    ephemeral ports, the broker's among them now and then: try again until it is free."""
    from scanner.errors import GateError

    for _ in range(60):
        try:
            broker.start()
            return
        except GateError:
            time.sleep(0.5)
    raise click.ClickException(f"mosquitto could not listen on port {broker.port} again")


def _proc_cost(pid: int) -> tuple[float, float]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                   .splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0.0, 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), rss / 1024


def run(gates: int, zones: int, rates: list[int], steady: float, partition: float,
        workdir: Path, warmup: float = 0.0, batch: int = START_BATCH) -> dict[str, Any]:
    import httpx

    from scanner.kiosk.httpd import listen
    from scanner.mesh.localbroker import LocalBroker

    (workdir / "venue.key").write_bytes(KEY)
    (workdir / "venue.key").chmod(0o600)
    # Capacities the split fills and the steady phases do not: room for every read before
    # the split and half of those made during it (every read is a new person).
    before = sum(steady * rate / 3600 for rate in rates) + warmup * rates[0] / 3600
    during = partition * rates[0] / 3600
    lounge_gates = len(range(3, gates, 4)) if zones >= 4 else 0
    capacities = {"grounds": int(gates * (before + during / 2))}
    if lounge_gates:
        capacities["lounge"] = int(lounge_gates * (before + during / 2))
    tables = zone_tables(zones, capacities)
    broker = LocalBroker(workdir / "broker", [f"g{i:02d}" for i in range(gates)] + ["control"])
    _below_ephemeral(broker)
    broker.start()
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    room_url = f"http://127.0.0.1:{port}"
    room: subprocess.Popen[bytes] | None = None
    venue = _Venue(gates, tables, broker.url, workdir)
    stream = _Stream(room_url)
    try:
        room = _control_room(workdir, broker.url, tables, port)
        venue.start(batch)
        for question, what in (("connected", "not connected to the broker"),
                               ("ready", "holding no place in its capped zones")):
            late = venue.waiting_for(question, CONNECT_TIMEOUT)
            if late:
                raise GateFailed(venue.failure(venue.names.index(late[0]), (
                    f"{what} {CONNECT_TIMEOUT:.0f} s after all started (nor were: "
                    f"{', '.join(late[1:]) or 'no other'})")))
        stream.start()
        if not stream.first.wait(30):
            raise click.ClickException("the control room's page stream did not start")
        venue.reads(rates[0], warmup)  # not counted: the gates' first places and statements
        by_rate: dict[int, dict[str, Any]] = {}
        page_ms: list[float] = []
        for rate in rates:
            done = venue.reads(rate, steady)
            granted = [(g, t, at) for g, t, ms, at in done if ms is not None]
            time.sleep(2.0)
            counted = dict(zip(venue.names, venue.ask_all("counted", [t for _, t, _ in granted]),
                               strict=True))
            spread = [(counted[g2].get(t, at + 5) - at) * 1000 for g, t, at in granted
                      for g2 in venue.names if g2 != g]
            by_rate[rate] = {"reads": len(done), "granted": len(granted),
                             "read_to_relay": percentiles([ms for *_, ms, _ in done
                                                           if ms is not None]),
                             "spread": percentiles(spread)}
            if rate == rates[0]:  # the page: the stream's log names scans by id
                scan_of = {r[4]: r[0] for r in venue.ask_one("records")}
                page_ms = [(stream.seen.get(scan_of.get(t, ""), at + 5) - at) * 1000
                           for _, t, at in granted]
        broker.stop()
        split_done = venue.reads(rates[0], partition)
        _restart(broker)
        healed = time.monotonic()

        def equal() -> bool:
            counts = venue.ask_all("counts")
            try:
                page = {z["id"]: z["inside"] for z in httpx.get(f"{room_url}/api/zones",
                                                                 timeout=2).json()}
            except (httpx.HTTPError, ValueError):
                return False
            return all(c == counts[0] for c in counts) and page == counts[0]

        converged = wait_until(equal, 120, 0.25)
        converge_s = time.monotonic() - healed
        records = venue.ask_one("records")
        top = _max_inside(records, tables, venue.zone_of)
        beyond = {z: max(0, top.get(z, 0) - c) for z, c in capacities.items()
                  if z in {t["id"] for t in tables}}
        costs = venue.ask_all("cost")
        room_cpu, room_rss = _proc_cost(room.pid)
    finally:
        stream.stopped.set()
        venue.close()
        if room is not None:
            room.terminate()
            try:
                room.wait(10)
            except subprocess.TimeoutExpired:
                room.kill()
                room.wait(10)
        broker.stop()
    base = by_rate[rates[0]]
    ok_rates = [r for r in rates if by_rate[r]["read_to_relay"]["p99_ms"] <= RELAY_GOAL_MS
                and by_rate[r]["spread"]["p99_ms"] <= SPREAD_GOAL_MS]
    return {
        "gates": gates, "zones": [t["id"] for t in tables], "capacities": capacities,
        "rates": by_rate, "page_spread": percentiles(page_ms),
        "highest_rate_meeting_goals": max(ok_rates) if ok_rates else None,
        "partition_s": partition, "partition_reads": len(split_done),
        "partition_admitted": sum(ms is not None for *_, ms, _ in split_done),
        "max_inside": top, "beyond_capacity": beyond,
        "converged": converged, "converge_s": round(converge_s, 2),
        "cpu_s_per_gate": round(sum(c for c, _ in costs) / gates, 2),
        "rss_mb_per_gate": round(max(r for _, r in costs), 1),
        "control_room_cpu_s": round(room_cpu, 2), "control_room_rss_mb": round(room_rss, 1),
        "goals": [goal(f"read-to-relay p99 at {rates[0]}/h",
                       base["read_to_relay"]["p99_ms"], RELAY_GOAL_MS, "ms"),
                  goal("zone count spread p99 (every gate)", base["spread"]["p99_ms"],
                       SPREAD_GOAL_MS, "ms"),
                  goal("zone count spread p99 (control room page)",
                       percentiles(page_ms)["p99_ms"], SPREAD_GOAL_MS, "ms"),
                  goal("admissions beyond capacity", sum(beyond.values()), 0, ""),
                  goal("equal counts after healing", converge_s if converged else 1e9,
                       CONVERGE_GOAL_S, "s")],
    }


@click.command("venue")
@click.option("--gates", default=60, show_default=True, help="Gates, one process each.")
@click.option("--zones", default=4, show_default=True, help="Zones (1 to 4), nested.")
@click.option("--rates", default="1200,2400,4800", show_default=True,
              help="Persons per hour per lane, raised in turn.")
@click.option("--steady", default=30.0, show_default=True, help="Seconds read at each rate.")
@click.option("--warmup", default=10.0, show_default=True,
              help="Seconds read at the first rate before anything is measured.")
@click.option("--partition", default=120.0, show_default=True,
              help="Seconds the broker is down while gates read into capped zones.")
@click.option("--batch", default=START_BATCH, show_default=True,
              help="Gates started at once (each batch waits for the one before).")
@click.option("--json", "as_json", is_flag=True)
def command(gates: int, zones: int, rates: str, steady: float, warmup: float,
            partition: float, batch: int, as_json: bool) -> int:
    """A venue with zones: read-to-relay, zone count spread, a split, cost."""
    chosen = [int(r) for r in rates.split(",") if r.strip()]
    with tempfile.TemporaryDirectory(prefix="gate-bench-venue-") as tmp:
        report = run(gates, zones, chosen, steady, partition, Path(tmp), warmup,
                     max(1, batch))
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return 0
    click.echo(f"{gates} gates ({', '.join(report['zones'])}; capacities "
               f"{report['capacities']}), one mosquitto, the control room")
    for rate, r in report["rates"].items():
        f, sp = r["read_to_relay"], r["spread"]
        click.echo(f"  {rate}/h per lane: {r['granted']} of {r['reads']} admitted; "
                   f"read-to-relay p50 {f['p50_ms']} p99 {f['p99_ms']} ms; zone count at "
                   f"every gate p50 {sp['p50_ms']} p99 {sp['p99_ms']} ms")
    pg = report["page_spread"]
    click.echo(f"  control room page: p50 {pg['p50_ms']} p99 {pg['p99_ms']} ms")
    click.echo(f"  highest rate meeting the goals: {report['highest_rate_meeting_goals']}/h")
    click.echo(f"  partition {partition:.0f} s: {report['partition_admitted']} of "
               f"{report['partition_reads']} admitted; max inside {report['max_inside']}; "
               f"beyond capacity {report['beyond_capacity']}; equal counts "
               f"{report['converged']} {report['converge_s']} s after healing")
    click.echo(f"  per gate {report['cpu_s_per_gate']} CPU s, {report['rss_mb_per_gate']} MB "
               f"RSS; control room {report['control_room_cpu_s']} CPU s, "
               f"{report['control_room_rss_mb']} MB RSS")
    for g in report["goals"]:
        click.echo(goal_line(g))
    return 0
