"""The act stage: one worker that turns durable decisions into relay, lights and buzzer.

Fed through a bounded inbox with journaled decisions only (``submit`` after
``Gatekeeper.check`` returned). Per scan, in this order: the relay (a grant opens it), the
lights and buzzer, ``actuated_at`` in the journal, then the listeners, whose bounded queues
drop and count rather than wait, so nothing downstream delays the next relay.

The relay is released by ``submit`` itself, on the deciding thread (``GpioOutputs.pulse``
never blocks): waking the stage's thread first would put one more thread hand-off, and a
wait for the GIL, between the journal entry and the gate opening. The rest follows on the
stage's thread.

With a passage contact, a grant is recorded ``passed=True`` when a passage follows within
``passage_timeout`` and ``passed=False`` ("opened, not passed") when none does; without a
contact ``passed`` stays null. A journal that fails to take a mark is logged and counted:
the gate has already acted and the next visitor must not wait on the disk.

Passage alarms (with a passage contact and an ``alarms`` sink): a passage no grant or
release explains (forced), and the contact closed past ``passage_held_after`` seconds
(held), once per hold. The sink journals each and gives its entry's scan id; the stage
then tells the listeners (``Alarm``). ``release`` is a manual release: journaled by the
caller first, then the relay, and the passage that follows belongs to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hardware.gpio import Signal
from scanner.act.fanout import Fanout
from scanner.act.passage import PassageTracker
from scanner.act.pins import DEFAULT_PASSAGE_TIMEOUT
from scanner.clock import utc_now
from scanner.decide.model import ADMITTING, Decision, Feedback, Reason
from scanner.errors import GateError
from scanner.tickets import utc_iso

log = logging.getLogger("scanner.act")

# Decisions that release the turnstile.
OPENS = ADMITTING
DEFAULT_INBOX = 64
# The loop wakes at least this often, so its heartbeat stays fresh while the gate is idle.
HEARTBEAT_INTERVAL = 0.5
# Passage pulses are physical (about one a second at most); more than this is a fault.
MAX_PENDING_PASSAGES = 1024

_SIGNALS = {Feedback.GREEN: Signal.GRANTED, Feedback.BLUE: Signal.GRANTED,
            Feedback.ORANGE: Signal.ALREADY_INSIDE, Feedback.RED: Signal.DENIED,
            Feedback.PINK: Signal.HELD}
DEFAULT_PASSAGE_HELD_AFTER = 30.0


def signal_for(decision: Decision) -> Signal:
    """What the lights and buzzer show, by the decision's feedback colour; a held ticket
    says "wait" whatever colour the venue gave it."""
    if decision.reason is Reason.ACTION_REQUIRED:
        return Signal.HELD
    return _SIGNALS[decision.feedback]


class ActJournal(Protocol):
    """The journal's two marks after a scan was recorded; False means no such scan."""

    def mark_actuated(self, scan_id: str, at_iso: str) -> bool | None: ...
    def mark_passed(self, scan_id: str, passed: bool) -> bool | None: ...


class Journaled(Protocol):
    """A durably journaled decision (``scanner.gatekeeper.CheckResult`` is one)."""

    @property
    def decision(self) -> Decision: ...
    @property
    def scan_id(self) -> str: ...


class Outputs(Protocol):
    """What the stage drives (``hardware.gpio.GpioOutputs``)."""

    when_passage: Callable[[], None] | None
    when_fire_alarm: Callable[[bool], None] | None

    @property
    def has_passage_contact(self) -> bool: ...
    @property
    def fire_alarm(self) -> bool: ...
    def passage_closed_for(self) -> float | None: ...
    def pulse(self) -> bool: ...
    def signal(self, signal: Signal) -> None: ...


@dataclass(frozen=True, slots=True)
class Acted:
    """One scan after the gate acted on it (to listeners)."""

    scan_id: str
    decision: Decision
    signal: Signal
    opened: bool                # the relay released (or was held open) for this scan
    actuated_at: str | None     # as journaled; None when the gate did not open
    fire_alarm: bool
    acted_ns: int = 0           # time.monotonic_ns() once relay and lights were driven
    read_ns: int | None = None  # when the read was taken, on the same clock, if known


@dataclass(frozen=True, slots=True)
class Passage:
    """A passage outcome: ``scan_id`` None is a passage no grant explains."""

    scan_id: str | None
    passed: bool


