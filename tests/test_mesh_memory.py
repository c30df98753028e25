"""The mesh protocol on the in-memory broker, stepped by hand: sharing, partitions on one
gate or the whole broker, lost and late messages, forgeries. No threads and no sleeps: each
test is the same sequence of events on every run (tests/test_mesh.py has it on mosquitto)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kits.mesh import KEY, MeshGate, Rounds

from scanner.decide.model import Direction, Reason
from scanner.mesh.broker import Inbox
from scanner.mesh.message import Codec, Record, replay_topic, scans_topic


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[tuple[Rounds, dict[str, MeshGate]]]:
    rounds, gates = Rounds(), dict[str, MeshGate]()
    yield rounds, gates
    for g in gates.values():
        g.close()


def opened(venue: tuple[Rounds, dict[str, MeshGate]], tmp_path: Path,
           *names: str) -> list[MeshGate]:
    rounds, gates = venue
    made = [rounds.gate(tmp_path / n, n) for n in names]
    gates.update((g.gate_id, g) for g in made)
    rounds.open(*made)
    rounds.until(made, lambda: all(g.link.connected.is_set() for g in made))
    return made


def converged(*gs: MeshGate) -> bool:
    first = gs[0].scan_ids()
    return all(g.scan_ids() == first for g in gs[1:])


def test_a_ticket_granted_at_a_is_refused_at_b_naming_gate_a(venue, tmp_path):
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    granted = a.check(1)
    rounds.until([a, b], lambda: granted.scan_id in b.scan_ids())
    refused = b.check(1).decision
    assert refused.reason is Reason.ALREADY_INSIDE and refused.extra["entered_gate"] == "A"


def test_a_gate_cut_off_decides_alone_and_all_three_converge_once_healed(
        venue, tmp_path, caplog):
    rounds, _ = venue
    trio = a, b, c = opened(venue, tmp_path, "A", "B", "C")
    with caplog.at_level(logging.WARNING, logger="scanner.mesh"):
        rounds.hub.partition("gate-C")
        rounds.until(trio, lambda: c.link.state()["partitioned"])
        assert not a.link.state()["deciding_alone"]
        at_a, at_b, at_c = a.check(1), b.check(2), c.check(1)  # ticket 1 on both sides
        c.check(3)
        assert at_a.decision.granted and at_c.decision.granted
        rounds.until(trio, lambda: at_b.scan_id in a.scan_ids())
        assert not {at_a.scan_id, at_b.scan_id} & c.scan_ids()
        assert at_c.scan_id not in a.scan_ids() | b.scan_ids()
        rounds.hub.heal("gate-C")
        rounds.until(trio, lambda: converged(*trio) and len(a.scan_ids()) == 4)
    rounds.until(trio, lambda: all(len(g.mesh.conflicts()) == 1 for g in trio))
    pairs = {(g.mesh.conflicts()[0].first, g.mesh.conflicts()[0].second) for g in trio}
    assert len(pairs) == 1  # every gate lists the same conflict, in the same order
    said = [r.getMessage() for r in caplog.records if r.name == "scanner.mesh"]
    assert [m.split(":")[1].strip() for m in said] == ["partitioned", "healed"]
    assert c.check(3).decision.reason is Reason.ALREADY_INSIDE


def test_both_sides_of_a_broker_outage_converge_when_it_is_back(venue, tmp_path):
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    rounds.hub.stop()  # the retained statuses go with it
    rounds.until([a, b], lambda: not a.link.connected.is_set() and not b.link.connected.is_set())
    made = [a.check(1), a.check(2), b.check(3)]
    rounds.hub.start()
    rounds.until([a, b], lambda: converged(a, b) and len(a.scan_ids()) == 3)
    assert {m.scan_id for m in made} == a.scan_ids()


def test_a_live_record_lost_on_the_way_is_asked_for_and_replayed(venue, tmp_path):
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    rounds.hub.drop(scans_topic("A"))
    lost = a.check(1)
    rounds.until([a, b], lambda: b.link.peers.get("A") is not None
                 and b.link.peers["A"].announced == 1)  # the status got through
    assert lost.scan_id not in b.scan_ids()
    rounds.until([a, b], lambda: lost.scan_id in b.scan_ids())
    assert a.link.replayed == 1


def test_a_lost_replay_request_is_asked_again(venue, tmp_path):
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    rounds.hub.drop(scans_topic("A"))
    rounds.hub.drop(replay_topic("B", "A"))
    lost = a.check(1)
    took = rounds.until([a, b], lambda: lost.scan_id in b.scan_ids())
    asked = [t for t, _ in rounds.hub.published if t == replay_topic("B", "A")]
    assert len(asked) == 2 and took > 10.0 / 0.25  # again after the request's timeout


def test_a_late_live_record_after_its_replay_is_stored_once(venue, tmp_path):
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    rounds.hub.hold(scans_topic("A"))
    late = a.check(1)
    rounds.until([a, b], lambda: late.scan_id in b.scan_ids())  # replayed meanwhile
    rounds.hub.release()
    rounds.until([a, b], lambda: b.link.inbox.empty())
    assert [r.scan_id for r in b.mesh.records()] == [late.scan_id]


def test_forged_unsigned_and_misaddressed_messages_are_dropped_and_counted(venue, tmp_path):
    rounds, _ = venue
    [b] = opened(venue, tmp_path, "B")
    forger = rounds.hub.broker("forger")
    forger.connect(Inbox())
    a_record = Record("scan-x", "A", 1, "0000000000001-000000-A", "tk-x", "ev",
                      "BC0000000001", "IN", "OK", "GRANTED", "2030-01-01T10:00:00.000Z")
    wrong_key = Codec(b"another-venue-key-0123456789").record(a_record._replace(gate="C"))
    unsigned = orjson.dumps({**orjson.loads(Codec(KEY).record(a_record._replace(gate="C"))),
                             "mac": ""})
    for payload in (b"\x00\xffnot json", b"[1,2,3]", wrong_key, Codec(KEY).record(a_record),
                    unsigned):
        forger.publish(scans_topic("C"), payload)
    rounds.until([b], lambda: sum(b.link.codec.dropped.values()) == 5)
    assert b.link.codec.dropped == {"garbage": 1, "malformed": 1, "bad_mac": 2,
                                    "wrong_topic": 1}
    assert b.scan_ids() == set()


def test_a_gate_restarted_from_empty_catches_up_and_never_reuses_a_number(venue, tmp_path):
    rounds, gates = venue
    a, b = opened(venue, tmp_path, "A", "B")
    for n in range(1, 4):
        a.check(n)
    b.check(4)
    rounds.until([a, b], lambda: converged(a, b) and len(b.scan_ids()) == 4)
    b.link.shut()
    gates.pop("B").close()
    fresh = gates["B"] = rounds.gate(tmp_path / "wiped", "B")
    rounds.open(fresh)
    from_a = {r.scan_id for r in a.mesh.records() if r.gate == "A"}
    rounds.until([a, fresh], lambda: from_a <= fresh.scan_ids())
    assert fresh.check(1).decision.reason is Reason.ALREADY_INSIDE
    # Its retained status said 1: the wiped gate goes on at 2.
    rounds.until([a, fresh], lambda: fresh.mesh.own_max_seq() == 2)
    rounds.until([a, fresh], lambda: sorted(r.seq for r in a.mesh.records() if r.gate == "B")
                 == [1, 2])


def test_a_peer_record_counts_in_decisions_before_it_is_written(venue, tmp_path):
    """Peers' records are written in batches (``STORE_DELAY``); a decision meanwhile sees
    them, and once written they are not counted twice."""
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    granted = a.check(1)
    a.link.step(0)          # published
    b.link.step(0)          # received, staged, not written: the clock has not moved
    assert granted.scan_id not in b.scan_ids()
    refused = b.check(1).decision
    assert refused.reason is Reason.ALREADY_INSIDE and refused.extra["entered_gate"] == "A"
    rounds.until([a, b], lambda: granted.scan_id in b.scan_ids())
    assert [origin for origin, _ in b.mesh.history(granted.decision.ticket.id)] == ["A"]



def test_a_peer_record_is_in_the_zone_count_before_it_is_written(venue, tmp_path):
    """The zone book hears a peer's scan with the decisions, not with the batch's write:
    a venue's count spreads as fast as its scans, however long the write waits."""
    from datetime import UTC

    from scanner.config.zones import parse_zones
    from scanner.zones.book import ZoneBook

    rounds, gates = venue
    a, b = made = [rounds.gate(tmp_path / n, n, zones=ZoneBook(
        parse_zones([{"id": "stand"}]), n, "stand", tz=UTC, minter="A")) for n in "AB"]
    gates.update((g.gate_id, g) for g in made)
    rounds.open(*made)
    rounds.until(made, lambda: all(g.link.connected.is_set() for g in made))
    assert b.zones is not None
    granted = a.check(1)
    a.link.step(0)          # published
    b.link.step(0)          # received, not written: the clock has not moved
    assert granted.scan_id not in b.scan_ids()
    assert b.zones.counts(b.gate.clock())["stand"] == 1
    rounds.until(made, lambda: granted.scan_id in b.scan_ids())
    assert b.zones.counts(b.gate.clock())["stand"] == 1  # written, counted once

