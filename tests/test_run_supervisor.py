"""The supervisor: restarts dead workers with backoff, notices hung ones, feeds systemd's
watchdog only while every heartbeat is fresh, and stops the flow in order on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits.run import Loop, NotifySocket
from kits.waiting import in_thread, wait_for

from scanner.run.notify import Notifier
from scanner.run.signals import stop_on_signals
from scanner.run.supervisor import EXIT_FAILURE, Supervisor
from scanner.run.worker import Stage, Worker


def fast(workers: list[Worker], notifier: Notifier | None = None, *, restart_limit: int = 5,
         stop_grace: float = 2.0) -> Supervisor:
    """A supervisor that checks every 10 ms and restarts after 20 ms, doubling."""
    return Supervisor(workers, notifier, tick=0.01, restart_floor=0.02,
                      restart_limit=restart_limit, stop_grace=stop_grace)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


class Running:
    """``Supervisor.run`` on a thread, stopped and joined at the end of the test."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.stop = threading.Event()
        self.result: int | None = None
        self.thread = in_thread(self._run)

    def _run(self) -> None:
        self.result = self.supervisor.run(self.stop)

    def end(self) -> int | None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.result


def test_a_worker_that_raises_is_restarted_and_the_others_go_on() -> None:
    flaky, steady = Loop("flaky"), Loop("steady")
    running = Running(fast([flaky, steady]))
    try:
        wait_for(lambda: flaky.rounds and steady.rounds, "both workers to run")
        flaky.crash.set()
        wait_for(lambda: flaky.starts == 2 and flaky.running, "the crashed worker to restart")
        rounds = steady.rounds
        wait_for(lambda: steady.rounds > rounds, "the other worker to go on")
        assert steady.starts == 1
    finally:
        assert running.end() == 0


def test_restarts_back_off_doubling_while_the_worker_keeps_dying() -> None:
    now = [time.monotonic()]
    flaky = Loop("flaky")
    supervisor = Supervisor([flaky], clock=lambda: now[0], restart_floor=1.0)
    supervisor.start()
    flaky.crash_always = True
    delays = []
    for _ in range(3):
        wait_for(lambda: not flaky.running, "the worker to die")
        supervisor.check()  # notices the death, schedules the restart
        started, starts = now[0], flaky.starts
        while flaky.starts == starts:
            now[0] += 0.25
            supervisor.check()
            wait_for(lambda s=starts: flaky.starts > s or not flaky.running,  # type: ignore[misc]
                     "a restart to begin, or none")
        delays.append(now[0] - started)
    supervisor.shutdown()
    assert delays == [1.0, 2.0, 4.0]


def test_a_death_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    flaky = Loop("flaky")
    supervisor = Supervisor([flaky], restart_floor=60.0)
    supervisor.start()
    flaky.crash.set()
    wait_for(lambda: not flaky.running, "the worker to die")
    with caplog.at_level(logging.ERROR, logger="scanner.run.supervisor"):
        for _ in range(5):
            supervisor.check()
    supervisor.shutdown()
    deaths = [r for r in caplog.records if "flaky died" in r.getMessage()]
    assert len(deaths) == 1 and "lost its device" in deaths[0].getMessage()


def test_a_hung_worker_stops_the_watchdog_pings(listener: NotifySocket,
                                                caplog: pytest.LogCaptureFixture) -> None:
    stuck, steady = Loop("stuck"), Loop("steady")
    supervisor = fast([stuck, steady], listener.notifier(watchdog=0.1))
    running = Running(supervisor)
    try:
        wait_for(lambda: "WATCHDOG=1" in listener.drain(), "a first watchdog ping")
        with caplog.at_level(logging.ERROR, logger="scanner.run.supervisor"):
            stuck.hang.set()
            wait_for(lambda: "stuck hung" in supervisor.summary(), "the hang to be noticed")
            listener.drain()
            time.sleep(0.5)  # ten ping periods: long enough for pings to show up if sent
            after = listener.drain()
        assert "WATCHDOG=1" not in after
        assert "STATUS=1/2 workers up; stuck hung" in listener.messages
        assert sum("stuck hung" in r.getMessage() for r in caplog.records) == 1
    finally:
        stuck.release.set()
        running.end()


