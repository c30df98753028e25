"""A gate's zone book: the zone state of one gate (or the control room), fed and asked.

The book holds what ``presence`` and ``escrow`` need and nothing else does: the zone tree,
every gate's ledger (so its zone), every granted scan it has heard of, the places this
gate holds, and the recent traffic by gate. The gatekeeper asks it to project a history
and to judge a decision; the mesh feeds it records and ledgers and asks ``tick`` for the
ledger to publish. Pure: time is passed in, and nothing here reads a clock, a file or the
network, so the same book runs in a gate, in the control room and in a simulated split.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from scanner.config.zones import ZoneTree
from scanner.decide.model import Decision, Direction, ScanHistory
from scanner.tickets import parse_iso, utc_iso
from scanner.zones import escrow
from scanner.zones.escrow import Ledger
from scanner.zones.presence import Occupancy, reset_marks, zone_history
from scanner.zones.rules import capacity, reenter


def provisional_key(scanned_at: str, gate: str) -> str:
    """A stamp for an own scan not stamped yet, in HLC text's shape (``scanner.mesh.hlc``):
    its millisecond, after any counter, so it orders after what this gate stamped then."""
    try:
        ms = int(parse_iso(scanned_at).timestamp() * 1000)
    except ValueError:
        ms = 0
    return f"{ms:013d}-999999-{gate}"


# Shares follow the admissions of the last this many minutes (one more for every gate, so a
# quiet gate still holds a place or two).
TRAFFIC_MINUTES = 10
# The people inside, which bound what the minter can have made (``escrow.makeable``), are
# counted by a round at most this often: a count is tens of milliseconds at a large venue,
# never on the scan path. In between, the bound grows by one for every exit heard since
# (the most an exit frees) and by nothing for an admission (it spends a place as it
# fills one), so waiting for the count neither lets a forged ledger through nor keeps a
# place made from an exit this gate has heard.
INSIDE_SECONDS = 2.0


class ZoneBook:
    """``gate`` is this gate's id, ``zone`` its zone (None: the default zone); ``ledger``
    the one it published last (kept across restarts: its counts only grow); ``minter`` the
    gate that makes places (``escrow.may_mint``; None: this one, a gate alone). ``observer``
    (the control room) counts and never holds or makes a place."""

    def __init__(self, tree: ZoneTree, gate: str, zone: str | None, *, tz: tzinfo,
                 minter: str | None = None, ledger: Ledger | None = None,
                 observer: bool = False, ready: bool = True) -> None:
        self.tree = tree
        self.gate = gate
        self.minter = minter or gate
        # Until ready (``scanner.mesh.zoning``: a gate without a saved ledger first hears
        # whether the broker holds one of its own), and for good once forfeited (it did:
        # this gate's database lost what it had given and spent), it uses no place.
        self.ready = ready
        self.forfeited = False
        self.zone = tree.resolve(zone)
        self.observer = observer
        self._lock = threading.RLock()
        self._ledgers: dict[str, Ledger] = {}
        if not observer:
            self._ledgers[gate] = ledger if ledger is not None and ledger.gate == gate \
                else Ledger(gate, self.zone, self.minter)
            if self._ledgers[gate].zone != self.zone:
                self._ledgers[gate] = self._ledgers[gate].bumped(zone=self.zone)
        self.occupancy = Occupancy(tree, self.zone_of, tz=tz)
        self._tz = tz
        self._seen: set[str] = set()
        self._ins: Counter[str] = Counter()
        self._outs: Counter[str] = Counter()
        self._pending: dict[str, list[str]] = {}   # own scan id -> zones spent, not recorded
        self._traffic: Counter[tuple[str, str]] = Counter()  # (gate, minute) -> admissions
        self._online: set[str] = set()                       # as the last tick was told
        self._shared_at: dict[str, datetime] = {}   # zone -> when the minter last divided
        # Zone -> the most places the minter can have made, as a round counted the people
        # inside last (``INSIDE_SECONDS``), and the exits heard by then (``rights``).
        self._makeable: dict[str, int] = {}
        self._counted_at: datetime | None = None
        self._counted_outs = 0
        self._outs_total = 0
        # Capped zone -> gate -> its spends, and what it handed back to the minter as
        # counted (``escrow.handed_back``), with their sums: kept as each record and ledger
        # arrives, so a decision asks for this gate's places in constant time (the sums
        # over every gate took a millisecond per decision at a venue of 60 gates).
        self._spends: dict[str, dict[str, int]] = {z.id: {} for z in tree.capped()}
        self._spend_sums = dict.fromkeys(self._spends, 0)
        self._backs: dict[str, dict[str, int]] = {z: {} for z in self._spends}
        self._back_sums = dict.fromkeys(self._spends, 0)
        self._kept(self._ledgers)

    # -- what the gate asks -------------------------------------------------------------

    def zone_of(self, gate: str) -> str:
        if gate == self.gate and not self.observer:
            return self.zone
        ledger = self._ledgers.get(gate)
        return self.tree.resolve(ledger.zone if ledger else None)

    def project(self, history: ScanHistory, now: datetime) -> ScanHistory:
        """The ticket's history as seen from this gate's zone (anti-passback per zone)."""
        return zone_history(history, self.tree, self.zone_of, self.zone,
                            reset_marks(self.tree, now, self._tz))

    def judge(self, decision: Decision, history: ScanHistory, now: datetime,
              scan_id: str) -> Decision:
        """``decision`` (made on ``history``, already projected) after timed re-entry and
        capacity; a place taken here is spent under ``scan_id``."""
        return self.admit(reenter(decision, self.tree[self.zone], history, now), now,
                          scan_id)

    def admit(self, decision: Decision, now: datetime, scan_id: str) -> Decision:
        """``decision`` after capacity: an admission into a capped zone, or a ticket held
        before one, keeps a place under ``scan_id`` until ``decided`` counts it or
        ``release`` gives it back; ZONE_FULL when there is none."""
        return capacity(decision, self.tree, self.zone,
                        lambda zones: self._take(zones, scan_id, now))

    def release(self, scan_id: str) -> bool:
        """Give back the place kept under ``scan_id`` (a held ticket refused or timed out,
        an entry never journaled); True if one was kept. Kept places live only here, never
        in the journal: a gate restarted while holding one has it back from the records."""
        with self._lock:
            return self._pending.pop(scan_id, None) is not None

    def decided(self, decision: Decision, scan_id: str, scanned_at: str) -> None:
        """This gate's own journaled decision, counted at once under a provisional stamp
        (its mesh record re-keys it when the link stamps it)."""
        if decision.granted:
            self.record(scan_id, self.gate, provisional_key(scanned_at, self.gate),
                        decision.ticket.id if decision.ticket else None,
                        decision.direction, "OK", scanned_at, provisional=True)

    def rights(self, zone: str) -> int:
        """The places this gate holds in ``zone`` now."""
        with self._lock:
            pending = sum(zone in zones for zones in self._pending.values())
            spends = self._spends.get(zone, {})
            exits = self._outs_total - self._counted_outs
            most = self._makeable.get(zone, self._capacity(zone)
                                      + self._spend_sums.get(zone, 0)) + exits
            mine = {self.gate: spends.get(self.gate, 0)}
            got = {self.gate: escrow.received_by(
                zone, self.gate, self.minter, self._ledgers, self._back_sums.get(zone, 0),
                spends.get(self.minter, 0), most)}
            held = escrow.rights(zone, self.gate, self._ledgers, mine, got, most, pending)
            return held if self.ready and not self.forfeited else min(held, 0)

    # -- what the mesh feeds ------------------------------------------------------------

    def record(self, scan_id: str, gate: str, key: str, ticket: str | None, direction: str,
               result: str, at: str, *, provisional: bool = False) -> bool:
        """One scan of any gate (``key``: its HLC stamp, or a provisional one); denials
        are ignored. Idempotent by scan id for the sums; a stamp arriving later only
        re-keys the ticket's place. True if it was new."""
        if result != "OK":
            return False
        with self._lock:
            new = scan_id not in self._seen
            if new:
                self._seen.add(scan_id)
                (self._ins if direction == Direction.IN else self._outs)[gate] += 1
                if direction == Direction.IN:
                    self._traffic[gate, at[:16]] += 1
                else:
                    self._outs_total += 1
                self._pending.pop(scan_id, None)
                self._kept((gate,))
        self.occupancy.add(ticket, key, scan_id, gate, direction, at, provisional=provisional)
        return new

    def hear(self, ledger: Ledger) -> bool:
        """A gate's ledger; True if it replaced the one held (a newer version). This gate's
        own, newer than the one it holds (its database was replaced or restored), is taken
        back, so it never gives the same places twice; as its own spent places went with its
        records, it then uses none of those it holds (they are lost to the venue until its
        capacity is set again, which is the price of never overfilling)."""
        with self._lock:
            held = self._ledgers.get(ledger.gate)
            if not escrow.newer(held, ledger):
                return False
            self._ledgers[ledger.gate] = ledger
            if ledger.gate == self.gate and not self.observer:
                self.forfeited = True
            self._ledger_changed(ledger.gate)
        if held is None or held.zone != ledger.zone:
            self.occupancy.changed_zones()
        return True

    def ledger(self) -> Ledger | None:
        with self._lock:
            return None if self.observer else self._ledgers[self.gate]

    def ledgers(self) -> dict[str, Ledger]:
        with self._lock:
            return dict(self._ledgers)

    def tick(self, now: datetime, online: Collection[str]) -> Ledger | None:
        """One round of the escrow: make rights if this gate is the minter, hand
        them out by traffic (minter) or hand back what is above the target (others).
        ``online``: the gates the mesh hears now (this one included or not). Returns the
        new own ledger to publish, or None when nothing changed."""
        if self.observer:
            return None
        with self._lock:
            self._online = set(online)
            own = self._ledgers[self.gate]
            minter = self.minter
            before = own
            if own.minter != minter or own.zone != self.zone:
                own = own.bumped(minter=minter, zone=self.zone)
            self._ledgers[self.gate] = own
            # A gate whose records are held but whose ledger is not: its zone, so its
            # spends, are unknown, and a sum without them could make too many rights.
            unknown = ({*self._ins, *self._outs} - set(self._ledgers))
            minting = escrow.may_mint(self.gate, minter, self._ledgers) and not unknown
            if not minting and (self._counted_at is None or abs(
                    (now - self._counted_at).total_seconds()) >= INSIDE_SECONDS):
                self._count_makeable(self.occupancy.counts(now), now)  # (_mint counts)
            if minting:
                own = self._mint(now, set(online) | {self.gate})
            elif minter in online:
                own = self._hand_back(minter)
            self._ledgers[self.gate] = own
            if own is not before:
                self._ledger_changed(self.gate)
            return own if own is not before else None

    # -- views ----------------------------------------------------------------------------

    def counts(self, now: datetime) -> dict[str, int]:
        return self.occupancy.counts(now)

    def snapshot(self, now: datetime) -> dict[str, Any]:
        """Every zone with its count, capacity and the places this gate holds."""
        counts = self.counts(now)
        zones = []
        for zone in self.tree:
            item: dict[str, Any] = {"id": zone.id, "name": zone.label, "parent": zone.parent,
                                    "inside": counts.get(zone.id, 0),
                                    "capacity": zone.capacity, "when_full": zone.when_full}
            if zone.capacity is not None and not self.observer:
                item["held_here"] = self.rights(zone.id)
            zones.append(item)
        return {"at": utc_iso(now), "zones": zones,
                "gates": {g: self.zone_of(g) for g in sorted(self._ledgers)}}

    # -- inside ---------------------------------------------------------------------------

    def _take(self, zones: list[str], scan_id: str, now: datetime) -> list[str]:
        """Spend one place in each of ``zones`` if each has one; else the zones without.
        A zone that warns when full is spent from anyway (an overdraft the minter sees).
        Without a ``scan_id`` (a preview) nothing is spent."""
        with self._lock:
            if self.observer:
                return []
            empty = [z for z in zones if self.rights(z) < 1]
            if empty and escrow.may_mint(self.gate, self.minter, self._ledgers):
                # The minter need not wait for its next round to find places freed.
                before = self._ledgers[self.gate]
                self._ledgers[self.gate] = self._mint(now, self._online | {self.gate})
                if self._ledgers[self.gate] is not before:
                    self._ledger_changed(self.gate)
                empty = [z for z in zones if self.rights(z) < 1]
            if scan_id and not [z for z in empty if self.tree[z].when_full == "deny"]:
                self._pending[scan_id] = list(zones)
            return empty

    def _spent(self, gate: str, zone: str) -> int:
        """Rights ``gate`` has spent in ``zone``, by the records held (``rules.spends``)."""
        path = self.tree.path(self.zone_of(gate))
        return (self._ins[gate] if zone in path else 0) + \
            (self._outs[gate] if zone in path[1:] else 0)

    def _kept(self, gates: Iterable[str]) -> None:
        """Bring ``_spends`` and ``_backs`` up to date for ``gates``, whose records or
        ledger just changed (every gate when the minter's ledger did: each hand-back is
        counted against it)."""
        mint = self._ledgers.get(self.minter)
        for gate in list(gates):
            ledger = self._ledgers.get(gate)
            for zone, spends in self._spends.items():
                spent = self._spent(gate, zone)
                self._spend_sums[zone] += spent - spends.get(gate, 0)
                spends[gate] = spent
                backs = self._backs[zone]
                back = escrow.handed_back(zone, ledger, self.minter, mint, spent) \
                    if ledger is not None and gate != self.minter else 0
                self._back_sums[zone] += back - backs.get(gate, 0)
                backs[gate] = back

    def _ledger_changed(self, gate: str) -> None:
        """``gate``'s ledger was replaced: its own sums move, and every gate's when it is
        the minter's."""
        self._kept(self._ledgers if gate == self.minter else (gate,))

    def _capacity(self, zone: str) -> int:
        return self.tree[zone].capacity or 0

    def _count_makeable(self, counts: dict[str, int], now: datetime) -> None:
        self._makeable = {
            z.id: escrow.makeable(self._capacity(z.id), counts.get(z.id, 0),
                                  self._spend_sums[z.id])
            for z in self.tree.capped()}
        self._counted_at, self._counted_outs = now, self._outs_total

    def _mint(self, now: datetime, online: set[str]) -> Ledger:
        own = self._ledgers[self.gate]
        counts = self.occupancy.counts(now)
        self._count_makeable(counts, now)
        minted = dict(own.minted)
        sent = {z: dict(s) for z, s in own.sent.items()}
        targets: dict[str, dict[str, int]] = {}
        weights = self._weights(now)
        for zone in self.tree.capped():
            assert zone.capacity is not None
            inside = counts.get(zone.id, 0)
            spent = self._spends[zone.id]
            free = escrow.free_to_mint(zone.capacity, inside, self._ledgers, zone.id,
                                       self._spend_sums[zone.id])
            if free:
                minted[zone.id] = minted.get(zone.id, 0) + free
            eligible = [g for g in self._ledgers if self.tree.within(self.zone_of(g), zone.id)]
            most = self._makeable[zone.id]   # counted above, from these counts and spends
            held_by = escrow.holdings(zone.id, self.gate, self._ledgers, spent, most)
            holdings = {g: held_by[g] for g in eligible}
            away = sum(max(0, holdings[g]) for g in eligible if g not in online)
            share = {g: weights.get(g, 0) + 1.0 for g in eligible if g in online}
            pool = zone.capacity - inside - away
            held = own.targets.get(zone.id)
            age = (now - self._shared_at[zone.id]).total_seconds() \
                if zone.id in self._shared_at else escrow.RESHARE_SECONDS
            if held is not None and escrow.still_shared(held, pool, share, age):
                targets[zone.id] = dict(held)
            else:
                targets[zone.id] = escrow.divide(pool, share)
                self._shared_at[zone.id] = now
            draft = Ledger(self.gate, own.zone, own.minter, own.version, minted, sent, targets)
            drafted = {**self._ledgers, self.gate: draft}
            mine = escrow.rights(zone.id, self.gate, drafted, spent,
                                 escrow.received(zone.id, self.gate, drafted, spent, most),
                                 most)
            for gate, gift in escrow.hand_out(zone.id, self.gate, self._ledgers,
                                              targets[zone.id], holdings, mine).items():
                sent.setdefault(zone.id, {})[gate] = \
                    sent.get(zone.id, {}).get(gate, 0) + gift
        if minted == own.minted and sent == own.sent and targets == own.targets:
            return own
        return own.bumped(minted=minted, sent=sent, targets=targets)

    def _hand_back(self, minter: str) -> Ledger:
        own = self._ledgers[self.gate]
        sent = {z: dict(s) for z, s in own.sent.items()}
        for zone in self.tree.capped():
            back = escrow.hand_back(zone.id, self.gate, self._ledgers.get(minter),
                                    self.rights(zone.id))
            if back:
                sent.setdefault(zone.id, {})[minter] = \
                    sent.get(zone.id, {}).get(minter, 0) + back
        return own if sent == own.sent else own.bumped(sent=sent)

    def _weights(self, now: datetime) -> Mapping[str, float]:
        since = utc_iso(now - timedelta(minutes=TRAFFIC_MINUTES))[:16]
        weights: Counter[str] = Counter()
        for (gate, minute), n in list(self._traffic.items()):
            if minute < since:
                del self._traffic[gate, minute]
            else:
                weights[gate] += n
        return weights


def seed(book: ZoneBook, ledgers: Iterable[Ledger], records: Iterable[Any],
         journal: Iterable[dict[str, Any]]) -> None:
    """A book filled at start: the ledgers saved, every gate's records held (mesh
    records: ``scanner.mesh.message.Record``), then this gate's own journaled scans the
    mesh has not stamped yet (all of them for a gate alone), in journal order. An annulled
    grant (its holder did not pass) placed no one."""
    for ledger in ledgers:
        if ledger.gate != book.gate:
            book.hear(ledger)
    stamped: set[str] = set()
    for r in records:
        stamped.add(r.scan_id)
        book.record(r.scan_id, r.gate, r.hlc, r.ticket_id, r.direction, r.result,
                    r.scanned_at)
    for row in journal:
        if row["scan_id"] in stamped or row["result"] != "OK" or row.get("passed") is False:
            continue
        book.record(row["scan_id"], book.gate, provisional_key(row["scanned_at"], book.gate),
                    row["ticket_id"], row["direction"], "OK", row["scanned_at"],
                    provisional=True)