def test_the_duties_that_walk_every_peer_run_once_a_tick_however_many_scans_wake_it(
        venue, tmp_path, monkeypatch):
    """A venue gate wakes for every scan it hears; anti-entropy and the partition watch
    walk every peer, so they keep the tick's pace."""
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    walks: list[float] = []
    watch = b.link._anti_entropy

    def counted() -> None:
        walks.append(rounds.now)
        watch()

    for _ in range(4):  # the statuses of each other's arrival are out and heard
        for g in (a, b):
            g.link.step(0)
        rounds.now += 0.25
    monkeypatch.setattr(b.link, "_anti_entropy", counted)
    b.link.step(0)
    assert walks == [rounds.now]
    for n in range(1, 5):   # four scans heard within the tick
        a.check(n)
        a.link.step(0)
        b.link.step(0)
    assert b.check(4).decision.reason is Reason.ALREADY_INSIDE  # each was heard
    assert walks == [rounds.now]
    rounds.now += 0.25
    b.link.step(0)
    assert walks[1:] == [rounds.now]

def test_a_gate_back_from_a_split_hears_what_it_missed_without_waiting_for_a_status(
        venue, tmp_path):
    """A busy gate announces its number seldom; a peer coming back online is told at once,
    so what was published while it was away is asked for within a few ticks."""
    from scanner.mesh.link import STATUS_INTERVAL, TICK

    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    rounds.until([a, b], lambda: a.link.peers.get("B") is not None
                 and a.link.peers["B"].online)
    rounds.hub.partition("gate-B")
    rounds.until([a, b], lambda: not b.link.connected.is_set())
    missed = {a.check(n).scan_id for n in (1, 2, 3)}
    a.link.step(0)  # published, while B is away
    rounds.hub.heal("gate-B")
    took = rounds.until([a, b], lambda: missed <= b.scan_ids())
    assert took * TICK < STATUS_INTERVAL / 3

