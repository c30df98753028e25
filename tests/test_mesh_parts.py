"""The mesh's parts without a broker: the clock, the codec, the store, ``gate conflicts``."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kits.gate import build_gate, gate_toml
from kits.journal import EVENT, make_decision, make_ticket

from scanner.cli.main import main
from scanner.errors import ConfigError
from scanner.mesh.hlc import HybridClock, Stamp
from scanner.mesh.message import (
    BATCH_BYTES,
    MAX_SEQ,
    REPLAY,
    REPLAYED,
    SCANS,
    Batch,
    Codec,
    Record,
    ReplayRequest,
    Status,
    decision_of,
    load_key,
    replayed_topic,
    scans_topic,
)
from scanner.mesh.peer_journal import MeshStore, missing_ranges
from scanner.mesh.replay import REPLAY_GATHER, Replays

KEY = b"k" * 32


def record(scan: str, gate: str, seq: int, ms: int, *, direction: str = "IN",
           ticket: str = "tk-1") -> Record:
    return Record(scan, gate, seq, str(Stamp(ms, 0, gate)), ticket, EVENT, "BC0000000001",
                  direction, "OK", "GRANTED", "2030-01-01T10:00:00.000Z")


def test_the_clock_never_goes_back_when_the_wall_clock_does():
    wall = iter([5000, 4000, 3000])
    clock = HybridClock("A", physical=lambda: next(wall))
    stamps = [clock.now() for _ in range(3)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


def test_a_stamp_heard_from_a_peer_orders_everything_after_it():
    clock = HybridClock("B", physical=lambda: 1000)
    clock.merge(Stamp(9000, 4, "A"))
    assert clock.now() > Stamp(9000, 4, "A")


def test_a_peer_stamp_beyond_the_drift_bound_cannot_drag_the_clock_along():
    clock = HybridClock("B", physical=lambda: 1000, max_drift_ms=60_000)
    clock.merge(Stamp(10**12, 0, "A"))
    assert clock.now().ms == 61_000
    assert clock.drift_clamped == 1


def test_stamp_text_sorts_as_the_stamps_do():
    a, b = Stamp(999, 12, "A"), Stamp(1000, 0, "A")
    assert str(a) < str(b) and Stamp.parse(str(a)) == a


def test_a_record_survives_the_codec_and_names_its_topic():
    codec = Codec(KEY)
    r = record("s1", "A", 1, 5)
    assert codec.decode(scans_topic("A"), codec.record(r)) == Batch("A", (r,))


def test_status_and_replay_requests_survive_the_codec():
    codec = Codec(KEY)
    assert codec.decode("gates/A/status", codec.status(Status("A", 3, True))) == \
        Status("A", 3, True)
    req = ReplayRequest("B", "A", ((1, 4), (9, 9)))
    assert codec.decode("gates/B/replay/A", codec.replay(req)) == req
    assert codec.decode("gates/B/replay/C", codec.replay(req)) is None
    assert codec.dropped["wrong_topic"] == 1


def test_a_status_or_replay_request_numbered_past_the_largest_sequence_is_dropped():
    codec = Codec(KEY)
    assert codec.decode("gates/A/status", codec.status(Status("A", MAX_SEQ, True)))
    assert codec.decode("gates/A/status", codec.status(Status("A", MAX_SEQ + 1, True))) \
        is None
    asked = codec.replay(ReplayRequest("B", "A", ((1, MAX_SEQ + 1),)))
    assert codec.decode("gates/B/replay/A", asked) is None
    assert codec.dropped == {"malformed": 2}


@given(st.binary(max_size=300))
def test_no_payload_makes_the_codec_raise(payload: bytes):
    codec = Codec(KEY)
    assert codec.decode(scans_topic("A"), payload) is None
    assert sum(codec.dropped.values()) == 1


def test_a_large_replay_goes_as_few_payloads_each_within_the_batch_size():
    codec = Codec(KEY)
    records = [record(f"s{n}", "A", n, 5 + n, ticket=f"tk-{n}") for n in range(1, 6001)]
    payloads = codec.records("A", records, kind=REPLAYED)
    assert 1 < len(payloads) <= 6 and all(len(p) <= BATCH_BYTES for p in payloads)
    got = [r for p in payloads for r in codec.decode(replayed_topic("A", "B"), p).records]
    assert got == records


@pytest.mark.parametrize("fault", [
    lambda r: r[:-1],                      # a field short
    lambda r: [*r[:2], "3", *r[3:]],       # seq as text
    lambda r: [*r[:2], MAX_SEQ + 1, *r[3:]],  # seq past SQL's largest integer
    lambda r: [*r[:3], "0000000000005-000000-B", *r[4:]],  # a stamp of another gate
    lambda r: [*r[:7], "SIDEWAYS", *r[8:]],
    lambda r: [*r[:9], None, *r[10:]],     # a required text missing
])
def test_a_malformed_record_drops_its_whole_batch(fault):
    codec = Codec(KEY)
    good = list(decision_of(record("s1", "A", 1, 5)))
    body = {"gate": "A", "records": [good, fault(good)]}
    payload = codec._seal(SCANS, body)
    assert codec.decode(scans_topic("A"), payload) is None
    assert codec.dropped == {"malformed": 1}


def supervised(scan: str, gate: str, seq: int, ms: int) -> Record:
    """An override's record: who (role, session tag) and why (code, note)."""
    return record(scan, gate, seq, ms)._replace(
        reason="OVERRIDDEN", role="supervisor", session="a1b2c3d4", why="SUPPORT_CASE",
        note="ticket #1234 reissued", answers="s0")


