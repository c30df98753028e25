"""Escrowed places: a capped zone is never overfilled, however the mesh is split.

Every gate may admit into a capped zone only with a *right*, one place it holds. Rights
are made in one place and only move between gates by their holder giving them away, so
no split can create two copies of one:

- The *minter* (one gate, named in every gate's configuration; a gate alone is its own)
  makes rights from the places that are free: ``C - inside - (rights made - rights
  spent)``. The gate spends a right on
  every admission into the zone or a zone inside it, and on every exit from an inner zone
  into it (an exit is never refused, so its right may go below zero; the minter's sum sees
  that). Every gate counts every spend from the records, so the sum is known to anyone
  holding the records; a record not held yet can only make the minter's sum too small,
  never too large: it may make fewer rights than it could, never more.
- A gate gives rights by raising a cumulative ``sent`` count in its own ledger; the
  receiver counts them once it has that ledger. The minter hands its rights to the gates
  by their recent traffic (``targets``); a gate holding more than its target hands the rest
  back. With slack: a gate is topped up to its target once it holds half of it or less,
  and the shares are divided anew only when the places to share moved by an eighth, the
  gates online changed, or ``RESHARE_SECONDS`` passed. Without it every admission moved
  some target by one, and each move was a ledger published to every gate and a hand-back
  published by another: on a large venue, most of the mesh's messages. A gate cut off
  keeps what it holds and no more: it admits only its share of the
  places that were free when the split began, and the exits it sees free nothing until
  the minter sees them too. That is the cost: a gate may deny while places are free behind
  another gate.

Written as a ledger every gate publishes (retained, signed) and a few pure sums over them.
With every own right spent before the decision is journaled, the count of people inside a
capped zone, by the union of all records, never passes its capacity (only a ticket counted
in two places at once, such as a shared code leaving an inner zone, can spend beyond).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Counts = Mapping[str, int]
_EMPTY: Mapping[str, Any] = {}
RESHARE = 8             # shares are divided anew when the places to share moved by 1/RESHARE
RESHARE_SECONDS = 30.0  # ... or this long after the last division (traffic moves shares)


@dataclass(frozen=True)
class Ledger:
    """One gate's escrow state, as it publishes it. Every count only grows, and a newer
    ``version`` replaces an older one, so ledgers heard out of order still sum right."""

    gate: str
    zone: str                     # the gate's zone: where its scans place tickets
    minter: str                   # whom this gate takes for the minter
    version: int = 0
    minted: Counts = field(default_factory=dict)                  # zone -> rights made
    sent: Mapping[str, Counts] = field(default_factory=dict)      # zone -> gate -> given
    targets: Mapping[str, Counts] = field(default_factory=dict)   # minter: zone -> shares

    def given(self, zone: str, to: str) -> int:
        return int(self.sent.get(zone, _EMPTY).get(to, 0))

    def given_total(self, zone: str) -> int:
        return sum(self.sent.get(zone, _EMPTY).values())

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "zone": self.zone, "minter": self.minter,
                "version": self.version, "minted": dict(self.minted),
                "sent": {z: dict(s) for z, s in self.sent.items()},
                "targets": {z: dict(t) for z, t in self.targets.items()}}

    @classmethod
    def from_json(cls, body: Any) -> Ledger:
        """Strictly: ValueError for anything not exactly a ledger."""
        keys = {"gate", "zone", "minter", "version", "minted", "sent", "targets"}
        if not isinstance(body, dict) or set(body) != keys:
            raise ValueError("not a ledger")
        gate, zone, minter, version = (body[k] for k in ("gate", "zone", "minter", "version"))
        if not all(isinstance(v, str) and v for v in (gate, zone, minter)) \
                or type(version) is not int or version < 0:
            raise ValueError("not a ledger")
        return cls(gate, zone, minter, version, _counts(body["minted"]),
                   _nested(body["sent"]), _nested(body["targets"]))

    def bumped(self, **changes: Any) -> Ledger:
        fields = {**self.__dict__, **changes, "version": self.version + 1}
        return Ledger(**fields)


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in value.items()):
        raise ValueError("not a ledger")
    return dict(value)


def _nested(value: Any) -> dict[str, dict[str, int]]:
    if not isinstance(value, dict):
        raise ValueError("not a ledger")
    return {k: _counts(v) for k, v in value.items() if isinstance(k, str)}


def newer(held: Ledger | None, heard: Ledger) -> bool:
    return held is None or heard.version > held.version


def may_mint(me: str, minter: str, ledgers: Mapping[str, Ledger]) -> bool:
    """Only one gate makes rights: the one the configuration names, and only while every
    ledger heard names it too. Two gates that each believed themselves the minter before
    they heard of each other would make the same free places twice, which is why the
    minter is configured, never elected (a gate cannot know of a gate it has not heard)."""
    return minter == me and all(ledger.minter == me for ledger in ledgers.values())


def received(zone: str, me: str, ledgers: Mapping[str, Ledger]) -> int:
    return sum(ledger.given(zone, me) for gate, ledger in ledgers.items() if gate != me)


def rights(zone: str, me: str, ledgers: Mapping[str, Ledger], spent: int) -> int:
    """The places ``me`` holds in ``zone``: made + received - given - spent. ``ledgers``
    holds ``me``'s own (current) ledger too."""
    own = ledgers.get(me)
    made = own.minted.get(zone, 0) if own else 0
    given = own.given_total(zone) if own else 0
    return made + received(zone, me, ledgers) - given - spent


