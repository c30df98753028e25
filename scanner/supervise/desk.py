"""What a steward or a supervisor may do to the gate, each journaled before the gate acts.

- A held ticket (ACTION_REQUIRED) goes through ``submit``: journaled as held by the
  gatekeeper, shown (act stage: held colour, no relay), then the lane waits for the answer
  (``Holds``). The answer is a journal entry of its own that answers the held scan:
  CONFIRMED (uploaded as the entry, counts for presence, opens the gate) or NOT_CONFIRMED
  (refused by the steward, or no answer within the timeout). Into a capped zone the held
  ticket keeps a place from the moment it is held (``scanner.zones.rules``): the
  confirmation spends it, any other end of the hold gives it back.
- An override (supervisor only) answers a denial of this gate with an OVERRIDDEN entry:
  a grant like any other, uploaded as the entry it became, the ticket inside after it.
  Into a capped zone it needs a place as any admission does, or it is refused.
- A manual release opens the gate for someone without a ticket (a wheelchair, a medic):
  a MANUAL_RELEASE entry, then the relay; the passage that follows is not an alarm. In a
  venue lockdown only the supervisor may: their release is journaled as an override of
  the lockdown (why LOCKDOWN_OVERRIDDEN), a steward's is journaled as RELEASE_REFUSED and
  opens nothing. Free egress changes nothing here: every relay is open already.
- A passage alarm (forced, held open) is an entry the act stage asks for (``alarm``).

Every entry is written with who made it and why (``scanner.journal.supervision``) and
goes to the mesh like any scan, so the control room sees overrides and alarms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from scanner.decide.model import (
    ALARMS,
    NOT_UPLOADED,
    Decision,
    Direction,
    Feedback,
    Reason,
)
from scanner.decide.orders import Mode, VenueOrders
from scanner.errors import NotAllowed, NotAnswerable, ReleaseRefused
from scanner.gatekeeper import CheckResult
from scanner.journal import supervision
from scanner.journal.ids import new_scan_id
from scanner.journal.journal import Journal
from scanner.journal.supervision import MAX_NOTE, Who
from scanner.printable import escape
from scanner.supervise.holds import Answer, Holds
from scanner.tickets import Ticket

log = logging.getLogger("scanner.supervise")
decisions = logging.getLogger("scanner.decision")

# Why a supervisor overrides a denial: a short list, then their own words. After what
# venues' systems offer (Genetec's and SecuTix's override reasons): the list is what a
# report groups by, the note what an auditor reads.
OVERRIDE_REASONS = ("WRONG_READ", "PASSBACK_FORGIVEN", "STAFF_OR_ARTIST", "SUPPORT_CASE",
                    "MEDICAL", "OTHER")
_ALARM_MESSAGES = {
    Reason.PASSAGE_FORCED: "Passage without a grant: turnstile forced, or two on one ticket",
    Reason.PASSAGE_HELD: "Passage held open or blocked",
}
# Denials a venue command made (scanner.decide.orders): the order is lifted by a command of
# the venue's supervisors, never by one gate's override, or a lockdown would leak a ticket.
_ORDERED = frozenset({Reason.BLOCKED, Reason.ENTRY_STOPPED, Reason.LOCKDOWN})
# A full zone's capacity is a safety limit no split may overfill (scanner.zones): an
# override would admit without a place, so it waits for one, as the gate does.
_UNPLACED = frozenset({Reason.ZONE_FULL})
_REFUSED = {Answer.REFUSE: "refused by the steward", Answer.TIMEOUT: "no answer in time"}
# The why of a supervisor's manual release in lockdown, and of a steward's refused one.
LOCKDOWN_OVERRIDDEN, IN_LOCKDOWN = "LOCKDOWN_OVERRIDDEN", "LOCKDOWN"


class Submit(Protocol):
    """``ActStage.submit``: the journaled result, and when its read was taken."""

    def __call__(self, scan: CheckResult, read_ns: int | None = None, /) -> bool: ...


def _still() -> None:
    return None


class Keeper(Protocol):
    """What the desk uses of ``scanner.gatekeeper.Gatekeeper``."""

    def preview(self, barcode: str, direction: Direction) -> CheckResult: ...
    def stamp(self) -> str: ...
    def count(self, decision: Decision, scan_id: str, scanned_at: str) -> None: ...
    def place(self, decision: Decision, scan_id: str) -> Decision: ...
    def release(self, scan_id: str) -> None: ...
    def tickets(self, barcode: str) -> list[Ticket]: ...


@dataclass(frozen=True, slots=True)
class Acting:
    """Who asks: ``role`` from the kiosk session (steward or supervisor), ``session`` a tag
    of it, or the wired button."""

    role: str
    session: str | None = None


class Desk:
    def __init__(self, journal: Journal, keeper: Keeper, submit: Submit, holds: Holds, *,
                 release: Callable[[str], bool] | None = None,
                 journaled: Callable[[], None] | None = None,
                 orders: Callable[[], VenueOrders] | None = None) -> None:
        self.journal = journal
        self.keeper = keeper
        self._submit = submit
        self.holds = holds
        self._release = release
        self._journaled = journaled
        self._orders = orders

    # -- the lane's and the kiosk's submit -------------------------------------------------

    def submit(self, result: CheckResult, read_ns: int | None = None,
               beat: Callable[[], None] = _still) -> bool:
        """Hand a journaled decision (and when its read was taken) to the act stage; a held
        one then waits here (on the lane's thread: that lane decides nothing else meanwhile)
        for its answer, which is journaled and acted on in turn. ``beat``: the waiting
        worker's heartbeat."""
        if result.decision.reason is not Reason.ACTION_REQUIRED:
            return self._submit(result, read_ns)
        self.holds.hold(result.scan_id)
        try:
            accepted = self._submit(result, read_ns)
            answer, who = self.holds.wait(result.scan_id, beat)
            self.settle(result, answer, who)
        finally:
            self.holds.forget(result.scan_id)  # settled or not, the hold is over: its
            self.keeper.release(result.scan_id)  # registration and its zone place
        return accepted

    def settle(self, held: CheckResult, answer: Answer, who: Who) -> CheckResult:
        d = held.decision
        name = d.ticket.ticket_name if d.ticket else d.barcode
        if answer is Answer.CONFIRM:
            outcome = replace(d, granted=True, reason=Reason.CONFIRMED, feedback=Feedback.GREEN,
                              message=f"Confirmed: {name}", extra={})
        else:
            outcome = replace(d, granted=False, reason=Reason.NOT_CONFIRMED,
                              feedback=Feedback.RED, extra={},
                              message=f"Not confirmed ({_REFUSED[answer]}): {name}")
        try:
            return self._enter(outcome, who, answers=held.scan_id)
        finally:
            # The place the hold kept (scanner.zones) goes back: a confirmation has spent
            # its own by now, counted before this, so the zone is never short of one.
            self.keeper.release(held.scan_id)

    def answer(self, scan_id: str | None, confirm: bool, acting: Acting) -> bool:
        """A steward's answer to a held ticket (None: the oldest, as the button does)."""
        return self.holds.answer(scan_id, Answer.CONFIRM if confirm else Answer.REFUSE,
                                 Who(acting.role, acting.session))

    def button(self) -> None:
        """The wired confirm button (from gpiozero's thread): confirms the oldest held."""
        if not self.holds.answer(None, Answer.CONFIRM, Who("button")):
            log.info("confirm button pressed with no ticket held")

    # -- overrides, releases, alarms, information scans ----------------------------------

    def override(self, denied: str, acting: Acting, why: str, note: str = "") -> CheckResult:
        """Admit the ticket of denial ``denied`` (this gate's) as the supervisor decided.
        Raises NotAllowed, NotAnswerable, AlreadyAnswered (or StoreError)."""
        if acting.role != "supervisor":
            raise NotAllowed("an override needs the supervisor's PIN")
        if why not in OVERRIDE_REASONS:
            raise NotAnswerable(f"why: one of {', '.join(OVERRIDE_REASONS)}")
        note = " ".join(escape(note).split())[:MAX_NOTE]
        row = supervision.entry(self.journal, denied)
        if row is None or row["gate_id"] != self.journal.gate_id:
            raise NotAnswerable(f"no scan {denied} on this gate")
        reason = row["reason"]
        if row["result"] != "FAIL" or reason in NOT_UPLOADED \
                or reason == Reason.MALFORMED_READ:
            raise NotAnswerable(f"scan {denied} is not a denial of a ticket ({reason})")
        if reason in _ORDERED:
            raise NotAnswerable(f"scan {denied} was refused by a venue command ({reason}):"
                                f" lift the command, not the denial")
        if reason in _UNPLACED:
            raise NotAnswerable(f"scan {denied} found its zone full ({reason}): the capacity "
                                f"is a safety limit; scan again once a place is free")
        ticket = next((t for t in self.keeper.tickets(row["barcode"])
                       if t.id == row["ticket_id"]), None)
        direction = Direction(row["direction"])
        label = ticket.ticket_name if ticket else row["barcode"]
        decision = Decision(True, Reason.OVERRIDDEN, f"Override ({why}): {label}",
                            Feedback.GREEN if direction is Direction.IN else Feedback.BLUE,
                            direction, row["barcode"], ticket, True, {"denied": reason})
        scan_id = new_scan_id()
        placed = self.keeper.place(decision, scan_id)
        if placed.reason is Reason.ZONE_FULL:
            raise NotAnswerable(f"scan {denied} cannot be overridden: {placed.message}; "
                                f"the capacity is a safety limit")
        try:
            result = self._enter(placed, Who(acting.role, acting.session, why, note or None),
                                 answers=denied, event_id=row["event_id"], scan_id=scan_id)
        finally:
            self.keeper.release(scan_id)  # nothing once counted; else the place goes back
        log.warning("scan %s (%s) overridden by the %s: %s %s", denied, reason, acting.role,
                    why, escape(note))
        return result

    def release(self, acting: Acting) -> str:
        """Open the gate once by hand; journaled first. Returns the entry's scan id.
        In a venue lockdown a steward's release is journaled as refused and raises
        ReleaseRefused; the supervisor's is journaled as an override of the lockdown."""
        locked = self._orders is not None and self._orders().mode is Mode.LOCKDOWN
        if locked and acting.role != "supervisor":
            refused = Decision(False, Reason.RELEASE_REFUSED,
                               f"Manual release by the {acting.role} refused: lockdown",
                               Feedback.RED, Direction.IN, "")
            self._entry(refused, Who(acting.role, acting.session, IN_LOCKDOWN))
            log.warning("manual release by the %s refused: the venue is in lockdown",
                        acting.role)
            raise ReleaseRefused("the venue is in lockdown: only the supervisor may "
                                 "release the gate")
        decision = Decision(False, Reason.MANUAL_RELEASE,
                            f"Manual release by the {acting.role}"
                            + (" in lockdown" if locked else ""), Feedback.BLUE,
                            Direction.IN, "")
        scan_id = self._entry(decision, Who(acting.role, acting.session,
                                            LOCKDOWN_OVERRIDDEN if locked else None))
        if locked:
            log.warning("manual release %s by the supervisor overrides the lockdown", scan_id)
        if self._release is None or not self._release(scan_id):
            log.error("manual release %s journaled, but no relay opened", scan_id)
        return scan_id

    def alarm(self, reason: Reason) -> str:
        """Journal a passage alarm (the act stage's ``AlarmSink``); its scan id."""
        assert reason in ALARMS
        decision = Decision(False, reason, _ALARM_MESSAGES[reason], Feedback.RED,
                            Direction.IN, "")
        return self._entry(decision, Who("gate", why=reason.value))

    def preview(self, barcode: str, direction: Direction) -> CheckResult:
        """An information scan: the decision and the ticket, nothing journaled or queued."""
        return self.keeper.preview(barcode, direction)

    # -- journal -------------------------------------------------------------------------

    def _entry(self, decision: Decision, who: Who) -> str:
        scan_id = new_scan_id()
        supervision.record(self.journal, decision, scan_id=scan_id,
                           scanned_at=self.keeper.stamp(), who=who)
        self._told(scan_id, decision, who)
        return scan_id

    def _enter(self, decision: Decision, who: Who, *, answers: str,
               event_id: str | None = None, scan_id: str | None = None) -> CheckResult:
        """Journal an entry that answers ``answers`` (as ``scan_id``, else a new one), then
        act on it."""
        scan_id = scan_id or new_scan_id()
        scanned_at = self.keeper.stamp()
        supervision.record(self.journal, decision, scan_id=scan_id, scanned_at=scanned_at,
                           who=who, answers=answers, event_id=event_id)
        self.keeper.count(decision, scan_id, scanned_at)
        self._told(scan_id, decision, who)
        result = CheckResult(decision, scan_id, scanned_at, 0.0)
        if not self._submit(result):
            log.error("scan %s journaled, but the gate could not act on it", scan_id)
        return result

    def _told(self, scan_id: str, decision: Decision, who: Who) -> None:
        if self._journaled is not None:
            self._journaled()
        decisions.info("decision %s %s %s %s %s: %s", scan_id, decision.reason.value,
                       decision.direction.value, escape(decision.barcode), escape(who.role),
                       escape(decision.message))
