"""The outbox against the simulator on loopback, with its fault switches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from kits.journal import make_decision, make_ticket, open_journal
from kits.waiting import wait_for

from scanner.decide.model import Direction, Reason
from scanner.journal import Journal
from scanner.journal.ids import new_scan_id
from scanner.run.jobs import upload_job
from scanner.run.schedule import Scheduler
from scanner.upload.outbox import Outbox

# Enough drains for any fault rate used here to let every batch through eventually.
MAX_DRAINS = 30


@pytest.fixture
def journal(tmp_path: Path):
    with open_journal(tmp_path / "gate.db") as j:
        yield j


@pytest.fixture
def event(sim_world) -> str:
    return sim_world.event_ids[0]


def journal_scans(journal: Journal, event: str, count: int, *, start: int = 0) -> list[str]:
    """``count`` granted check-ins of distinct tickets; returns their barcodes."""
    barcodes = []
    for n in range(start, start + count):
        ticket = make_ticket(n, event=event)
        journal.record(make_decision(ticket), scan_id=new_scan_id(),
                       scanned_at=f"2030-01-01T10:00:{n % 60:02d}.{n % 1000:03d}Z",
                       latency_ms=0.1)
        barcodes.append(ticket.barcode)
    return barcodes


def server_barcodes(world) -> Counter[str]:
    return Counter(scan["barcode"] for scan in world.scans)


def drain_until_empty(outbox: Outbox) -> int:
    """Drain as the daemon would, tick after tick; returns how many drains it took."""
    for n in range(1, MAX_DRAINS + 1):
        outbox.drain_once()
        if outbox.journal.stats()["queue_depth"] == 0:
            return n
    raise AssertionError(f"queue not empty after {MAX_DRAINS} drains")


def test_a_drain_sends_every_pending_scan_and_marks_it_sent(journal, api_client, sim_world,
                                                            event):
    barcodes = journal_scans(journal, event, 12)
    report = Outbox(journal, api_client, batch_size=5).drain_once()
    assert (report.sent, report.batches, report.errors) == (12, 3, [])
    assert server_barcodes(sim_world) == Counter(barcodes)
    assert {e["upload_state"] for e in journal.entries()} == {"sent"}


def test_a_scan_is_uploaded_with_the_documented_fields(journal, api_client, sim_world, event):
    journal_scans(journal, event, 1)
    Outbox(journal, api_client).drain_once()
    [entry] = journal.entries()
    assert sim_world.scans == [{"ticketId": entry["ticket_id"], "barcode": entry["barcode"],
                                "scanned_at": entry["scanned_at"], "type": "OK",
                                "direction": "IN", "eventId": event}]


def test_an_unknown_barcode_is_uploaded_without_a_ticket_id(journal, api_client, sim_world,
                                                            event):
    journal.record(make_decision(None, granted=False, barcode="UNKNOWN-0001",
                                 reason=Reason.UNKNOWN_BARCODE),
                   scan_id=new_scan_id(), scanned_at="2030-01-01T10:00:00.000Z",
                   latency_ms=0.1, event_id=event)
    Outbox(journal, api_client).drain_once()
    assert [("ticketId" in s, s["type"]) for s in sim_world.scans] == [(False, "FAIL")]


def test_scans_go_to_their_own_events_oldest_first(journal, api_client, sim_world):
    first, second = sim_world.event_ids
    journal_scans(journal, second, 2, start=0)
    journal_scans(journal, first, 2, start=10)
    journal_scans(journal, second, 1, start=20)
    Outbox(journal, api_client, batch_size=2).drain_once()
    def sent_to(event: str) -> list[str]:
        return [s["barcode"] for s in sim_world.scans if s["eventId"] == event]

    assert sent_to(first) == [make_ticket(n).barcode for n in (10, 11)]
    assert sent_to(second) == [make_ticket(n).barcode for n in (0, 1, 20)]


def test_a_poisoned_scan_is_parked_as_rejected_and_the_rest_is_sent(journal, api_client,
                                                                    sim_world, event):
    barcodes = journal_scans(journal, event, 9)
    sim_world.poison.add(barcodes[4])
    report = Outbox(journal, api_client, batch_size=9).drain_once()
    assert (report.sent, report.rejected) == (8, 1)
    assert server_barcodes(sim_world) == Counter(b for b in barcodes if b != barcodes[4])
    [parked] = [e for e in journal.entries() if e["upload_state"] == "rejected"]
    assert parked["barcode"] == barcodes[4]
    assert "refused by the server" in parked["upload_error"]


def test_a_rejected_scan_never_blocks_later_drains(journal, api_client, sim_world, event):
    [bad] = journal_scans(journal, event, 1)
    sim_world.poison.add(bad)
    outbox = Outbox(journal, api_client)
    outbox.drain_once()
    later = journal_scans(journal, event, 3, start=1)
    assert outbox.drain_once().sent == 3
    assert server_barcodes(sim_world) == Counter(later)


def test_rate_limiting_with_retry_after_loses_nothing(journal, api_client, sim_server,
                                                      sim_world, event):
    barcodes = journal_scans(journal, event, 6)
    sim_server.faults.update(rate_limit=2, retry_after=1)
    drain_until_empty(Outbox(journal, api_client, batch_size=3))
    assert set(server_barcodes(sim_world)) == set(barcodes)


def test_server_errors_lose_nothing(journal, api_client, sim_server, sim_world, event):
    barcodes = journal_scans(journal, event, 40)
    sim_server.faults.update(error_rate=0.6)
    drain_until_empty(Outbox(journal, api_client, batch_size=4))
    assert set(server_barcodes(sim_world)) == set(barcodes)


def test_dropped_connections_lose_nothing(journal, api_client, sim_server, sim_world, event):
    barcodes = journal_scans(journal, event, 40)
    sim_server.faults.update(drop_rate=0.5)
    drain_until_empty(Outbox(journal, api_client, batch_size=4))
    assert set(server_barcodes(sim_world)) == set(barcodes)
    assert {e["upload_state"] for e in journal.entries()} == {"sent"}


def test_an_unavailable_server_leaves_everything_pending(journal, api_client, sim_server,
                                                         event):
    journal_scans(journal, event, 5)
    sim_server.stop()
    report = Outbox(journal, api_client).drain_once()
    assert (report.sent, report.ok) == (0, False)
    assert journal.stats()["queue_depth"] == 5


def test_an_event_the_server_does_not_know_waits_while_others_upload(journal, api_client,
                                                                      sim_world, event):
    journal_scans(journal, "ev-gone", 2)
    known = journal_scans(journal, event, 2, start=5)
    report = Outbox(journal, api_client).drain_once()
    assert report.sent == 2 and any("ev-gone" in e for e in report.errors)
    assert server_barcodes(sim_world) == Counter(known)
    assert [q.event_id for q in journal.pending("ev-gone", 10)] == ["ev-gone", "ev-gone"]


def test_short_reads_are_never_uploaded(journal, api_client, sim_world, event):
    journal.record(make_decision(None, granted=False, barcode="SHORT",
                                 reason=Reason.UNKNOWN_BARCODE),
                   scan_id=new_scan_id(), scanned_at="2030-01-01T10:00:00.000Z",
                   latency_ms=0.1, event_id=event)
    report = Outbox(journal, api_client).drain_once()
    assert (report.batches, sim_world.scans) == (0, [])
    assert journal.stats()["local_only"] == 1


def test_the_upload_job_keeps_draining_until_stopped(journal, api_client, sim_world, event):
    journal_scans(journal, event, 1)
    scheduler = Scheduler([upload_job(Outbox(journal, api_client), 0.05)], tick=0.05)
    scheduler.start()
    try:
        journal_scans(journal, event, 2, start=1)  # arrives while the job runs
        wait_for(lambda: len(sim_world.scans) == 3, "the later scans to be uploaded")
    finally:
        scheduler.stop()
        assert scheduler.join(10)
    assert journal.stats()["queue_depth"] == 0


class RaisesOnce:
    """The real client, except that its first request fails in a way nobody planned for."""

    def __init__(self, api) -> None:
        self.api = api
        self.posts = 0

    def post_scans(self, event_id, scans):
        self.posts += 1
        if self.posts == 1:
            raise RuntimeError("a bug in the drain")
        return self.api.post_scans(event_id, scans)


def test_an_unexpected_fault_in_a_drain_does_not_end_the_upload_loop(
        journal, api_client, sim_world, event, caplog):
    journal_scans(journal, event, 3)
    scheduler = Scheduler([upload_job(Outbox(journal, RaisesOnce(api_client)), 0.02)],
                          tick=0.05)
    scheduler.start()
    try:
        wait_for(lambda: len(sim_world.scans) == 3, "the scans uploaded after the fault")
    finally:
        scheduler.stop()
        assert scheduler.join(10)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["job upload failed: RuntimeError('a bug in the drain')"]
    assert "Traceback" not in caplog.text


def test_a_checkout_is_uploaded_as_out(journal, api_client, sim_world, event):
    ticket = make_ticket(1, event=event)
    journal.record(make_decision(ticket, Direction.OUT), scan_id=new_scan_id(),
                   scanned_at="2030-01-01T10:00:00.000Z", latency_ms=0.1)
    Outbox(journal, api_client).drain_once()
    assert [s["direction"] for s in sim_world.scans] == ["OUT"]
