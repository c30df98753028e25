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

A ledger is the word of whoever holds the venue's key, and a peer holding it could give
places it never held. So a gate counts gifts only along the two edges honest gates use
(minter to gate, gate to minter), and a giver's gifts only as far as what it could hold
covers them, by the ledgers and records the counting gate has (``received``): for the
minter, the places it made (never more than ``capacity - inside + spent``, ``makeable``:
each round makes only the places free then) and the hand-backs so counted; for another
gate, what the minter gave it; for both, less what they spent by the records, and never
below none. A giver that gave more than that loses the excess from each of its gifts, so
its receivers together never count more than it held; the minter counts what a gate holds
the same way (``holdings``), so one claiming gifts it could not make is topped up to its
share and no further. The cost is the honest race: a gate holding a giver's ledger newer
than the ledgers or records it rests on (a hand-back the minter passed on, an exit that
let it make places again) counts less of it, and may deny until it hears those too; and a
minter's overdraft (an exit from an inner zone, never refused) comes off its gifts until
its next round makes that place again.

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
# No venue makes this many places: a ledger count above it is malformed, and what is counted
# stays far inside every integer a ledger is saved or sent in (SQLite's, JSON's exact ones).
MAX_COUNT = 10**9
MAX_VERSION = 2**53      # a ledger version: one per change, and exact in any JSON reader


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
                or type(version) is not int or not 0 <= version <= MAX_VERSION:
            raise ValueError("not a ledger")
        return cls(gate, zone, minter, version, _counts(body["minted"]),
                   _nested(body["sent"]), _nested(body["targets"]))

    def bumped(self, **changes: Any) -> Ledger:
        fields = {**self.__dict__, **changes, "version": self.version + 1}
        return Ledger(**fields)


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and type(v) is int and 0 <= v <= MAX_COUNT
            for k, v in value.items()):
        raise ValueError(f"not a ledger (counts are whole numbers from 0 to {MAX_COUNT})")
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


def received(zone: str, minter: str, ledgers: Mapping[str, Ledger], spent: Counts,
             most: int) -> dict[str, int]:
    """The places each gate of ``ledgers`` was given in ``zone``, as counted (the module's
    docstring): from the minter, or for the minter from the others, each giver's gifts
    less what it gave beyond what it could hold. ``spent``: each gate's spends by the
    records held; ``most``: the most places the minter can have made (``makeable``)."""
    return _gifts(zone, minter, ledgers, spent, most)[0]


def holdings(zone: str, minter: str, ledgers: Mapping[str, Ledger], spent: Counts,
             most: int) -> dict[str, int]:
    """What each gate of ``ledgers`` holds in ``zone`` as the minter counts it: less what
    it gave back as counted, not as its ledger says, so a gate claiming gifts it could
    not make looks no emptier than it is, and is topped up no more than another."""
    got, back = _gifts(zone, minter, ledgers, spent, most)
    return {gate: rights(zone, gate, ledgers, spent, got, most) if gate == minter
            else made(ledger, zone, most) + got[gate] - back[gate] - spent.get(gate, 0)
            for gate, ledger in ledgers.items()}


def received_by(zone: str, gate: str, minter: str, ledgers: Mapping[str, Ledger],
                backs: int, minter_spent: int, most: int) -> int:
    """``received``'s count for ``gate`` alone, from the sum of every other gate's
    ``handed_back`` (``backs``), which a caller can keep as records and ledgers arrive: a
    decision then asks in constant time, not in time growing with the venue's gates."""
    if gate == minter:
        return backs
    if gate not in ledgers:
        return 0
    mint = ledgers.get(minter)
    if mint is None:
        return 0
    return max(0, mint.given(zone, gate) - _minter_beyond(mint, zone, most, backs,
                                                          minter_spent))


def handed_back(zone: str, giver: Ledger, minter: str, mint: Ledger | None,
                spent: int) -> int:
    """What ``giver`` (not the minter) gave the minter in ``zone``, as counted: no more
    than it could hold, the minter's gifts to it less its ``spent``."""
    holds = (mint.given(zone, giver.gate) if mint else 0) - spent
    return _covered(giver, zone, minter, holds)


def _gifts(zone: str, minter: str, ledgers: Mapping[str, Ledger], spent: Counts,
           most: int) -> tuple[dict[str, int], dict[str, int]]:
    """``received``, and what each gate gave the minter as counted."""
    got = dict.fromkeys(ledgers, 0)
    back = dict.fromkeys(ledgers, 0)
    mint = ledgers.get(minter)
    for gate, ledger in ledgers.items():
        if gate != minter:
            back[gate] = handed_back(zone, ledger, minter, mint, spent.get(gate, 0))
    got[minter] = sum(back.values())
    if mint is not None:
        # Once, not once per receiver: 60 gates' sums.
        beyond = _minter_beyond(mint, zone, most, got[minter], spent.get(minter, 0))
        for gate in ledgers:
            if gate != minter:
                got[gate] = max(0, mint.given(zone, gate) - beyond)
    return got, back


def _minter_beyond(mint: Ledger, zone: str, most: int, backs: int, spent: int) -> int:
    """What the minter gave beyond what it held: the places it made (as counted) and the
    hand-backs so counted (``backs``), less what it ``spent``."""
    return _beyond(mint, zone, made(mint, zone, most) + backs - spent)


def _covered(giver: Ledger, zone: str, to: str, holds: int) -> int:
    """``giver``'s gift to ``to``, less all it gave beyond ``holds``: the gifts so counted
    by every receiver together never pass what it held."""
    return max(0, giver.given(zone, to) - _beyond(giver, zone, holds))


def _beyond(giver: Ledger, zone: str, holds: int) -> int:
    """What ``giver`` gave in ``zone`` beyond what it held (``holds``), if anything."""
    return max(0, giver.given_total(zone) - max(0, holds))


def makeable(capacity: int, inside: int, spent_total: int) -> int:
    """The most places a minter can have made by now: a round makes the places free then,
    up to ``capacity - inside + spent`` in all, and since an admission adds one to both
    the people inside and the places spent, no later record lowers that sum but an exit,
    which the counting gate may not have heard yet (then it counts too few)."""
    return capacity - inside + spent_total


def made(ledger: Ledger, zone: str, most: int) -> int:
    """The places ``ledger``'s gate made in ``zone``, as counted: never more than
    ``most`` (``makeable``)."""
    return max(0, min(ledger.minted.get(zone, 0), most))


def rights(zone: str, me: str, ledgers: Mapping[str, Ledger], spent: Counts, got: Counts,
           most: int, pending: int = 0) -> int:
    """The places ``me`` holds in ``zone``: made + received - given - spent (``got``:
    ``received``'s, ``pending``: places kept for scans not recorded yet). ``ledgers``
    holds ``me``'s own (current) ledger too."""
    own = ledgers.get(me)
    if own is None:
        return got.get(me, 0) - spent.get(me, 0) - pending
    return made(own, zone, most) + got.get(me, 0) - own.given_total(zone) \
        - spent.get(me, 0) - pending


def free_to_mint(capacity: int, inside: int, ledgers: Mapping[str, Ledger], zone: str,
                 spent_total: int) -> int:
    """Places free and held by no gate: ``capacity - inside - (made - spent)`` (rights
    in transit between gates are held by someone: given counts cancel out)."""
    making = sum(ledger.minted.get(zone, 0) for ledger in ledgers.values())
    return max(0, capacity - inside - (making - spent_total))


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
