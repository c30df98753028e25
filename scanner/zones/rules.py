"""What zones add to a decision: timed re-entry and capacity.

The anti-passback rules of ``scanner.decide.rules`` run on the ticket's history as seen
from the gate's zone (``presence.zone_history``), so they already hold per zone: inside
the stand, a ticket may still enter the lounge. Two rules follow the decision:

- timed re-entry: a ticket denied ALREADY_INSIDE whose entry into the zone is at least
  ``reentry_after`` old is admitted again (it may have left where no gate reads).
- capacity: an admission needs a place in every capped zone it enters (the gate's zone and
  its parents); without one the zone's ``when_full`` decides: ``deny`` as ZONE_FULL, or
  ``warn`` and admit, the zone named in the decision. A ticket held for the steward's
  check (ACTION_REQUIRED) takes its place as an admission would, before anyone is asked:
  the steward's confirmation then admits into a place kept for it, and a full zone is
  refused before a steward checks a ticket that could not enter anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from scanner.config.zones import Zone, ZoneTree
from scanner.decide.model import Decision, Direction, Feedback, Reason, ScanHistory
from scanner.decide.rules import one_line
from scanner.tickets import as_utc, parse_iso

FULL_ZONE = "zone_full"    # Decision.extra: the zone that was full
ZONE = "zone"              # Decision.extra: the gate's zone


def reenter(decision: Decision, zone: Zone, history: ScanHistory, now: datetime) -> Decision:
    """``decision`` with a timed re-entry granted where ``zone`` allows it."""
    if decision.reason is not Reason.ALREADY_INSIDE or zone.reentry_after is None:
        return decision
    last_in = history.last_in
    if last_in is None:
        return decision
    try:
        since = as_utc(now) - parse_iso(last_in.scanned_at)
    except (ValueError, OverflowError):
        return decision  # a damaged time proves no absence
    if since < zone.reentry_after:
        return decision
    name = decision.ticket.ticket_name if decision.ticket else decision.barcode
    return replace(decision, granted=True, reason=Reason.GRANTED, feedback=Feedback.GREEN,
                   message=f"Welcome back: {one_line(name)}", extra={})


def spends(tree: ZoneTree, gate_zone: str, direction: Direction | str) -> list[str]:
    """The capped zones a granted scan at a gate of ``gate_zone`` may add a ticket to:
    on entry, the zone and its parents; on exit, the parents (an exit from an inner zone
    puts the ticket back in them)."""
    path = tree.path(gate_zone)
    if direction != Direction.IN:
        path = path[1:]
    return [z for z in path if tree[z].capacity is not None]


def holds_place(decision: Decision) -> bool:
    """Whether ``decision`` needs a place: an admission, or a ticket held before one."""
    return decision.direction is Direction.IN and (
        decision.granted or decision.reason is Reason.ACTION_REQUIRED)


def capacity(decision: Decision, tree: ZoneTree, gate_zone: str,
             take: Callable[[list[str]], list[str]]) -> Decision:
    """``decision`` after asking for a place in each capped zone an admission enters.

    ``take(zones)`` spends one right in each of ``zones`` if every one has one, and returns
    the zones that had none (then nothing is spent). A zone that warns is taken from even
    when empty: the admission happens and the minter sees the overdraft.
    """
    if not holds_place(decision):
        return decision
    zones = spends(tree, gate_zone, Direction.IN)
    if not zones:
        return decision
    full = take(zones)
    if not full:
        return decision
    denying = [z for z in full if tree[z].when_full == "deny"]
    if denying:
        zone = tree[denying[-1]]  # the outermost: the one people know the gate by
        return replace(decision, granted=False, reason=Reason.ZONE_FULL,
                       feedback=Feedback.RED,
                       message=f"{one_line(zone.label)} is full ({zone.capacity} places)",
                       extra={FULL_ZONE: zone.id})
    zone = tree[full[-1]]
    return replace(decision, message=f"{decision.message} ({one_line(zone.label)} is full)",
                   extra={**decision.extra, FULL_ZONE: zone.id})