@dataclass(frozen=True, slots=True)
class FireAlarm:
    active: bool


@dataclass(frozen=True, slots=True)
class Alarm:
    """A passage alarm or a manual release, journaled as ``scan_id`` (None: the journal
    refused it; the alarm still shows)."""

    reason: Reason             # PASSAGE_FORCED | PASSAGE_HELD | MANUAL_RELEASE
    scan_id: str | None


# Journals one alarm and gives its entry's scan id (None when it could not).
AlarmSink = Callable[[Reason], str | None]


class ActStage:
    """A named worker: ``start``, idempotent ``stop``, ``heartbeat`` (monotonic seconds)."""

    name = "act"

    def __init__(self, outputs: Outputs, journal: ActJournal, *,
                 passage_timeout: float = DEFAULT_PASSAGE_TIMEOUT,
                 inbox_size: int = DEFAULT_INBOX, fanout: Fanout | None = None,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL,
                 alarms: AlarmSink | None = None,
                 passage_held_after: float = DEFAULT_PASSAGE_HELD_AFTER,
                 now_iso: Callable[[], str] = lambda: utc_iso(utc_now()),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if inbox_size < 1:
            raise ValueError("act inbox size must be at least 1")
        self.outputs = outputs
        self.journal = journal
        self.fanout = fanout if fanout is not None else Fanout()
        self.inbox_size = inbox_size
        self.heartbeat_interval = heartbeat_interval
        self._now_iso = now_iso
        self._monotonic = monotonic
        self._passages = (PassageTracker(passage_timeout)
                          if outputs.has_passage_contact else None)
        self._cond = threading.Condition()
        # With: the relay opened, and when the read was taken.
        self._scans: deque[tuple[Journaled, bool, int | None]] = deque()
        self._passed_at: deque[float] = deque(maxlen=MAX_PENDING_PASSAGES)
        self._released: deque[tuple[str, bool, float]] = deque()  # scan id, opened, when
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._heartbeat = monotonic()
        self.dropped = 0         # scans the full inbox refused: journaled, never acted on
        self.journal_errors = 0  # marks the journal refused
        self.unmatched_passages = 0
        self._alarms = alarms
        self.passage_held_after = passage_held_after
        self._held_alarmed = False  # the current hold of the contact was reported
        outputs.when_passage = self._on_passage
        outputs.when_fire_alarm = self._on_fire_alarm

    # -- worker --------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._heartbeat = self._monotonic()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Act on the scans already queued, then end; safe to call twice."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            with self._cond:
                if not thread.is_alive():
                    self._thread = None

    @property
    def heartbeat(self) -> float:
        """Monotonic time of the loop's last turn."""
        return self._heartbeat

    @property
    def serving(self) -> bool:
        """Its loop runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def fire_alarm(self) -> bool:
        return self.outputs.fire_alarm

    @property
    def waiting_for_passage(self) -> int:
        return len(self._passages) if self._passages is not None else 0

    def submit(self, scan: Journaled, read_ns: int | None = None) -> bool:
        """Open the relay for a grant, then queue the scan for the rest; never blocks. False
        (and counted) when the inbox is full or the stage has stopped: the gate stays
        closed and the scan stays journaled with ``actuated_at`` null. ``read_ns``: when
        the read was taken (``time.monotonic_ns``), passed on in ``Acted`` for
        read-to-relay."""
        with self._cond:
            if self._stopping or len(self._scans) >= self.inbox_size:
                self.dropped += 1
                accepted = False
            else:
                decision = scan.decision
                opened = decision.granted and decision.reason in OPENS \
                    and self.outputs.pulse()
                self._scans.append((scan, opened, read_ns))
                self._cond.notify()
                accepted = True
        if not accepted:
            log.error("act stage cannot take scan %s (inbox full or stopped): gate not "
                      "actuated", scan.scan_id)
        return accepted

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            scans, passages, stopping = self._take()
            self._heartbeat = self._monotonic()
            for scan_id, opened, at in self._take_releases():
                if opened and self._passages is not None:
                    self._passages.opened(scan_id, at)
                self.fanout.publish(Alarm(Reason.MANUAL_RELEASE, scan_id))
            for at in passages:
                self._passage(at)
            for scan, opened, read_ns in scans:
                self._act(scan, opened, read_ns)
            self._expire(self._monotonic())
            self._watch_hold()
            if stopping and not scans:
                return

    def _take(self) -> tuple[list[tuple[Journaled, bool, int | None]], list[float], bool]:
        with self._cond:
            if not (self._scans or self._passed_at or self._released or self._stopping):
                self._cond.wait(self._wait_seconds())
            scans = list(self._scans)
            passages = list(self._passed_at)
            self._scans.clear()
            self._passed_at.clear()
            return scans, passages, self._stopping

    def _take_releases(self) -> list[tuple[str, bool, float]]:
        with self._cond:
            releases = list(self._released)
            self._released.clear()
            return releases

    def _wait_seconds(self) -> float:
        deadline = self._passages.next_deadline() if self._passages is not None else None
        if deadline is None:
            return self.heartbeat_interval
        # Just past the deadline: the tracker expires grants strictly after it.
        return max(0.001, min(self.heartbeat_interval, deadline - self._monotonic() + 0.001))

    def _act(self, scan: Journaled, opened: bool, read_ns: int | None) -> None:
        decision = scan.decision
        signal = signal_for(decision)
        self.outputs.signal(signal)
        acted_ns = time.monotonic_ns()  # the read's clock (Payload.captured_ns), for metrics
        actuated_at = None
        if opened:
            actuated_at = self._now_iso()
            if self._passages is not None:
                self._passages.opened(scan.scan_id, self._monotonic())
            self._mark(self.journal.mark_actuated, scan.scan_id, actuated_at)
            log.info("relay pulsed for scan %s", scan.scan_id)
        self.fanout.publish(Acted(scan.scan_id, decision, signal, opened, actuated_at,
                                  self.outputs.fire_alarm, acted_ns, read_ns))

    def _passage(self, at: float) -> None:
        if self._passages is None:
            return
        self._expire(at)
        scan_id = self._passages.passed(at)
        if scan_id is None:
            self.unmatched_passages += 1
            log.warning("passage without a grant waiting for it (pushed through, or two on "
                        "one ticket)")
            self._alarm(Reason.PASSAGE_FORCED)
        else:
            self._mark(self.journal.mark_passed, scan_id, True)
        self.fanout.publish(Passage(scan_id, scan_id is not None))

    def _expire(self, now: float) -> None:
        if self._passages is None:
            return
        for scan_id in self._passages.expired(now):
            log.info("scan %s: the gate opened but nobody passed", scan_id)
            self._mark(self.journal.mark_passed, scan_id, False)
            self.fanout.publish(Passage(scan_id, False))

    def release(self, scan_id: str) -> bool:
        """A manual release journaled as ``scan_id``: the relay now, and the passage that
        follows is this release's, not a forced one. False without a relay."""
        with self._cond:
            if self._stopping:
                return False
            opened = self.outputs.pulse()
            self._released.append((scan_id, opened, self._monotonic()))
            self._cond.notify()
        return opened

    def _watch_hold(self) -> None:
        if self._alarms is None:
            return
        closed = self.outputs.passage_closed_for()
        if closed is None:
            self._held_alarmed = False
        elif closed >= self.passage_held_after and not self._held_alarmed:
            self._held_alarmed = True
            log.warning("passage contact closed for %.0f s: the turnstile is held or blocked",
                        closed)
            self._alarm(Reason.PASSAGE_HELD)

    def _alarm(self, reason: Reason) -> None:
        if self._alarms is None:
            return
        try:
            scan_id = self._alarms(reason)
        except (GateError, OSError) as exc:  # shown all the same: the journal is the fault
            self.journal_errors += 1
            log.error("journal refused the alarm %s: %s", reason.value, exc)
            scan_id = None
        self.fanout.publish(Alarm(reason, scan_id))

    def _mark(self, write: Callable[[str, Any], bool | None], scan_id: str, value: Any) -> None:
        try:
            found = write(scan_id, value)
        except (GateError, OSError) as exc:
            self.journal_errors += 1
            log.error("journal refused a mark for scan %s: %s", scan_id, exc)
            return
        if found is False:
            self.journal_errors += 1
            log.error("journal has no scan %s to mark: was it submitted before it was "
                      "journaled?", scan_id)

    # -- callbacks from the outputs' thread ----------------------------------------------

    def _on_passage(self) -> None:
        with self._cond:
            self._passed_at.append(self._monotonic())
            self._cond.notify()

    def _on_fire_alarm(self, active: bool) -> None:
        self.fanout.publish(FireAlarm(active))
