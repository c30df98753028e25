"""One venue command: what a supervisor orders, whom it is for, and its place in order.

A command is a flat JSON object (the body a supervisor's key signs, ``scanner.venue.signing``):

    v          1
    id         a UUID: a command applied once is never applied again
    issuer     the fingerprint of the supervisor's public key
    seq        the issuer's number for it: max(its clock in ms, the last it saw + 1), so
               commands of one issuer are totally ordered and numbered even across
               machines sharing the key, and a later command always has a larger one
    issued_at  the issuer's clock, ISO UTC ms, for people
    kind       stop_entry | resume | free_egress | lockdown | block | unblock
    scope      venue | zone | gate (the mode commands) or ticket (block and unblock)
    target     the zone, gate, or barcode/ticket id; "" for the venue
    reason     a line for people (required for a block: the steward reads it)

Each command replaces the one before it for the same (issuer, scope, target): its *slot*.
``parse`` never raises for a body it does not like; it says why (``Refused``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from scanner.config.rules import gate_id_problem

VERSION = 1
MAX_REASON = 200
MAX_TARGET = 512  # the longest read a gate decides (a barcode)


class Kind(StrEnum):
    STOP_ENTRY = "stop_entry"
    RESUME = "resume"
    FREE_EGRESS = "free_egress"
    LOCKDOWN = "lockdown"
    BLOCK = "block"
    UNBLOCK = "unblock"


class Scope(StrEnum):
    VENUE = "venue"
    ZONE = "zone"
    GATE = "gate"
    TICKET = "ticket"


TICKET_KINDS = frozenset({Kind.BLOCK, Kind.UNBLOCK})
MODE_SCOPES = (Scope.VENUE, Scope.ZONE, Scope.GATE)


class Refused(ValueError):
    """A body that is not a command this code obeys; the message says why, in a few words."""


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    issuer: str
    seq: int
    issued_at: str
    kind: Kind
    scope: Scope
    target: str = ""
    reason: str = ""
    v: int = VERSION

    @property
    def slot(self) -> tuple[str, str, str]:
        """What a later command of the same issuer replaces: (issuer, scope, target)."""
        return self.issuer, self.scope.value, self.target

    def body(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """'stop_entry for zone north (seq 1733..., 2026-... by ab12...)': one log line."""
        where = "the venue" if self.scope is Scope.VENUE else f"{self.scope} {self.target!r}"
        why = f": {self.reason}" if self.reason else ""
        return (f"{self.kind.value} for {where} (seq {self.seq}, issued {self.issued_at} by "
                f"{self.issuer}){why}")


def new_command(kind: Kind, scope: Scope, target: str, *, issuer: str, seq: int,
                issued_at: str, reason: str = "") -> Command:
    """A command, checked as a gate will check it (a mistake is a Refused before signing)."""
    command = Command(str(uuid.uuid4()), issuer, seq, issued_at, kind, scope, target, reason)
    return parse(command.body())


def topic_part(scope: Scope, target: str) -> str:
    """The retained topic's last levels for a slot: a target may hold ``/``, ``+`` or
    ``#``, so it is named by a digest of itself."""
    if scope is Scope.VENUE:
        return scope.value
    return f"{scope.value}/{hashlib.sha256(target.encode()).hexdigest()[:32]}"


def parse(body: Any) -> Command:
    """The command in ``body``, every field checked; Refused says what is wrong."""
    if not isinstance(body, dict):
        raise Refused("not an object")
    if body.get("v") != VERSION:
        raise Refused(f"version {body.get('v')!r} unknown")
    expected = set(Command.__dataclass_fields__)
    if set(body) != expected:
        raise Refused(f"fields {sorted(set(body) ^ expected)} unexpected or missing")
    for name in ("id", "issuer", "issued_at", "kind", "scope", "target", "reason"):
        if not isinstance(body[name], str):
            raise Refused(f"{name} is not text")
    seq = body["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**63:
        raise Refused("seq is not a positive integer")
    try:
        kind, scope = Kind(body["kind"]), Scope(body["scope"])
        uuid.UUID(body["id"])
    except ValueError as exc:
        raise Refused(str(exc)) from None
    target, reason = body["target"], body["reason"]
    _check_slot(kind, scope, target)
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise Refused(f"reason is not one printable line of at most {MAX_REASON} characters")
    if kind is Kind.BLOCK and not reason.strip():
        raise Refused("a block needs a reason: the steward reads it")
    if not body["issuer"] or not body["issued_at"] or len(body["issued_at"]) > 40:
        raise Refused("issuer or issued_at missing")
    return Command(body["id"], body["issuer"], seq, body["issued_at"], kind, scope, target,
                   reason)


def _check_slot(kind: Kind, scope: Scope, target: str) -> None:
    if (kind in TICKET_KINDS) != (scope is Scope.TICKET):
        raise Refused(f"{kind.value} does not apply to a {scope.value}")
    if scope is Scope.VENUE:
        if target:
            raise Refused("a venue command names no target")
        return
    if not target or len(target) > MAX_TARGET or not target.isprintable():
        raise Refused(f"the {scope.value} must be printable text of 1 to {MAX_TARGET} "
                      f"characters")
    if scope is Scope.GATE and (problem := gate_id_problem(target)):
        raise Refused(f"not a gate name: {problem}")
