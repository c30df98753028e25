"""Catching up cheaply, on an in-memory broker: what the link learns from the batches it
stores, when it asks, and the codec's column-wise checks of a batch."""

from __future__ import annotations

from pathlib import Path

import pytest
from kits.gate import build_gate
from kits.journal import EVENT, make_decision, make_ticket

from scanner.mesh import message
from scanner.mesh.broker import Connected
from scanner.mesh.broker_settings import MeshSettings
from scanner.mesh.hlc import HybridClock, Stamp
from scanner.mesh.link import Link
from scanner.mesh.memory_broker import MemoryBroker, MemoryHub
from scanner.mesh.message import Batch, Codec, Record, ReplayRequest, Status
from scanner.mesh.peer_journal import MeshStore

KEY = b"k" * 32


def record(gate: str, seq: int) -> Record:
    return Record(f"{gate}-{seq}", gate, seq, str(Stamp(1000 + seq, 0, gate)), f"tk-{gate}{seq}",
                  EVENT, "BC0000000001", "IN", "OK", "GRANTED", "2030-01-01T10:00:00.000Z")


def batch(gate: str, *seqs: int) -> Batch:
    return Batch(gate, tuple(record(gate, n) for n in seqs))


class Sent:
    """What reached the link's broker, by topic."""

    def __init__(self, hub: MemoryHub) -> None:
        self.hub = hub

    @property
    def topics(self) -> list[str]:
        return [topic for topic, _ in self.hub.published]

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.hub.published]


def attach(link: Link) -> Sent:
    """The link connected to a broker of its own, the connection not yet handled."""
    link.open()
    assert isinstance(link.inbox.get(0), Connected)
    assert isinstance(link.broker, MemoryBroker)
    return Sent(link.broker.hub)


def connect(link: Link) -> Sent:
    """The link as its worker leaves it once a connection has started."""
    sent = attach(link)
    link._on_connected()
    return sent


@pytest.fixture
def gate(tmp_path: Path):
    with build_gate(tmp_path, gate_id="B") as gate:
        yield gate


@pytest.fixture
def link(gate):
    now = [100.0]
    link = Link(MeshSettings(url="mqtt://127.0.0.1:1", key=KEY, anti_entropy_interval=5.0),
                MeshStore(gate.journal_engine, "B"), MemoryHub().broker("gate-B"),
                monotonic=lambda: now[0])
    link.now = now  # type: ignore[attr-defined]
    return link


def test_a_batch_that_continues_what_is_complete_extends_it(link):
    link._store_records([batch("A", 1, 2, 3)])
    assert link.peers["A"].verified == 3
    link._store_records([batch("A", 4)])
    assert link.peers["A"].verified == 4


def test_a_batch_after_a_gap_is_stored_but_never_counted_as_complete(link):
    link._store_records([batch("A", 1, 2)])
    link._store_records([batch("A", 5, 6)])
    assert link.peers["A"].verified == 2
    assert link.store.held_ranges("A") == [(1, 2), (5, 6)]
    assert link.state()["peers"]["A"]["held"] == 6


def test_a_batch_with_a_hole_inside_extends_nothing(link):
    link._store_records([batch("A", 1, 2, 4)])
    assert link.peers["A"].verified == 0


def test_a_first_ask_goes_out_while_replies_wait_but_asking_again_waits(link):
    sent = attach(link)
    link.connected.set()
    link._store_records([batch("A", 1), batch("C", 1)])
    fresh, again = link.peers["A"], link.peers["C"]
    fresh.announced = again.announced = 9
    # Asked on this connection long ago, nothing came: due again, but not while busy.
    again.asked_at, again.heard_at, again.asked_since_connect = 1.0, 0.5, True
    link.interrupt()  # something waits in the inbox
    link._anti_entropy()
    assert sent.topics == [f"gates/B/{message.REPLAY}/A"]
    link.inbox.get(0)
    link._anti_entropy()
    assert sent.topics == [f"gates/B/{message.REPLAY}/A", f"gates/B/{message.REPLAY}/C"]


def test_news_of_a_peer_asked_already_waits_for_a_lull(link):
    sent = attach(link)
    link.connected.set()
    link._store_records([batch("A", 1)])
    link.peers["A"].announced = 9
    link._anti_entropy()
    assert len(sent.topics) == 1  # the first ask
    link.now[0] += 60.0
    link._handle(Status("A", 20, True))  # its live scans go on while its replay arrives
    link.interrupt()
    link._anti_entropy()
    assert len(sent.topics) == 1


@pytest.mark.parametrize(("stored", "asked"), [
    ([(1, 2)], ((3, 9),)),                    # after a split: all after the complete part
    ([(1, 2), (5, 6)], ((3, 4), (7, 9))),     # a hole: only what is missing
])
def test_the_ask_names_exactly_what_is_missing(link, stored, asked):
    sent = attach(link)
    link.connected.set()
    for first, last in stored:
        link._store_records([batch("A", *range(first, last + 1))])
    link.peers["A"].announced = 9
    link._anti_entropy()
    [payload] = sent.payloads
    request = Codec(KEY).decode(sent.topics[0], payload)
    assert isinstance(request, ReplayRequest) and request.ranges == asked