def test_a_newcomer_costs_no_status_when_the_retained_ones_are_current(venue, tmp_path):
    """Every status goes to every gate: a gate joining a quiet venue reads the retained
    statuses, and nobody announces again for it."""
    from scanner.mesh.message import status_topic

    rounds, gates = venue
    a, b = opened(venue, tmp_path, "A", "B")
    a.check(1)
    rounds.until([a, b], lambda: a.link._announced_seq == 1)  # its number is out
    before = [t for t, _ in rounds.hub.published]
    c = rounds.gate(tmp_path / "C", "C")
    gates["C"] = c
    rounds.open(c)
    rounds.until([a, b, c], lambda: c.link.peers.get("A") is not None
                 and c.link.peers["A"].announced == 1 and a.link.peers.get("C") is not None
                 and a.link.peers["C"].online)
    for _ in range(8):
        for g in (a, b, c):
            g.link.step(0)
        rounds.now += 0.25
    after = [t for t, _ in rounds.hub.published][len(before):]
    assert after.count(status_topic("A")) == after.count(status_topic("B")) == 0

def test_a_busy_gate_announces_its_number_once_per_status_interval(venue, tmp_path):
    """Its live records carry their numbers: a status per scan was a third of a venue's
    messages. The status still comes, so a lost last record is found."""
    from scanner.mesh.link import STATUS_INTERVAL, TICK
    from scanner.mesh.message import status_topic

    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")

    def steps(seconds: float) -> None:
        for _ in range(round(seconds / TICK)):
            for g in (a, b):
                g.link.step(0)
            rounds.now += TICK

    def statuses() -> int:
        return sum(t == status_topic("A") for t, _ in rounds.hub.published)

    steps(1.0)  # the status of the connection is out
    before = statuses()
    for n in range(1, 5):  # a scan a second
        a.check(n)
        steps(1.0)
    assert statuses() - before <= 1
    steps(STATUS_INTERVAL)
    assert statuses() - before == 1 and b.link.peers["A"].announced == 4


