"""The decision: grant or deny one scan, as a pure function of its inputs.

``decide`` reads no clock, store or device: the ticket, its granted-scan history, the policy,
the direction and ``now`` are all passed in, so the same inputs always give the same
``Decision`` and a denial is a result, never an exception. It never changes presence; the
caller journals the decision and, if granted, appends it to the history (``record``).

Rules run in this order; the first that objects decides:

1. malformed read: nothing else means anything for a glitched read, and it is never looked up.
2. unknown barcode: without a ticket no other rule applies.
3. wrong event: a ticket of another event is "wrong gate" whatever its state; the per-event
   rules below (ticket types, timeslot window) only make sense for a served event.
4. status: only VALID (and DETAILSREQUIRED where allowed) may enter anywhere.
5. ticket type, 6. entry permission: what this ticket may enter at this gate.
7. direction: check-in or check-out disabled on this gate. It follows the ticket's own
   checks so that staff hear what is wrong with a ticket before what the gate is for.
8. timeslot window (check-in only): needs a valid ticket for a served event first. Without
   a time the gate can trust (``clock_trusted=False``) a ticket with a slot is denied
   CLOCK_UNTRUSTED: never admitted on a time only a wrong clock vouches for.
9. anti-passback last: it alone depends on earlier scans, and a ticket that fails any rule
   above must not be told "already inside" (orange suggests it is otherwise fine).

Performance: the common grant is a handful of set lookups and comparisons; timestamps are
parsed only when a timeslot is checked or a denial message shows a clock time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import NamedTuple

from scanner.decide.barcode import malformed_message, read_problem
from scanner.decide.model import (
    Decision,
    Direction,
    Feedback,
    PastScan,
    Reason,
    ScanHistory,
)
from scanner.decide.policy import Policy
from scanner.tickets import Ticket, TicketStatus, as_utc, parse_iso

# Keys of ``Decision.extra``, all ISO UTC timestamps or gate ids.
ENTERED_AT = "entered_at"
ENTERED_GATE = "entered_gate"
LEFT_AT = "left_at"
LEFT_GATE = "left_gate"
SLOT_START = "slot_start"

_ZERO = timedelta(0)

# "Valid, but already scanned": shown in the repeated colour (orange by default), as in
# vivenu's own app. Every other denial is red.
REPEATED = frozenset({Reason.ALREADY_INSIDE, Reason.REENTRY_NOT_ALLOWED})

_STATUS_DENIALS: dict[str, tuple[Reason, str]] = {
    TicketStatus.INVALID: (Reason.TICKET_INVALID, "Ticket is invalid"),
    TicketStatus.RESERVED: (Reason.TICKET_RESERVED, "Ticket is reserved, not paid"),
    TicketStatus.BLANK: (Reason.TICKET_BLANK, "Ticket is blank, not issued to anyone"),
    TicketStatus.DETAILSREQUIRED: (Reason.DETAILS_REQUIRED,
                                   "Ticket needs the holder's details before entry"),
}


class Denial(NamedTuple):
    reason: Reason
    message: str
    extra: dict[str, str] | None = None


Rule = Callable[[Ticket, ScanHistory, Policy, Direction, datetime], Denial | None]


def decide(ticket: Ticket | None, history: ScanHistory, policy: Policy, direction: Direction,
           now: datetime, *, barcode: str, offline: bool = True,
           clock_trusted: bool = True) -> Decision:
    """Grant or deny one scan of ``barcode`` in ``direction`` at ``now``.

    ``ticket`` is the store's ticket for the barcode (None: unknown), ``history`` its granted
    scans. A naive ``now`` is taken as UTC. ``clock_trusted``: whether ``now`` may decide
    time-dependent rules (``scanner.clock_guard``). Never raises for any combination of
    values.
    """
    denial: Denial | None
    if read_problem(barcode, policy.max_read_length) is not None:
        denial = Denial(Reason.MALFORMED_READ, malformed_message(barcode, policy.max_read_length))
    elif ticket is None:
        denial = Denial(Reason.UNKNOWN_BARCODE,
                        "Unknown ticket (not in the offline list)" if offline
                        else "Unknown ticket")
    else:
        denial = None
        for rule in RULES:
            if not clock_trusted:
                rule = UNTRUSTED_CLOCK.get(rule, rule)
            denial = rule(ticket, history, policy, direction, now)
            if denial is not None:
                break
    if denial is None:
        assert ticket is not None  # a grant has passed the unknown-barcode rule
        if direction is Direction.IN:
            return Decision(True, Reason.GRANTED, f"Welcome: {one_line(ticket.ticket_name)}",
                            Feedback.GREEN, direction, barcode, ticket, offline)
        return Decision(True, Reason.CHECKED_OUT, f"Checked out: {one_line(ticket.ticket_name)}",
                        Feedback.BLUE, direction, barcode, ticket, offline)
    feedback = policy.repeated_feedback if denial.reason in REPEATED else Feedback.RED
    return Decision(False, denial.reason, denial.message, feedback, direction, barcode, ticket,
                    offline, denial.extra or {})


def record(history: ScanHistory, decision: Decision, *, scanned_at: str,
           gate_id: str) -> ScanHistory:
    """The history after ``decision``: one more scan if granted, the same object if denied."""
    if not decision.granted:
        return history
    return ScanHistory((*history.scans, PastScan(decision.direction, scanned_at, gate_id)))


def _event(ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
           now: datetime) -> Denial | None:
    served = policy.served_events
    if served is None or ticket.event_id in served:
        return None
    return Denial(Reason.WRONG_EVENT,
                  f"Ticket is for another event ({one_line(ticket.event_id)})")


def _status(ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
            now: datetime) -> Denial | None:
    status = ticket.status
    if status == TicketStatus.VALID or (status == TicketStatus.DETAILSREQUIRED
                                        and policy.include_details_required):
        return None
    # A status this code does not know is not a licence to enter.
    reason, message = _STATUS_DENIALS.get(
        status, (Reason.TICKET_INVALID, f"Ticket status '{one_line(status)}' does not admit"))
    return Denial(reason, message)


def _ticket_type(ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
                 now: datetime) -> Denial | None:
    allowed = policy.allowed_types(ticket.event_id)
    if allowed is None or ticket.ticket_type_id in allowed:
        return None
    return Denial(Reason.TICKET_TYPE_NOT_ALLOWED,
                  f"Ticket type '{one_line(ticket.ticket_name)}' not allowed at this gate")


def _entry(ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
           now: datetime) -> Denial | None:
    if not policy.entries or not policy.entries.isdisjoint(ticket.entry):
        return None
    return Denial(Reason.NO_ENTRY_PERMISSION, "Ticket has no access through this entry")


def _direction(ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
               now: datetime) -> Denial | None:
    if direction is Direction.IN:
        return None if policy.allow_checkin else Denial(
            Reason.DIRECTION_NOT_ALLOWED, "Check-in is not enabled on this gate")
    return None if policy.allow_checkout else Denial(
        Reason.DIRECTION_NOT_ALLOWED, "Check-out is not enabled on this gate")


def _slot(ticket: Ticket, policy: Policy, direction: Direction) -> str | None:
    """The slot this scan is held to, if any."""
    # Only entry is held to the slot: refusing an exit after it would trap people inside.
    if not policy.check_timeslots or direction is not Direction.IN:
        return None
    return ticket.slot_start


def _timeslot(ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
              now: datetime) -> Denial | None:
    slot_text = _slot(ticket, policy, direction)
    if slot_text is None:
        return None
    try:
        slot = parse_iso(slot_text)
        offset = as_utc(now) - slot  # positive: after the slot start
    except (ValueError, OverflowError):
        # The store keeps only normalized timestamps; a corrupt one is a store fault, and the
        # ticket has passed every other check, so the slot is not held against the visitor.
        return None
    before, after = policy.window(ticket.event_id)
    extra = {SLOT_START: slot_text}
    tz = policy.display_tz
    if offset < -before:
        return Denial(Reason.TIMESLOT_TOO_EARLY,
                      f"Too early: timeslot {_clock(slot, tz, now)}, "
                      f"entry from {_clock(slot, tz, now, -before)}", extra)
    if offset > after:
        return Denial(Reason.TIMESLOT_TOO_LATE,
                      f"Too late: timeslot {_clock(slot, tz, now)}, "
                      f"entry closed at {_clock(slot, tz, now, after)}", extra)
    return None


def _timeslot_untrusted(ticket: Ticket, history: ScanHistory, policy: Policy,
                       direction: Direction, now: datetime) -> Denial | None:
    slot_text = _slot(ticket, policy, direction)
    if slot_text is None:
        return None
    return Denial(Reason.CLOCK_UNTRUSTED,
                  "Clock not trusted: the timeslot cannot be checked", {SLOT_START: slot_text})


def _passback(ticket: Ticket, history: ScanHistory, policy: Policy, direction: Direction,
              now: datetime) -> Denial | None:
    scans = history.scans
    if direction is Direction.IN:
        if not scans:
            return None  # first entry: the common case, decided without counting
        last = scans[-1]
        if last.direction is Direction.IN:
            return Denial(Reason.ALREADY_INSIDE,
                          f"Already inside since {_scan_clock(last, policy, now)}",
                          {ENTERED_AT: last.scanned_at, ENTERED_GATE: last.gate_id})
        checkins = history.checkins
        # vivenu's enableMultiCheckin: each re-entry needs a check-out to match, so after this
        # scan check-ins may exceed check-outs by one at most.
        if checkins == 0 or (policy.multi_checkin and checkins <= history.checkouts):
            return None
        extra = {LEFT_AT: last.scanned_at, LEFT_GATE: last.gate_id}
        last_in = history.last_in
        if last_in is not None:
            extra |= {ENTERED_AT: last_in.scanned_at, ENTERED_GATE: last_in.gate_id}
        why = (f"{checkins} check-ins for {history.checkouts} check-outs"
               if policy.multi_checkin else f"left at {_scan_clock(last, policy, now)}")
        return Denial(Reason.REENTRY_NOT_ALLOWED, f"Re-entry not allowed: {why}", extra)
    if history.inside or policy.checkout_without_checkin == "allow":
        return None
    if scans:
        last = scans[-1]
        return Denial(Reason.NOT_INSIDE,
                      f"Not inside: already checked out at {_scan_clock(last, policy, now)}",
                      {LEFT_AT: last.scanned_at, LEFT_GATE: last.gate_id})
    return Denial(Reason.NOT_INSIDE, "Not inside: no check-in to check out from")


# The order is the documented rule order (module docstring); tests pin it.
RULES: tuple[Rule, ...] = (_event, _status, _ticket_type, _entry, _direction, _timeslot,
                           _passback)
# The rules that read ``now``, and what each says instead when ``now`` cannot be trusted.
UNTRUSTED_CLOCK: dict[Rule, Rule] = {_timeslot: _timeslot_untrusted}


def _scan_clock(scan: PastScan, policy: Policy, now: datetime) -> str:
    """'19:02:11 (gate north-2)' for an earlier scan."""
    try:
        when = _clock(parse_iso(scan.scanned_at), policy.display_tz, now)
    except ValueError:
        when = one_line(scan.scanned_at)
    return f"{when} (gate {one_line(scan.gate_id)})"


def _clock(moment: datetime, tz: tzinfo, now: datetime, shift: timedelta = _ZERO) -> str:
    """Time of day of ``moment + shift`` in ``tz``, with the date when it is not today's."""
    try:
        local = (moment + shift).astimezone(tz)
        today = as_utc(now).astimezone(tz).date()
    except (ValueError, OverflowError):
        return moment.isoformat()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M:%S")


def one_line(text: str) -> str:
    """``text`` fit for a one-line message: ticket data may hold newlines or controls."""
    return text if text.isprintable() else "".join(c if c.isprintable() else " " for c in text)