def free_to_mint(capacity: int, inside: int, ledgers: Mapping[str, Ledger], zone: str,
                 spent_total: int) -> int:
    """Places free and held by no gate: ``capacity - inside - (made - spent)`` (rights
    in transit between gates are held by someone: given counts cancel out)."""
    made = sum(ledger.minted.get(zone, 0) for ledger in ledgers.values())
    return max(0, capacity - inside - (made - spent_total))


def divide(places: int, weights: Mapping[str, float]) -> dict[str, int]:
    """``places`` shared by ``weights`` (largest remainders; ties by gate id)."""
    if not weights or places <= 0:
        return dict.fromkeys(weights, 0)
    total = sum(weights.values())
    exact = {g: places * w / total for g, w in weights.items()}
    shares = {g: int(x) for g, x in exact.items()}
    left = places - sum(shares.values())
    for gate in sorted(exact, key=lambda g: (shares[g] - exact[g], g))[:left]:
        shares[gate] += 1
    return shares


def still_shared(held: Counts | None, pool: int, shares: Mapping[str, float],
                 age: float) -> bool:
    """The targets ``held`` still stand for ``pool`` places among the gates of ``shares``:
    the same gates, a pool within an eighth of theirs, divided less than
    ``RESHARE_SECONDS`` ago."""
    pool = max(0, pool)
    return held is not None and held.keys() == shares.keys() and age < RESHARE_SECONDS \
        and abs(sum(held.values()) - pool) <= pool // RESHARE


def hand_out(zone: str, me: str, ledgers: Mapping[str, Ledger], targets: Counts,
             holdings: Counts, own_rights: int) -> dict[str, int]:
    """What the minter gives now, from what it holds beyond half its own target (its own
    share is not given away): up to its target, to each gate holding half its target or
    less."""
    gifts: dict[str, int] = {}
    left = own_rights - targets.get(me, 0) // 2
    for gate in sorted(targets):
        if gate == me or left <= 0:
            continue
        held = holdings.get(gate, 0)
        want = targets[gate] - held
        if want > 0 and held <= targets[gate] // 2:
            gifts[gate] = min(want, left)
            left -= gifts[gate]
    return gifts


def hand_back(zone: str, me: str, minter_ledger: Ledger | None, own_rights: int) -> int:
    """What a gate gives back to the minter: what it holds above its target (targets
    move seldom: see ``still_shared``)."""
    if minter_ledger is None or me == minter_ledger.gate:
        return 0
    target = minter_ledger.targets.get(zone, _EMPTY).get(me)
    if target is None:
        return 0
    return max(0, own_rights - int(target))
