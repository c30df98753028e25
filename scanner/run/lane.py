"""A decision lane: one turnstile's reads, decided one at a time, then handed to the act stage.

Readers (an entry and an exit reader may share one lane) put reads into the lane's bounded
queue; the lane's worker calls ``gatekeeper.check`` for each in arrival order (which logs
the decision's line) and submits the journaled result to the act stage. One decision at a
time per lane: two people at one turnstile are decided in the order they scanned, and
anti-passback sees the first before the second.

A stopping lane finishes the read in flight and those already queued (the readers stopped
before it, so the queue only shrinks), then ends: every read that was taken is decided.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from scanner.decide.model import Direction
from scanner.run.worker import Stage, Worker

if TYPE_CHECKING:
    from scanner.gatekeeper import CheckResult

log = logging.getLogger("scanner.lane")

DEFAULT_QUEUE = 16
# The loop wakes at least this often, so its heartbeat stays fresh while nobody scans.
POLL_SECONDS = 0.5
# A reader waits this long for room in a full lane before it drops the read (and says so):
# longer, and its own device buffer would overflow behind it.
OFFER_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class LaneRead:
    """One read for a lane: ``refused`` is hygiene's reason when the read is no code;
    ``captured_ns`` when the device delivered it (``time.monotonic_ns``), for read-to-relay."""

    text: str
    direction: Direction
    reader: str
    refused: str | None = None
    captured_ns: int | None = None


class Checker(Protocol):
    def check(self, barcode: str, direction: Direction, *, refused: str | None = None,
              source: str = ...) -> CheckResult: ...


class Submit(Protocol):
    """``ActStage.submit``: the journaled result, and when its read was taken."""

    def __call__(self, scan: CheckResult, read_ns: int | None, /) -> object: ...


class Lane(Worker):
    """Worker ``lane:<name>``; essential: a gate whose lane cannot be kept alive exits."""

    def __init__(self, name: str, gatekeeper: Checker, submit: Submit, *,
                 heartbeat_timeout: float, maxsize: int = DEFAULT_QUEUE,
                 interrupted: Callable[[], object] | None = None) -> None:
        super().__init__(f"lane:{name}", heartbeat_timeout=heartbeat_timeout,
                         stage=Stage.LANE, essential=True)
        self.lane = name
        self.gatekeeper = gatekeeper
        self.submit = submit
        self._interrupted = interrupted  # unblocks a submit waiting on a held ticket
        self.reads: queue.Queue[LaneRead] = queue.Queue(maxsize)
        self.decided = 0
        self.failed = 0
        self.dropped = 0

    def interrupt(self) -> None:
        if self._interrupted is not None:
            self._interrupted()

    def offer(self, read: LaneRead, timeout: float = OFFER_TIMEOUT) -> bool:
        """Queue ``read`` (from a reader's thread); False, logged, when the lane stays full."""
        try:
            self.reads.put(read, timeout=timeout)
        except queue.Full:
            self.dropped += 1
            log.error("lane %s is full: a read from %s was dropped (scan again)", self.lane,
                      read.reader)
            return False
        return True

    def run(self) -> None:
        while True:
            self.beat()
            stopping = self.stopping.is_set()  # then only what is queued is left to decide
            try:
                read = self.reads.get(timeout=0 if stopping else POLL_SECONDS)
            except queue.Empty:
                if stopping:
                    return
                continue
            self.decide(read)

    def decide(self, read: LaneRead) -> CheckResult | None:
        """One read: decide, journal and log it, then hand it to the act stage. A decision
        that cannot be journaled is logged and the gate stays closed for it."""
        try:
            result = self.gatekeeper.check(read.text, read.direction, refused=read.refused,
                                           source=read.reader)
        except Exception as exc:  # StoreError: unrecorded, so never actuated; next read
            self.failed += 1
            log.error("lane %s: cannot decide a read from %s: %s", self.lane, read.reader, exc)
            return None
        self.decided += 1
        self.submit(result, read.captured_ns)
        return result
