"""The job scheduler: interval jobs that survive wall-clock jumps, back off while failing,
never overlap themselves, can be kicked, and a heartbeat that stops when a job hangs.

APScheduler 3 reads the wall clock as ``datetime.now(tz)`` in its scheduler module and has
no clock parameter; the one seam without changing the machine's clock (root, and every other
process on it) is that module's ``datetime`` name, pointed at the test's wall clock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo

import apscheduler.schedulers.base  # type: ignore[import-untyped]
import pytest
from kits.waiting import wait_for

from scanner.run.schedule import Job, JumpDetector, Scheduler

DAY = 86400.0

# These tests bound how many runs fit in a span of real time, and how far away the next one
# is: they run on one worker, one after another, not beside each other.
pytestmark = pytest.mark.xdist_group("timing")


class WallClock:
    """The machine's clock, set off by ``skew`` seconds: a Pi before and after NTP."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.skew)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    clock = WallClock()

    class SkewedDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return clock().astimezone(tz)

    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", SkewedDatetime)
    return clock


class Counter:
    """A job body: counts runs, returns ``results`` in turn (then True), can block."""

    def __init__(self, *results: bool) -> None:
        self.runs = 0
        self.results = list(results)
        self.block = threading.Event()
        self.block.set()
        self.active = 0
        self.most_active = 0

    def __call__(self) -> bool:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.block.wait()
        self.runs += 1
        self.active -= 1
        return self.results.pop(0) if self.results else True


@pytest.fixture
def scheduled(wall: WallClock) -> Iterator[Callable[..., Scheduler]]:
    started: list[Scheduler] = []

    def start(*jobs: Job, **options: object) -> Scheduler:
        scheduler = Scheduler(jobs, wall=wall, **options)  # type: ignore[arg-type]
        scheduler.start()
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.stop()
        assert scheduler.join(5)


def job(name: str, body: Callable[[], bool], every: float = 0.1, **kw: object) -> Job:
    return Job(name, body, every=every, timeout=kw.pop("timeout", 5.0), **kw)  # type: ignore[arg-type]


def seconds_until(scheduler: Scheduler, name: str, wall: WallClock) -> float:
    next_run = scheduler.next_run(name)
    assert next_run is not None
    return (next_run - wall()).total_seconds()


class FakeClocks:
    def __init__(self) -> None:
        self.wall_s = 1_700_000_000.0
        self.mono_s = 100.0

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds


def test_the_detector_sees_no_jump_while_both_clocks_advance_together() -> None:
    clocks = FakeClocks()
    detector = JumpDetector(lambda: clocks.wall_s, lambda: clocks.mono_s)
    clocks.advance(3600)
    assert detector.check() == 0.0


@pytest.mark.parametrize("jump", [-3600.0, DAY])
def test_the_detector_reports_a_step_of_the_wall_clock_once(jump: float) -> None:
    clocks = FakeClocks()
    detector = JumpDetector(lambda: clocks.wall_s, lambda: clocks.mono_s)
    clocks.advance(5)
    clocks.wall_s += jump
    assert detector.check() == jump
    clocks.advance(5)
    assert detector.check() == 0.0


def test_the_detector_ignores_drift_below_its_threshold() -> None:
    clocks = FakeClocks()
    detector = JumpDetector(lambda: clocks.wall_s, lambda: clocks.mono_s, threshold=2.0)
    clocks.wall_s += 0.5  # an NTP slew, not a step
    assert detector.check() == 0.0


def test_a_backward_jump_of_an_hour_does_not_stall_an_interval_job(
        wall: WallClock, scheduled: Callable[..., Scheduler]) -> None:
    body = Counter()
    scheduled(job("sync", body, every=0.2), tick=0.1)
    wait_for(lambda: body.runs >= 2, "the job to run")
    wall.skew -= 3600
    runs = body.runs
    wait_for(lambda: body.runs >= runs + 3, "the job to go on after the jump")


def test_a_step_back_right_after_the_scheduler_checked_its_clock_stalls_nothing(
        wall: WallClock) -> None:
    """The step lands between the jump check and APScheduler's own reading of the clock:
    the scheduler must not sleep until the old next run, an hour away."""
    armed = threading.Event()

    def stepping_wall() -> datetime:  # the clock the jump check reads
        now = wall()
        if armed.is_set():
            armed.clear()
            wall.skew -= 3600
        return now

    body = Counter()
    scheduler = Scheduler([job("sync", body, every=0.2)], wall=stepping_wall, tick=0.1)
    scheduler.start()
    try:
        wait_for(lambda: body.runs >= 2, "the job to run")
        armed.set()
        wait_for(lambda: not armed.is_set(), "the step")
        runs = body.runs
        wait_for(lambda: body.runs >= runs + 3, "the job to go on after the step")
    finally:
        scheduler.stop()
        assert scheduler.join(5)


@pytest.mark.parametrize("jump", [DAY, 10 * 365 * DAY])
def test_a_forward_jump_neither_floods_nor_hangs_an_interval_job(
        jump: float, wall: WallClock, scheduled: Callable[..., Scheduler]) -> None:
    body = Counter()
    scheduler = scheduled(job("sync", body, every=0.2), tick=0.1)
    wait_for(lambda: body.runs >= 2, "the job to run")
    wall.skew += jump
    runs, since = body.runs, time.monotonic()
    wait_for(lambda: body.runs >= runs + 3, "the job to go on after the jump")
    # at most one run per interval since the jump, plus the one that was due
    assert body.runs - runs <= (time.monotonic() - since) / 0.2 + 2
    assert 0 <= seconds_until(scheduler, "sync", wall) <= 0.2 + 0.05


