"""Keeps the workers alive, feeds systemd's watchdog only while all of them are, and stops
them in flow order.

A worker that died (raised, or returned unasked) is logged once and restarted after a
backoff that doubles while it keeps dying (``scanner.backoff``); the others go on. A worker
that hung (its heartbeat went stale) is logged once and asked to stop; if its thread ends it
is restarted like a dead one, if not, the watchdog pings stop and systemd restarts the
process: a thread cannot be killed, and a second copy beside it would fight over its device.
An essential worker (a decision lane) that dies more than ``restart_limit`` times within
``restart_window``, or hangs without letting go, ends ``run()`` with ``EXIT_FAILURE``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scanner.backoff import doubled
from scanner.run.notify import Notifier
from scanner.run.readiness import STARTING, Readiness
from scanner.run.worker import Stage, Worker

log = logging.getLogger(__name__)

EXIT_FAILURE = 1
DEFAULT_TICK = 0.5
# The STATUS line is worded at most this often while no worker goes down or comes back:
# wording it asks every worker and the clock guard, which was half of an idle gate's CPU.
STATUS_EVERY = 2.0
DEFAULT_RESTART_FLOOR = 1.0
DEFAULT_RESTART_LIMIT = 5
DEFAULT_RESTART_WINDOW = 300.0
DEFAULT_STOP_GRACE = 10.0  # per stage; systemd's TimeoutStopSec must be longer than all four


@dataclass
class _Watch:
    worker: Worker
    deaths: deque[float] = field(default_factory=deque)  # monotonic times, within the window
    wait: float = 0.0
    restart_at: float | None = None
    hung_since: float | None = None

    @property
    def state(self) -> str:
        if self.hung_since is not None:
            return "hung"
        return "restarting" if self.restart_at is not None else "up"


class Supervisor:
    def __init__(self, workers: Sequence[Worker], notifier: Notifier | None = None, *,
                 clock: Callable[[], float] = time.monotonic, tick: float = DEFAULT_TICK,
                 restart_floor: float = DEFAULT_RESTART_FLOOR,
                 restart_limit: int = DEFAULT_RESTART_LIMIT,
                 restart_window: float = DEFAULT_RESTART_WINDOW,
                 stop_grace: float = DEFAULT_STOP_GRACE,
                 status: Callable[[], str] = lambda: "",
                 readiness: Readiness | None = None) -> None:
        names = [w.name for w in workers]
        if len(set(names)) != len(names):
            raise ValueError(f"worker names must be unique: {names}")
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.tick = tick
        self.restart_floor = restart_floor
        self.restart_limit = restart_limit
        self.restart_window = restart_window
        self.stop_grace = stop_grace
        self.status = status  # more for the STATUS line (the clock guard's word)
        self.result: int | None = None  # EXIT_FAILURE once an essential worker is lost
        self._watches = [_Watch(w) for w in workers]
        self._last_ping: float | None = None
        self._last_status = ""
        self._worded: tuple[float, tuple[str, ...]] | None = None  # when, the states then
        self._stopped = False
        self._stop_lock = threading.Lock()
        self.ready = False  # every worker started and READY=1 sent
        if readiness is not None:  # what the page's /healthz and the state file say
            readiness.follow(self.problems)

    def run(self, stop: threading.Event) -> int:
        """Start every worker, supervise until ``stop`` is set or an essential worker is
        lost, then stop them in order. The process's exit code: 0, or ``EXIT_FAILURE``."""
        self.start()
        period = self.notifier.watchdog_period
        tick = min(self.tick, period) if period else self.tick
        try:
            while self.result is None and not stop.wait(tick):
                self.check()
        finally:
            self.shutdown()
        return self.result or 0

    def start(self) -> None:
        for watch in self._watches:
            watch.worker.start()
        self.ready = True
        self.notifier.ready()
        self._publish_status()

    def check(self) -> None:
        """One supervision pass: detect, restart, then ping the watchdog if all is fresh."""
        now = self.clock()
        for watch in self._watches:
            self._check(watch, now)
        if self.healthy(now):
            self._ping(now)
        self._publish_status(now)

    def healthy(self, now: float) -> bool:
        """True while no running worker's heartbeat is stale."""
        return all(not (w.worker.running and w.worker.stale(now)) for w in self._watches)

    def problems(self, now: float | None = None) -> list[str]:
        """Why the gate is not healthy, one phrase per worker (empty when it is): not
        started yet or stopping, a worker restarting or hung, a heartbeat gone stale, or
        what a running worker says is wrong (``reader entry disconnected``)."""
        now = self.clock() if now is None else now
        if self._stopped:
            return ["stopping"]
        if not self.ready:
            return [STARTING]
        out = []
        for watch in self._watches:
            worker = watch.worker
            if watch.state != "up":
                out.append(f"{worker.name} {watch.state}")
            elif worker.running and worker.stale(now):
                out.append(f"{worker.name}: no heartbeat for {now - worker.heartbeat:.1f} s")
            elif not worker.running and not worker.stopping.is_set():
                out.append(f"{worker.name} not running")
            elif (said := worker.problem()) is not None:
                out.append(said)
        return out

    def summary(self) -> str:
        down = [f"{w.worker.name} {w.state}" for w in self._watches if w.state != "up"]
        line = f"{len(self._watches) - len(down)}/{len(self._watches)} workers up"
        # Up but not of use: a reader whose device is gone says so too.
        wrong = down + [said for w in self._watches
                        if w.state == "up" and (said := w.worker.problem()) is not None]
        if wrong:
            line = f"{line}; {', '.join(wrong)}"
        extra = self.status()
        return f"{line}; {extra}" if extra else line

    def shutdown(self) -> None:
        """STOPPING=1, then stop and join each stage in flow order; idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self.notifier.stopping()
        for stage in Stage:
            workers = [w.worker for w in self._watches if w.worker.stage == stage]
            for worker in workers:
                worker.stop()
            for worker in workers:
                if not worker.join(self.stop_grace):
                    log.warning("worker %s did not stop within %.0f s", worker.name,
                                self.stop_grace)

    def _check(self, watch: _Watch, now: float) -> None:
        worker = watch.worker
        if watch.restart_at is not None:
            if now >= watch.restart_at:
                watch.restart_at = None
                worker.start()
            return
        if worker.running:
            if watch.hung_since is None and worker.stale(now):
                watch.hung_since = now
                log.error("worker %s hung: no heartbeat for %.1f s; stopping it", worker.name,
                          now - worker.heartbeat)
                worker.stop()
            elif (watch.hung_since is not None and worker.essential
                  and now - watch.hung_since > self.stop_grace):
                self._give_up(worker, "hung and does not stop")
            return
        if self._stopped or (worker.stopping.is_set() and watch.hung_since is None):
            return  # ended because it was asked to
        watch.hung_since = None
        self._schedule_restart(watch, now)

    def _schedule_restart(self, watch: _Watch, now: float) -> None:
        worker = watch.worker
        while watch.deaths and now - watch.deaths[0] > self.restart_window:
            watch.deaths.popleft()
        watch.wait = (doubled(watch.wait, self.restart_floor) if watch.deaths
                      else self.restart_floor)
        watch.deaths.append(now)
        reason = worker.failure or "stopped after hanging"
        if worker.essential and len(watch.deaths) > self.restart_limit:
            self._give_up(worker, f"{len(watch.deaths)} failures within "
                                  f"{self.restart_window:.0f} s, last: {reason!r}")
            return
        log.error("worker %s died: %r; restart in %.1f s", worker.name, reason, watch.wait)
        log.debug("worker %s failure", worker.name, exc_info=worker.failure)
        watch.restart_at = now + watch.wait

    def _give_up(self, worker: Worker, why: str) -> None:
        if self.result is None:
            log.critical("essential worker %s cannot be kept alive (%s); exiting", worker.name,
                         why)
            self.result = EXIT_FAILURE

    def _ping(self, now: float) -> None:
        period = self.notifier.watchdog_period
        if period is not None and (self._last_ping is None or now - self._last_ping >= period):
            self.notifier.watchdog()
            self._last_ping = now

    def _publish_status(self, now: float | None = None) -> None:
        states = tuple(w.state for w in self._watches)
        if now is not None and self._worded is not None and self._worded[1] == states \
                and now - self._worded[0] < STATUS_EVERY:
            return
        self._worded = (self.clock() if now is None else now, states)
        line = self.summary()
        if line != self._last_status:  # the status line changes rarely; do not resend it
            self.notifier.status(line)
            self._last_status = line
