"""The decision rules: every reason code, their order, messages, colours and extras."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

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
from scanner.decide.model import NOT_DECIDED
from scanner.decide.orders import NO_ORDERS, Mode, VenueOrders
from scanner.decide.policy import Route
from scanner.tickets import Ticket

NOW = datetime(2030, 1, 23, 19, 30, 0, tzinfo=UTC)
BARCODE = "ABCD1234EFGH"
TICKET = Ticket(id="t1", barcode=BARCODE, event_id="ev1", status="VALID", ticket_type_id="tt-ga",
                ticket_name="General admission", seller_id="s1",
                created_at="2030-01-01T00:00:00.000Z", updated_at="2030-01-01T00:00:00.000Z",
                entry=("north",))
IN = PastScan(Direction.IN, "2030-01-23T19:02:11.000Z", "north-2")
OUT = PastScan(Direction.OUT, "2030-01-23T19:20:45.000Z", "south-1")


def ticket(**changes: Any) -> Ticket:
    return TICKET._replace(**changes)


def history(*scans: PastScan) -> ScanHistory:
    return ScanHistory(scans)


NO_SCANS = ScanHistory()
DEFAULT = Policy()


def run(tkt: Ticket | None = TICKET, hist: ScanHistory = NO_SCANS,
        policy: Policy = DEFAULT, direction: Direction = Direction.IN,
        now: datetime = NOW, barcode: str = BARCODE, clock_trusted: bool = True,
        orders: VenueOrders = NO_ORDERS) -> Decision:
    return decide(tkt, hist, policy, direction, now, barcode=barcode,
                  clock_trusted=clock_trusted, orders=orders)


SLOTTED = ticket(slot_start="2030-01-23T20:00:00.000Z")
SLOT_POLICY = Policy(check_timeslots=True,
                     timeslot_windows={"ev1": (timedelta(minutes=15), timedelta(minutes=30))})

# One row per reason code: the smallest change from a granted scan that produces it.
TABLE: list[tuple[Reason, dict[str, Any], Feedback]] = [
    (Reason.GRANTED, {}, Feedback.GREEN),
    (Reason.CHECKED_OUT, {"hist": history(IN), "direction": Direction.OUT}, Feedback.BLUE),
    (Reason.MALFORMED_READ, {"barcode": "ABC\x001234"}, Feedback.RED),
    (Reason.UNKNOWN_BARCODE, {"tkt": None}, Feedback.RED),
    (Reason.WRONG_EVENT, {"policy": Policy(served_events=frozenset({"ev2"}))}, Feedback.RED),
    (Reason.TICKET_INVALID, {"tkt": ticket(status="INVALID")}, Feedback.RED),
    (Reason.TICKET_RESERVED, {"tkt": ticket(status="RESERVED")}, Feedback.RED),
    (Reason.TICKET_BLANK, {"tkt": ticket(status="BLANK")}, Feedback.RED),
    (Reason.DETAILS_REQUIRED, {"tkt": ticket(status="DETAILSREQUIRED")}, Feedback.RED),
    (Reason.TICKET_TYPE_NOT_ALLOWED,
     {"policy": Policy(ticket_types={"ev1": frozenset({"tt-vip"})})}, Feedback.RED),
    (Reason.NO_ENTRY_PERMISSION, {"policy": Policy(entries=frozenset({"south"}))}, Feedback.RED),
    (Reason.WRONG_GATE, {"policy": Policy(gate_id="A", routes=(
        Route(("C",), entries=frozenset({"north"})),))}, Feedback.RED),
    (Reason.ACTION_REQUIRED, {"policy": Policy(confirm_ticket_types=frozenset({"tt-ga"}))},
     Feedback.PINK),
    (Reason.DIRECTION_NOT_ALLOWED, {"policy": Policy(allow_checkin=False)}, Feedback.RED),
    (Reason.TIMESLOT_TOO_EARLY,
     {"tkt": SLOTTED, "policy": SLOT_POLICY, "now": datetime(2030, 1, 23, 19, 44, tzinfo=UTC)},
     Feedback.RED),
    (Reason.TIMESLOT_TOO_LATE,
     {"tkt": SLOTTED, "policy": SLOT_POLICY, "now": datetime(2030, 1, 23, 20, 31, tzinfo=UTC)},
     Feedback.RED),
    (Reason.CLOCK_UNTRUSTED, {"tkt": SLOTTED, "policy": SLOT_POLICY, "clock_trusted": False},
     Feedback.RED),
    (Reason.ALREADY_INSIDE, {"hist": history(IN)}, Feedback.ORANGE),
    (Reason.REENTRY_NOT_ALLOWED, {"hist": history(IN, OUT)}, Feedback.ORANGE),
    (Reason.NOT_INSIDE, {"direction": Direction.OUT}, Feedback.RED),
    (Reason.BLOCKED, {"orders": VenueOrders(blocked={BARCODE: "lost card"})}, Feedback.RED),
    (Reason.ENTRY_STOPPED, {"orders": VenueOrders(Mode.STOPPED)}, Feedback.RED),
    (Reason.LOCKDOWN, {"orders": VenueOrders(Mode.LOCKDOWN)}, Feedback.RED),
]


def test_table_has_one_row_per_reason_code() -> None:
    """ZONE_FULL follows the decision (scanner.zones.rules; tests/test_zones.py)."""
    assert sorted(row[0] for row in TABLE) == sorted(set(Reason) - NOT_DECIDED
                                                     - {Reason.ZONE_FULL})


@pytest.mark.parametrize(("reason", "inputs", "feedback"), TABLE, ids=[r[0] for r in TABLE])
def test_each_reason_code_is_produced_by_its_rule(reason: Reason, inputs: dict[str, Any],
                                                  feedback: Feedback) -> None:
    decision = run(**inputs)
    assert (decision.reason, decision.feedback) == (reason, feedback)
    assert decision.granted is (reason in (Reason.GRANTED, Reason.CHECKED_OUT))
    assert decision.result == ("OK" if decision.granted else "FAIL")


def test_rules_apply_in_the_documented_order() -> None:
    """Fixing the first objection in turn reveals the next one, in the documented order."""
    failing: dict[str, Any] = {
        "served_events": frozenset({"ev2"}),
        "ticket_types": {"ev1": frozenset({"tt-vip"})},
        "entries": frozenset({"south"}),
        "allow_checkin": False,
        "check_timeslots": True,
    }
    tkt = ticket(status="INVALID", slot_start="2030-01-23T22:00:00.000Z")
    hist = history(IN)
    seen = [run(tkt, hist, Policy(**failing), barcode="short").reason]
    seen.append(run(None, hist, Policy(**failing)).reason)
    seen.append(run(tkt, hist, Policy(**failing)).reason)
    failing["served_events"] = None
    seen.append(run(tkt, hist, Policy(**failing)).reason)
    tkt = ticket(status="VALID", slot_start=tkt.slot_start)
    for key, fixed in [("ticket_types", {}), ("entries", frozenset()), ("allow_checkin", True),
                       ("check_timeslots", False)]:
        seen.append(run(tkt, hist, Policy(**failing)).reason)
        failing[key] = fixed
    seen.append(run(tkt, hist, Policy(**failing)).reason)
    assert seen == [Reason.MALFORMED_READ, Reason.UNKNOWN_BARCODE, Reason.WRONG_EVENT,
                    Reason.TICKET_INVALID, Reason.TICKET_TYPE_NOT_ALLOWED,
                    Reason.NO_ENTRY_PERMISSION, Reason.DIRECTION_NOT_ALLOWED,
                    Reason.TIMESLOT_TOO_EARLY, Reason.ALREADY_INSIDE]


def test_already_inside_says_when_and_where_it_entered() -> None:
    decision = run(hist=history(IN))
    assert decision.message == "Already inside since 19:02:11 (gate north-2)"
    assert decision.extra == {"entered_at": IN.scanned_at, "entered_gate": "north-2"}


def test_already_inside_shows_the_date_when_entry_was_not_today() -> None:
    decision = run(hist=history(IN), now=NOW + timedelta(days=1))
    assert decision.message == "Already inside since 2030-01-23 19:02:11 (gate north-2)"


def test_message_times_are_shown_in_the_display_zone() -> None:
    policy = Policy(display_tz=timezone(timedelta(hours=1)))
    assert run(hist=history(IN), policy=policy).message.startswith("Already inside since 20:02:11")


def test_already_inside_uses_the_configured_repeated_colour() -> None:
    assert run(hist=history(IN), policy=Policy(repeated_feedback=Feedback.BLUE)).feedback \
        is Feedback.BLUE


def test_ticket_type_denial_names_the_ticket_type() -> None:
    decision = run(tkt=ticket(ticket_name="VIP"),
                   policy=Policy(ticket_types={"ev1": frozenset({"tt-other"})}))
    assert decision.message == "Ticket type 'VIP' not allowed at this gate"


def test_default_ticket_types_apply_to_events_without_their_own_list() -> None:
    policy = Policy(ticket_types={"ev2": frozenset({"tt-ga"})},
                    default_ticket_types=frozenset({"tt-vip"}))
    assert run(policy=policy).reason is Reason.TICKET_TYPE_NOT_ALLOWED


def test_message_replaces_control_characters_from_ticket_data() -> None:
    decision = run(tkt=ticket(ticket_name="VIP\nBackstage"),
                   policy=Policy(ticket_types={"ev1": frozenset()}))
    assert decision.message == "Ticket type 'VIP Backstage' not allowed at this gate"


def test_malformed_read_message_says_why() -> None:
    assert run(barcode="ABC1234").message == \
        "Unreadable code: too short (7 characters, at least 8)"


def test_malformed_read_respects_the_policy_max_length() -> None:
    assert run(policy=Policy(max_read_length=10)).reason is Reason.MALFORMED_READ


def test_unknown_status_is_denied_as_invalid() -> None:
    decision = run(tkt=ticket(status="CANCELLED"))
    assert (decision.reason, decision.message) == (
        Reason.TICKET_INVALID, "Ticket status 'CANCELLED' does not admit")


def test_details_required_admitted_when_policy_includes_them() -> None:
    decision = run(tkt=ticket(status="DETAILSREQUIRED"),
                   policy=Policy(include_details_required=True))
    assert decision.reason is Reason.GRANTED


def test_ticket_with_any_served_entry_is_admitted() -> None:
    decision = run(tkt=ticket(entry=("west", "north")),
                   policy=Policy(entries=frozenset({"north", "south"})))
    assert decision.reason is Reason.GRANTED


def test_entries_are_not_checked_when_the_gate_serves_none() -> None:
    assert run(tkt=ticket(entry=())).reason is Reason.GRANTED


def test_checkout_disabled_denies_out() -> None:
    decision = run(hist=history(IN), policy=Policy(allow_checkout=False),
                   direction=Direction.OUT)
    assert (decision.reason, decision.message) == (
        Reason.DIRECTION_NOT_ALLOWED, "Check-out is not enabled on this gate")


def test_reentry_denied_without_multi_checkin_says_when_it_left() -> None:
    decision = run(hist=history(IN, OUT))
    assert decision.message == "Re-entry not allowed: left at 19:20:45 (gate south-1)"
    assert decision.extra == {"left_at": OUT.scanned_at, "left_gate": "south-1",
                              "entered_at": IN.scanned_at, "entered_gate": "north-2"}


def test_reentry_after_checkout_granted_with_multi_checkin() -> None:
    assert run(hist=history(IN, OUT), policy=Policy(multi_checkin=True)).reason \
        is Reason.GRANTED


def test_multi_checkin_denies_reentry_when_checkins_outnumber_checkouts() -> None:
    """Two check-ins merged from two gates and one check-out leave no re-entry to spend."""
    decision = run(hist=history(IN, IN, OUT), policy=Policy(multi_checkin=True))
    assert (decision.reason, decision.message) == (
        Reason.REENTRY_NOT_ALLOWED, "Re-entry not allowed: 2 check-ins for 1 check-outs")


def test_first_checkin_after_a_checkout_without_checkin_is_granted() -> None:
    assert run(hist=history(OUT)).reason is Reason.GRANTED


def test_checkout_without_checkin_granted_when_policy_allows() -> None:
    decision = run(policy=Policy(checkout_without_checkin="allow"), direction=Direction.OUT)
    assert (decision.granted, decision.reason, decision.feedback) == (
        True, Reason.CHECKED_OUT, Feedback.BLUE)


def test_second_checkout_denied_says_when_it_left() -> None:
    decision = run(hist=history(IN, OUT), direction=Direction.OUT)
    assert (decision.reason, decision.message) == (
        Reason.NOT_INSIDE, "Not inside: already checked out at 19:20:45 (gate south-1)")


def test_unknown_barcode_message_says_it_was_decided_offline() -> None:
    offline = decide(None, ScanHistory(), Policy(), Direction.IN, NOW, barcode=BARCODE)
    online = decide(None, ScanHistory(), Policy(), Direction.IN, NOW, barcode=BARCODE,
                    offline=False)
    assert (offline.message, offline.offline) == ("Unknown ticket (not in the offline list)", True)
    assert (online.message, online.offline) == ("Unknown ticket", False)


def test_decision_carries_the_ticket_barcode_and_direction() -> None:
    decision = run(direction=Direction.OUT, hist=history(IN))
    assert (decision.ticket, decision.barcode, decision.direction, decision.event_id) == (
        TICKET, BARCODE, Direction.OUT, "ev1")


def test_record_appends_a_granted_scan() -> None:
    decision = run()
    after = record(ScanHistory(), decision, scanned_at="2030-01-23T19:30:00.000Z", gate_id="g1")
    assert after.scans == (PastScan(Direction.IN, "2030-01-23T19:30:00.000Z", "g1"),)


def test_record_leaves_history_unchanged_for_a_denial() -> None:
    hist = history(IN)
    assert record(hist, run(hist=hist), scanned_at="x", gate_id="g1") is hist


def test_importing_decide_loads_no_io_library() -> None:
    code = ("import sys, scanner.decide; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'httpx', 'serial', 'cv2', 'tomllib') "
            "or m in ('scanner.config', 'scanner.store', 'scanner.clock')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