def test_a_quiet_stamp_does_not_miss_the_next_journal_row(gate):
    mesh = MeshStore(gate.journal_engine, "B")
    clock = HybridClock("B")
    ticket = make_ticket(1)

    def journal(scan_id: str) -> None:
        gate.journal.record(make_decision(ticket), scan_id=scan_id,
                            scanned_at="2030-01-01T10:00:00.000Z", latency_ms=1.0)

    journal("j0")
    assert [r.seq for r in mesh.stamp_journal(clock)] == [1]
    assert mesh.stamp_journal(clock) == []
    journal("j1")
    assert [(r.scan_id, r.seq) for r in mesh.stamp_journal(clock)] == [("j1", 2)]
    assert mesh.own_max_seq() == 2 == MeshStore(gate.journal_engine, "B").own_max_seq()


@pytest.mark.parametrize("fault", [
    lambda r: [*r[:2], 0, *r[3:]],         # sequence numbers start at 1
    lambda r: [*r[:2], True, *r[3:]],      # a bool is no number
    lambda r: [*r[:4], 7, *r[5:]],         # a ticket id as a number
    lambda r: [*r[:8], "MAYBE", *r[9:]],
    lambda r: [*r[:3], r[3][:-1] + "AA", *r[4:]],  # a stamp one character long
    lambda r: {"not": "a list"},
])
def test_one_bad_field_anywhere_in_a_batch_drops_the_batch(fault):
    codec = Codec(KEY)
    good = [list(message.decision_of(record("A", n))) for n in range(1, 4)]
    payload = codec._seal(message.SCANS, {"gate": "A", "records": [*good, fault(good[0])]})
    assert codec.decode(message.scans_topic("A"), payload) is None
    assert codec.dropped == {"malformed": 1}


def test_a_record_of_another_gate_in_a_batch_is_on_the_wrong_topic():
    codec = Codec(KEY)
    rows = [list(message.decision_of(record(g, n))) for g, n in (("A", 1), ("C", 2))]
    payload = codec._seal(message.SCANS, {"gate": "A", "records": rows})
    assert codec.decode(message.scans_topic("A"), payload) is None
    assert codec.dropped == {"wrong_topic": 1}


def test_a_good_batch_decodes_to_the_records_sent():
    codec = Codec(KEY)
    records = [record("A", n) for n in range(1, 50)]
    [payload] = codec.records("A", records)
    decoded = codec.decode(message.scans_topic("A"), payload)
    assert decoded == Batch("A", tuple(records))
    assert all(type(r) is Record and r.admission for r in decoded.records)


def _journal_one(gate, scan_id: str) -> None:
    gate.journal.record(make_decision(make_ticket(1)), scan_id=scan_id,
                        scanned_at="2030-01-01T10:00:00.000Z", latency_ms=1.0)


def test_a_notified_decision_is_published_in_the_next_round(gate, link):
    sent = connect(link)
    link._quiet_stamp_at = link.now[0]  # a quiet stamp is not due
    _journal_one(gate, "j0")
    link.notify()
    link.step()
    assert sent.topics.count(message.scans_topic("B")) == 1


def test_an_unnotified_decision_is_published_once_a_quiet_stamp_is_due(gate, link):
    sent = connect(link)
    link._quiet_stamp_at = link.now[0]
    _journal_one(gate, "j0")
    link.interrupt()
    link.step()
    assert message.scans_topic("B") not in sent.topics
    link.now[0] += 1.0
    link.step(0)
    assert sent.topics.count(message.scans_topic("B")) == 1


def test_what_was_stamped_alone_goes_out_live_before_the_status_on_reconnect(gate, link):
    sent = connect(link)
    hub = sent.hub
    _journal_one(gate, "j0")
    link._publish_new()  # connected: j0 goes out live
    hub.partition("gate-B")
    link.step(0)  # lost: alone
    for n in range(1, 4):
        _journal_one(gate, f"alone{n}")
    link._publish_new()  # alone: stamped, nothing sent
    assert sent.topics == [message.scans_topic("B")]
    hub.heal("gate-B")
    link.step(0)
    codec = Codec(KEY)
    decoded = [codec.decode(t, p) for t, p in zip(sent.topics, sent.payloads, strict=True)]
    backlog = decoded[1]
    assert isinstance(backlog, Batch) and [r.seq for r in backlog.records] == [2, 3, 4]
    assert isinstance(decoded[2], Status) and decoded[2].seq == 4  # after the records
    assert len(decoded) == 3


def test_a_record_journaled_as_the_connection_comes_up_goes_out_before_its_status(gate, link):
    _journal_one(gate, "alone")
    link._publish_new()
    _journal_one(gate, "meanwhile")
    link.notify()  # before the worker has seen the connection
    sent = Sent(link.broker.hub)  # type: ignore[attr-defined]
    link.open()
    link.step(0)
    codec = Codec(KEY)
    decoded = [codec.decode(t, p) for t, p in zip(sent.topics, sent.payloads, strict=True)]
    assert [type(m) for m in decoded] == [Batch, Batch, Status]
    assert [r.seq for m in decoded[:2] for r in m.records] == [1, 2]  # type: ignore[union-attr]
    assert decoded[2].seq == 2  # type: ignore[union-attr]


def test_a_reconnect_with_nothing_stamped_alone_sends_only_the_status(gate, link):
    sent = connect(link)
    _journal_one(gate, "j0")
    link._publish_new()
    link.interrupt()
    link.step()
    assert sent.topics == [message.scans_topic("B"), message.status_topic("B")]
