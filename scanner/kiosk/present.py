"""What the kiosk page is sent: act-stage events turned into plain JSON for a person.

The page only paints what it is given; wording and the choice of word and icon live here,
so they are tested without a browser.
"""

from __future__ import annotations

import time
from typing import Any

from scanner.act import Acted, FireAlarm, Passage
from scanner.decide.model import Decision, Feedback, Reason

# The word under the icon, for stewards who cannot tell the colours apart.
_WORDS = {Reason.GRANTED: "VALID", Reason.CHECKED_OUT: "CHECKED OUT",
          Reason.ALREADY_INSIDE: "ALREADY IN", Reason.REENTRY_NOT_ALLOWED: "ALREADY SCANNED"}
# Denials counted on the page, in a word or two.
REASON_LABELS = {
    Reason.MALFORMED_READ: "bad read", Reason.UNKNOWN_BARCODE: "unknown",
    Reason.TICKET_INVALID: "invalid", Reason.TICKET_RESERVED: "unpaid",
    Reason.TICKET_BLANK: "blank", Reason.DETAILS_REQUIRED: "details missing",
    Reason.WRONG_EVENT: "wrong event", Reason.TICKET_TYPE_NOT_ALLOWED: "wrong type",
    Reason.NO_ENTRY_PERMISSION: "no entry here", Reason.DIRECTION_NOT_ALLOWED: "wrong way",
    Reason.ALREADY_INSIDE: "already in", Reason.REENTRY_NOT_ALLOWED: "no re-entry",
    Reason.NOT_INSIDE: "not inside", Reason.TIMESLOT_TOO_EARLY: "too early",
    Reason.TIMESLOT_TOO_LATE: "too late", Reason.CLOCK_UNTRUSTED: "clock unsure",
}
_ICONS = {Feedback.GREEN: "check", Feedback.RED: "cross", Feedback.ORANGE: "repeat",
          Feedback.BLUE: "exit"}


def seat(decision: Decision) -> str | None:
    """"Area A · Row 3 · Seat 12", or None for general admission."""
    ticket = decision.ticket
    if ticket is None:
        return None
    parts = [f"{label} {value}" for label, value in
             (("Area", ticket.area), ("Row", ticket.row), ("Seat", ticket.seat)) if value]
    return " · ".join(parts) or None


def reason_label(reason: str) -> str:
    try:
        return REASON_LABELS.get(Reason(reason), reason.lower())
    except ValueError:
        return reason.lower()


def decision_event(acted: Acted, *, gate_id: str) -> dict[str, Any]:
    d = acted.decision
    ticket = d.ticket
    return {
        "type": "decision",
        "scan_id": acted.scan_id,
        "granted": d.granted,
        "reason": d.reason.value,
        "word": _WORDS.get(d.reason, "DENIED"),
        "icon": _ICONS[d.feedback],
        "colour": d.feedback.value,
        "message": d.message,
        "holder": ticket.name if ticket else None,
        "ticket_type": ticket.ticket_name if ticket else None,
        "seat": seat(d),
        "direction": d.direction.value,
        "gate": gate_id,
        "opened": acted.opened,
        "offline": d.offline,
        "sent_at": time.time() * 1000,  # epoch ms, for the page's latency probe
    }


def passage_event(passage: Passage) -> dict[str, Any]:
    return {"type": "passage", "scan_id": passage.scan_id, "passed": passage.passed}


def fire_alarm_event(alarm: FireAlarm) -> dict[str, Any]:
    return {"type": "fire_alarm", "active": alarm.active}


def to_page(event: object, *, gate_id: str) -> dict[str, Any] | None:
    """The page's message for one act-stage event; None for events the page ignores."""
    if isinstance(event, Acted):
        return decision_event(event, gate_id=gate_id)
    if isinstance(event, Passage):
        return passage_event(event)
    if isinstance(event, FireAlarm):
        return fire_alarm_event(event)
    return None
