"""The mesh in the running gate: the composition root, uploads, status, a cut link."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kits.gate import MakeGate
from kits.mesh import Broker, CutProxy, MeshGate, wait_for

from scanner.decide.model import Reason
from scanner.status import gather
from scanner.upload.outbox import Outbox

USERS = ["A", "B"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", USERS).start()
    yield b
    b.stop()


def test_without_mesh_a_gate_builds_no_mesh_and_reports_none(tmp_path: Path,
                                                              make_gate: MakeGate) -> None:
    with make_gate(tmp_path) as gate:
        assert gate.mesh_store is None and gate.mesh_link is None
        assert gate.gatekeeper.history is gate.journal
        assert "mesh" not in gather(gate)


def test_two_gates_upload_each_scan_once_and_no_peer_record_reaches_an_outbox(
        tmp_path: Path, broker: Broker, api_client, sim_world) -> None:
    event = sim_world.event_ids[0]
    a = MeshGate(tmp_path / "A", "A", broker, event=event).start()
    b = MeshGate(tmp_path / "B", "B", broker, event=event).start()
    try:
        made = [a.check(1), b.check(2), a.check(3)]
        assert wait_for(lambda: len(a.scan_ids()) == len(b.scan_ids()) == 3)
        assert b.check(1).decision.reason is Reason.ALREADY_INSIDE  # denied, still uploaded
        for g in (a, b):
            Outbox(g.gate.journal, api_client).drain_once()
            assert g.gate.journal.stats()["queue_depth"] == 0
        uploaded = Counter(s["barcode"] for s in sim_world.scans)
        journaled = Counter(e["barcode"] for g in (a, b) for e in g.gate.journal.entries())
        assert uploaded == journaled  # exactly the gates' own journals, nothing twice
        assert len(sim_world.scans) == len(made) + 1
    finally:
        a.close()
        b.close()


def test_one_gate_cut_off_decides_alone_and_catches_up_while_the_broker_stays_up(
        tmp_path: Path, broker: Broker) -> None:
    a = MeshGate(tmp_path / "A", "A", broker).start()
    proxy = CutProxy(broker.port)
    b = MeshGate(tmp_path / "B", "B", broker, url=proxy.url).start()
    try:
        proxy.cut()
        assert wait_for(lambda: not b.link.connected.is_set())
        assert b.link.state()["deciding_alone"] and a.link.connected.is_set()
        granted_a, granted_b = a.check(1), b.check(1)  # both sides admit: a conflict
        assert granted_a.decision.granted and granted_b.decision.granted
        a.check(2)
        proxy.mend()
        assert wait_for(lambda: b.link.connected.is_set())
        assert wait_for(lambda: a.scan_ids() == b.scan_ids() and len(a.scan_ids()) == 3)
        assert wait_for(lambda: len(a.mesh.conflicts()) == len(b.mesh.conflicts()) == 1)
        assert b.check(2).decision.reason is Reason.ALREADY_INSIDE
    finally:
        a.close()
        b.close()
        proxy.close()

