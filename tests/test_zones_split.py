"""Escrowed places across a split mesh, simulated: gates decide with their own books and
hear each other only within their side of a split; no capped zone ever holds more than
its capacity by the union of every gate's records, and after healing the counts agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.config.zones import parse_zones
from scanner.decide import Direction, PastScan, Policy, ScanHistory, decide
from scanner.tickets import Ticket
from scanner.zones.book import ZoneBook
from scanner.zones.escrow import MAX_COUNT, Ledger
from scanner.zones.presence import Occupancy

NOW = datetime(2030, 5, 1, 20, 0, tzinfo=UTC)
POLICY = Policy(multi_checkin=True)


def ticket(n: int) -> Ticket:
    return Ticket(id=f"t{n}", barcode=f"CODE{n:08d}", event_id="ev", status="VALID",
                  ticket_type_id="tt", ticket_name="GA", seller_id="s",
                  created_at="2030-01-01T00:00:00.000Z", updated_at="2030-01-01T00:00:00.000Z")


@dataclass
class Rec:
    scan_id: str
    gate: str
    key: str
    ticket: str
    direction: str
    at: str


@dataclass
class SimGate:
    book: ZoneBook
    records: dict[str, Rec] = field(default_factory=dict)  # every record heard, own included
    ledger: Ledger | None = None


class Venue:
    """Gates, a global stamp order, and a network that may be split in two sides."""

    def __init__(self, tables: list[dict[str, Any]], gates: dict[str, str]) -> None:
        self.tree = parse_zones(tables)
        minter = min(gates)
        self.gates = {g: SimGate(ZoneBook(self.tree, g, z, tz=UTC, minter=minter))
                      for g, z in gates.items()}
        self.sides: list[set[str]] = [set(gates)]
        self.clock = 0
        self.now = NOW
        # gate -> its ledger as a hostile peer with the venue's key publishes it instead
        self.forged: dict[str, Callable[[int], Ledger]] = {}

    def side(self, gate: str) -> set[str]:
        return next(s for s in self.sides if gate in s)

    def scan(self, gate: str, n: int, direction: Direction) -> bool:
        g = self.gates[gate]
        self.clock += 1
        self.now += timedelta(seconds=1)
        scans = sorted((r for r in g.records.values() if r.ticket == f"t{n}"),
                       key=lambda r: r.key)
        history = g.book.project(ScanHistory(tuple(
            PastScan(Direction(r.direction), r.at, r.gate) for r in scans)), self.now)
        scan_id = f"{gate}-{self.clock}"
        decision = decide(ticket(n), history, POLICY, direction, self.now,
                          barcode=ticket(n).barcode)
        decision = g.book.judge(decision, history, self.now, scan_id)
        if decision.granted:
            rec = Rec(scan_id, gate, f"{self.clock:08d}", f"t{n}", direction.value,
                      self.now.isoformat())
            g.records[scan_id] = rec
            g.book.record(rec.scan_id, rec.gate, rec.key, rec.ticket, rec.direction, "OK",
                          rec.at)
        return decision.granted

    def exchange(self) -> None:
        """Every side's gates tick and hear each other's ledgers and records."""
        for _ in range(2):
            for name, g in self.gates.items():
                mine = g.book.tick(self.now, self.side(name))
                g.ledger = mine or g.book.ledger()
                if name in self.forged:
                    g.ledger = self.forged[name](self.clock + 10**6)
            for side in self.sides:
                for name in side:
                    g = self.gates[name]
                    for other in side - {name}:
                        peer = self.gates[other]
                        if peer.ledger is not None:
                            g.book.hear(peer.ledger)
                        for rec in list(peer.records.values()):
                            if rec.scan_id not in g.records and rec.gate == other:
                                g.records[rec.scan_id] = rec
                                g.book.record(rec.scan_id, rec.gate, rec.key, rec.ticket,
                                              rec.direction, "OK", rec.at)

    def truth(self) -> dict[str, int]:
        """Each zone's count by the union of every gate's records."""
        everyone = {}
        for g in self.gates.values():
            everyone.update(g.records)
        book = ZoneBook(self.tree, "truth", None, tz=UTC, observer=True)
        for g in self.gates.values():
            if g.ledger is not None:
                book.hear(g.ledger)
        occupancy: Occupancy = book.occupancy
        for r in everyone.values():
            occupancy.add(r.ticket, r.key, r.scan_id, r.gate, r.direction, r.at)
        return occupancy.counts(self.now)


TABLES = [{"id": "grounds", "capacity": 6}, {"id": "stand", "parent": "grounds",
                                              "capacity": 3}]
GATES = {"a": "grounds", "b": "grounds", "c": "stand", "d": "stand"}

scans = st.tuples(st.just("scan"), st.sampled_from(sorted(GATES)), st.integers(0, 15),
                  st.sampled_from([Direction.IN, Direction.IN, Direction.OUT]))
steps = st.lists(st.one_of(
    scans, scans, scans, scans,
    st.tuples(st.just("split"), st.sets(st.sampled_from(sorted(GATES)), min_size=1,
                                        max_size=3)),
    st.tuples(st.just("heal")),
    st.tuples(st.just("exchange")),
), max_size=120)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_no_split_ever_overfills_a_capped_zone(plan: list[tuple[Any, ...]]) -> None:
    venue = Venue(TABLES, GATES)
    venue.exchange()
    for step in plan:
        if step[0] == "scan":
            venue.scan(step[1], step[2], step[3])
        elif step[0] == "split":
            venue.sides = [set(step[1]), set(GATES) - set(step[1])]
        elif step[0] == "heal":
            venue.sides = [set(GATES)]
        else:
            venue.exchange()
        truth = venue.truth()
        assert truth["grounds"] <= 6 and truth["stand"] <= 3, (step, truth)
    venue.sides = [set(GATES)]
    venue.exchange()
    truth = venue.truth()
    for g in venue.gates.values():
        assert g.book.counts(venue.now) == truth


def test_both_sides_admit_their_share_then_deny_and_converge_after_healing() -> None:
    venue = Venue([{"id": "stand", "capacity": 10}], {"a": "stand", "b": "stand"})
    venue.exchange()
    venue.sides = [{"a"}, {"b"}]
    admitted = {g: sum(venue.scan(g, n + (100 if g == "b" else 0), Direction.IN)
                       for n in range(20)) for g in ("a", "b")}
    assert admitted == {"a": 5, "b": 5}          # shares of the 10 free when it split
    assert venue.truth()["stand"] == 10
    venue.sides = [{"a", "b"}]
    venue.exchange()
    assert {g: v.book.counts(venue.now)["stand"] for g, v in venue.gates.items()} == \
        {"a": 10, "b": 10}
    assert not venue.scan("a", 50, Direction.IN)  # full, everywhere
    assert venue.scan("b", 100, Direction.OUT)
    venue.exchange()
    assert venue.scan("a", 50, Direction.IN)      # one left, one place again


def test_ledgers_stay_quiet_while_places_are_plenty_and_every_gate_keeps_some() -> None:
    """Every ledger change goes to every gate: topping a gate up on each admission, and
    dividing the shares anew each time the free places move, sent several per scan."""
    gates = {g: "stand" for g in "abcdef"}
    venue = Venue([{"id": "stand", "capacity": 600}], gates)
    venue.exchange()

    def versions() -> int:
        return sum(g.book.ledger().version for g in venue.gates.values())  # type: ignore[union-attr]

    before = versions()
    admitted = 0
    for n in range(120):
        admitted += venue.scan("abcdef"[n % 6], n, Direction.IN)
        venue.exchange()
    assert admitted == 120
    assert versions() - before <= 20, versions() - before   # a top-up per gate or two
    assert all(v.book.rights("stand") > 0 for v in venue.gates.values())


def test_gates_joining_in_batches_all_end_up_holding_places_the_minter_too() -> None:
    """Shares shrink as gates join: what the first gates hold above their new targets
    goes back, and the minter keeps its own share, so no gate is left denying."""
    names = [f"g{i:02d}" for i in range(24)]
    venue = Venue([{"id": "stand", "capacity": 480}], dict.fromkeys(names, "stand"))
    for joined in range(4, 25, 4):
        venue.sides = [set(names[:joined]), set(names[joined:])] if joined < 24 \
            else [set(names)]
        venue.exchange()
    venue.exchange()
    held = {g: v.book.rights("stand") for g, v in venue.gates.items()}
    assert min(held.values()) >= 480 // 24 // 2, held
    assert sum(held.values()) == 480


BIG = 10**6
FORGERIES: dict[str, Callable[[str], Callable[[int], Ledger]]] = {
    # a gate hands the minter and every other gate far more than it was ever given
    "a gate gives a million": lambda x: lambda v: Ledger(
        x, "stand", "a", v, {}, {"stand": dict.fromkeys("abcd", BIG),
                                 "grounds": dict.fromkeys("abcd", BIG)}, {}),
    # gifts between two gates, neither the minter: no honest gate gives so
    "a gate gives to a third": lambda x: lambda v: Ledger(
        x, "stand", "a", v, {"stand": BIG}, {"stand": {"c": BIG, "d": BIG},
                                             "grounds": {"b": BIG}}, {}),
    # the largest counts a ledger may carry, everywhere
    "counts at their bound": lambda x: lambda v: Ledger(
        x, "stand", "a", v, {"stand": MAX_COUNT, "grounds": MAX_COUNT},
        {z: dict.fromkeys("abcd", MAX_COUNT) for z in ("stand", "grounds")},
        {z: dict.fromkeys("abcd", MAX_COUNT) for z in ("stand", "grounds")}),
}


def admit_everyone(venue: Venue, honest: list[str], tickets: int = 40) -> None:
    """Each honest gate tries ``tickets`` new tickets in turn, a few people leave, the
    gates talk between scans. Throughout, no zone holds more than its capacity, and the
    places the honest gates hold, each by its own count, are no more than those free."""
    for n in range(tickets):
        gate = honest[n % len(honest)]
        venue.scan(gate, n, Direction.IN)
        if n % 7 == 6:
            venue.scan(gate, n - 1, Direction.OUT)
        venue.exchange()
        truth = venue.truth()
        assert truth["grounds"] <= 6 and truth["stand"] <= 3, (n, truth)
        for zone, cap in (("grounds", 6), ("stand", 3)):
            held = sum(max(0, venue.gates[g].book.rights(zone)) for g in honest)
            assert held <= cap - truth[zone], (n, zone, held, truth)


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_ledger_of_a_gate_never_lets_another_overfill(forgery: str) -> None:
    """A peer with the venue's key publishes a ledger giving places it never held: the
    honest gates count none of them, and the minter tops it up to its share only (as
    empty as its gifts make it look, it would have every place), so the others still
    fill all the grounds but the place or so of that share."""
    venue = Venue(TABLES, {**GATES, "x": "stand"})
    venue.forged["x"] = FORGERIES[forgery]("x")
    venue.exchange()
    admit_everyone(venue, sorted(GATES))
    assert venue.truth()["grounds"] >= 5


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_ledger_of_the_minter_never_lets_a_gate_overfill(forgery: str) -> None:
    """The minter's own ledger forged: places made beyond what was ever free, given to
    every gate, are not counted beyond what the records say it could have made."""
    venue = Venue(TABLES, GATES)
    venue.forged["a"] = FORGERIES[forgery]("a")
    venue.exchange()
    admit_everyone(venue, ["b", "c", "d"])


forged_counts = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "x"]),
                                st.sampled_from([0, 1, 2, 5, BIG, MAX_COUNT]), max_size=5)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["a", "x"]), st.dictionaries(st.sampled_from(["stand", "grounds"]),
                                                    forged_counts, max_size=2),
       st.sampled_from([0, 3, BIG, MAX_COUNT]), steps)
def test_no_forged_gift_ever_overfills_a_capped_zone(
        forger: str, sent: dict[str, dict[str, int]], minted: int,
        plan: list[tuple[Any, ...]]) -> None:
    """Any gifts a forged ledger claims, by the minter or another gate, through splits: no
    zone overfills, and the honest gates hold no more places than are free."""
    venue = Venue(TABLES, {**GATES, "x": "stand"})
    venue.forged[forger] = lambda v: Ledger(forger, "stand", "a", v,
                                            {"stand": minted, "grounds": minted}, sent, {})
    venue.exchange()
    for step in plan:
        if step[0] == "scan":
            if step[1] != forger:
                venue.scan(step[1], step[2], step[3])
        elif step[0] == "split":
            venue.sides = [set(step[1]) | {"x"}, set(GATES) - set(step[1])]
        elif step[0] == "heal":
            venue.sides = [set(venue.gates)]
        else:
            venue.exchange()
        truth = venue.truth()
        assert truth["grounds"] <= 6 and truth["stand"] <= 3, (step, truth)
        for zone, cap in (("grounds", 6), ("stand", 3)):
            held = sum(max(0, venue.gates[g].book.rights(zone)) for g in GATES if g != forger)
            assert held <= cap - truth[zone], (step, zone, held, truth)
