"""Properties of the decision over generated scans, tickets, histories and policies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from scanner.decide import (
    Decision,
    Direction,
    Feedback,
    PastScan,
    Policy,
    Reason,
    ScanHistory,
    decide,
    record,
)
from scanner.tickets import Ticket, TicketStatus, utc_iso

START = datetime(2030, 1, 23, 18, 0, tzinfo=UTC)
TICKET = Ticket(id="t1", barcode="ABCD1234EFGH", event_id="ev1", status="VALID",
                ticket_type_id="tt", ticket_name="GA", seller_id="s1",
                created_at="2030-01-01T00:00:00.000Z", updated_at="2030-01-01T00:00:00.000Z")

directions = st.sampled_from(Direction)
# (direction, gate, seconds since the previous scan)
scan_steps = st.lists(st.tuples(directions, st.sampled_from(["g1", "g2"]),
                                st.integers(0, 3600)), max_size=30)
checkout_rules = st.sampled_from(["allow", "deny"])
passback_policies = st.builds(Policy, multi_checkin=st.booleans(),
                              checkout_without_checkin=checkout_rules)
single_entry_policies = st.builds(Policy, multi_checkin=st.just(False),
                                  checkout_without_checkin=checkout_rules)


def replay(steps: list[tuple[Direction, str, int]],
           policy: Policy) -> list[tuple[Decision, ScanHistory, ScanHistory]]:
    """Scan the ticket in turn, keeping only granted scans: (decision, before, after) each."""
    history, now, seen = ScanHistory(), START, []
    for direction, gate, gap in steps:
        now += timedelta(seconds=gap)
        decision = decide(TICKET, history, policy, direction, now, barcode=TICKET.barcode)
        after = record(history, decision, scanned_at=utc_iso(now), gate_id=gate)
        seen.append((decision, history, after))
        history = after
    return seen


@given(scan_steps, passback_policies)
def test_no_two_granted_checkins_without_a_granted_checkout_between(
        steps: list[tuple[Direction, str, int]], policy: Policy) -> None:
    granted = [d.direction for d, _, _ in replay(steps, policy) if d.granted]
    ins = [i for i, direction in enumerate(granted) if direction is Direction.IN]
    for first, second in itertools.pairwise(ins):
        assert Direction.OUT in granted[first:second]


@given(scan_steps, single_entry_policies)
def test_without_multi_checkin_a_ticket_enters_at_most_once(
        steps: list[tuple[Direction, str, int]], policy: Policy) -> None:
    granted_ins = [d for d, _, _ in replay(steps, policy)
                   if d.granted and d.direction is Direction.IN]
    assert len(granted_ins) <= 1


@given(scan_steps, passback_policies)
def test_a_denied_scan_leaves_the_history_unchanged(
        steps: list[tuple[Direction, str, int]], policy: Policy) -> None:
    for decision, before, after in replay(steps, policy):
        assert (after == before) is (not decision.granted)


tickets = st.builds(
    Ticket,
    id=st.text(), barcode=st.text(), event_id=st.sampled_from(["ev1", "ev2"]) | st.text(),
    status=st.sampled_from(TicketStatus) | st.just("VALID") | st.text(),
    ticket_type_id=st.sampled_from(["tt", "vip"]) | st.text(), ticket_name=st.text(),
    seller_id=st.text(), created_at=st.text(), updated_at=st.text(),
    entry=st.lists(st.sampled_from(["north", "south"]) | st.text()).map(tuple),
    slot_start=st.none() | st.text() | st.datetimes(timezones=st.just(UTC)).map(utc_iso),
)
iso_or_junk = st.datetimes(timezones=st.just(UTC)).map(utc_iso) | st.text()
histories = st.lists(st.builds(PastScan, directions, iso_or_junk, st.text())).map(
    lambda scans: ScanHistory(tuple(scans)))
windows = st.tuples(*[st.timedeltas(timedelta(0), timedelta(days=366))] * 2)
policies = st.builds(
    Policy,
    served_events=st.none() | st.frozensets(st.sampled_from(["ev1", "ev2"]) | st.text()),
    ticket_types=st.dictionaries(st.sampled_from(["ev1", "ev2"]),
                                 st.frozensets(st.sampled_from(["tt", "vip"]) | st.text())),
    default_ticket_types=st.none() | st.frozensets(st.sampled_from(["tt", "vip"])),
    timeslot_windows=st.dictionaries(st.sampled_from(["ev1", "ev2"]), windows),
    allow_checkin=st.booleans(), allow_checkout=st.booleans(), multi_checkin=st.booleans(),
    check_timeslots=st.booleans(), include_details_required=st.booleans(),
    entries=st.frozensets(st.sampled_from(["north", "south"])),
    checkout_without_checkin=checkout_rules,
    max_read_length=st.sampled_from([512] * 3 + [-1]) | st.integers(-1, 600),
    repeated_feedback=st.sampled_from(Feedback),
    display_tz=st.timezones(),
)
moments = st.datetimes(timezones=st.none() | st.timezones())
# Mostly a good read, so that generated scans get past the read check to the later rules.
barcodes = st.sampled_from([TICKET.barcode] * 3 + [""]) | st.text()


@pytest.mark.slow
@settings(max_examples=500)
@given(st.none() | tickets, histories, policies, directions, moments, barcodes, st.booleans())
def test_decide_is_total(ticket: Ticket | None, history: ScanHistory, policy: Policy,
                         direction: Direction, now: datetime, barcode: str,
                         offline: bool) -> None:
    """Any combination gives a one-line Decision for the scan asked about, never an error."""
    decision = decide(ticket, history, policy, direction, now, barcode=barcode, offline=offline)
    event(decision.reason)  # shows with --hypothesis-show-statistics that every rule is reached
    assert isinstance(decision.reason, Reason)
    assert decision.granted is (decision.reason in (Reason.GRANTED, Reason.CHECKED_OUT))
    assert (decision.direction, decision.barcode, decision.offline) == (
        direction, barcode, offline)
    assert decision.message and decision.message.isprintable()


@pytest.mark.slow
@given(st.none() | tickets, histories, policies, directions, moments, barcodes)
def test_decide_is_deterministic(ticket: Ticket | None, history: ScanHistory, policy: Policy,
                                 direction: Direction, now: datetime, barcode: str) -> None:
    first = decide(ticket, history, policy, direction, now, barcode=barcode)
    assert decide(ticket, history, policy, direction, now, barcode=barcode) == first


@pytest.mark.slow
@given(tickets, histories, policies, directions, moments)
def test_only_valid_or_admitted_details_required_tickets_are_granted(
        ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
        now: datetime) -> None:
    decision = decide(ticket, history, policy, direction, now, barcode=TICKET.barcode)
    admitted = {"VALID"} | ({"DETAILSREQUIRED"} if policy.include_details_required else set())
    assert not decision.granted or ticket.status in admitted


slot_policies = st.builds(
    Policy, check_timeslots=st.just(True), multi_checkin=st.booleans(),
    checkout_without_checkin=checkout_rules,
    timeslot_windows=st.dictionaries(st.just("ev1"), windows), display_tz=st.timezones())
slots = st.none() | st.text() | st.datetimes(timezones=st.just(UTC)).map(utc_iso)


@pytest.mark.slow
@settings(max_examples=500)
@given(slots, histories, slot_policies, directions, moments)
def test_decide_is_total_for_good_tickets_through_timeslot_and_passback(
        slot: str | None, history: ScanHistory, policy: Policy, direction: Direction,
        now: datetime) -> None:
    """The rules that parse timestamps and format clock times, with extreme and junk values."""
    ticket = TICKET._replace(slot_start=slot)
    decision = decide(ticket, history, policy, direction, now, barcode=TICKET.barcode)
    event(decision.reason)
    assert decision.message.isprintable()
    assert decision.reason in (Reason.GRANTED, Reason.CHECKED_OUT, Reason.TIMESLOT_TOO_EARLY,
                               Reason.TIMESLOT_TOO_LATE, Reason.ALREADY_INSIDE,
                               Reason.REENTRY_NOT_ALLOWED, Reason.NOT_INSIDE)
