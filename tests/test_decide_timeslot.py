"""The timeslot window: [slot - before, slot + after], inclusive, check-in only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from scanner.decide import Direction, PastScan, Policy, Reason, ScanHistory, decide
from scanner.tickets import Ticket

SLOT = datetime(2030, 1, 23, 20, 0, tzinfo=UTC)
TICKET = Ticket(id="t1", barcode="ABCD1234EFGH", event_id="ev1", status="VALID",
                ticket_type_id="tt", ticket_name="Slot 20:00", seller_id="s1",
                created_at="2030-01-01T00:00:00.000Z", updated_at="2030-01-01T00:00:00.000Z",
                slot_start="2030-01-23T20:00:00.000Z")
POLICY = Policy(check_timeslots=True,
                timeslot_windows={"ev1": (timedelta(minutes=15), timedelta(minutes=30))})
TICK = timedelta(microseconds=1)
NO_SCANS = ScanHistory()


def reason_at(now: datetime, *, ticket: Ticket = TICKET, policy: Policy = POLICY,
              direction: Direction = Direction.IN,
              history: ScanHistory = NO_SCANS) -> Reason:
    return decide(ticket, history, policy, direction, now, barcode=ticket.barcode).reason


@pytest.mark.parametrize(("now", "reason"), [
    (SLOT - timedelta(minutes=15) - TICK, Reason.TIMESLOT_TOO_EARLY),
    (SLOT - timedelta(minutes=15), Reason.GRANTED),
    (SLOT, Reason.GRANTED),
    (SLOT + timedelta(minutes=30), Reason.GRANTED),
    (SLOT + timedelta(minutes=30) + TICK, Reason.TIMESLOT_TOO_LATE),
], ids=["just-before-opening", "at-opening", "at-slot", "at-closing", "just-after-closing"])
def test_window_edges_are_inclusive(now: datetime, reason: Reason) -> None:
    assert reason_at(now) is reason


def test_event_without_window_admits_only_at_the_slot_start() -> None:
    policy = Policy(check_timeslots=True)
    assert [reason_at(SLOT - TICK, policy=policy), reason_at(SLOT, policy=policy),
            reason_at(SLOT + TICK, policy=policy)] == [
        Reason.TIMESLOT_TOO_EARLY, Reason.GRANTED, Reason.TIMESLOT_TOO_LATE]


def test_window_is_per_event() -> None:
    policy = dataclasses.replace(POLICY, timeslot_windows={"ev2": (timedelta(hours=5),) * 2})
    assert reason_at(SLOT - timedelta(minutes=1), policy=policy) is Reason.TIMESLOT_TOO_EARLY


def test_not_checked_when_policy_does_not_check_timeslots() -> None:
    assert reason_at(SLOT + timedelta(days=3), policy=Policy()) is Reason.GRANTED


def test_ticket_without_slot_is_not_held_to_a_window() -> None:
    assert reason_at(SLOT + timedelta(days=3),
                     ticket=TICKET._replace(slot_start=None)) is Reason.GRANTED


def test_checkout_after_the_window_is_granted() -> None:
    inside = ScanHistory((PastScan(Direction.IN, "2030-01-23T20:00:00.000Z", "g1"),))
    assert reason_at(SLOT + timedelta(hours=6), direction=Direction.OUT, history=inside) \
        is Reason.CHECKED_OUT


def test_naive_now_is_taken_as_utc() -> None:
    assert reason_at(datetime(2030, 1, 23, 19, 44)) is Reason.TIMESLOT_TOO_EARLY


def test_now_in_another_zone_compares_as_the_same_instant() -> None:
    berlin_evening = SLOT.astimezone(datetime.fromisoformat("2030-01-23T21:00+01:00").tzinfo)
    assert reason_at(berlin_evening) is Reason.GRANTED


def test_unreadable_slot_is_not_held_against_the_visitor() -> None:
    assert reason_at(SLOT + timedelta(days=3),
                     ticket=TICKET._replace(slot_start="soon")) is Reason.GRANTED


def test_too_early_message_says_when_entry_opens() -> None:
    decision = decide(TICKET, ScanHistory(), POLICY, Direction.IN, SLOT - timedelta(hours=1),
                      barcode=TICKET.barcode)
    assert decision.message == "Too early: timeslot 20:00:00, entry from 19:45:00"
    assert decision.extra == {"slot_start": "2030-01-23T20:00:00.000Z"}


def test_too_late_message_says_when_entry_closed() -> None:
    decision = decide(TICKET, ScanHistory(), POLICY, Direction.IN, SLOT + timedelta(hours=1),
                      barcode=TICKET.barcode)
    assert decision.message == "Too late: timeslot 20:00:00, entry closed at 20:30:00"


# -- a clock the gate cannot trust -------------------------------------------------------------

def untrusted(ticket: Ticket = TICKET, policy: Policy = POLICY,
              direction: Direction = Direction.IN) -> Reason:
    return decide(ticket, NO_SCANS, policy, direction, SLOT, barcode=ticket.barcode,
                  clock_trusted=False).reason


def test_an_untrusted_clock_denies_a_ticket_with_a_slot_even_inside_it() -> None:
    assert untrusted() is Reason.CLOCK_UNTRUSTED


def test_an_untrusted_clock_admits_a_ticket_without_a_slot() -> None:
    assert untrusted(TICKET._replace(slot_start=None)) is Reason.GRANTED


def test_an_untrusted_clock_lets_people_out() -> None:
    out = decide(TICKET, ScanHistory((PastScan(Direction.IN, "2030-01-23T20:01:00.000Z",
                                               "g"),)),
                 POLICY, Direction.OUT, SLOT, barcode=TICKET.barcode, clock_trusted=False)
    assert out.reason is Reason.CHECKED_OUT


def test_an_untrusted_clock_is_no_matter_where_timeslots_are_not_checked() -> None:
    assert untrusted(policy=Policy()) is Reason.GRANTED


def test_checks_before_the_timeslot_still_speak_first() -> None:
    assert untrusted(TICKET._replace(status="INVALID")) is Reason.TICKET_INVALID
