"""The kiosk in ``gate run``: its server as a worker of the supervisor's one shape, and the
daemon's live facts (health, online, readers, frames) as the kiosk's probes.

The worker sits in the OUTPUT stage, after the act stage in the list: it only reads the act
stage's fan-out queue, so nothing it does (a slow page, a scrape) can delay the relay. Its
heartbeat is the event broadcaster's loop: a stuck stream worker is a hung kiosk, stopped
and restarted by the supervisor like any other. A taken port is a failed start, logged and
retried with the supervisor's backoff; the gate goes on deciding without its page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from scanner.kiosk.parts import DEFAULT_PIN_FILE, DEFAULT_SUPERVISOR_PIN_FILE, WebOptions
from scanner.kiosk.server import KioskServer
from scanner.kiosk.wiring import from_gate
from scanner.run.worker import Stage, Worker, WorkerExited
from scanner.status import first_sync, first_sync_words

if TYPE_CHECKING:
    from scanner.app import Gate
    from scanner.run.readers import ReaderWorker

log = logging.getLogger("scanner.kiosk")

POLL = 0.5
RATE_WINDOW = 5.0     # seconds of samples behind "frames decoded per second"
RATE_MIN_SPAN = 0.5   # a shorter span says nothing yet


class WebWorker(Worker):
    """Worker ``web``: starts the kiosk server, watches its threads, stops it."""

    def __init__(self, server: KioskServer, *, heartbeat_timeout: float) -> None:
        super().__init__("web", heartbeat_timeout=heartbeat_timeout, stage=Stage.OUTPUT)
        self.server = server

    def run(self) -> None:
        self.server.start()
        log.info("kiosk page on %s/", self.server.url)
        try:
            while not self.stopping.wait(POLL):
                if not self.server.serving:
                    raise WorkerExited("the kiosk's server threads ended")
        finally:
            self.server.stop()

    def stale(self, now: float) -> bool:
        if self.running and self.server.serving:
            self.heartbeat = max(self.heartbeat, self.server.heartbeat)
        return super().stale(now)


class Rate:
    """Per second of a growing count, over the samples of the last ``window`` seconds
    (each call is one sample). A count that went down (a restarted reader) starts over."""

    def __init__(self, count: Callable[[], int | None], *, window: float = RATE_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.window = window
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float | None:
        n = self.count()
        if n is None:
            return None
        now = self.clock()
        with self._lock:
            samples = self._samples
            if samples and n < samples[-1][1]:
                samples.clear()
            samples.append((now, n))
            while len(samples) > 2 and now - samples[1][0] >= self.window:
                samples.popleft()
            first_at, first = samples[0]
            if now - first_at >= RATE_MIN_SPAN:
                self._last = (n - first) / (now - first_at)
            return self._last


def readers_connected(readers: Sequence[ReaderWorker]) -> bool | None:
    """False while any reader's device is gone; None when none can tell."""
    states = [state for r in readers if (state := r.connected) is not None]
    return all(states) if states else None


def frames_decoded(readers: Sequence[ReaderWorker]) -> int | None:
    counts = [n for r in readers if (n := r.frames_decoded) is not None]
    return sum(counts) if counts else None


def daemon_web(gate: Gate) -> WebWorker | None:
    """The ``web`` worker of ``gate run`` (None with ``[web] enabled = false``)."""
    cfg = gate.config.web
    if not cfg.enabled:
        return None
    from scanner.app import Gate as _Gate

    readers = gate.reader_workers  # built now: a probe must never build a part
    guard, online = gate.clock_guard, gate.reachability

    def health() -> tuple[bool, list[str]]:
        supervisor = _Gate.supervisor.built(gate)
        reasons = ["not ready: starting"] if supervisor is None else supervisor.problems()
        # Not ready while the store is not whole: a code not synced yet would be denied.
        syncing = first_sync(gate.store.sync_states(), gate.config.events)
        if syncing is not None:
            reasons.append(f"syncing: {first_sync_words(syncing)}")
        return not reasons, reasons

    web = WebOptions(host=cfg.host, port=cfg.port, pin_file=cfg.pin_file or DEFAULT_PIN_FILE,
                     status_open=cfg.status_open,
                     supervisor_pin_file=cfg.supervisor_pin_file or DEFAULT_SUPERVISOR_PIN_FILE)
    server = from_gate(gate, gate.act, web, health=health, online=online,
                       reader_connected=lambda: readers_connected(readers),
                       frames_per_second=Rate(lambda: frames_decoded(readers)),
                       clock_ok=lambda: guard.state().fine, desk=gate.desk)
    return WebWorker(server, heartbeat_timeout=gate.config.run.heartbeat_timeout)