def test_an_entry_carries_who_and_why_and_a_scan_stays_eleven_fields_long():
    """Who and why: role, session tag, why, note, and the scan it answers. An entry goes
    in a payload of its own, so a gate that drops a batch holding one (a version before
    them) still hears the scans around it."""
    codec = Codec(KEY)
    scans = [record(f"s{n}", "A", n, 4 + n) for n in (1, 2, 4)]
    override = supervised("s3", "A", 3, 7)
    payloads = codec.records("A", [*scans[:2], override, scans[2]])
    wire = [orjson.loads(p)["body"]["records"] for p in payloads]
    assert [[len(r) for r in rows] for rows in wire] == [[11, 11], [16], [11]]
    got = [r for p in payloads for r in codec.decode(scans_topic("A"), p).records]
    assert got == [*scans[:2], override, scans[2]]


def test_a_record_from_a_gate_that_knows_no_who_and_why_still_verifies():
    """An older gate sends the 11 decision fields and seals them with the venue key."""
    codec = Codec(KEY)
    old = ["s1", "A", 1, str(Stamp(5, 0, "A")), None, None, "BC0000000001", "IN", "FAIL",
           "PASSAGE_FORCED", "2030-01-01T10:00:00.000Z"]
    batch = codec.decode(scans_topic("A"), codec._seal(SCANS, {"gate": "A", "records": [old]}))
    assert isinstance(batch, Batch)
    [got] = batch.records
    assert got.reason == "PASSAGE_FORCED"
    assert (got.role, got.session, got.why, got.note, got.answers) == (None,) * 5


@pytest.mark.parametrize("fault", [
    lambda r: [*r[:11], 7, *r[12:]],             # a role that is no text
    lambda r: [*r[:11], None, *r[12:]],          # why and a note, but from nobody
    lambda r: r[:13],                            # neither 11 fields nor 16
    lambda r: [*r[:14], "line\nbreak", r[15]],  # a note that is not one printable line
    lambda r: [*r[:14], "x" * 201, r[15]],       # a note longer than any the desk keeps
    lambda r: [*r[:11], ""],                     # an empty role
])
def test_a_malformed_who_or_why_drops_its_whole_batch(fault):
    codec = Codec(KEY)
    good = list(supervised("s1", "A", 1, 5))
    body = {"gate": "A", "records": [good, fault(good)]}
    assert codec.decode(scans_topic("A"), codec._seal(SCANS, body)) is None
    assert codec.dropped == {"malformed": 1}


def test_a_tampered_record_is_dropped_as_unauthenticated():
    codec = Codec(KEY)
    payload = codec.record(record("s1", "A", 1, 5)).replace(b'"OUT"', b'"IN"').replace(
        b'"IN"', b'"OUT"')
    assert codec.decode(scans_topic("A"), payload) is None
    assert codec.dropped == {"bad_mac": 1}


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path):
    key = tmp_path / "key"
    key.write_bytes(KEY)
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(key)
    key.chmod(0o600)
    assert load_key(key) == KEY


def test_missing_ranges_are_the_gaps_up_to_the_announced_number():
    assert missing_ranges([(2, 3), (6, 6)], 8) == [(1, 1), (4, 5), (7, 8)]
    assert missing_ranges([(1, 5)], 5) == []


