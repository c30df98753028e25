"""Periodic jobs (delta sync, reconcile, settings, upload) on APScheduler 3, safe from clock
jumps, run by one worker.

A job is a plain callable that returns whether it succeeded. A failed run, or one that
raised (one log line), is retried after a doubling backoff (``scanner.backoff``) instead of
its interval; a success resets it. A job that succeeds after failing can ``kick`` others (the
upload, when the network is back) if this scheduler runs them. No job overlaps itself
(``max_instances=1``) and missed runs coalesce into one. ``gate run`` schedules every job in
one scheduler; ``gate sync`` and ``gate upload`` run one job each in a scheduler of its own,
so every loop has this one crash policy.

APScheduler 3 schedules on the wall clock (issues #35, #351). A Pi has no battery clock: it
may boot days behind and jump when NTP arrives. Backwards, every job would wait the jump
out; forwards, the scheduler would first walk every missed fire time. So each time the
scheduler wakes (its waits are monotonic), ``JumpDetector`` compares wall and monotonic time
first, and on a jump every job's next run moves by the jump, kept within one wait from now.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scanner.backoff import doubled
from scanner.clock import Clock, utc_now
from scanner.run.worker import Stage, Worker

log = logging.getLogger(__name__)

# NTP slews small corrections; it steps the clock only when it is off by more than 128 ms.
DEFAULT_JUMP_THRESHOLD = 2.0
DEFAULT_TICK = 2.0  # the scheduler proves it is alive this often
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
_HEARTBEAT_JOB = "_heartbeat"


@dataclass(frozen=True)
class Job:
    """``run`` every ``every`` seconds; a run longer than ``timeout`` counts as hung."""

    name: str
    run: Callable[[], bool]
    every: float
    timeout: float
    kicks: tuple[str, ...] = ()  # run these at once when this job succeeds after failing
    at_start: bool = True


class JumpDetector:
    """Reports how far the wall clock stepped against the monotonic clock since last asked."""

    def __init__(self, wall: Callable[[], float], monotonic: Callable[[], float] = time.monotonic,
                 threshold: float = DEFAULT_JUMP_THRESHOLD) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self.threshold = threshold
        self._offset = wall() - monotonic()

    def check(self) -> float:
        """The jump in seconds (negative: backwards), or 0.0 below the threshold."""
        offset = self.wall() - self.monotonic()
        jump, self._offset = offset - self._offset, offset
        return jump if abs(jump) >= self.threshold else 0.0


@dataclass
class JobState:
    """A job's place in its backoff: ``wait`` until the next run is ``every`` after a
    success and doubles from it, to the cap, with each failure in a row."""

    job: Job
    wait: float
    failures: int = 0
    running_since: float | None = None
    kick_pending: bool = False
    said_running: bool = False  # "still running" logged for the run in flight

    def finished(self, ok: bool) -> bool:
        """Record a run's result; True when it succeeded after failing (recovered)."""
        recovered = ok and self.failures > 0
        self.failures = 0 if ok else self.failures + 1
        self.wait = self.job.every if ok else doubled(self.wait, self.job.every)
        return recovered


def _not_overlap_skips(record: logging.LogRecord) -> bool:
    """Drops APScheduler's warning that a run was skipped because the last one is still
    going: with ``max_instances=1`` that is the design, and a first full sync of a big
    event would repeat it every interval for minutes. The scheduler says it once instead."""
    return "maximum number of running instances" not in str(record.msg)


class _GuardedScheduler(BackgroundScheduler):
    """Runs ``before_jobs`` each time the scheduler wakes, before it reads its clock, and
    wakes at least every ``longest_wait`` seconds. A wall clock stepping back between
    ``before_jobs`` and APScheduler's own reading would otherwise have it sleep until the
    old next run, an hour away after a step back of an hour; the next wake sees the step."""

    def __init__(self, before_jobs: Callable[[], None], longest_wait: float,
                 **options: Any) -> None:
        self._before_jobs = before_jobs
        self._longest_wait = longest_wait
        super().__init__(**options)

    def _process_jobs(self) -> float | None:
        self._before_jobs()
        wait: float | None = super()._process_jobs()
        return self._longest_wait if wait is None else min(wait, self._longest_wait)


