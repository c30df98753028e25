"""Zones on the one decision path: the real gate built from its configuration (its zone
and ``[[zones]]`` tables), a real store and journal, the gate's own zone book."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kits.gate import MakeGate
from kits.journal import NOW, make_ticket

from scanner.app import Gate
from scanner.decide.model import Direction, Reason
from scanner.errors import NotAnswerable
from scanner.supervise import Desk, Holds
from scanner.supervise.desk import Acting

IN, OUT = Direction.IN, Direction.OUT


def zoned(make_gate: MakeGate, tmp_path: Path, tables: list[dict[str, Any]],
          zone: str) -> Gate:
    gate = make_gate(tmp_path, zone=zone, zones=tables, policy={"multi_checkin": True})
    gate.store.upsert([make_ticket(n) for n in range(1, 5)])
    return gate


def test_a_full_zone_denies_as_zone_full_journaled_and_admits_after_an_exit(
        make_gate: MakeGate, tmp_path: Path) -> None:
    gate = zoned(make_gate, tmp_path, [{"id": "lounge", "name": "VIP lounge", "capacity": 2}],
                 "lounge")
    gk = gate.gatekeeper
    reasons = [gk.check(make_ticket(n).barcode, IN).decision.reason for n in (1, 2, 3)]
    assert reasons == [Reason.GRANTED, Reason.GRANTED, Reason.ZONE_FULL]
    assert list(gate.journal.entries())[-1]["reason"] == "ZONE_FULL"
    assert gk.check(make_ticket(1).barcode, OUT).decision.granted
    assert gk.check(make_ticket(3).barcode, IN).decision.reason is Reason.GRANTED


def test_a_preview_spends_no_place(make_gate: MakeGate, tmp_path: Path) -> None:
    gk = zoned(make_gate, tmp_path, [{"id": "lounge", "capacity": 1}], "lounge").gatekeeper
    for _ in range(3):
        assert gk.preview(make_ticket(1).barcode, IN).decision.granted
    assert gk.check(make_ticket(2).barcode, IN).decision.granted


def test_the_gates_zone_decides_anti_passback(make_gate: MakeGate, tmp_path: Path) -> None:
    stand = zoned(make_gate, tmp_path, [{"id": "stand"}, {"id": "lounge", "parent": "stand"}],
                  "stand").gatekeeper
    assert stand.check(make_ticket(1).barcode, IN).decision.granted
    assert stand.check(make_ticket(1).barcode, IN).decision.reason is Reason.ALREADY_INSIDE


def supervisor_desk(gate: Gate) -> Desk:
    return Desk(gate.journal, gate.gatekeeper, lambda *_args: True, Holds(5.0))


def test_an_override_is_counted_in_the_gates_zone_at_once(make_gate: MakeGate,
                                                          tmp_path: Path) -> None:
    gate = make_gate(tmp_path, zone="lounge", zones=[{"id": "lounge"}],
                     policy={"multi_checkin": False})
    gate.store.upsert([make_ticket(1)])
    code = make_ticket(1).barcode
    gate.gatekeeper.check(code, IN)
    gate.gatekeeper.check(code, OUT)
    denied = gate.gatekeeper.check(code, IN)
    assert denied.decision.reason is Reason.REENTRY_NOT_ALLOWED
    assert gate.zones.counts(NOW).get("lounge", 0) == 0
    supervisor_desk(gate).override(denied.scan_id, Acting("supervisor"), "PASSBACK_FORGIVEN")
    assert gate.zones.counts(NOW)["lounge"] == 1


def test_a_full_zone_is_not_overridden(make_gate: MakeGate, tmp_path: Path) -> None:
    """The capacity is a safety limit: an override would admit without a place."""
    gate = zoned(make_gate, tmp_path, [{"id": "lounge", "capacity": 1}], "lounge")
    assert gate.gatekeeper.check(make_ticket(1).barcode, IN).decision.granted
    full = gate.gatekeeper.check(make_ticket(2).barcode, IN)
    assert full.decision.reason is Reason.ZONE_FULL
    with pytest.raises(NotAnswerable, match="safety limit"):
        supervisor_desk(gate).override(full.scan_id, Acting("supervisor"), "STAFF_OR_ARTIST")
    assert [e["reason"] for e in gate.journal.entries()] == ["GRANTED", "ZONE_FULL"]
    assert gate.zones.counts(NOW)["lounge"] == 1
