"""Ledgers and health messages on the mesh: signed, checked, and refused when wrong."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pytest
from kits.mesh import KEY as MESH_KEY
from kits.mesh import MeshGate, Rounds, wait_for

from scanner.config.zones import parse_zones
from scanner.mesh.broker import Inbox
from scanner.mesh.memory_broker import MemoryHub
from scanner.mesh.message import Codec, Health, health_topic, ledger_topic
from scanner.zones.book import ZoneBook
from scanner.zones.escrow import MAX_COUNT, Ledger

KEY = b"k" * 32
LEDGER = Ledger("north-1", "stand", "north-1", 3, {"stand": 40},
                {"stand": {"north-2": 12}}, {"stand": {"north-1": 20, "north-2": 20}})
HEALTH = Health("north-1", "stand", "1.4.0", "2030-05-01T20:00:00.000Z",
                {"handheld": True, "camera": False}, 7, ("reader lost: camera",))


def test_a_ledger_and_a_health_message_survive_the_codec() -> None:
    codec = Codec(KEY)
    assert codec.decode(ledger_topic("north-1"), codec.ledger(LEDGER)) == LEDGER
    assert codec.decode(health_topic("north-1"), codec.health(HEALTH)) == HEALTH


def test_a_ledger_under_another_gates_name_is_dropped() -> None:
    codec = Codec(KEY)
    assert codec.decode(ledger_topic("north-2"), codec.ledger(LEDGER)) is None
    assert codec.dropped["wrong_topic"] == 1


@pytest.mark.parametrize("change", [
    {"minted": {"stand": -1}}, {"version": "3"}, {"sent": {"stand": {"x": 1.5}}},
    {"gate": ""}, {"extra": 1}, {"minted": {"stand": MAX_COUNT + 1}},
    {"sent": {"stand": {"north-2": 2**63}}}, {"targets": {"stand": {"x": 10**12}}},
    {"version": 2**63 - 1},
])
def test_a_malformed_ledger_is_dropped(change: dict[str, object]) -> None:
    codec = Codec(KEY)
    body = {**LEDGER.to_json(), **change}
    payload = codec._seal("ledger", body)
    assert codec.decode(ledger_topic("north-1"), payload) is None
    assert codec.dropped["malformed"] == 1


@pytest.mark.parametrize("change", [
    {"queue": -1}, {"readers": {"a": "yes"}}, {"alarms": ["x" * 201]}, {"zone": "a\nb"},
])
def test_a_malformed_health_message_is_dropped(change: dict[str, object]) -> None:
    codec = Codec(KEY)
    body = {**orjson.loads(codec.health(HEALTH))["body"], **change}
    assert codec.decode(health_topic("north-1"), codec._seal("health", body)) is None
    assert codec.dropped["malformed"] == 1



def test_a_gate_hears_every_ledger_and_leaves_health_to_the_control_room(
        tmp_path: Path) -> None:
    hub = MemoryHub()
    book = ZoneBook(parse_zones([{"id": "stand", "capacity": 10}]), "B", "stand", tz=UTC,
                    minter="B")
    gate = MeshGate(tmp_path / "B", "B", hub, zones=book).start()
    assert gate.link.zones is not None
    heard: list[Ledger | Health] = []
    gate.link.zones.heard = heard.append  # type: ignore[method-assign, assignment]
    other, codec = hub.broker("gate-A"), Codec(MESH_KEY)
    other.connect(Inbox())
    ledger = Ledger("A", "stand", "B", 1, {}, {}, {})
    try:
        other.publish(health_topic("A"), codec.health(replace(HEALTH, gate="A")))
        other.publish(ledger_topic("A"), codec.ledger(ledger))
        assert wait_for(lambda: ledger in heard)
        time.sleep(0.2)  # the health message, sent first, would have come by now
    finally:
        gate.close()
    assert [m for m in heard if m.gate == "A"] == [ledger]  # its own ledger comes back too


def test_a_forged_ledger_on_the_mesh_admits_no_one_beyond_capacity(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A peer with the venue's key gives both gates a million places, then sends counts
    no ledger may hold: the lounge still takes two, and the links keep running."""
    rounds = Rounds()
    tree = parse_zones([{"id": "lounge", "capacity": 2}])
    a, b = (rounds.gate(tmp_path / g, g, tickets=8,
                        zones=ZoneBook(tree, g, "lounge", tz=UTC, minter="A"))
            for g in ("A", "B"))
    forger, codec = rounds.hub.broker("gate-X"), Codec(MESH_KEY)
    forger.connect(Inbox())
    forged = Ledger("X", "lounge", "A", 1, {"lounge": 10**6},
                    {"lounge": {"A": 10**6, "B": 10**6}}, {})
    huge = {**forged.to_json(), "version": 2, "sent": {"lounge": {"B": 2**63}}}
    try:
        rounds.open(a, b)
        assert a.zones is not None and b.zones is not None
        rounds.until([a, b], lambda: a.zones.rights("lounge") + b.zones.rights("lounge") == 2)
        forger.publish(ledger_topic("X"), codec.ledger(forged), retain=True)
        rounds.until([a, b], lambda: all("X" in g.zones.ledgers() for g in (a, b)))
        with caplog.at_level("WARNING", logger="scanner.mesh"):
            forger.publish(ledger_topic("X"), codec._seal("ledger", huge), retain=True)
            forger.publish(ledger_topic("X"), codec._seal("ledger", huge), retain=True)
            rounds.until([a, b], lambda: b.link.codec.dropped["malformed"] == 2)
        granted = 0
        for n in range(1, 9):
            granted += (a if n % 2 else b).check(n).decision.granted
            later = rounds.now + 2.0   # ledgers and records go round, places are shared
            rounds.until([a, b], lambda later=later: rounds.now >= later)
        assert granted == 2
        assert a.zones.ledgers()["X"] == b.zones.ledgers()["X"] == forged
        said = [r.getMessage() for r in caplog.records if "refused the ledger" in r.getMessage()]
        assert len(said) == 2 and all("0 to 1000000000" in m for m in said)  # once a gate
    finally:
        for g in (a, b):
            g.close()



def round_times(gate: str, seconds: float = 4.0) -> list[float]:
    """When ``gate``'s escrow rounds ran, its zone part asked every 50 ms (minter "A")."""
    from datetime import datetime

    from scanner.mesh.zoning import ZoneMesh

    book = ZoneBook(parse_zones([{"id": "stand", "capacity": 10}]), gate, "stand", tz=UTC,
                    minter="A")
    mesh = ZoneMesh(book, Codec(MESH_KEY), wall=lambda: datetime(2030, 5, 1, tzinfo=UTC),
                    save=lambda ledgers: None)
    ran: list[float] = []
    now = 0.0
    tick = book.tick

    def counted(at: Any, online: Any) -> Any:
        ran.append(now)
        return tick(at, online)

    book.tick = counted  # type: ignore[method-assign]
    while now < seconds:
        mesh.round(lambda *a, **k: None, now, {"A", "B"}, connected=True)
        now += 0.05
    return ran


def test_the_minter_rounds_every_quarter_second_another_gate_every_two() -> None:
    """Another gate's round only hands back what is above its target, and sums every
    ledger to do so: at a large venue, most of an idle gate's CPU if run as often."""
    from scanner.mesh.zoning import HAND_BACK_INTERVAL, ROUND_INTERVAL

    assert len(round_times("A")) >= 4.0 / ROUND_INTERVAL - 1
    other = round_times("B")
    assert len(other) == 2 and other[1] - other[0] >= HAND_BACK_INTERVAL
