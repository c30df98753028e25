"""``gate run``'s sync in a child process: the simulator over real loopback HTTP, a real
SQLite store both processes open, a real child killed for real."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kits.gate import build_gate, gate_config
from kits.sim import SIM_TOKEN

from scanner.app.gate import SYNC_CHILD
from scanner.clock import utc_now
from scanner.config import ApiConfig, GateConfig, Secret
from scanner.databases import make_engine
from scanner.errors import GateError
from scanner.sim import SimServer, World
from scanner.store.tickets import TicketStore
from scanner.sync.process import SyncProcess, SyncProcessFailed
from scanner.sync.syncer import Stopped

TICKETS = 600


@pytest.fixture
def world() -> World:
    return World(seed=5, events=1, tickets_per_event=TICKETS)


@pytest.fixture
def sim(world: World) -> Iterator[SimServer]:
    with SimServer(world, token=SIM_TOKEN) as server:
        yield server


def _overrides(url: str, world: World, **run: object) -> dict[str, Any]:
    return {"gate_id": "north", "events": tuple(world.event_ids),
            "api": ApiConfig(url=url, token=Secret(SIM_TOKEN), retries=0, connect_timeout=1.0,
                             read_timeout=2.0),
            "sync": {"page_size": 50}, "run": run}


def _config(tmp_path: Path, url: str, world: World, **run: object) -> GateConfig:
    return gate_config(tmp_path, **_overrides(url, world, **run))


@pytest.fixture
def child(tmp_path: Path, sim: SimServer, world: World) -> Iterator[SyncProcess]:
    process = SyncProcess(_config(tmp_path, sim.url, world), SYNC_CHILD)
    yield process
    process.close()


def _stored(tmp_path: Path) -> int:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    try:
        return TicketStore(engine).count()
    finally:
        engine.dispose()


def _once_stored(tmp_path: Path, then: Callable[[], object]) -> None:
    """Call ``then`` from a thread once the child has committed some tickets (bounded: a
    child that never commits is the test's failure, seen by what ``then`` leads to)."""
    def watch() -> None:
        deadline = time.monotonic() + 120  # the first commit, on a machine under heavy load
        while _stored(tmp_path) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        then()

    threading.Thread(target=watch, daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped child is gone; an unreaped zombie still answers kill(0): read its state.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_run_in_the_child_fills_the_store_this_process_reads(
        child: SyncProcess, tmp_path: Path) -> None:
    [report] = child.run_once()
    assert (report.mode, report.upserted, report.total) == ("full", TICKETS, TICKETS)
    assert child.pid is not None and child.pid != os.getpid()
    assert _stored(tmp_path) == TICKETS


def test_the_childs_log_lines_are_logged_by_this_process(
        child: SyncProcess, world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scanner.sync")
    child.run_once()
    [event] = world.event_ids
    lines = [r.getMessage() for r in caplog.records if r.name == "scanner.sync"]
    assert f"sync {event}: full +{TICKETS} tickets" in " ".join(lines)


# A child that answers a run with a log record and its reply in one write.
_BOTH_AT_ONCE = """
import pickle, struct, sys
def frame(m):
    data = pickle.dumps(m)
    return struct.pack(">I", len(data)) + data
def read():
    size = struct.unpack(">I", sys.stdin.buffer.read(4))[0]
    return pickle.loads(sys.stdin.buffer.read(size))
read(); read()
sys.stdout.buffer.write(frame(("log", "scanner.sync", 20, "one line")) + frame(("ok", [])))
sys.stdout.buffer.flush()
sys.stdin.buffer.read()
"""


def test_a_reply_that_arrives_with_a_log_record_is_not_missed(
        tmp_path: Path, sim: SimServer, world: World) -> None:
    """Read ahead into a buffer, the reply would hide from select() and the run hang."""
    process = SyncProcess(_config(tmp_path, sim.url, world),
                          [sys.executable, "-c", _BOTH_AT_ONCE])
    done: list[object] = []
    runner = threading.Thread(target=lambda: done.append(process.run_once()), daemon=True)
    runner.start()
    runner.join(10)
    hung = runner.is_alive()
    if hung and process.pid is not None:
        os.kill(process.pid, signal.SIGKILL)  # ends the wait, so close() can take the lock
    runner.join(10)
    process.close()
    assert not hung and done == [[]]


# The offsets measured page by page jitter with each request's time on the wire, and a busy
# machine stretches it past the step worth telling: one timed test at a time.
@pytest.mark.xdist_group("timing")
def test_the_server_clock_offset_the_child_measures_reaches_this_process(
        tmp_path: Path, sim: SimServer, world: World) -> None:
    world.skew = 2 * 86400.0  # the server's clock is two days ahead of this device's
    offsets: list[float] = []
    process = SyncProcess(_config(tmp_path, sim.url, world), SYNC_CHILD,
                          on_offset=offsets.append)
    try:
        process.run_once()
    finally:
        process.close()
    assert offsets and abs(offsets[-1] - 2 * 86400.0) < 5
    assert len(offsets) < 5  # told when it changes, not once per page


def test_the_child_is_kept_between_runs(child: SyncProcess, world: World) -> None:
    child.run_once()
    first = child.pid
    world.change(5, world.event_ids[0])
    [report] = child.run_once()
    assert report.mode == "delta" and report.upserted >= 5
    assert child.pid == first


def test_the_child_yields_the_cpu_to_the_decisions(child: SyncProcess) -> None:
    child.run_once()
    assert child.pid is not None
    # Niced below this process, and a batch task: waking it never preempts a lane.
    assert os.getpriority(os.PRIO_PROCESS, child.pid) > os.getpriority(os.PRIO_PROCESS, 0)
    assert os.sched_getscheduler(child.pid) == os.SCHED_BATCH


def test_top_and_ps_show_the_child_as_the_gates_sync(child: SyncProcess) -> None:
    child.run_once()
    assert Path(f"/proc/{child.pid}/comm").read_text().strip() == "gate-sync"


def test_the_token_is_not_on_the_childs_command_line_or_environment(
        child: SyncProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_API_TOKEN", SIM_TOKEN)  # as an operator may have set it
    child.run_once()
    assert child.pid is not None
    cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{child.pid}/environ").read_bytes()
    assert SIM_TOKEN.encode() not in cmdline and SIM_TOKEN.encode() not in environ


@pytest.mark.slow
def test_a_stop_ends_a_full_sync_after_its_page_and_the_next_run_resumes(
        child: SyncProcess, sim: SimServer, tmp_path: Path) -> None:
    sim.faults.update(latency_ms=100)  # 12 pages of 50: over a second
    stop = threading.Event()
    _once_stored(tmp_path, stop.set)
    with pytest.raises(Stopped):
        child.run_once(stop)
    partial = _stored(tmp_path)
    assert 0 < partial < TICKETS
    sim.faults.update(latency_ms=0)
    [report] = child.run_once()
    assert report.resumed and report.total == TICKETS


@pytest.mark.slow
def test_a_killed_child_fails_its_run_in_one_line_and_the_next_run_starts_another(
        child: SyncProcess, sim: SimServer, tmp_path: Path) -> None:
    sim.faults.update(latency_ms=100)
    killed: list[int] = []

    def kill() -> None:
        assert child.pid is not None
        killed.append(child.pid)
        os.kill(child.pid, signal.SIGKILL)

    _once_stored(tmp_path, kill)
    with pytest.raises(SyncProcessFailed) as failed:
        child.run_once()
    assert "\n" not in str(failed.value) and "exit code -9" in str(failed.value)
    assert not _alive(killed[0])
    sim.faults.update(latency_ms=0)
    [report] = child.run_once()  # resumes after the pages the dead child committed
    assert report.resumed and report.total == TICKETS and child.pid != killed[0]
    assert _stored(tmp_path) == TICKETS


def test_a_server_fault_is_the_runs_error_and_the_child_lives_on(
        tmp_path: Path, world: World) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once it is closed
    process = SyncProcess(_config(tmp_path, f"http://127.0.0.1:{port}", world), SYNC_CHILD)
    try:
        with pytest.raises(GateError) as failed:
            process.run_once()
        assert str(failed.value).startswith("GET /me: ") and "refused" in str(failed.value)
        pid = process.pid
        with pytest.raises(GateError):
            process.run_once()
        assert process.pid == pid
    finally:
        process.close()


_PARENT = """
import pickle, sys, time
from scanner.app.gate import SYNC_CHILD
from scanner.sync.process import SyncProcess
process = SyncProcess(pickle.loads(bytes.fromhex(sys.argv[1])), SYNC_CHILD)
process.run_once()
print(process.pid, flush=True)
time.sleep(600)
"""


def test_a_child_whose_daemon_is_killed_exits(tmp_path: Path, sim: SimServer,
                                              world: World) -> None:
    """SIGKILL leaves the daemon no time to close anything: the child reads EOF and goes."""
    config = pickle.dumps(_config(tmp_path, sim.url, world)).hex()
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, config], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_close_ends_the_child(child: SyncProcess) -> None:
    child.run_once()
    pid = child.pid
    assert pid is not None
    child.close()
    assert child.pid is None and not _alive(pid)


def test_the_daemon_syncs_apart_unless_told_or_given_edges(
        tmp_path: Path, sim: SimServer, world: World) -> None:
    with build_gate(tmp_path, clock=utc_now, **_overrides(sim.url, world)) as gate:
        assert isinstance(gate.run_syncer, SyncProcess)
    with build_gate(tmp_path, clock=utc_now,
                    **_overrides(sim.url, world, sync_process=False)) as gate:
        assert gate.run_syncer is gate.syncer
    with build_gate(tmp_path, clock=lambda: utc_now(), **_overrides(sim.url, world)) as gate:
        assert gate.run_syncer is gate.syncer


# A child that would tell systemd it is there, if it were given the notify socket.
_SPEAKS_IF_IT_CAN = """
import sys
from scanner.run.notify import Notifier
Notifier.from_env().status("the sync child")
from scanner.app.sync_child import main
sys.exit(main())
"""


@pytest.mark.slow
def test_the_child_never_speaks_to_systemd(tmp_path: Path, sim: SimServer, world: World,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd's notify socket and watchdog are the daemon's alone: the child is not given
    them, so nothing it does reaches the socket."""
    from kits.run import NotifySocket

    listener = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", listener.name)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    process = SyncProcess(_config(tmp_path, sim.url, world),
                          [sys.executable, "-c", _SPEAKS_IF_IT_CAN])
    try:
        [report] = process.run_once()
        assert report.upserted == TICKETS
        assert process.pid is not None
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0] for entry in environ}
        assert not names & {b"NOTIFY_SOCKET", b"WATCHDOG_USEC", b"WATCHDOG_PID"}
    finally:
        process.close()
        time.sleep(0.1)  # a datagram sent at exit would have arrived by now
        assert listener.drain() == []
        listener.close()
