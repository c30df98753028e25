"""The mesh with a real mosquitto: gates share scans, survive partitions, refuse forgeries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from kits.journal import NOW, make_ticket
from kits.mesh import KEY, Broker, MeshGate, password, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from scanner.decide.model import Direction, Reason
from scanner.mesh.message import Codec, Record, scans_topic

IN, OUT = Direction.IN, Direction.OUT
USERS = ["A", "B", "C", "intruder"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", USERS).start()
    yield b
    b.stop()


@pytest.fixture
def gates(tmp_path: Path, broker: Broker) -> Iterator[dict[str, MeshGate]]:
    made: dict[str, MeshGate] = {}
    yield made
    for g in made.values():
        g.close()


def add(gates: dict[str, MeshGate], tmp_path: Path, broker: Broker, name: str,
        **kw: object) -> MeshGate:
    gates[name] = MeshGate(tmp_path / name, name, broker, **kw).start()  # type: ignore[arg-type]
    return gates[name]


def converged(*gs: MeshGate) -> bool:
    first = gs[0].scan_ids()
    return bool(first) and all(g.scan_ids() == first for g in gs[1:])


def raw_client(broker: Broker, user: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{user}")
    client.username_pw_set(user, password(user))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def test_a_ticket_granted_at_a_is_refused_at_b_naming_gate_a(tmp_path, broker, gates):
    a, b = (add(gates, tmp_path, broker, n) for n in "AB")
    granted = a.check(1)
    assert granted.decision.granted
    assert wait_for(lambda: granted.scan_id in b.scan_ids())
    refused = b.check(1).decision
    assert refused.reason is Reason.ALREADY_INSIDE
    assert refused.extra["entered_gate"] == "A"
    assert refused.extra["entered_at"] == granted.scanned_at


def test_three_gates_converge_to_the_same_records(tmp_path, broker, gates):
    trio = [add(gates, tmp_path, broker, n) for n in "ABC"]
    for i, g in enumerate(trio, start=1):
        g.check(i)
        g.check(i)  # denied: denials are shared too
    assert wait_for(lambda: converged(*trio) and len(trio[0].scan_ids()) == 6)


def test_peer_records_stay_out_of_this_gates_upload_queue(tmp_path, broker, gates):
    a, b = (add(gates, tmp_path, broker, n) for n in "AB")
    scan = a.check(1)
    assert wait_for(lambda: scan.scan_id in b.scan_ids())
    assert [e["gate_id"] for e in b.gate.journal.entries()] == []
    assert b.gate.journal.stats()["queue_depth"] == 0
    assert a.gate.journal.stats()["queue_depth"] == 1


def test_both_sides_of_a_split_admit_and_then_list_the_same_conflict(tmp_path, broker, gates):
    a, b = (add(gates, tmp_path, broker, n) for n in "AB")
    a.check(5)
    assert wait_for(lambda: converged(a, b))
    broker.stop()
    assert wait_for(lambda: not a.link.connected.is_set() and not b.link.connected.is_set())
    at_a, at_b = a.check(1), b.check(1)
    assert at_a.decision.granted and at_b.decision.granted  # each decides alone
    broker.start()
    assert wait_for(lambda: converged(a, b) and len(a.scan_ids()) == 3)
    assert wait_for(lambda: len(a.mesh.conflicts()) == 1 == len(b.mesh.conflicts()))
    ca, cb = a.mesh.conflicts()[0], b.mesh.conflicts()[0]
    assert {ca.first.scan_id, ca.second.scan_id} == {at_a.scan_id, at_b.scan_id}
    assert (ca.first, ca.second) == (cb.first, cb.second)
    assert ca.first.barcode == make_ticket(1).barcode
    # Both admissions stay in their origins' upload queues.
    assert a.gate.journal.stats()["queue_depth"] == 2
    assert b.gate.journal.stats()["queue_depth"] == 1


def test_a_gate_restarted_from_empty_catches_up(tmp_path, broker, gates):
    a, b = (add(gates, tmp_path, broker, n) for n in "AB")
    for n in range(1, 5):
        a.check(n)
    b.check(5)
    assert wait_for(lambda: converged(a, b) and len(b.scan_ids()) == 5)
    gates.pop("B").close()
    fresh = add(gates, tmp_path / "wiped", broker, "B")
    from_a = {r.scan_id for r in a.mesh.records() if r.gate == "A"}
    assert wait_for(lambda: from_a <= fresh.scan_ids())
    assert fresh.check(1).decision.reason is Reason.ALREADY_INSIDE
    # Its own sequence goes on after the one it used before the wipe (its retained status).
    assert wait_for(lambda: fresh.mesh.own_max_seq() == 2)


def test_a_gate_an_hour_behind_cannot_reorder_history(tmp_path, broker, gates):
    hour = 3600 * 1000
    a = add(gates, tmp_path, broker, "A")
    from scanner.mesh.hlc import wall_ms
    b = add(gates, tmp_path, broker, "B", physical=lambda: wall_ms() - hour,
            clock=lambda: NOW - timedelta(hours=1))
    entered = a.check(1)
    assert wait_for(lambda: entered.scan_id in b.scan_ids())
    left = b.check(1, OUT)
    assert left.decision.reason is Reason.CHECKED_OUT
    assert left.scanned_at < entered.scanned_at  # B's wall clock says it left before entering
    assert wait_for(lambda: left.scan_id in a.scan_ids())
    for g in (a, b):
        assert [s.direction for s in g.history.history(make_ticket(1).id).scans] == [IN, OUT]
    # Not inside any more at A: re-entry is the policy's call, not ALREADY_INSIDE.
    assert a.check(1).decision.reason is Reason.REENTRY_NOT_ALLOWED


def test_forged_garbage_and_misaddressed_messages_are_dropped_and_counted(
        tmp_path, broker, gates):
    b = add(gates, tmp_path, broker, "B")
    forger = raw_client(broker, "C")
    real = Codec(KEY).record(Record("scan-x", "A", 1, "0000000000001-000000-A", "tk-x",
                                    "ev", "BC0000000001", "IN", "OK", "GRANTED",
                                    "2030-01-01T10:00:00.000Z"))
    wrong_key = Codec(b"another-venue-key-0123456789").record(
        Record("scan-y", "C", 1, "0000000000001-000000-C", "tk-y", "ev", "BC0000000002",
               "IN", "OK", "GRANTED", "2030-01-01T10:00:00.000Z"))
    for payload in (b"\x00\xffnot json", b"[1,2,3]", wrong_key, real):
        forger.publish(scans_topic("C"), payload, qos=1).wait_for_publish(5)
    assert wait_for(lambda: sum(b.link.codec.dropped.values()) == 4)
    assert b.link.codec.dropped == {"garbage": 1, "malformed": 1, "bad_mac": 1,
                                    "wrong_topic": 1}
    assert b.scan_ids() == set()
    assert b.link.running
    forger.loop_stop()


def test_a_sequence_number_no_database_holds_drops_its_batch_and_the_link_goes_on(
        tmp_path, broker, gates):
    """A signed record numbered 2**63 (SQL's integers end one below) is malformed: the
    gate drops it and keeps storing the peer's good records."""
    b = add(gates, tmp_path, broker, "B")
    peer = raw_client(broker, "C")
    codec = Codec(KEY)

    def record(seq: int, scan: str) -> bytes:
        return codec.record(Record(scan, "C", seq, f"0000000000001-{seq % 10**6:06d}-C",
                                   "tk-c", "ev", "BC0000000003", "IN", "OK", "GRANTED",
                                   "2030-01-01T10:00:00.000Z"))

    for payload in (record(2**63, "too-far"), record(1, "first")):
        peer.publish(scans_topic("C"), payload, qos=1).wait_for_publish(5)
    assert wait_for(lambda: "first" in b.scan_ids())
    assert b.scan_ids() == {"first"}
    assert b.link.codec.dropped == {"malformed": 1}
    assert b.link.running
    peer.loop_stop()


def test_a_gates_credentials_cannot_publish_under_another_gate(tmp_path, broker, gates):
    b = add(gates, tmp_path, broker, "B")
    codec = Codec(KEY)
    as_a = raw_client(broker, "A")

    def record(gate: str, scan: str) -> bytes:
        return codec.record(Record(scan, gate, 1, f"0000000000001-000000-{gate}", "tk-1",
                                   "ev", "BC0000000001", "IN", "OK", "GRANTED",
                                   "2030-01-01T10:00:00.000Z"))

    as_a.publish(scans_topic("B"), record("B", "forged-by-a"), qos=1).wait_for_publish(5)
    as_a.publish(scans_topic("A"), record("A", "really-a"), qos=1).wait_for_publish(5)
    assert wait_for(lambda: "really-a" in b.scan_ids())
    assert "forged-by-a" not in b.scan_ids()
    as_a.loop_stop()


def test_a_conflict_json_names_both_scans_gates_and_the_barcode(tmp_path, broker, gates):
    a, b = (add(gates, tmp_path, broker, n) for n in "AB")
    broker.stop()
    assert wait_for(lambda: not a.link.connected.is_set())
    a.check(2)
    b.check(2)
    broker.start()
    assert wait_for(lambda: len(b.mesh.conflicts()) == 1)
    doc = orjson.loads(orjson.dumps(b.mesh.conflicts()[0].to_json()))
    assert {doc["first"]["gate"], doc["second"]["gate"]} == {"A", "B"}
    assert doc["barcode"] == make_ticket(2).barcode
