"""Zones across gates on a real mosquitto: per-zone anti-passback, timed re-entry, resets,
ZONE_FULL across two gates, and a capped zone that a split cannot overfill."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kits.mesh import Broker, CutProxy, MeshGate, wait_for

from scanner.config.zones import parse_zones
from scanner.decide.model import Direction, Reason
from scanner.zones.book import ZoneBook
from scanner.zones.presence import Occupancy

USERS = ["A", "B", "control"]
IN, OUT = Direction.IN, Direction.OUT


class Clock:
    """The gates' wall clock, under the test's hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 5, 1, 19, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", USERS).start()
    yield b
    b.stop()


@pytest.fixture
def venue(tmp_path: Path, broker: Broker) -> Iterator[Any]:
    made: list[MeshGate] = []

    def gate(name: str, tables: list[dict[str, Any]], zone: str, *, clock: Clock | None = None,
             url: str | None = None, tickets: int = 12) -> MeshGate:
        book = ZoneBook(parse_zones(tables), name, zone, tz=UTC, minter="A", ready=False)
        g = MeshGate(tmp_path / name, name, broker, zones=book, clock=clock, url=url,
                     tickets=tickets).start()
        made.append(g)
        assert wait_for(lambda: book.ready), f"{name}: the zone book never got ready"
        return g

    yield gate
    for g in made:
        g.close()


def counts(g: MeshGate) -> dict[str, int]:
    assert g.zones is not None
    return g.zones.counts(g.gate.clock())


def rights(g: MeshGate, zone: str) -> int:
    assert g.zones is not None
    return g.zones.rights(zone)


def same_counts(*gates: MeshGate) -> bool:
    return all(counts(g) == counts(gates[0]) for g in gates)


NESTED = [{"id": "stand", "name": "Stand"}, {"id": "lounge", "parent": "stand"}]


def test_nested_zones_keep_anti_passback_per_zone(venue: Any) -> None:
    stand, lounge = venue("A", NESTED, "stand"), venue("B", NESTED, "lounge")
    assert stand.check(1).decision.granted
    assert wait_for(lambda: counts(lounge) == {"stand": 1, "lounge": 0})
    assert lounge.check(1).decision.granted          # inside the stand, into the lounge
    assert wait_for(lambda: counts(stand) == {"stand": 1, "lounge": 1})
    assert lounge.check(1).decision.reason is Reason.ALREADY_INSIDE
    assert stand.check(1).decision.reason is Reason.ALREADY_INSIDE
    assert lounge.check(1, OUT).decision.granted     # back in the stand, not out of it
    assert wait_for(lambda: counts(stand) == {"stand": 1, "lounge": 0})
    assert stand.check(1).decision.reason is Reason.ALREADY_INSIDE


def test_timed_reentry_across_gates(venue: Any) -> None:
    clock = Clock()
    tables = [{"id": "stand", "reentry_after": 30}]
    a, b = venue("A", tables, "stand", clock=clock), venue("B", tables, "stand", clock=clock)
    assert a.check(2).decision.granted
    assert wait_for(lambda: counts(b)["stand"] == 1)
    clock.now += timedelta(minutes=29)
    assert b.check(2).decision.reason is Reason.ALREADY_INSIDE
    clock.now += timedelta(minutes=1)
    again = b.check(2).decision
    assert again.granted and again.message.startswith("Welcome back")
    assert wait_for(lambda: counts(a)["stand"] == 1 == counts(b)["stand"])


def test_a_reset_at_a_time_of_day_clears_every_gates_count(venue: Any) -> None:
    clock = Clock()
    clock.now = datetime(2030, 5, 2, 3, 50, tzinfo=UTC)
    tables = [{"id": "grounds", "reset_at": "04:00"}]
    a, b = venue("A", tables, "grounds", clock=clock), venue("B", tables, "grounds", clock=clock)
    for n in (1, 2, 3):
        assert a.check(n).decision.granted
    assert wait_for(lambda: counts(b)["grounds"] == 3)
    assert b.check(1).decision.reason is Reason.ALREADY_INSIDE
    clock.now += timedelta(minutes=10)
    assert counts(a)["grounds"] == counts(b)["grounds"] == 0
    assert b.check(1).decision.reason is Reason.REENTRY_NOT_ALLOWED  # presence, not entries


@pytest.mark.slow
def test_zone_full_across_two_gates_and_a_place_again_after_an_exit(venue: Any) -> None:
    """Two gates share three places: three admissions in all, then ZONE_FULL at both;
    an exit at one frees a place again (at whichever gate the minter hands it to)."""
    tables = [{"id": "lounge", "name": "VIP lounge", "capacity": 3}]
    a, b = venue("A", tables, "lounge"), venue("B", tables, "lounge")
    results = []
    for n in range(1, 9):
        g = (a, b)[n % 2]
        wait_for(lambda g=g: rights(g, "lounge") > 0, 1)
        results.append((g.gate_id, g.check(n).decision.reason))
    granted = [n for n, (_, r) in enumerate(results, 1) if r is Reason.GRANTED]
    assert len(granted) == 3
    assert {r for _, r in results if r is not Reason.GRANTED} == {Reason.ZONE_FULL}
    assert {g for g, r in results[-2:]} == {"A", "B"}  # full at both gates
    assert wait_for(lambda: counts(a)["lounge"] == 3 == counts(b)["lounge"])
    assert b.check(granted[0], OUT).decision.granted
    assert wait_for(lambda: rights(a, "lounge") + rights(b, "lounge") == 1, 10)
    holder = a if rights(a, "lounge") > 0 else b
    waiting = next(n for n in range(1, 9) if n not in granted)
    assert holder.check(waiting).decision.granted
    assert wait_for(lambda: counts(a)["lounge"] == 3 == counts(b)["lounge"])


@pytest.mark.slow
def test_a_split_admits_no_more_than_capacity_and_converges(venue: Any, broker: Broker) -> None:
    """Each side admits until the places it held when the split began, never beyond the
    capacity by the union of both sides' records; after healing both count the same."""
    tables = [{"id": "stand", "capacity": 10}]
    proxy = CutProxy(broker.port)
    try:
        a = venue("A", tables, "stand", tickets=40)
        b = venue("B", tables, "stand", url=proxy.url, tickets=40)
        assert wait_for(lambda: rights(a, "stand") + rights(b, "stand") == 10
                        and rights(b, "stand") > 0)
        held = {"A": rights(a, "stand"), "B": rights(b, "stand")}
        proxy.cut()
        assert wait_for(lambda: not b.link.connected.is_set())
        admitted = {"A": 0, "B": 0}
        for n in range(1, 16):
            admitted["A"] += a.check(n).decision.granted
            admitted["B"] += b.check(20 + n).decision.granted
        assert admitted == held                      # each side: its share, then ZONE_FULL
        assert sum(admitted.values()) <= 10
        proxy.mend()
        assert wait_for(lambda: b.link.connected.is_set(), 20)
        assert wait_for(lambda: same_counts(a, b) and counts(a)["stand"] == 10, 20)
        truth = Occupancy(parse_zones(tables), {"A": "stand", "B": "stand"}.__getitem__,
                          tz=UTC)
        for r in a.mesh.records():
            if r.result == "OK":
                truth.add(r.ticket_id, r.hlc, r.scan_id, r.gate, r.direction, r.scanned_at)
        assert truth.counts(a.gate.clock())["stand"] == 10
        assert a.check(39).decision.reason is Reason.ZONE_FULL
    finally:
        proxy.close()