def test_a_failed_run_waits_twice_the_interval(
        wall: WallClock, scheduled: Callable[..., Scheduler]) -> None:
    body = Counter(False)
    scheduler = scheduled(job("upload", body, every=30))
    wait_for(lambda: body.runs == 1 and scheduler.next_run("upload") is not None
             and seconds_until(scheduler, "upload", wall) > 30, "the failed run's backoff")
    assert 59 < seconds_until(scheduler, "upload", wall) <= 60


def test_a_raising_job_is_retried_and_the_others_go_on(
        scheduled: Callable[..., Scheduler]) -> None:
    def broken() -> bool:
        raise OSError("disk gone")

    steady = Counter()
    scheduled(job("broken", broken), job("steady", steady, every=0.05))
    wait_for(lambda: steady.runs >= 5, "the other job to go on")


def test_kick_runs_a_job_at_once(scheduled: Callable[..., Scheduler]) -> None:
    body = Counter()
    scheduler = scheduled(job("upload", body, every=3600, at_start=False))
    time.sleep(0.2)
    assert body.runs == 0
    scheduler.kick("upload")
    wait_for(lambda: body.runs == 1, "the kicked run")


def test_a_job_that_succeeds_again_after_failing_kicks_the_upload(
        scheduled: Callable[..., Scheduler]) -> None:
    sync, upload = Counter(False), Counter()
    scheduled(job("sync", sync, every=0.05, kicks=("upload",)),
              job("upload", upload, every=3600, at_start=False))
    wait_for(lambda: upload.runs == 1, "the upload kicked by the recovered sync")
    assert sync.runs >= 2


def test_a_job_never_overlaps_itself_and_a_kick_waits_for_the_run_in_flight(
        scheduled: Callable[..., Scheduler]) -> None:
    body = Counter()
    body.block.clear()
    scheduler = scheduled(job("sync", body, every=0.02))
    wait_for(lambda: body.active == 1, "a run in flight")
    time.sleep(0.2)  # ten intervals pass while it runs
    scheduler.kick("sync")
    body.block.set()
    wait_for(lambda: body.runs >= 2, "the kicked run after the one in flight")
    assert body.most_active == 1


def test_a_job_running_past_its_timeout_stops_the_heartbeat(
        scheduled: Callable[..., Scheduler]) -> None:
    body = Counter()
    body.block.clear()
    scheduler = scheduled(job("sync", body, timeout=0.2), tick=0.05, heartbeat_timeout=0.5)
    wait_for(lambda: scheduler.stale(time.monotonic()), "the heartbeat to go stale")
    body.block.set()
    wait_for(lambda: not scheduler.stale(time.monotonic()), "the heartbeat to resume")


def test_the_scheduler_stops_idempotently(scheduled: Callable[..., Scheduler]) -> None:
    body = Counter()
    scheduler = scheduled(job("sync", body))
    wait_for(lambda: body.runs >= 1, "a run")
    scheduler.stop()
    scheduler.stop()
    assert scheduler.join(5)
    runs = body.runs
    time.sleep(0.3)
    assert body.runs == runs and scheduler.next_run("sync") is None


def test_failures_in_a_row_double_the_wait(
        wall: WallClock, scheduled: Callable[..., Scheduler]) -> None:
    body = Counter(False, False)
    scheduler = scheduled(job("sync", body, every=0.5))
    wait_for(lambda: body.runs == 2 and scheduler.next_run("sync") is not None
             and seconds_until(scheduler, "sync", wall) > 1.0, "the second failure's backoff")
    assert 1.0 < seconds_until(scheduler, "sync", wall) <= 2.0


def test_a_raising_job_alone_is_run_again_after_one_line(
        scheduled: Callable[..., Scheduler], caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    def flaky() -> bool:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("unexpected")
        return True

    scheduled(job("upload", flaky, every=0.02))
    wait_for(lambda: len(runs) >= 3, "the runs after the one that raised")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["job upload failed: RuntimeError('unexpected')"]
    assert "Traceback" not in caplog.text


def test_a_kick_of_a_job_this_scheduler_does_not_run_is_skipped(
        scheduled: Callable[..., Scheduler], caplog: pytest.LogCaptureFixture) -> None:
    sync = Counter(False)  # recovers on its second run and kicks the upload, not here
    scheduled(job("sync", sync, every=0.02, kicks=("upload",)))
    wait_for(lambda: sync.runs >= 4, "the sync to go on after its recovery")
    assert [r for r in caplog.records if r.levelno >= 40] == []


def test_a_long_run_is_said_once_at_info_not_warned_every_interval(
        scheduled: Callable[..., Scheduler], caplog: pytest.LogCaptureFixture) -> None:
    """A first full sync outlasts many intervals: one INFO line says it is still running;
    APScheduler's "maximum number of running instances" warning never reaches the log."""
    caplog.set_level(logging.INFO)
    body = Counter()
    body.block.clear()
    scheduled(job("sync", body, every=0.02))
    wait_for(lambda: body.active == 1, "a run in flight")
    time.sleep(0.3)  # fifteen intervals pass while it runs
    body.block.set()
    wait_for(lambda: body.runs >= 1, "the long run to end")
    said = [(r.levelname, r.getMessage()) for r in caplog.records
            if "still running" in r.getMessage() or "maximum number" in r.getMessage()]
    assert len(said) == 1, said
    level, line = said[0]
    assert level == "INFO"
    assert re.fullmatch(r"job sync still running after \d+ s; the next run starts when it "
                        r"ends", line), line
