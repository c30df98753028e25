"""The one decision path over a real SQLite store and journal (and the simulator online)."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from pathlib import Path

import pytest
from kits.gate import build_gate
from kits.journal import (
    EVENT,
    NOW,
    OTHER_EVENT,
    api_config,
    make_ticket,
    running_sim,
    valid_doc,
)

from scanner.clock import clock_stamp
from scanner.config import LookupConfig, PolicyConfig
from scanner.decide.model import Direction, Reason
from scanner.decide.policy import Policy
from scanner.errors import StoreError
from scanner.gatekeeper import Gatekeeper, LivePolicy
from scanner.sim import World
from scanner.tickets import Ticket, parse_iso, utc_iso

IN, OUT = Direction.IN, Direction.OUT


@pytest.fixture
def gate(tmp_path: Path, make_gate):
    with make_gate(tmp_path) as g:
        g.store.upsert([make_ticket(1), make_ticket(2)])
        yield g


def states(gate) -> list[tuple[str, str]]:
    return [(e["reason"], e["upload_state"]) for e in gate.journal.entries()]


def test_a_stored_ticket_is_granted_offline_and_journaled(gate):
    result = gate.gatekeeper.check(make_ticket(1).barcode, IN)
    assert (result.decision.granted, result.decision.offline) == (True, True)
    [entry] = gate.journal.entries()
    assert (entry["scan_id"], entry["result"], entry["upload_state"]) == \
        (result.scan_id, "OK", "pending")


def test_a_second_entry_is_denied_from_the_journal_history(gate):
    gate.gatekeeper.check(make_ticket(1).barcode, IN)
    assert gate.gatekeeper.check(make_ticket(1).barcode, IN).decision.reason \
        is Reason.ALREADY_INSIDE


def test_a_denied_entry_leaves_presence_unchanged(gate):
    gate.gatekeeper.check(make_ticket(1).barcode, IN)
    gate.gatekeeper.check(make_ticket(1).barcode, IN)
    assert gate.journal.inside_counts() == {EVENT: 1}


def test_a_checkout_after_checkin_empties_presence(gate):
    gate.gatekeeper.check(make_ticket(1).barcode, IN)
    result = gate.gatekeeper.check(make_ticket(1).barcode, OUT)
    assert result.decision.reason is Reason.CHECKED_OUT
    assert gate.journal.inside_counts() == {}


def test_a_barcode_shared_by_two_events_picks_the_served_events_ticket(gate):
    code = "SHARED-0001"
    gate.store.upsert([make_ticket(7, event=OTHER_EVENT, barcode=code),
                       make_ticket(8, event=EVENT, barcode=code)])
    result = gate.gatekeeper.check(code, IN)
    assert (result.decision.granted, result.decision.event_id) == (True, EVENT)


def test_an_unknown_barcode_is_denied_and_queued_under_the_gates_event(gate):
    result = gate.gatekeeper.check("NOT-IN-STORE-1", IN)
    assert (result.decision.reason, result.decision.offline) == (Reason.UNKNOWN_BARCODE, True)
    assert [q.barcode for q in gate.journal.pending(EVENT, 10)] == ["NOT-IN-STORE-1"]


def test_an_unknown_barcode_at_a_multi_event_gate_is_kept_local(tmp_path: Path, make_gate):
    with make_gate(tmp_path, events=(EVENT, OTHER_EVENT)) as gate:
        gate.gatekeeper.check("NOT-IN-STORE-1", IN)
        assert states(gate) == [("UNKNOWN_BARCODE", "local")]


def spy_keeper(gate, deadline: float) -> tuple[Gatekeeper, list[str]]:
    """A gatekeeper whose online lookup only records the barcodes it was asked for."""
    asked: list[str] = []
    keeper = Gatekeeper(gate.store, gate.journal, gate.policy_source, gate_id="g1",
                        lookup=lambda b, e, d: asked.append(b), lookup_deadline=deadline)
    return keeper, asked


def test_a_malformed_read_is_never_looked_up(gate):
    keeper, asked = spy_keeper(gate, 0.4)
    result = keeper.check("BAD\x00READ-1", IN)
    assert (result.decision.reason, asked) == (Reason.MALFORMED_READ, [])
    assert states(gate) == [("MALFORMED_READ", "local")]


def test_a_short_read_is_journaled_locally(gate):
    gate.gatekeeper.check("ABC", IN)
    assert states(gate) == [("MALFORMED_READ", "local")]


def test_a_zero_deadline_turns_the_online_fallback_off(gate):
    keeper, asked = spy_keeper(gate, 0)
    keeper.check("NOT-IN-STORE-1", IN)
    assert asked == []


def test_scanned_at_is_device_time_plus_the_server_offset(gate):
    keeper = Gatekeeper(gate.store, gate.journal, gate.policy_source, gate_id="g1",
                        clock=lambda: NOW, clock_offset=lambda: 2.5)
    result = keeper.check(make_ticket(1).barcode, IN)
    assert result.scanned_at == utc_iso(NOW + timedelta(seconds=2.5))
    assert [e["scanned_at"] for e in gate.journal.entries()] == [result.scanned_at]


def test_the_gate_uses_the_offset_saved_by_an_earlier_run(gate):
    gate.journal.save_clock_offset(-60.0, clock_stamp().text())
    result = gate.gatekeeper.check(make_ticket(1).barcode, IN)
    assert result.scanned_at == utc_iso(NOW - timedelta(seconds=60))


def test_a_failed_journal_write_raises_and_returns_no_decision(gate):
    with gate.journal_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER no_journal BEFORE INSERT ON journal "
                             "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    with pytest.raises(StoreError, match="disk says no"):
        gate.gatekeeper.check(make_ticket(1).barcode, IN)


def test_decide_previews_without_journaling(gate):
    decision = gate.gatekeeper.decide(make_ticket(1).barcode, IN)
    assert decision.granted and list(gate.journal.entries()) == []


def test_the_policy_follows_new_device_settings_after_a_sync(gate):
    keeper = Gatekeeper(gate.store, gate.journal, LivePolicy(
        gate.store.settings, lambda me: Policy.build(me, PolicyConfig(), (EVENT,)), recheck=0),
        gate_id="g1")
    assert keeper.check(make_ticket(1).barcode, IN).decision.granted
    gate.store.save_settings({"deviceSettings": {"scanConfig": {
        "scanTypes": {"checkin": True, "checkout": False}}}})
    assert keeper.check(make_ticket(1).barcode, OUT).decision.reason \
        is Reason.DIRECTION_NOT_ALLOWED


def test_the_live_policy_rereads_settings_only_after_the_recheck_interval():
    reads: list[int] = []
    now = [0.0]

    def settings():
        reads.append(1)
        return None

    live = LivePolicy(settings, lambda me: Policy(), recheck=1.0, monotonic=lambda: now[0])
    live(), live()
    now[0] = 1.5
    live()
    assert len(reads) == 2


def test_the_live_policy_loads_settings_only_when_their_version_moved():
    reads: list[int] = []
    version = ["v1"]
    now = [0.0]

    def settings():
        reads.append(1)
        return {"n": len(reads)}

    built: list[object] = []
    live = LivePolicy(settings, lambda me: built.append(me) or Policy(), version=lambda: version[0],
                      recheck=1.0, monotonic=lambda: now[0])
    live()
    for step in range(1, 4):  # rechecks with the version standing still: no load
        now[0] = 2.0 * step
        live()
    assert len(reads) == 1
    version[0] = "v2"
    now[0] = 10.0
    live()
    assert len(reads) == 2 and built == [{"n": 1}, {"n": 2}]


def test_the_live_policy_follows_a_moved_version_at_once_within_the_recheck_interval():
    version = ["v1"]
    built: list[object] = []
    live = LivePolicy(lambda: {"v": version[0]}, lambda me: built.append(me) or Policy(),
                      version=lambda: version[0], recheck=60.0, monotonic=lambda: 0.0)
    live()
    version[0] = "v2"
    live()
    assert built == [{"v": "v1"}, {"v": "v2"}]


def test_a_gate_that_decided_before_its_first_sync_applies_the_synced_settings_at_once(gate):
    """Through the composition root, whose policy watches the store's settings version: the
    policy built from no settings (before the first /me) is not kept for another second,
    which admitted timeslot tickets the venue's settings refuse (``gate bench run``'s lost
    read)."""
    assert gate.gatekeeper.check(make_ticket(1).barcode, IN).decision.granted
    before = gate.store.settings_version()
    gate.store.save_settings({"deviceSettings": {"scanConfig": {
        "scanTypes": {"checkin": True, "checkout": False}}}})
    assert gate.store.settings_version() not in (None, before)
    assert gate.gatekeeper.check(make_ticket(1).barcode, OUT).decision.reason \
        is Reason.DIRECTION_NOT_ALLOWED


# -- online fallback against the simulator ----------------------------------------------


def online_gate(tmp_path: Path, server, deadline_ms: float = 400.0):
    event = server.world.event_ids[0]
    return build_gate(tmp_path, events=(event,), api=api_config(server),
                     lookup=LookupConfig(deadline_ms=deadline_ms))


def test_a_barcode_found_online_is_stored_and_decided_online(tmp_path: Path):
    with running_sim() as server:
        doc = valid_doc(server.world, server.world.event_ids[0])
        with online_gate(tmp_path, server) as gate:
            result = gate.gatekeeper.check(doc["barcode"], IN)
            assert (result.decision.granted, result.decision.offline) == (True, False)
            gate.gatekeeper.flush()  # the store write runs off the scan path
            assert [t.id for t in gate.store.by_barcode(doc["barcode"])] == [doc["_id"]]


def test_a_barcode_the_server_does_not_know_is_denied_online(tmp_path: Path):
    with running_sim() as server, online_gate(tmp_path, server) as gate:
        result = gate.gatekeeper.check("NOWHERE-00001", IN)
        assert (result.decision.reason, result.decision.offline) == \
            (Reason.UNKNOWN_BARCODE, False)


def test_a_slow_server_is_cut_off_at_the_deadline_and_denied_offline(tmp_path: Path):
    deadline = 0.2
    with running_sim(latency_ms=4000) as server:
        doc = valid_doc(server.world, server.world.event_ids[0])
        with online_gate(tmp_path, server, deadline_ms=deadline * 1000) as gate:
            gate.gatekeeper.check(make_ticket(1).barcode, IN)  # open the store and journal
            started = time.monotonic()
            result = gate.gatekeeper.check(doc["barcode"], IN)
            waited = time.monotonic() - started
    assert (result.decision.reason, result.decision.offline) == (Reason.UNKNOWN_BARCODE, True)
    # The deadline plus fsync and scheduling slack a loaded CI machine may need: still far
    # below the 4 s the server takes.
    assert waited < deadline + 0.8


def test_an_unreachable_server_denies_offline(tmp_path: Path):
    with running_sim() as server:
        gate = online_gate(tmp_path, server)
    with gate:  # the server is gone: connection refused
        result = gate.gatekeeper.check("NOWHERE-00001", IN)
    assert (result.decision.reason, result.decision.offline) == (Reason.UNKNOWN_BARCODE, True)


def test_the_online_ticket_is_decided_with_the_stored_history(tmp_path: Path):
    with running_sim() as server:
        doc = valid_doc(server.world, server.world.event_ids[0])
        with online_gate(tmp_path, server) as gate:
            gate.gatekeeper.check(doc["barcode"], IN)
            gate.gatekeeper.flush()
            second = gate.gatekeeper.check(doc["barcode"], IN)
    # The second scan found the stored copy: offline, and already inside.
    assert (second.decision.reason, second.decision.offline) == (Reason.ALREADY_INSIDE, True)


def test_check_result_json_has_the_documented_shape(gate):
    doc = gate.gatekeeper.check(make_ticket(1).barcode, IN).to_json()
    assert {k: doc[k] for k in ("granted", "reason", "direction", "barcode", "offline")} == {
        "granted": True, "reason": "GRANTED", "direction": "IN",
        "barcode": make_ticket(1).barcode, "offline": True}
    assert Ticket.from_api(doc["ticket"]) == make_ticket(1)
    assert isinstance(doc["message"], str) and doc["latency_ms"] > 0


def test_online_gate_helper_keeps_its_config(tmp_path: Path):
    """The helper above really turns the fallback on (else the online tests prove nothing)."""
    with running_sim() as server:
        gate = online_gate(tmp_path, server)
        assert dataclasses.asdict(gate.config.lookup) == {"deadline_ms": 400.0}
        assert gate.gatekeeper.lookup_deadline == 0.4
        gate.close()


def test_scans_are_stamped_on_the_servers_clock_once_it_answered(tmp_path: Path):
    """The simulator's clock runs 120 s ahead of the gate's; after one answer the gate
    stamps with it and keeps the offset for an offline restart."""
    world = World(seed=5, events=1, tickets_per_event=5, skew=120.0, clock=NOW.timestamp)
    with running_sim(world) as server, online_gate(tmp_path, server) as gate:
        result = gate.gatekeeper.check("NOWHERE-00001", IN)  # the lookup sees a Date
        gate.clock_offset.flush()  # the save runs off the scan path
        saved = gate.journal.saved_clock_offset()
    stamped = parse_iso(result.scanned_at) - NOW
    assert abs(stamped.total_seconds() - 120.0) < 1.5
    assert saved is not None and abs(saved - 120.0) < 1.5