def test_a_hung_worker_that_lets_go_when_stopped_is_restarted(listener: NotifySocket) -> None:
    stuck = Loop("stuck", release_on_stop=True)
    supervisor = fast([stuck], listener.notifier(watchdog=0.1))
    running = Running(supervisor)
    try:
        wait_for(lambda: stuck.rounds, "the worker to run")
        stuck.hang.set()
        wait_for(lambda: stuck.starts == 2, "the restart")
        listener.drain()
        wait_for(lambda: "WATCHDOG=1" in listener.drain(), "the pings to resume")
    finally:
        assert running.end() == 0


def test_an_essential_worker_that_keeps_crashing_ends_the_supervisor_non_zero() -> None:
    lane, reader = Loop("lane", essential=True, stage=Stage.LANE), Loop("reader")
    lane.crash_always = True
    supervisor = fast([lane, reader], restart_limit=3)
    assert supervisor.run(threading.Event()) == EXIT_FAILURE
    assert lane.starts == 4  # the first start and three restarts
    assert not reader.running  # the rest was stopped in order


def test_a_non_essential_worker_is_restarted_beyond_the_limit() -> None:
    camera = Loop("camera")
    camera.crash_always = True
    running = Running(fast([camera], restart_limit=2))
    wait_for(lambda: camera.starts > 4, "restarts beyond the limit")
    assert running.end() == 0


def test_an_essential_worker_that_hangs_for_good_ends_the_supervisor_non_zero() -> None:
    lane = Loop("lane", essential=True, stage=Stage.LANE)
    supervisor = Supervisor([lane], tick=0.01, stop_grace=0.2)
    running = Running(supervisor)
    try:
        wait_for(lambda: lane.rounds, "the lane to run")
        lane.hang.set()
        wait_for(lambda: not running.thread.is_alive(), "the supervisor to give up")
        assert running.result == EXIT_FAILURE
    finally:
        lane.release.set()


class Counting(Worker):
    def __init__(self) -> None:
        super().__init__("counting", heartbeat_timeout=1.0)
        self.interrupts = 0

    def run(self) -> None:
        self.stopping.wait()

    def interrupt(self) -> None:
        self.interrupts += 1


def test_stop_is_idempotent_and_safe_before_start() -> None:
    worker = Counting()
    worker.stop()
    worker.start()  # a start after a stop runs again
    assert worker.running
    worker.stop()
    worker.stop()
    assert worker.join(2) and worker.interrupts == 2  # once per run, not per call


def test_shutdown_is_idempotent(listener: NotifySocket) -> None:
    worker = Counting()
    supervisor = Supervisor([worker], listener.notifier())
    supervisor.start()
    supervisor.shutdown()
    supervisor.shutdown()
    assert listener.drain().count("STOPPING=1") == 1
    assert not worker.running


class Step(Worker):
    """Records in ``log`` when its loop ends; a lane holds a decision in flight until told
    to stop, then finishes it (``journaled``) before ending."""

    def __init__(self, name: str, stage: Stage, log: list[str]) -> None:
        super().__init__(name, heartbeat_timeout=5.0, stage=stage)
        self.log = log
        self.deciding = threading.Event()

    def run(self) -> None:
        if self.stage == Stage.LANE:
            self.deciding.set()
            self.stopping.wait()
            self.log.append("decision journaled")
        self.stopping.wait()
        self.log.append(f"{self.name} ended")


def test_sigterm_stops_readers_then_finishes_the_lane_then_stops_outputs(
        listener: NotifySocket) -> None:
    log: list[str] = []
    relay = Step("relay", Stage.OUTPUT, log)
    lane = Step("lane", Stage.LANE, log)
    reader = Step("reader", Stage.READER, log)
    supervisor = Supervisor([relay, lane, reader], listener.notifier(), tick=0.01)

    def terminate() -> None:
        wait_for(lane.deciding.is_set, "a decision in flight")
        os.kill(os.getpid(), signal.SIGTERM)

    in_thread(terminate)
    with stop_on_signals(signal.SIGTERM) as stop:
        result = supervisor.run(stop)
    assert result == 0
    assert log == ["reader ended", "decision journaled", "lane ended", "relay ended"]
    assert listener.drain()[-1] == "STOPPING=1"


