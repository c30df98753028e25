"""What the venue's supervisors have ordered this gate: a value the decision takes as data.

``scanner.venue`` keeps the signed commands and folds them into one ``VenueOrders`` for the
gate (``scanner.venue.fold``); the decision only reads it, so it stays a pure function.

    Mode.NORMAL     nothing ordered: the rules decide
    Mode.STOPPED    entry stopped: IN is denied ENTRY_STOPPED, OUT is decided as usual
    Mode.EGRESS     free egress (an evacuation): the relay is held open; IN is denied
                    ENTRY_STOPPED, OUT is decided as usual, every scan is journaled
    Mode.LOCKDOWN   every scan, IN and OUT, is denied LOCKDOWN and the relay stays shut
                    (only the fire-alarm loop, wired to the relay, still holds it open)

``blocked`` maps a barcode or a ticket id to the supervisor's reason: such a ticket is
refused entry (BLOCKED) whatever else holds; leaving is never refused for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from scanner.decide.model import Reason


class Mode(StrEnum):
    NORMAL = "normal"
    STOPPED = "stopped"
    EGRESS = "egress"
    LOCKDOWN = "lockdown"


@dataclass(frozen=True, slots=True)
class VenueOrders:
    mode: Mode = Mode.NORMAL
    # barcode or ticket id -> reason (read-only: the decision never changes it)
    blocked: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def block_reason(self, barcode: str, ticket_id: str | None) -> str | None:
        """The reason ``barcode`` (or its ticket) is blocked; None when it is not."""
        if not self.blocked:
            return None
        reason = self.blocked.get(barcode)
        if reason is None and ticket_id is not None:
            reason = self.blocked.get(ticket_id)
        return reason


NO_ORDERS = VenueOrders()


def venue_denial(orders: VenueOrders, barcode: str, ticket_id: str | None,
                 is_entry: bool) -> tuple[Reason, str] | None:
    """What the orders refuse for this scan, or None. A blocked ticket is named first (the
    steward must know a banned ticket was shown, even in a lockdown); leaving is refused
    only in a lockdown, never because a ticket is blocked or entry stopped."""
    if orders is NO_ORDERS:
        return None
    if is_entry and (why := orders.block_reason(barcode, ticket_id)) is not None:
        return Reason.BLOCKED, f"Blocked by supervisor: {why}" if why else "Blocked by supervisor"
    if orders.mode is Mode.LOCKDOWN:
        return Reason.LOCKDOWN, "Lockdown: the gate is locked by a supervisor"
    if is_entry and orders.mode is Mode.STOPPED:
        return Reason.ENTRY_STOPPED, "Entry stopped by supervisor"
    if is_entry and orders.mode is Mode.EGRESS:
        return Reason.ENTRY_STOPPED, "Free egress: exit only, entry stopped by supervisor"
    return None
