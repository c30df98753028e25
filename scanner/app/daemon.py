"""``gate run`` composed: the supervisor over every worker of the gate's parts, and the
running daemon.

``start_daemon(gate)`` opens what the gate needs to decide (config checked, stores open,
outputs on their pins), then starts the supervisor on its own thread and returns a handle;
``gate run``, ``gate demo`` and ``gate bench run`` all start the gate this way. ``stop()``
stops the workers in flow order: readers, lanes (the decision in flight is finished), jobs,
then the act stage (a grant in flight still opens the gate). The relay itself is left
closed, or held open under fire alarm, when the gate closes its outputs.

The workers built before the supervisor (the page's /healthz, the state file) learn from a
``Readiness`` the supervisor writes whether the gate is ready and healthy.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from scanner.app.gate import Gate
from scanner.run.readiness import Readiness
from scanner.run.service import ServiceWorker
from scanner.run.supervisor import Supervisor
from scanner.run.worker import Stage

if TYPE_CHECKING:
    from scanner.clock_guard import ClockGuard
    from scanner.mesh.link import Link
    from scanner.mesh.message import Health
    from scanner.run.state_file import StateFile


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
        """Ask it to stop, from any thread (a signal handler: through ``stop_on_signals``)."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> int | None:
        self.request_stop()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> int | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.exit_code


# The health message's upload queue is counted at most this often: a count of the journal
# every health message was a tenth of a venue gate's mesh thread.
QUEUE_EVERY = 10.0

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
    gate.open(Gate.store, Gate.journal, Gate.gatekeeper, Gate.outputs, Gate.act,
              Gate.clock_guard)
    warm_up(gate)
    daemon = Daemon(supervisor(gate))
    favour_decisions()
    return daemon


def supervisor(gate: Gate) -> Supervisor:
    """Every worker of ``gate run`` under one supervisor, which tells systemd: readers,
    lanes, the jobs, the act stage, and with them the mesh link, the venue worker, the page,
    the state file."""
    readiness = Readiness()
    guard = gate.clock_guard
    link = gate.mesh_link  # with [mesh], gate run shares its scans
    act = ServiceWorker("act", gate.act, heartbeat_timeout=gate.config.run.heartbeat_timeout,
                        stage=Stage.OUTPUT, essential=True)
    venue = gate.venue_worker  # with [mesh] supervisor_key, it obeys venue commands
    workers = [*gate.reader_workers, *gate.lanes.values(), gate.scheduler, act,
               *filter(None, [link, venue, web(gate, readiness), state_file(gate, readiness)])]
    if link is not None and link.zones is not None:
        link.zones.health = health_of(gate)
    return Supervisor(workers, gate.run_notifier(), status=lambda: _run_status(guard, link),
                      readiness=readiness)


def health_of(gate: Gate, *, monotonic: Callable[[], float] = time.monotonic,
              ) -> Callable[[], Health]:
    """What this gate tells the control room every few seconds (``scanner.mesh.zoning``)."""
    from scanner.build import version
    from scanner.mesh.message import Health
    from scanner.tickets import utc_iso

    readers, act, journal = gate.reader_workers, gate.act, gate.journal
    cfg, zone, running = gate.config, gate.zones.zone, version()
    queue = [-QUEUE_EVERY, 0]  # when counted (monotonic), the upload queue then

    def health() -> Health:
        # Codes, not sentences: the control room words them in its page's language.
        alarms = ["fire"] if act.fire_alarm else []
        alarms += [f"reader:{r.reader}" for r in readers if r.problem()]
        if (now := monotonic()) - queue[0] >= QUEUE_EVERY:
            queue[:] = [now, int(journal.stats()["queue_depth"])]
        return Health(cfg.gate_id, zone, running, utc_iso(gate.clock()),
                      {r.reader: r.connected is not False for r in readers},
                      int(queue[1]), tuple(alarms))

    return health


def web(gate: Gate, readiness: Readiness) -> ServiceWorker | None:
    """The kiosk page as worker ``web``; None with ``[web] enabled = false``, which then
    never imports the web server."""
    if not gate.config.web.enabled:
        return None
    from scanner.app.kiosk import daemon_web

    return daemon_web(gate, readiness)


def state_file(gate: Gate, readiness: Readiness) -> StateFile | None:
    """What ``gate status`` reads of the running daemon, in a file beside the store;
    None with a server database."""
    from scanner.run.state_file import StateFile, state_path

    path = state_path(gate.config.db)
    if path is None:
        return None
    readers, online = gate.reader_workers, gate.reachability

    def facts() -> dict[str, object]:
        return {"online": online(),
                "readers": {r.reader: r.connected for r in readers},
                "problems": readiness.problems()}

    return StateFile(path, facts, heartbeat_timeout=gate.config.run.heartbeat_timeout,
                     wall=gate.clock)


def _run_status(guard: ClockGuard, link: Link | None) -> str:
    """The clock's part of the STATUS line (nothing while it is fine), and the mesh's."""
    state = guard.check()
    parts = [] if state.fine else [state.line()]
    if link is not None:
        parts.append(link.status_line())
    return "; ".join(parts)


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
