"""Values the decision takes and gives. No I/O here, and nothing imports a device or HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from scanner.tickets import Ticket


class Direction(StrEnum):
    IN = "IN"
    OUT = "OUT"


class Feedback(StrEnum):
    """What the kiosk shows, after vivenu's own scan app."""

    GREEN = "green"    # granted
    RED = "red"        # not valid here
    ORANGE = "orange"  # valid, but already scanned
    BLUE = "blue"      # checked out
    PINK = "pink"      # held: a steward checks the ticket before the gate opens


class Reason(StrEnum):
    """Machine-readable reason codes; each has its own rule and test."""

    GRANTED = "GRANTED"
    CHECKED_OUT = "CHECKED_OUT"
    MALFORMED_READ = "MALFORMED_READ"
    UNKNOWN_BARCODE = "UNKNOWN_BARCODE"
    TICKET_INVALID = "TICKET_INVALID"
    TICKET_RESERVED = "TICKET_RESERVED"
    TICKET_BLANK = "TICKET_BLANK"
    DETAILS_REQUIRED = "DETAILS_REQUIRED"
    WRONG_EVENT = "WRONG_EVENT"
    TICKET_TYPE_NOT_ALLOWED = "TICKET_TYPE_NOT_ALLOWED"
    NO_ENTRY_PERMISSION = "NO_ENTRY_PERMISSION"
    DIRECTION_NOT_ALLOWED = "DIRECTION_NOT_ALLOWED"
    ALREADY_INSIDE = "ALREADY_INSIDE"
    REENTRY_NOT_ALLOWED = "REENTRY_NOT_ALLOWED"
    NOT_INSIDE = "NOT_INSIDE"
    TIMESLOT_TOO_EARLY = "TIMESLOT_TOO_EARLY"
    TIMESLOT_TOO_LATE = "TIMESLOT_TOO_LATE"
    # No clock the gate can trust (device clock unset or behind, no believable server time):
    # a time-dependent rule denies rather than admit on a guess.
    CLOCK_UNTRUSTED = "CLOCK_UNTRUSTED"
    # A seated or routed ticket at an entrance not on its route: "use gate C".
    WRONG_GATE = "WRONG_GATE"
    # Valid, but held until a steward checks it (reduced price, child, ID-bound); the gate
    # opens only on the steward's confirmation (scanner.supervise).
    ACTION_REQUIRED = "ACTION_REQUIRED"
    # Journal entries that follow a decision rather than a read: a held ticket confirmed or
    # not (refused, or no answer in time), a denial a supervisor overrode.
    CONFIRMED = "CONFIRMED"
    NOT_CONFIRMED = "NOT_CONFIRMED"
    OVERRIDDEN = "OVERRIDDEN"
    # Passage alarms: a turn no grant explains, a passage held open, a manual release.
    PASSAGE_FORCED = "PASSAGE_FORCED"
    PASSAGE_HELD = "PASSAGE_HELD"
    MANUAL_RELEASE = "MANUAL_RELEASE"
    # A steward's manual release the venue's lockdown refused (only the supervisor may).
    RELEASE_REFUSED = "RELEASE_REFUSED"
    # A supervisor's venue command (scanner.decide.orders): the ticket is blocked (a ban, a
    # lost card), entry is stopped here (or free egress holds the gate open), or lockdown.
    BLOCKED = "BLOCKED"
    ENTRY_STOPPED = "ENTRY_STOPPED"
    LOCKDOWN = "LOCKDOWN"
    # The zone (or one it is inside) has no place left for this gate (scanner.zones).
    ZONE_FULL = "ZONE_FULL"


# Reasons that admit: the gate opens and the ticket is inside (or out) after them.
ADMITTING = frozenset({Reason.GRANTED, Reason.CHECKED_OUT, Reason.CONFIRMED,
                       Reason.OVERRIDDEN})
# Journal entries no read made: alarms and held tickets (whose outcome is the entry that
# counts). Never uploaded, never counted as denials.
ALARMS = frozenset({Reason.PASSAGE_FORCED, Reason.PASSAGE_HELD, Reason.MANUAL_RELEASE})
NOT_UPLOADED = ALARMS | {Reason.ACTION_REQUIRED, Reason.RELEASE_REFUSED}
# Reasons of journal entries a steward, a supervisor or the turnstile made: ``decide``
# never gives them.
NOT_DECIDED = ALARMS | {Reason.CONFIRMED, Reason.NOT_CONFIRMED, Reason.OVERRIDDEN,
                        Reason.RELEASE_REFUSED}


@dataclass(frozen=True, slots=True)
class PastScan:
    """One earlier *granted* scan of the same ticket (denied scans never count)."""

    direction: Direction
    scanned_at: str        # ISO UTC ms
    gate_id: str


@dataclass(frozen=True, slots=True)
class ScanHistory:
    """Granted scans of one ticket, oldest first; presence is derived from it."""

    scans: tuple[PastScan, ...] = ()

    @property
    def checkins(self) -> int:
        return sum(1 for s in self.scans if s.direction is Direction.IN)

    @property
    def checkouts(self) -> int:
        return sum(1 for s in self.scans if s.direction is Direction.OUT)

    @property
    def inside(self) -> bool:
        return bool(self.scans) and self.scans[-1].direction is Direction.IN

    @property
    def last_in(self) -> PastScan | None:
        for scan in reversed(self.scans):
            if scan.direction is Direction.IN:
                return scan
        return None


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: Reason
    message: str                 # one line for a person
    feedback: Feedback
    direction: Direction
    barcode: str
    ticket: Ticket | None = None
    offline: bool = True         # decided from the local store, without asking the server
    extra: dict[str, str] = field(default_factory=dict)  # e.g. {"entered_at", "entered_gate"}

    @property
    def result(self) -> str:
        """vivenu's scan ``type``."""
        return "OK" if self.granted else "FAIL"

    @property
    def event_id(self) -> str | None:
        return self.ticket.event_id if self.ticket else None
