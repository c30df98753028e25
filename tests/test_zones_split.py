"""Escrowed places across a split mesh, simulated: gates decide with their own books and
hear each other only within their side of a split; no capped zone ever holds more than
its capacity by the union of every gate's records, and after healing the counts agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.config.zones import parse_zones
from scanner.decide import Direction, PastScan, Policy, ScanHistory, decide
from scanner.tickets import Ticket
from scanner.zones.book import ZoneBook
from scanner.zones.escrow import Ledger
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