def test_the_status_line_is_worded_every_two_seconds_unless_a_worker_goes_down(
        listener: NotifySocket) -> None:
    """Wording the line asks every worker and the clock guard: not on every check."""
    from scanner.run.supervisor import STATUS_EVERY

    said = ["first"]
    now = [time.monotonic()]
    steady = Loop("steady", heartbeat_timeout=60.0)
    supervisor = Supervisor([steady], listener.notifier(), clock=lambda: now[0],
                            status=lambda: said[0])
    supervisor.start()
    try:
        listener.drain()
        said[0] = "second"
        now[0] += STATUS_EVERY / 4
        supervisor.check()
        assert not [m for m in listener.drain() if m.startswith("STATUS=")]
        now[0] += STATUS_EVERY
        supervisor.check()
        assert "STATUS=1/1 workers up; second" in listener.drain()
        steady.crash.set()
        wait_for(lambda: not steady.running, "the worker to die")
        now[0] += STATUS_EVERY / 4
        supervisor.check()   # a worker down: said at once
        assert any(m.startswith("STATUS=0/1 workers up; steady restarting")
                   for m in listener.drain())
    finally:
        supervisor.shutdown()


class _Nice(Worker):
    """Records its thread's nice, and that of a thread it starts, then waits to stop."""

    def __init__(self, stage: Stage) -> None:
        super().__init__(f"nice-{stage.name}", heartbeat_timeout=60.0, stage=stage)
        self.seen: list[int] = []

    def run(self) -> None:
        self.seen.append(_nice_of(threading.get_native_id()))
        child = threading.Thread(target=lambda: self.seen.append(
            _nice_of(threading.get_native_id())))
        child.start()
        child.join()
        self.stopping.wait()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux threads only")
def test_a_worker_and_the_threads_it_starts_carry_its_name_in_the_kernel() -> None:
    """What top -H and ps -L show: the worker's name (cut to the kernel's 15 bytes)."""
    worker = _Nice(Stage.BACKGROUND)
    worker.name = "reader:serial-ttyUSB0"
    worker.start()
    try:
        wait_for(lambda: worker._thread is not None and worker._thread.native_id is not None
                 and _comm_of(worker._thread.native_id) == "reader:serial-t", "the name")
    finally:
        worker.stop()
        worker.join(5)
    assert _comm_of(threading.get_native_id()) != "reader:serial-t"  # the caller keeps its own


def _comm_of(tid: int) -> str:
    return Path(f"/proc/self/task/{tid}/comm").read_text().strip()


def _nice_of(tid: int) -> int:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of proc(5), counted after the command's ")"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux threads only")
def test_background_workers_and_their_threads_run_at_a_lower_priority_than_the_lane() -> None:
    """On a busy machine the read, the decision and the relay come before hearing the
    venue's scans; the caller's own priority is left alone."""
    from scanner.run.worker import BACKGROUND_NICE

    before = os.getpriority(os.PRIO_PROCESS, 0)
    workers = {stage: _Nice(stage) for stage in (Stage.BACKGROUND, Stage.LANE)}
    for w in workers.values():
        w.start()
    try:
        wait_for(lambda: all(len(w.seen) == 2 for w in workers.values()), "both threads")
        assert workers[Stage.BACKGROUND].seen == [min(19, before + BACKGROUND_NICE)] * 2
        assert workers[Stage.LANE].seen == [before] * 2
        observer = _Nice(Stage.BACKGROUND)
        observer.yields_cpu = False  # a process's whole work (the control room's)
        observer.start()
        wait_for(lambda: len(observer.seen) == 2, "the observer's threads")
        observer.stop()
        assert observer.seen == [before] * 2
        assert _nice_of(threading.get_native_id()) == before
    finally:
        for w in workers.values():
            w.stop()
            w.join(5)
