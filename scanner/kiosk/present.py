"""What the kiosk page is sent: act-stage events turned into plain JSON for a person.

The page only paints what it is given. The choice of word, icon and colour lives here, so
it is tested without a browser; the words themselves are keys into the page's catalogue
(``scanner.kiosk.i18n``): ``word`` (``word.valid``), and for a denial the reason code,
whose ``reason.<CODE>.detail`` and ``.next`` tell the steward what happened and what to do.
The English fields (``message``, ``seat``, the counters' ``label``) stay for integrators.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from scanner.act import Acted, Alarm, FireAlarm, Passage
from scanner.decide.model import Decision, Feedback, Reason
from scanner.decide.rules import CHECK, USE_GATE
from scanner.tickets import Ticket, parse_iso

# The word under the icon, for stewards who cannot tell the colours apart: catalogue keys,
# and the English word for integrators.
WORDS = {Reason.GRANTED: ("word.valid", "VALID"),
          Reason.CHECKED_OUT: ("word.checked_out", "CHECKED OUT"),
          Reason.ALREADY_INSIDE: ("word.already_in", "ALREADY IN"),
          Reason.REENTRY_NOT_ALLOWED: ("word.already_scanned", "ALREADY SCANNED"),
          Reason.ACTION_REQUIRED: ("word.check", "CHECK"),
          Reason.CONFIRMED: ("word.valid", "VALID"),
          Reason.OVERRIDDEN: ("word.override", "OVERRIDE"),
          Reason.PASSAGE_FORCED: ("word.alarm", "ALARM"),
          Reason.PASSAGE_HELD: ("word.alarm", "ALARM"),
          Reason.MANUAL_RELEASE: ("word.released", "RELEASED")}
DENIED = ("word.denied", "DENIED")
GRANTED_RESULT = "OK"  # a grant's ``Decision.result``, as the journal keeps it
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
    Reason.WRONG_GATE: "wrong gate", Reason.ACTION_REQUIRED: "held",
    Reason.NOT_CONFIRMED: "not confirmed", Reason.PASSAGE_FORCED: "forced",
    Reason.PASSAGE_HELD: "held open", Reason.MANUAL_RELEASE: "released",
    Reason.RELEASE_REFUSED: "release refused",
    Reason.BLOCKED: "blocked", Reason.ENTRY_STOPPED: "entry stopped",
    Reason.LOCKDOWN: "lockdown",
    Reason.ZONE_FULL: "zone full",
}
_ICONS = {Feedback.GREEN: "check", Feedback.RED: "cross", Feedback.ORANGE: "repeat",
          Feedback.BLUE: "exit", Feedback.PINK: "hand"}


def seat_parts(decision: Decision) -> dict[str, str] | None:
    """The seat as given (``area``, ``row``, ``seat``, each only when set), or None for
    general admission. The area is a name of its own ("Block A", "Stehplatz"): it is
    shown as it is, never after a word "Area" it may already hold."""
    return _seat_parts(decision.ticket)


def _seat_parts(ticket: Ticket | None) -> dict[str, str] | None:
    if ticket is None:
        return None
    parts = {key: value for key, value in
             (("area", ticket.area), ("row", ticket.row), ("seat", ticket.seat)) if value}
    return parts or None


def seat(decision: Decision) -> str | None:
    """"Block A · Row 3 · Seat 12", or None for general admission."""
    return _seat(_seat_parts(decision.ticket))


def _seat(parts: dict[str, str] | None) -> str | None:
    parts = parts or {}
    words = [parts.get("area"), *(f"{label} {parts[key]}" for key, label in
                                  (("row", "Row"), ("seat", "Seat")) if key in parts)]
    return " · ".join(w for w in words if w) or None


def reason_label(reason: str) -> str:
    try:
        return REASON_LABELS.get(Reason(reason), reason.lower())
    except ValueError:
        return reason.lower()


def _unknown() -> None:
    return None


def decision_event(acted: Acted, *, gate_id: str,
                   online: Callable[[], bool | None] = _unknown) -> dict[str, Any]:
    d = acted.decision
    ticket = d.ticket
    word_key, word = WORDS.get(d.reason, DENIED)
    return {
        "type": "decision",
        "scan_id": acted.scan_id,
        "granted": d.granted,
        "reason": d.reason.value,
        "word_key": word_key,
        "word": word,
        # A held ticket's icon is its own, whatever colour the venue chose for it.
        "icon": "hand" if d.reason is Reason.ACTION_REQUIRED else _ICONS[d.feedback],
        "colour": d.feedback.value,
        "message": d.message,
        "holder": ticket.name if ticket else None,
        "ticket_type": ticket.ticket_name if ticket else None,
        "seat": seat(d),
        "seat_parts": seat_parts(d),
        "direction": d.direction.value,
        # What a steward checks on a held ticket; the gate a misrouted ticket should use.
        "check": d.extra.get(CHECK),
        "use_gate": d.extra.get(USE_GATE),
        "gate": gate_id,
        "opened": acted.opened,
        "offline": d.offline,
        # Decided from the local store while vivenu could not be reached: what the page
        # marks inside the result (a gate online decides from its store too).
        "decided_offline": d.offline and online() is False,
        # epoch ms: the page's latency probe, and the time in its list of recent scans
        "sent_at": time.time() * 1000,
    }


def journaled_event(row: Mapping[str, Any], ticket: Ticket | None) -> dict[str, Any]:
    """A decision read back from the journal (``Journal.latest``), as the page's list of
    recent scans shows it after a restart: the holder and ticket type from the store. A
    grant journaled "opened, not passed" (annulled, or nobody went through) is listed as
    annulled: it counts no longer."""
    granted = row["result"] == GRANTED_RESULT
    try:
        word_key, word = WORDS.get(Reason(row["reason"]), DENIED)
    except ValueError:  # a reason a newer version journaled
        word_key, word = WORDS[Reason.GRANTED] if granted else DENIED
    parts = _seat_parts(ticket)
    return {
        "type": "decision", "scan_id": row["scan_id"], "granted": granted,
        "reason": row["reason"], "word_key": word_key, "word": word, "message": row["message"],
        "holder": ticket.name if ticket else None,
        "ticket_type": ticket.ticket_name if ticket else None,
        "seat": _seat(parts), "seat_parts": parts, "direction": row["direction"],
        "offline": row["offline"],
        "sent_at": parse_iso(row["scanned_at"]).timestamp() * 1000,
        "passed": row["passed"], "annulled": granted and row["passed"] is False,
    }


def passage_event(passage: Passage) -> dict[str, Any]:
    return {"type": "passage", "scan_id": passage.scan_id, "passed": passage.passed}


def fire_alarm_event(alarm: FireAlarm) -> dict[str, Any]:
    return {"type": "fire_alarm", "active": alarm.active}


def alarm_event(alarm: Alarm) -> dict[str, Any]:
    """A passage alarm or a manual release, as the page paints it."""
    word_key, word = WORDS[alarm.reason]
    return {"type": "alarm", "scan_id": alarm.scan_id, "reason": alarm.reason.value,
            "word_key": word_key, "word": word, "sent_at": time.time() * 1000}


def preview_event(decision: Decision, *, gate_id: str) -> dict[str, Any]:
    """An information scan: the decision as the page shows one, taken by nobody."""
    from scanner.act import signal_for

    acted = Acted("", decision, signal_for(decision), False, None, False)
    return decision_event(acted, gate_id=gate_id) | {"type": "info"}


def to_page(event: object, *, gate_id: str,
            online: Callable[[], bool | None] = _unknown) -> dict[str, Any] | None:
    """The page's message for one act-stage event; None for events the page ignores."""
    if isinstance(event, Acted):
        return decision_event(event, gate_id=gate_id, online=online)
    if isinstance(event, Passage):
        return passage_event(event)
    if isinstance(event, FireAlarm):
        return fire_alarm_event(event)
    if isinstance(event, Alarm):
        return alarm_event(event)
    return None
