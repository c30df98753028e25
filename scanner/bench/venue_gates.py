"""The gates of ``gate bench venue``: each a whole ``gate run`` daemon in a process of its
own (store, journal, mesh link, zone book, act stage with a MockPin relay) reading from a
pty handheld, started in batches on their READY=1, and asked over pipes with a deadline.

A read is timed as a whole (the pty write until the relay pin's rise, stamped by the pin)
and by stage, each stamped by the gate's own thread as the read passes: the reader thread
has the line, the lane takes it, the journal write begins and ends, the act stage is
handed the decision.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import socket
import struct
import threading
import time
from itertools import pairwise
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import click

from scanner.bench.mesh import serve

RELAY = 17
KEY = b"bench-venue-key-0123456789abcdef"
MINTER = "g00"
TICKETS_PER_GATE = 4000
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


class BenchGate:
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
        from scanner.sim.access_user import DeviceOptions, access_user_info
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
        # /me as a first sync stores it: a gate that never stored it loads and compares the
        # settings on a decision a second after the last (its policy has no version to
        # ask), which no synced gate does.
        self.gate.store.save_settings(access_user_info(
            DeviceOptions(name=name), user_id=f"u-{name}", seller_id="s",
            event_ids=["ev-venue"]))
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
        self.marks = _stamp_stages(self.gate)

    def read(self) -> tuple[str, float | None, float, list[float] | None]:
        """One person: (ticket id, read-to-relay ms or None when denied, relay time, the
        milliseconds of each of ``STAGES``)."""
        n, self.next = self.next, self.next + 1
        self.relay.clear()
        self.marks.clear()
        written = self.handheld.scan(f"V{self.name}{n:06d}")
        risen = self.relay.wait_edge(True, 1.0)
        if risen is None:
            return f"t-{self.name}-{n}", None, time.monotonic(), None
        self.relay.wait_edge(False, 1.0)
        marks = [self.marks.get(m) for m in _MARKS]
        at = [written, *(m for m in marks if m is not None), risen]
        stages = [(b - a) / 1e6 for a, b in pairwise(at)] if len(at) == len(_MARKS) + 2 \
            else None
        return f"t-{self.name}-{n}", (risen - written) / 1e6, risen / 1e9, stages

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


# Where a read's time goes, each stage ending at a stamp taken by the gate's own thread:
# the reader has the line, the lane takes it, the journal write begins, it is durable, the
# act stage is handed the decision (the zone book, the mesh's nudge and the decision's log
# line come between), the relay pin rises.
STAGES = ("pty to reader", "reader to lane", "decide", "journal commit", "after journal",
          "act to relay")
_MARKS = ("captured", "lane", "journal", "journaled", "submitted")


def _stamp_stages(gate: Any) -> dict[str, int]:
    """Wraps the lane's decide and submit and the journal's record of ``gate`` so each
    stamps ``time.monotonic_ns`` (the pty's and the pin's clock) into the dict returned."""
    marks: dict[str, int] = {}
    lane = next(iter(gate.lanes.values()))
    decide, submit = lane.decide, lane.submit
    journal = gate.gatekeeper.journal
    record = journal.record

    def timed_decide(read: Any) -> Any:
        marks["lane"] = time.monotonic_ns()
        if read.captured_ns is not None:
            marks["captured"] = read.captured_ns
        return decide(read)

    def timed_record(*args: Any, **kw: Any) -> Any:
        marks["journal"] = time.monotonic_ns()
        try:
            return record(*args, **kw)
        finally:
            marks["journaled"] = time.monotonic_ns()

    def timed_submit(*args: Any, **kw: Any) -> Any:
        marks["submitted"] = time.monotonic_ns()
        return submit(*args, **kw)

    lane.decide, lane.submit, journal.record = timed_decide, timed_submit, timed_record
    return marks


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
        gate = BenchGate(name, zone, tables, url, Path(workdir))
    except Exception as exc:  # said to the parent in one line; the log file has the rest
        logger.error("the gate did not start: %s", exc)
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    serve(pipe, gate.answer, gate.close)


class Notices(threading.Thread):
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


class Venue:
    """The gates' processes, started in batches, and bounded questions to them: a gate that
    does not start or stops answering is named with the end of its log, never waited for
    without end."""

    def __init__(self, gates: int, tables: list[dict[str, Any]], url: str | None,
                 workdir: Path) -> None:
        zones = [t["id"] for t in tables]
        self.names = [f"g{i:02d}" for i in range(gates)]
        self.zone_of = {n: zones[i % len(zones)] for i, n in enumerate(self.names)}
        self.tables = tables
        self.url = url
        self.workdir = workdir
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        workdir.mkdir(parents=True, exist_ok=True)
        self.notices = Notices(workdir / "notify")
        self.notices.start()
        self.stages: list[list[float]] = []  # the last reads' granted ones, by ``STAGES``

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
        evenly over that interval: (gate, ticket, ms or None, relay time). A read is sent
        when due whatever the others are doing (each takes its 100 ms relay pulse, so
        waiting for one before the next would cap the venue at ten reads a second); a
        gate's own next read waits for its last."""
        gap = 3600.0 / rate
        self.stages = []
        start = time.monotonic() + 0.2
        rounds = max(1, int(seconds / gap))
        done: list[tuple[str, str, float | None, float]] = []
        pending: dict[int, float] = {}  # gate -> when its read was sent

        def collect(i: int) -> None:
            ticket, ms, at, stages = self._answer(i, "read", pending.pop(i) + READ_TIMEOUT)
            done.append((self.names[i], ticket, ms, at))
            if stages is not None:
                self.stages.append(stages)

        def drain(until: float) -> None:
            while pending:
                ready = wait([self.pipes[i] for i in pending],
                             max(0.0, until - time.monotonic()))
                for i in [i for i in pending if self.pipes[i] in ready]:
                    collect(i)
                late = [i for i, sent in pending.items()
                        if time.monotonic() > sent + READ_TIMEOUT]
                if late:
                    collect(late[0])  # raises: named, with its log
                if time.monotonic() >= until:
                    return

        for r in range(rounds):
            for i in range(len(self.pipes)):
                due = start + r * gap + i * gap / len(self.pipes)
                drain(due)
                time.sleep(max(0.0, due - time.monotonic()))
                if i in pending:
                    collect(i)
                self._ask(i, "read", None)
                pending[i] = time.monotonic()
        for i in list(pending):
            collect(i)
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