@pytest.fixture
def store(tmp_path: Path):
    with build_gate(tmp_path, gate_id="B") as gate:
        yield MeshStore(gate.journal_engine, "B"), gate


def test_a_peer_record_is_kept_once(store):
    mesh, _ = store
    assert mesh.record_peer(record("s1", "A", 1, 5))
    assert not mesh.record_peer(record("s1", "A", 1, 5))
    assert mesh.held_ranges("A") == [(1, 1)]


def test_a_batch_of_several_statements_keeps_every_new_record_once(store):
    """Hundreds of records go in as several multi-row statements and a shorter tail."""
    mesh, _ = store
    batch = [record(f"s{n}", "A", n, n, ticket=f"tk-{n}") for n in range(1, 301)]
    assert mesh.record_many(batch[100:150]) == 50
    assert mesh.record_many(batch) == 250
    assert mesh.held_ranges("A") == [(1, 300)]
    assert mesh.records() == batch


def test_a_conflict_in_the_tail_of_a_long_batch_is_detected(store):
    mesh, _ = store
    batch = [record(f"s{n}", "A", n, n, ticket=f"tk-{n}") for n in range(1, 201)]
    mesh.record_many([*batch, record("c1", "C", 1, 999, ticket="tk-200")])
    [conflict] = mesh.conflicts()
    assert (conflict.first.scan_id, conflict.second.scan_id) == ("s200", "c1")


def test_two_admissions_at_two_gates_without_a_checkout_between_are_a_conflict(store):
    mesh, _ = store
    mesh.record_many([record("s1", "A", 1, 5), record("s2", "C", 1, 7)])
    [conflict] = mesh.conflicts()
    assert (conflict.first.scan_id, conflict.second.scan_id) == ("s1", "s2")


def test_an_admission_after_a_checkout_is_no_conflict(store):
    mesh, _ = store
    mesh.record_many([record("s1", "A", 1, 5), record("s2", "A", 2, 6, direction="OUT"),
                      record("s3", "C", 1, 7)])
    assert mesh.conflicts() == []


def _journal(gate, scan_ids):
    """Grants of one ticket journaled at ``gate``, one per scan id, in order."""
    ticket = make_ticket(1)
    for scan_id in scan_ids:
        gate.journal.record(make_decision(ticket), scan_id=scan_id,
                            scanned_at="2030-01-01T10:00:00.000Z", latency_ms=1.0)


def test_a_peers_entry_with_who_and_why_is_kept_by_its_decision_fields(store):
    """Who and why stay in the origin's journal; a peer keeps what decisions need."""
    mesh, _ = store
    override = supervised("s1", "A", 1, 5)
    assert mesh.record_many([override, record("s2", "A", 2, 6, ticket="tk-2")]) == 2
    assert mesh.records()[0] == override._replace(role=None, session=None, why=None,
                                                  note=None, answers=None)


def test_journal_rows_are_stamped_once_in_journal_order(store):
    mesh, gate = store
    _journal(gate, [f"j{n}" for n in range(3)])
    clock = HybridClock("B")
    stamped = mesh.stamp_journal(clock)
    assert [(r.scan_id, r.seq) for r in stamped] == [("j0", 1), ("j1", 2), ("j2", 3)]
    assert mesh.stamp_journal(clock) == []
    assert mesh.local_range(2, 3) == stamped[1:]


class ReadsCounted(MeshStore):
    """A store that fails a test reading its own records more than a few times."""

    reads = 0

    def local_range(self, first: int, last: int) -> list[Record]:
        self.reads += 1
        assert self.reads <= 4, f"replay still reading at {first}..{last}"
        return super().local_range(first, last)


def test_a_replay_request_past_the_own_records_replays_only_what_is_held(store):
    """A signed request for sequence numbers up to the largest a message may carry is
    served as the records there are, not read a chunk at a time."""
    mesh, gate = store
    _journal(gate, ["j0", "j1", "j2"])
    stamped = mesh.stamp_journal(HybridClock("B"))
    codec = Codec(KEY)
    huge = ReplayRequest("A", "B", ((2, MAX_SEQ), (7, MAX_SEQ)))
    heard = codec.decode(f"gates/A/{REPLAY}/B", codec.replay(huge))
    assert heard == huge
    replays = Replays(ReadsCounted(gate.journal_engine, "B"), codec)
    replays.ask(heard, 0.0)
    sent: list[bytes] = []
    replays.serve(REPLAY_GATHER, lambda _topic, payload: sent.append(payload))
    served = [r for p in sent for r in codec.decode(replayed_topic("B", "A"), p).records]
    assert served == stamped[1:]
    assert replays.replayed == 2