class Scheduler(Worker):
    """A worker running ``jobs``; its heartbeat stops when the scheduler or a job hangs."""

    def __init__(self, jobs: Iterable[Job], *, name: str = "scheduler",
                 tick: float = DEFAULT_TICK,
                 heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
                 wall: Clock = utc_now, clock: Callable[[], float] = time.monotonic,
                 jump_threshold: float = DEFAULT_JUMP_THRESHOLD) -> None:
        super().__init__(name, heartbeat_timeout=heartbeat_timeout, stage=Stage.BACKGROUND,
                         clock=clock)
        self._states = {job.name: JobState(job, job.every) for job in jobs}
        self.tick = tick
        self.wall = wall
        self.jump_threshold = jump_threshold
        self._scheduler: _GuardedScheduler | None = None
        self._jobs_lock = threading.RLock()

    def run(self) -> None:
        # APScheduler logs every run at INFO: one line every tick would drown the journal.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("apscheduler.scheduler").addFilter(_not_overlap_skips)
        detector = JumpDetector(lambda: self.wall().timestamp(), self.clock, self.jump_threshold)
        scheduler = _GuardedScheduler(
            lambda: self._rebase(detector.check()), self.tick, timezone=UTC,
            executors={"default": {"type": "threadpool", "max_workers": len(self._states) + 1}},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        now = self.wall()
        for state in self._states.values():
            job = state.job
            scheduler.add_job(self._run_job, self._trigger(job.every, now), args=(job.name,),
                              id=job.name, name=job.name,
                              next_run_time=now if job.at_start else now + _delta(job.every))
        scheduler.add_job(self._heartbeat, self._trigger(self.tick, now), id=_HEARTBEAT_JOB,
                          name=_HEARTBEAT_JOB, next_run_time=now)
        scheduler.add_listener(self._still_running, EVENT_JOB_MAX_INSTANCES)
        with self._jobs_lock:
            self._scheduler = scheduler
        scheduler.start()
        try:
            self.stopping.wait()
        finally:
            with self._jobs_lock:
                self._scheduler = None
            scheduler.shutdown(wait=True)  # a sync or upload in flight finishes its batch

    def kick(self, name: str) -> None:
        """Run job ``name`` as soon as possible (after the run in flight, if any)."""
        state = self._states[name]
        with self._jobs_lock:
            state.wait = state.job.every
            if state.running_since is not None:
                state.kick_pending = True
                return
        self._reschedule(name, self.wall())

    def retime(self, name: str, every: float) -> None:
        """Run job ``name`` every ``every`` seconds from now on (a changed ``/me`` interval)."""
        state = self._states[name]
        with self._jobs_lock:
            if state.job.every == every:
                return
            state.job = replace(state.job, every=every)
            if not state.failures:
                state.wait = every
            if self._scheduler is not None:
                now = self.wall()
                self._scheduler.reschedule_job(name, trigger=self._trigger(
                    every, now + _delta(min(every, state.wait))))
        log.info("job %s now runs every %.0f s", name, every)

    def next_run(self, name: str) -> datetime | None:
        with self._jobs_lock:
            job = self._scheduler.get_job(name) if self._scheduler is not None else None
        return job.next_run_time if job is not None else None

    def _trigger(self, every: float, now: datetime) -> IntervalTrigger:
        return IntervalTrigger(seconds=every, start_date=now, timezone=UTC)

    def _heartbeat(self) -> None:
        now = self.clock()
        overran = [s.job.name for s in self._states.values()
                   if s.running_since is not None and now - s.running_since > s.job.timeout]
        if not overran:  # a job stuck in I/O stops the beat, and so the watchdog
            self.beat()

    def _still_running(self, event: JobSubmissionEvent) -> None:
        """A run was due while the last one goes on: said once per run, at INFO."""
        state = self._states.get(event.job_id)
        with self._jobs_lock:
            since = None if state is None else state.running_since
            if state is None or since is None or state.said_running:
                return
            state.said_running = True
        log.info("job %s still running after %.0f s; the next run starts when it ends",
                 event.job_id, self.clock() - since)

    def _run_job(self, name: str) -> None:
        state = self._states[name]
        with self._jobs_lock:
            state.running_since = self.clock()
            state.said_running = False
        try:
            ok = bool(state.job.run())
        except Exception as exc:  # one line; the job is retried with backoff
            log.error("job %s failed: %r", name, exc)
            ok = False
        with self._jobs_lock:
            state.running_since = None
            recovered = state.finished(ok)
            kicked, state.kick_pending = state.kick_pending, False
        if kicked:
            self._reschedule(name, self.wall())
        elif not ok:
            self._reschedule(name, self.wall() + _delta(state.wait))
        if recovered:
            log.info("job %s succeeded again", name)
            for other in state.job.kicks:
                if other in self._states:  # gate sync runs the sync without the upload
                    self.kick(other)

    def _rebase(self, jump: float) -> None:
        """Move every job by ``jump``, so none waits it out and none runs it off at once."""
        if not jump:
            return
        scheduler = self._scheduler
        if scheduler is None:
            return
        now = self.wall()
        log.warning("wall clock jumped %+.0f s; rescheduling jobs from now", jump)
        for job in scheduler.get_jobs():
            if job.next_run_time is None:
                continue
            state = self._states.get(job.id)
            wait = _delta(state.wait if state is not None else self.tick)
            moved = job.next_run_time + timedelta(seconds=jump)
            scheduler.modify_job(job.id, next_run_time=min(max(moved, now), now + wait))

    def _reschedule(self, name: str, when: datetime) -> None:
        with self._jobs_lock:
            if self._scheduler is not None:
                self._scheduler.modify_job(name, next_run_time=when)


def _delta(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