def test_a_peer_stamp_at_the_last_counter_leaves_the_gates_stamps_readable(venue, tmp_path):
    """A peer's record stamped an hour ahead (within the drift the clock follows) at the
    counter's last value: the gates that merge it keep stamping in the stamp's shape, so
    their own scans still reach every peer (a seventh counter digit made them malformed)."""
    rounds, _ = venue
    a, b = opened(venue, tmp_path, "A", "B")
    liar = rounds.hub.broker("gate-L")
    liar.connect(Inbox())
    ahead = int(rounds.now * 1000) + 3600 * 1000
    lie = Record("scan-l", "L", 1, f"{ahead:013d}-999999-L", "tk-l", "ev", "BC-L", "IN",
                 "OK", "GRANTED", "2030-01-01T10:00:00.000Z")
    liar.publish(scans_topic("L"), Codec(KEY).record(lie))
    rounds.until([a, b], lambda: "scan-l" in a.scan_ids() and "scan-l" in b.scan_ids())
    granted = a.check(1)
    rounds.until([a, b], lambda: granted.scan_id in b.scan_ids())
    assert b.link.codec.dropped == {}
    [stamp] = [r.hlc for r in a.mesh.records() if r.scan_id == granted.scan_id]
    assert stamp > lie.hlc and len(stamp) == len(lie.hlc)


def test_a_gate_restarted_after_its_clock_ran_ahead_never_stamps_before_its_own_scans(
        venue, tmp_path):
    """Its clock a year ahead, then set right, then a restart: the clock goes on after the
    gate's own stamps (as it would have without the restart), so the ticket's exit is
    after its entry and it may enter again."""
    from kits.mesh import MeshGate

    rounds, gates = venue
    year = 365 * 24 * 3600 * 1000
    ahead = [year]

    def start() -> MeshGate:
        gate = gates["A"] = MeshGate(tmp_path / "A", "A", rounds.hub, monotonic=rounds.clock,
                                     physical=lambda: int(rounds.now * 1000) + ahead[0])
        rounds.open(gate)
        rounds.until([gate], gate.link.connected.is_set)
        return gate

    a = start()
    entered = a.check(1)
    rounds.until([a], lambda: entered.scan_id in a.scan_ids())
    a.link.shut()
    gates.pop("A").close()
    ahead[0] = 0  # NTP set it right
    a = start()
    left = a.check(1, Direction.OUT)
    assert left.decision.granted
    rounds.until([a], lambda: left.scan_id in a.scan_ids())
    stamps = {r.scan_id: r.hlc for r in a.mesh.records()}
    assert stamps[left.scan_id] > stamps[entered.scan_id]
    assert a.check(1).decision.reason is Reason.REENTRY_NOT_ALLOWED  # not ALREADY_INSIDE