def test_overlapping_or_shifted_ranges_from_one_asker_replay_each_record_once(store):
    """A peer asking for its whole history again and again, in ranges that overlap or
    shift by one (each a range not asked before), gets each record once per holdoff: one
    message must not make the origin read and send its history 64 times over."""
    mesh, gate = store
    _journal(gate, [f"j{n:02d}" for n in range(40)])
    mesh.stamp_journal(HybridClock("B"))
    codec = Codec(KEY)
    replays = Replays(mesh, codec)
    sent: list[bytes] = []
    for n, start in enumerate((1, 2)):  # the second within the holdoff
        ranges = tuple((first, 40) for first in range(start, start + 64))
        replays.ask(ReplayRequest("A", "B", ranges), n * 0.5)
        replays.serve(n * 0.5 + REPLAY_GATHER, lambda _topic, payload: sent.append(payload))
    served = [r.seq for p in sent for r in codec.decode(replayed_topic("B", "A"), p).records]
    assert sorted(served) == list(range(1, 41))
    assert replays.replayed == 40


def test_a_long_journal_is_stamped_whole_across_several_statements(store):
    mesh, gate = store
    _journal(gate, [f"j{n:03d}" for n in range(200)])
    stamped = mesh.stamp_journal(HybridClock("B"))
    assert [r.seq for r in stamped] == list(range(1, 201))
    assert mesh.local_range(1, 200) == stamped


def test_gate_conflicts_json_lists_both_scans(tmp_path: Path, monkeypatch, capsys):
    with build_gate(tmp_path, gate_id="B") as gate:
        MeshStore(gate.journal_engine, "B").record_many([record("s1", "A", 1, 5),
                                                         record("s2", "C", 1, 7)])
    toml = gate_toml(tmp_path, gate_id="B")
    for name in ("GATE_DB", "GATE_ID", "GATE_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--config", str(toml), "conflicts", "--json"]) == 0
    [doc] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (doc["first"]["gate"], doc["second"]["gate"]) == ("A", "C")
    assert doc["barcode"] == "BC0000000001"


def test_gate_conflicts_prints_a_peers_controls_escaped_on_one_line(tmp_path: Path,
                                                                      monkeypatch, capsys):
    """A peer's record is its word: a barcode or time with a newline or an ESC sequence
    must not add lines or rewrite the operator's terminal."""
    hostile = record("s0", "C", 1, 3)._replace(barcode="BC\x1b[2J\nfake line",
                                               scanned_at="2030\r\u202e")
    with build_gate(tmp_path, gate_id="B") as gate:
        MeshStore(gate.journal_engine, "B").record_many([hostile, record("s1", "A", 1, 5)])
    toml = gate_toml(tmp_path, gate_id="B")
    for name in ("GATE_DB", "GATE_ID", "GATE_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--config", str(toml), "conflicts"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("BC\\x1b[2J\\x0afake line (ticket tk-1): in at C 2030\\x0d\\u202e and")
    assert line.isprintable()


def test_a_lost_broker_is_said_once_when_partitioned_and_once_when_healed():
    from scanner.mesh.partition import Partition

    p = Partition()
    p.reset(0.0, "t0")
    seen = [p.observe(up, now, lambda: f"t{now}", grace=10.0)  # noqa: B023 - called at once
            for up, now in [(False, 1.0), (True, 2.0), (True, 3.0), (False, 4.0),
                            (False, 5.0), (False, 9.0), (True, 12.0)]]
    assert seen == [None, "connected", None, "partitioned", None, None, "healed"]
    assert p.lasted == 8.0 and p.since_wall is None and not p.said


def test_a_gate_that_never_reaches_its_broker_says_so_after_the_grace():
    from scanner.mesh.partition import Partition

    p = Partition()
    p.reset(0.0, "t0")
    assert p.observe(False, 9.0, lambda: "t9", grace=10.0) is None and not p.said
    assert p.observe(False, 10.5, lambda: "t10", grace=10.0) == "partitioned"
    assert p.said and p.since_wall == "t0"


def test_the_link_state_saved_for_other_processes_reads_back_with_its_time(store):
    mesh, _ = store
    mesh.save_link_state({"connected": False, "partitioned": True}, "2030-01-01T10:00:00.000Z")
    assert mesh.link_state() == ({"connected": False, "partitioned": True},
                                  "2030-01-01T10:00:00.000Z")
