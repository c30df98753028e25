"""The act stage on mock pins: journaled decisions open the relay, light the LEDs, are
marked in the journal and fanned out; passages and the fire alarm are tracked.

The journal here is a recording fake of the two marks (``mark_actuated``, ``mark_passed``);
the SQLite journal honours the same protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kits.gpio import FIRE, GREEN, PASSAGE, RED, RELAY, make, rises
from kits.journal import make_decision, make_ticket, open_journal
from kits.waiting import wait_for
from test_architecture import imported_after

from hardware.gpio import MIN_PULSE_MS, GpioOutputs, OutputPins, Signal
from scanner.act import Acted, ActStage, FireAlarm, Passage, output_pins, signal_for
from scanner.act.passage import PassageTracker
from scanner.decide.model import Decision, Direction, Feedback, Reason
from scanner.errors import StoreError
from scanner.gatekeeper import CheckResult
from scanner.journal import Journal

AT = "2025-06-01T18:00:00.000Z"
TIMEOUT = 0.15  # passage timeout in these tests


class RecordingJournal:
    """Records the marks; ``refuse`` makes the next marks fail as a full disk would."""

    def __init__(self) -> None:
        self.actuated: dict[str, str] = {}
        self.passed: dict[str, bool] = {}
        self.refuse = False
        self._lock = threading.Lock()

    def mark_actuated(self, scan_id: str, at_iso: str) -> None:
        self._check()
        with self._lock:
            self.actuated[scan_id] = at_iso

    def mark_passed(self, scan_id: str, passed: bool) -> None:
        self._check()
        with self._lock:
            self.passed[scan_id] = passed

    def _check(self) -> None:
        if self.refuse:
            raise StoreError("cannot write the journal: disk full")


def scan(reason: Reason = Reason.GRANTED, scan_id: str = "s1") -> CheckResult:
    granted = reason in (Reason.GRANTED, Reason.CHECKED_OUT)
    feedback = {Reason.GRANTED: Feedback.GREEN, Reason.CHECKED_OUT: Feedback.BLUE,
                Reason.ALREADY_INSIDE: Feedback.ORANGE}.get(reason, Feedback.RED)
    direction = Direction.OUT if reason is Reason.CHECKED_OUT else Direction.IN
    decision = Decision(granted, reason, "msg", feedback, direction, "ABCDEFGH12")
    return CheckResult(decision, scan_id, AT, 1.0)


class Gate:
    """Mock pins, a started stage and a listener, torn down in order."""

    def __init__(self, outputs: GpioOutputs, journal: Any = None, **stage: Any) -> None:
        self.outputs = outputs
        self.journal = RecordingJournal() if journal is None else journal
        self.stage = ActStage(outputs, self.journal, now_iso=lambda: AT, **stage)
        self.heard = self.stage.fanout.subscribe("test")
        self.relay = outputs.factory.pin(RELAY)

    def events(self) -> list[Any]:
        out = []
        while not self.heard.events.empty():
            out.append(self.heard.events.get_nowait())
        return out

    def close(self) -> None:
        self.stage.stop()
        self.outputs.close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate(make())
    g.stage.start()
    yield g
    g.close()


@pytest.fixture
def gate_with_contact() -> Iterator[Gate]:
    g = Gate(make(passage_pin=PASSAGE), passage_timeout=TIMEOUT)
    g.stage.start()
    yield g
    g.close()


def passage(gate: Gate) -> None:
    contact = gate.outputs.factory.pin(PASSAGE)
    contact.drive_low()
    contact.drive_high()


def test_a_grant_opens_the_relay_and_records_when(gate: Gate) -> None:
    gate.stage.submit(scan())
    wait_for(lambda: "s1" in gate.journal.actuated, "the actuation mark")
    assert rises(gate.relay) == 1
    assert gate.journal.actuated == {"s1": AT}


def test_the_reads_time_travels_with_the_scan_to_the_listeners(gate: Gate) -> None:
    """Read-to-relay needs no pairing: the act stage hands on when the read was taken."""
    gate.stage.submit(scan(scan_id="timed"), 1_000)
    gate.stage.submit(scan(Reason.UNKNOWN_BARCODE, scan_id="untimed"))
    acted: dict[str, Acted] = {}

    def heard_both() -> bool:
        acted.update((e.scan_id, e) for e in gate.events() if isinstance(e, Acted))
        return len(acted) == 2

    wait_for(heard_both, "both scans acted on")
    assert acted["timed"].read_ns == 1_000 and acted["timed"].acted_ns > 1_000
    assert acted["untimed"].read_ns is None


def test_a_grant_opens_the_relay_on_the_submitting_thread_before_the_stage_runs() -> None:
    g = Gate(make())  # not started: only submit itself can have opened it
    try:
        assert g.stage.submit(scan())
        assert g.outputs.relay_open and rises(g.relay) == 1
        assert g.journal.actuated == {}  # the mark is the stage thread's, after the relay
        g.stage.start()
        wait_for(lambda: "s1" in g.journal.actuated, "the actuation mark")
        assert rises(g.relay) == 1
    finally:
        g.close()


def test_a_scan_the_full_inbox_refuses_does_not_open_the_relay() -> None:
    g = Gate(make(), inbox_size=1)
    try:
        g.stage.submit(scan(Reason.ALREADY_INSIDE, scan_id="0"))
        assert g.stage.submit(scan(scan_id="1")) is False
        assert not g.outputs.relay_open and rises(g.relay) == 0
    finally:
        g.close()


def test_a_checkout_opens_the_relay_too(gate: Gate) -> None:
    gate.stage.submit(scan(Reason.CHECKED_OUT))
    wait_for(lambda: "s1" in gate.journal.actuated, "the actuation mark")
    assert rises(gate.relay) == 1


def test_a_denial_keeps_the_relay_closed_and_lights_red(gate: Gate) -> None:
    gate.stage.submit(scan(Reason.UNKNOWN_BARCODE))
    wait_for(lambda: not gate.heard.events.empty(), "the act event")
    (event,) = gate.events()
    assert isinstance(event, Acted) and not event.opened and event.actuated_at is None
    assert rises(gate.relay) == 0 and gate.journal.actuated == {}
    assert rises(gate.outputs.factory.pin(RED)) == 1
    assert rises(gate.outputs.factory.pin(GREEN)) == 0


def test_already_inside_shows_its_own_signal_without_opening(gate: Gate) -> None:
    gate.stage.submit(scan(Reason.ALREADY_INSIDE))
    wait_for(lambda: not gate.heard.events.empty(), "the act event")
    (event,) = gate.events()
    assert event.signal is Signal.ALREADY_INSIDE and not event.opened
    assert rises(gate.relay) == 0


def test_each_feedback_colour_has_a_signal() -> None:
    assert {f: signal_for(scan(r).decision) for f, r in [
        (Feedback.GREEN, Reason.GRANTED), (Feedback.BLUE, Reason.CHECKED_OUT),
        (Feedback.ORANGE, Reason.ALREADY_INSIDE), (Feedback.RED, Reason.WRONG_EVENT)]} == {
        Feedback.GREEN: Signal.GRANTED, Feedback.BLUE: Signal.GRANTED,
        Feedback.ORANGE: Signal.ALREADY_INSIDE, Feedback.RED: Signal.DENIED}


def test_listeners_hear_each_scan_after_the_relay_opened(gate: Gate) -> None:
    gate.stage.submit(scan())
    event = gate.heard.events.get(timeout=5)
    assert isinstance(event, Acted) and event.opened and event.scan_id == "s1"
    assert rises(gate.relay) == 1  # already open (or done) when the listener hears it


def test_under_fire_alarm_scans_are_still_acted_with_the_relay_held() -> None:
    g = Gate(make(fire_alarm_pin=FIRE))
    g.stage.start()
    try:
        assert g.stage.fire_alarm and g.relay.state is True
        g.relay.clear_states()
        g.stage.submit(scan(scan_id="a"))
        g.stage.submit(scan(Reason.UNKNOWN_BARCODE, scan_id="b"))
        wait_for(lambda: g.heard.events.qsize() == 2, "both act events")
        granted, denied = g.events()
        assert granted.opened and granted.fire_alarm and not denied.opened
        assert g.journal.actuated == {"a": AT}
        assert len(g.relay.states) == 1 and g.relay.state is True  # held, never pulsed
    finally:
        g.close()


def test_the_fire_alarm_is_published_and_the_relay_released_when_it_clears() -> None:
    g = Gate(make(fire_alarm_pin=FIRE))
    fire = g.outputs.factory.pin(FIRE)
    try:
        fire.drive_low()   # loop closed
        fire.drive_high()  # opened: alarm
        assert g.stage.fire_alarm
        fire.drive_low()
        assert not g.stage.fire_alarm and g.relay.state is False
        assert g.events() == [FireAlarm(False), FireAlarm(True), FireAlarm(False)]
    finally:
        g.close()


def test_a_passage_within_the_timeout_marks_the_grant_passed(gate_with_contact: Gate) -> None:
    g = gate_with_contact
    g.stage.submit(scan())
    wait_for(lambda: "s1" in g.journal.actuated, "the actuation mark")
    passage(g)
    wait_for(lambda: "s1" in g.journal.passed, "the passage mark")
    g.stage.stop()  # listeners hear after the journal: let the loop finish its turn
    assert g.journal.passed == {"s1": True}
    assert Passage("s1", True) in g.events()


def test_no_passage_marks_the_grant_opened_not_passed(gate_with_contact: Gate) -> None:
    g = gate_with_contact
    g.stage.submit(scan())
    wait_for(lambda: "s1" in g.journal.passed, "the timeout")
    assert g.journal.passed == {"s1": False} and g.journal.actuated == {"s1": AT}
    assert g.stage.waiting_for_passage == 0


def test_without_a_passage_contact_passed_stays_unknown() -> None:
    g = Gate(make(), passage_timeout=TIMEOUT)
    g.stage.start()
    try:
        g.stage.submit(scan())
        wait_for(lambda: "s1" in g.journal.actuated, "the actuation mark")
        g.stage.submit(scan(scan_id="s2"))
        wait_for(lambda: "s2" in g.journal.actuated, "the second actuation")
        assert g.stage.waiting_for_passage == 0 and g.journal.passed == {}
    finally:
        g.close()


def test_a_denial_waits_for_no_passage(gate_with_contact: Gate) -> None:
    g = gate_with_contact
    g.stage.submit(scan(Reason.UNKNOWN_BARCODE))
    wait_for(lambda: not g.heard.events.empty(), "the act event")
    assert g.stage.waiting_for_passage == 0


def test_a_passage_nobody_was_let_through_for_is_counted(gate_with_contact: Gate) -> None:
    g = gate_with_contact
    passage(g)
    wait_for(lambda: g.stage.unmatched_passages == 1, "the unmatched passage")
    assert g.journal.passed == {}


def test_a_full_inbox_refuses_and_counts() -> None:
    g = Gate(make(), inbox_size=2)  # not started: nothing drains the inbox
    try:
        results = [g.stage.submit(scan(scan_id=str(i))) for i in range(3)]
        assert results == [True, True, False] and g.stage.dropped == 1
    finally:
        g.close()


def test_stop_acts_on_the_scans_already_queued() -> None:
    g = Gate(make())
    try:
        for i in range(3):
            g.stage.submit(scan(scan_id=str(i)))
        g.stage.start()
        g.stage.stop()
        assert set(g.journal.actuated) == {"0", "1", "2"}
        assert not g.stage.serving and g.stage.submit(scan(scan_id="late")) is False
    finally:
        g.close()


def test_a_full_listener_drops_and_counts_without_holding_the_relay() -> None:
    g = Gate(make())
    slow = g.stage.fanout.subscribe("kiosk", maxsize=1)  # nobody reads it
    g.stage.start()
    try:
        for i in range(3):
            g.stage.submit(scan(scan_id=str(i)))
        wait_for(lambda: len(g.journal.actuated) == 3, "three actuations")
        g.stage.stop()
        assert slow.dropped == 2 and slow.events.qsize() == 1
        assert g.heard.dropped == 0 and g.heard.events.qsize() == 3
    finally:
        g.close()


def test_a_journal_that_refuses_a_mark_does_not_stop_the_gate(gate: Gate) -> None:
    gate.journal.refuse = True
    gate.stage.submit(scan(scan_id="a"))
    wait_for(lambda: gate.stage.journal_errors == 1, "the refused mark")
    gate.journal.refuse = False
    gate.stage.submit(scan(scan_id="b"))
    wait_for(lambda: "b" in gate.journal.actuated, "the next actuation")
    assert gate.stage.serving


def test_the_heartbeat_moves_while_idle() -> None:
    g = Gate(make(), heartbeat_interval=0.01)
    g.stage.start()
    try:
        first = g.stage.heartbeat
        wait_for(lambda: g.stage.heartbeat > first, "a second heartbeat")
    finally:
        g.close()


def test_stop_twice_is_harmless(gate: Gate) -> None:
    gate.stage.stop()
    gate.stage.stop()
    assert not gate.stage.serving


def test_the_outputs_table_maps_onto_the_pins() -> None:
    table = SimpleNamespace(pin_factory="mock", relay_pin=5, relay_pulse_ms=250,
                            relay_active_high=False, green_pin=6, red_pin=None, buzzer_pin=13,
                            passage_pin=19, passage_timeout=5.0, fire_alarm_pin=26,
                            confirm_pin=20)
    assert output_pins(table) == OutputPins(5, 250, False, 6, None, 13, 19, 26, 20)


def test_an_outputs_table_with_a_too_short_pulse_is_refused() -> None:
    table = SimpleNamespace(pin_factory="mock", relay_pin=5, relay_pulse_ms=MIN_PULSE_MS - 1,
                            relay_active_high=True, green_pin=None, red_pin=None,
                            buzzer_pin=None, passage_pin=None, passage_timeout=5.0,
                            fire_alarm_pin=None, confirm_pin=None)
    with pytest.raises(ValueError, match="relay_pulse_ms"):
        output_pins(table)


def test_a_mark_the_journal_finds_no_scan_for_is_counted(gate: Gate) -> None:
    gate.journal.mark_actuated = lambda scan_id, at_iso: False  # type: ignore[method-assign]
    gate.stage.submit(scan())
    wait_for(lambda: gate.stage.journal_errors == 1, "the missed mark")


# -- the passage tracker alone (pure, times passed in) -------------------------------------

def test_passages_complete_grants_oldest_first() -> None:
    tracker = PassageTracker(5.0)
    tracker.opened("a", 0.0)
    tracker.opened("b", 1.0)
    assert [tracker.passed(2.0), tracker.passed(2.5)] == ["a", "b"]


def test_a_grant_expires_only_after_its_timeout() -> None:
    tracker = PassageTracker(5.0)
    tracker.opened("a", 0.0)
    assert tracker.expired(5.0) == []
    assert tracker.expired(5.001) == ["a"] and len(tracker) == 0


def test_a_passage_before_any_open_grant_matches_none() -> None:
    tracker = PassageTracker(5.0)
    tracker.opened("a", 10.0)
    assert tracker.passed(9.0) is None and len(tracker) == 1


def test_a_non_positive_passage_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="passage_timeout"):
        PassageTracker(0)


def test_the_act_stage_loads_gpiozero_only_when_pins_are_opened() -> None:
    assert "gpiozero" not in imported_after("import scanner.act, hardware.gpio")


# -- over the real SQLite journal ----------------------------------------------------------

def test_marks_reach_the_sqlite_journal_rows(tmp_path: Path) -> None:
    if not hasattr(Journal, "mark_actuated"):
        pytest.skip("this journal has no mark_actuated yet")
    ticket = make_ticket()
    with open_journal(tmp_path / "gate.db") as journal:
        gate = Gate(make(passage_pin=PASSAGE), passage_timeout=TIMEOUT, journal=journal)
        gate.stage.start()
        try:
            for scan_id in ("in-1", "in-2"):
                decision = make_decision(ticket)
                journal.record(decision, scan_id=scan_id, scanned_at=AT, latency_ms=1.0)
                gate.stage.submit(CheckResult(decision, scan_id, AT, 1.0))
                wait_for(lambda: gate.stage.waiting_for_passage == 1, "the grant")
                if scan_id == "in-1":
                    passage(gate)
                    wait_for(lambda: gate.stage.waiting_for_passage == 0, "the passage")
            wait_for(lambda: gate.stage.waiting_for_passage == 0, "the passage timeout")
        finally:
            gate.close()
        rows = {row["scan_id"]: row for row in journal.entries()}
    assert (rows["in-1"]["actuated_at"], rows["in-1"]["passed"]) == (AT, True)
    assert (rows["in-2"]["actuated_at"], rows["in-2"]["passed"]) == (AT, False)

