"""Zones on the one decision path: a real store and journal, the gate's zone book."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from test_journal_kit import NOW, make_gate, make_ticket

from scanner.config.zones import parse_zones
from scanner.decide.model import Direction, Reason
from scanner.decide.policy import Policy
from scanner.gatekeeper import Gatekeeper
from scanner.zones.book import ZoneBook

IN, OUT = Direction.IN, Direction.OUT


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Any]:
    with make_gate(tmp_path) as g:
        g.store.upsert([make_ticket(n) for n in range(1, 5)])
        yield g


def keeper(gate: Any, tables: list[dict[str, Any]], zone: str) -> Gatekeeper:
    book = ZoneBook(parse_zones(tables), gate.config.gate_id, zone, tz=UTC)
    return Gatekeeper(gate.store, gate.journal, Policy(multi_checkin=True), zones=book,
                      gate_id=gate.config.gate_id, clock=lambda: NOW)


def test_a_full_zone_denies_as_zone_full_journaled_and_admits_after_an_exit(gate: Any) -> None:
    gk = keeper(gate, [{"id": "lounge", "name": "VIP lounge", "capacity": 2}], "lounge")
    reasons = [gk.check(make_ticket(n).barcode, IN).decision.reason for n in (1, 2, 3)]
    assert reasons == [Reason.GRANTED, Reason.GRANTED, Reason.ZONE_FULL]
    assert list(gate.journal.entries())[-1]["reason"] == "ZONE_FULL"
    assert gk.check(make_ticket(1).barcode, OUT).decision.granted
    assert gk.check(make_ticket(3).barcode, IN).decision.reason is Reason.GRANTED


def test_a_preview_spends_no_place(gate: Any) -> None:
    gk = keeper(gate, [{"id": "lounge", "capacity": 1}], "lounge")
    for _ in range(3):
        assert gk.preview(make_ticket(1).barcode, IN).decision.granted
    assert gk.check(make_ticket(2).barcode, IN).decision.granted


def test_the_gates_zone_decides_anti_passback(gate: Any) -> None:
    tables = [{"id": "stand"}, {"id": "lounge", "parent": "stand"}]
    stand = keeper(gate, tables, "stand")
    assert stand.check(make_ticket(1).barcode, IN).decision.granted
    assert stand.check(make_ticket(1).barcode, IN).decision.reason is Reason.ALREADY_INSIDE
