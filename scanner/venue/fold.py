"""From the newest command of every slot to what one gate obeys (a ``VenueOrders``).

The mode commands that cover the gate (the venue's, its zone's, its own) are taken in
their issue order (``seq``), each setting the mode:

    stop_entry   STOPPED          lockdown   LOCKDOWN
    free_egress  EGRESS           resume     NORMAL

so the latest order that reaches a gate wins, whichever width it was given at: "stop
entry everywhere" then "resume zone north" reopens north alone; "stop gate 3" then "resume
everywhere" reopens gate 3 too. One exception, for life safety: free egress ends only by a
``resume`` that covers the gate; a later stop-entry or lockdown does not close a gate that
is evacuating. ``block`` and ``unblock`` are per ticket, the newest of each wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from scanner.decide.orders import Mode, VenueOrders
from scanner.venue.command import Command, Kind, Scope

_MODES = {Kind.STOP_ENTRY: Mode.STOPPED, Kind.LOCKDOWN: Mode.LOCKDOWN,
          Kind.FREE_EGRESS: Mode.EGRESS, Kind.RESUME: Mode.NORMAL}


@dataclass(frozen=True, slots=True)
class Place:
    """Where a gate stands: its name and the zones it is in (its own first, then the
    zones around it), so a command for any of them reaches it."""

    gate: str
    zones: tuple[str, ...] = ()

    def covered_by(self, command: Command) -> bool:
        if command.scope is Scope.VENUE:
            return True
        if command.scope is Scope.GATE:
            return command.target == self.gate
        return command.scope is Scope.ZONE and command.target in self.zones


def fold(commands: Iterable[Command], place: Place) -> VenueOrders:
    """What the gate at ``place`` obeys, from the newest command of each slot."""
    mode = Mode.NORMAL
    blocked: dict[str, str] = {}
    for command in sorted(commands, key=_order):
        if command.scope is Scope.TICKET:
            if command.kind is Kind.BLOCK:
                blocked[command.target] = command.reason
            else:
                blocked.pop(command.target, None)
        elif place.covered_by(command):
            new = _MODES[command.kind]
            if mode is not Mode.EGRESS or new is Mode.NORMAL:
                mode = new
    return VenueOrders(mode, MappingProxyType(blocked))


def _order(command: Command) -> tuple[int, str, str]:
    return command.seq, command.issuer, command.id
