"""The running daemon: the supervisor over every worker the composition root built.

``start_daemon(gate)`` opens what the gate needs to decide (config checked, stores open,
outputs on their pins), then starts the supervisor on its own thread and returns a handle;
``gate run``, ``gate demo`` and ``gate bench run`` all start the gate this way. ``stop()``
stops the workers in flow order: readers, lanes (the decision in flight is finished), jobs,
then the act stage (a grant in flight still opens the gate). The relay itself is left
closed, or held open under fire alarm, when the gate closes its outputs.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from typing import TYPE_CHECKING

from scanner.run.worker import Stage, Worker, WorkerExited

if TYPE_CHECKING:
    from scanner.act import ActStage
    from scanner.app import Gate
    from scanner.run.supervisor import Supervisor

log = logging.getLogger("scanner.run")

ACT_POLL = 0.5


class ActWorker(Worker):
    """The act stage in the one worker shape: its heartbeat is the stage loop's."""

    def __init__(self, stage: ActStage, *, heartbeat_timeout: float) -> None:
        super().__init__("act", heartbeat_timeout=heartbeat_timeout, stage=Stage.OUTPUT,
                         essential=True)
        self.act = stage

    def run(self) -> None:
        self.act.start()
        try:
            while not self.stopping.wait(ACT_POLL):
                if not self.act.alive:
                    raise WorkerExited("the act stage's loop ended")
        finally:
            self.act.stop()  # acts on what is queued first

    def stale(self, now: float) -> bool:
        self.heartbeat = max(self.heartbeat, self.act.heartbeat)
        return super().stale(now)


class Daemon:
    """A started supervisor; ``stop()`` ends it, ``wait()`` gives its exit code."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.exit_code: int | None = None

    def run(self, stop: threading.Event | None = None) -> int:
        """Supervise on this thread until ``stop`` (or ``self.stop()``) or a lost lane."""
        if stop is not None:
            self._stop = stop
        self.exit_code = self.supervisor.run(self._stop)
        return self.exit_code

    def start(self) -> Daemon:
        self._thread = threading.Thread(target=self.run, name="supervisor", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask it to stop; safe from a signal handler."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> int | None:
        self.request_stop()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> int | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.exit_code


# A woken lane waits for the GIL while the sync thread parses a page: with Python's 5 ms
# switch interval that wait was most of a decision's tail under sync. 1 ms hands it over
# sooner, for a little more switching in the sync.
DECISION_SWITCH_INTERVAL = 0.001


def favour_decisions() -> None:
    """The process's runtime settings for a gate that decides while other threads work:
    a short GIL switch interval, and what start-up built (modules, compiled statements,
    the policy) frozen out of the collector's generations, so a full collection scans only
    what came after and its pause on the decision lane stays short. Call it once the gate
    is built and warm."""
    sys.setswitchinterval(DECISION_SWITCH_INTERVAL)
    gc.freeze()


def open_daemon(gate: Gate) -> Daemon:
    """A daemon for ``gate`` with everything it decides with already open, not started:
    a bad config, an unopenable store or pin fails here, before READY=1."""
    from scanner.app import Gate as _Gate

    gate.open(_Gate.store, _Gate.journal, _Gate.gatekeeper, _Gate.outputs, _Gate.act,
              _Gate.clock_guard)
    warm_up(gate)
    daemon = Daemon(gate.supervisor)
    favour_decisions()
    return daemon


def warm_up(gate: Gate) -> None:
    """Run the decision path's reads once before READY=1, so the first person at the gate
    does not pay for the policy's first build, the first statements and their imports."""
    from scanner.decide.model import Direction
    from scanner.decide.rules import decide

    policy = gate.policy_source()
    gate.store.by_barcode("warm-up")
    history = gate.journal.history("warm-up")
    decide(None, history, policy, Direction.IN, gate.clock(), barcode="warm-up-0000",
           offline=True)


def start_daemon(gate: Gate) -> Daemon:
    """``open_daemon`` and start it on its own thread (demo, bench, tests)."""
    return open_daemon(gate).start()
