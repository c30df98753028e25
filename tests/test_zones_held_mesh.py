"""A held ticket's place across gates on a real mosquitto: the place a gate keeps for a held
ticket is neither handed back to the minter nor made again, so the venue never admits
beyond its capacity while the steward decides."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from kits.mesh import Broker, MeshGate, wait_for

from scanner.config.zones import parse_zones
from scanner.decide.model import Direction, Reason
from scanner.gatekeeper import CheckResult
from scanner.journal.supervision import Who
from scanner.supervise import Answer, Desk, Holds
from scanner.zones.book import ZoneBook

IN = Direction.IN
TABLES = [{"id": "lounge", "name": "VIP lounge", "capacity": 2}]


def rights(g: MeshGate) -> int:
    assert g.zones is not None
    return g.zones.rights("lounge")


def inside(g: MeshGate) -> int:
    assert g.zones is not None
    return g.zones.counts(g.gate.clock())["lounge"]


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[tuple[MeshGate, MeshGate]]:
    """A (the minter, no holds) and B (every ticket held for the steward) share the two
    places of the lounge, each holding one."""
    broker = Broker(tmp_path / "broker", ["A", "B"]).start()
    made: list[MeshGate] = []
    try:
        for name, policy in (("A", {}), ("B", {"confirm_ticket_types": ["tt-1"]})):
            book = ZoneBook(parse_zones(TABLES), name, "lounge", tz=UTC, minter="A",
                            ready=False)
            made.append(MeshGate(tmp_path / name, name, broker, zones=book, tickets=8,
                                 policy=policy).start())
            assert wait_for(lambda book=book: book.ready), f"{name}: the book never got ready"
        a, b = made
        assert wait_for(lambda: rights(a) == 1 == rights(b))
        yield a, b
    finally:
        for g in made:
            g.close()
        broker.stop()


def steward(b: MeshGate) -> Desk:
    return Desk(b.gate.journal, b.keeper, lambda *_args: True, Holds(5.0),
                journaled=b.link.notify)


def hold(b: MeshGate) -> CheckResult:
    held = b.check(1)
    assert held.decision.reason is Reason.ACTION_REQUIRED
    assert rights(b) == 0
    return held


@pytest.mark.slow
def test_a_place_held_at_one_gate_is_not_admitted_at_another(
        gates: tuple[MeshGate, MeshGate]) -> None:
    a, b = gates
    held = hold(b)
    reasons = [a.check(n).decision.reason for n in (2, 3)]
    assert reasons == [Reason.GRANTED, Reason.ZONE_FULL]
    # However many rounds the minter makes, the held place is nobody else's.
    assert not wait_for(lambda: rights(a) > 0, 2.0)
    assert a.check(4).decision.reason is Reason.ZONE_FULL
    steward(b).settle(held, Answer.CONFIRM, Who("steward"))
    assert wait_for(lambda: inside(a) == 2 == inside(b))
    assert b.check(5).decision.reason is Reason.ZONE_FULL  # refused before being held
    assert a.check(6).decision.reason is Reason.ZONE_FULL


def test_a_refused_hold_gives_the_venue_its_place_back(
        gates: tuple[MeshGate, MeshGate]) -> None:
    a, b = gates
    held = hold(b)
    assert a.check(2).decision.granted
    steward(b).settle(held, Answer.REFUSE, Who("steward"))
    assert rights(b) == 1
    assert wait_for(lambda: inside(a) == 1 == inside(b))
    assert b.check(3).decision.reason is Reason.ACTION_REQUIRED
