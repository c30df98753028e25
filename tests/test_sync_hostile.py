"""The sync path against a server that lies or stalls (kits/hostile_server.py), over real
HTTP into a real SQLite file: every request is bounded, bad fields never become VALID, a
future ``updatedAt`` cannot pin a row, the token never leaks through an echo, a redirect is
no answer (an upload it met stays queued), and an online lookup answering another code's
ticket admits nobody."""

from __future__ import annotations

import contextlib
import logging
import resource
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kits.gate import build_gate
from kits.hostile_server import EVENT, TOKEN, HostileServer, hostile_doc
from kits.journal import make_decision, make_ticket, open_journal

from scanner.config import ApiConfig, LookupConfig, Secret, SyncConfig
from scanner.databases import make_engine
from scanner.decide.model import Direction, Reason
from scanner.errors import (
    BadRequest,
    PagingError,
    ProtocolError,
    ServerUnavailable,
    TooManyTickets,
)
from scanner.journal.ids import new_scan_id
from scanner.store.tickets import TicketStore
from scanner.sync.syncer import Syncer
from scanner.tickets import MALFORMED, utc_iso
from scanner.upload.outbox import Outbox
from scanner.vivenu.client import VivenuClient

NOW = utc_iso(datetime.now(UTC))
FAR_FUTURE = "2099-01-01T00:00:00.000Z"


@pytest.fixture(name="hostile")
def hostile_fixture() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def client(server: HostileServer, **options: float) -> VivenuClient:
    return VivenuClient(server.url, Secret(TOKEN), backoff=0.01, retries=2, **options)


def syncer(server: HostileServer, db: Path, **config: float) -> Syncer:
    store = TicketStore(make_engine(f"sqlite:///{db}"))
    return Syncer(client(server), store, SyncConfig(**{"page_size": 10, **config}),
                  events=(EVENT,), progress=False)


# These two bound how long giving up takes (5 s, against a server that never ends): they
# run on the worker of the other timed tests, one timed test at a time.
@pytest.mark.xdist_group("timing")
def test_a_dripping_body_is_cut_off_at_the_page_deadline(hostile: HostileServer) -> None:
    hostile.mode, hostile.drip_every = "drip", 0.2
    started = time.monotonic()
    with client(hostile, page_deadline=1.0) as api, pytest.raises(
            ServerUnavailable, match="deadline"):
        api.ticket_page(EVENT, top=10, skip=0)
    assert time.monotonic() - started < 5  # one byte a fifth of a second goes on forever


@pytest.mark.xdist_group("timing")
def test_a_hang_after_headers_gives_up_within_the_deadline(hostile: HostileServer) -> None:
    hostile.mode = "hang"
    started = time.monotonic()
    with client(hostile, page_deadline=1.0, read_timeout=15.0) as api, pytest.raises(
            ServerUnavailable):
        api.ticket_page(EVENT, top=10, skip=0)
    assert time.monotonic() - started < 5  # not the 15 s read timeout times the retries


@pytest.mark.xdist_group("timing")
def test_a_dripping_me_ends_the_sync_run_within_the_deadline(hostile: HostileServer,
                                                             tmp_path: Path) -> None:
    """Every run starts with GET /me: dripping it must not hold the sync for ever."""
    hostile.mode, hostile.drip_every, hostile.stall_all = "drip", 0.2, True
    hostile.stall_for = 8
    sync = syncer(hostile, tmp_path / "d.db")
    sync.api = client(hostile, page_deadline=1.0)
    started = time.monotonic()
    with pytest.raises(ServerUnavailable, match=r"GET /me.*deadline"):
        sync.run_once()
    assert time.monotonic() - started < 5


@pytest.mark.xdist_group("timing")
def test_a_dripping_upload_answer_pauses_the_drain_within_the_deadline(
        hostile: HostileServer, tmp_path: Path) -> None:
    hostile.mode, hostile.drip_every, hostile.stall_all = "drip", 0.2, True
    hostile.stall_for = 8
    started = time.monotonic()
    with open_journal(tmp_path / "gate.db") as journal, \
            client(hostile, page_deadline=1.0) as api:
        journal.record(make_decision(make_ticket(1, event=EVENT)), scan_id=new_scan_id(),
                       scanned_at=NOW, latency_ms=0.1)
        report = Outbox(journal, api).drain_once()
        assert [e["upload_state"] for e in journal.entries()] == ["pending"]
    assert time.monotonic() - started < 5
    [error] = report.errors
    assert "deadline" in error


def test_a_huge_page_is_refused_at_the_cap_without_holding_it(hostile: HostileServer) -> None:
    hostile.mode = "huge"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with client(hostile, max_page_bytes=1024 * 1024) as api, pytest.raises(
            ProtocolError, match="max_page_bytes"):
        api.ticket_page(EVENT, top=10, skip=0)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50  # the page is 200 MB


def test_a_compressed_page_is_read(hostile: HostileServer) -> None:
    hostile.mode, hostile.docs = "gzip", [hostile_doc(i, NOW) for i in range(5)]
    with client(hostile) as api:
        page = api.ticket_page(EVENT, top=10, skip=0)
    assert [t.id for t in page.tickets] == [f"h{i:06d}" for i in range(5)]


def inflated_peak(hostile: HostileServer, expected: type[Exception], match: str) -> float:
    """The most memory, in MiB, that reading a page of ``hostile`` held at once."""
    with client(hostile, max_page_bytes=1024 * 1024) as api:
        tracemalloc.start()
        try:
            with pytest.raises(expected, match=match):
                api.ticket_page(EVENT, top=10, skip=0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peak / 2**20


def test_a_gzip_bomb_is_refused_at_the_cap_without_inflating_it(
        hostile: HostileServer) -> None:
    """200 MiB in 200 KiB: decompressed no further than the cap, not a chunk at a time."""
    hostile.mode, hostile.layers = "bomb", 1
    assert inflated_peak(hostile, ProtocolError, "max_page_bytes") < 16


def test_a_body_compressed_twice_is_refused_unopened(hostile: HostileServer) -> None:
    """"gzip, gzip" was not asked for: each layer multiplies by a thousand, so a body of a
    few KiB could ask for gigabytes in one call."""
    hostile.mode, hostile.layers = "bomb", 2
    assert inflated_peak(hostile, ProtocolError, "content-encoding 'gzip, gzip'") < 16


@pytest.mark.parametrize("status", [200, 400])
def test_a_body_that_does_not_decompress_is_one_api_error(hostile: HostileServer,
                                                          status: int) -> None:
    hostile.mode, hostile.status = "corrupt", status
    expected = ProtocolError if status == 200 else BadRequest
    with client(hostile) as api, pytest.raises(expected, match=f"HTTP {status}"):
        api.ticket_page(EVENT, top=10, skip=0)


def test_a_growing_total_stops_the_run_at_the_ticket_cap(hostile: HostileServer,
                                                         tmp_path: Path) -> None:
    hostile.mode, hostile.grow_by = "growing", 25
    sync = syncer(hostile, tmp_path / "g.db", max_event_tickets=100)
    with pytest.raises(TooManyTickets, match="max_event_tickets"):
        sync.run_once()
    assert sync.store.count() <= 100


def test_a_listing_that_repeats_its_first_page_ends_the_run_in_one_error(
        hostile: HostileServer, tmp_path: Path) -> None:
    hostile.mode, hostile.docs = "repeat", [hostile_doc(i, NOW) for i in range(25)]
    sync = syncer(hostile, tmp_path / "r.db")
    with pytest.raises(PagingError, match="repeats itself"):
        sync.run_once()
    # the page, two that brought nothing new, and the one the sync read ahead
    assert len([p for p in hostile.requests if "/tickets/" in p]) <= 4
    assert sync.store.count() == 10  # the one page it did get is kept


def test_a_listing_whose_order_moves_is_not_taken_for_complete(hostile: HostileServer,
                                                                tmp_path: Path) -> None:
    """Neighbours swapping places between requests make the pager skip tickets it takes
    for read: the run says so, sweeps nothing, and the next runs fill the gaps."""
    hostile.mode = "unstable"
    hostile.docs = [hostile_doc(i, "2026-01-01T00:00:00.000Z") for i in range(200)]
    sync = syncer(hostile, tmp_path / "u.db", page_size=20)
    with pytest.raises(PagingError, match="moved while it was paged"):
        sync.run_once()
    assert sync.store.sync_state(EVENT).last_full_at is None  # not taken for a full sync
    for _run in range(20):
        with contextlib.suppress(PagingError):
            sync.run_once()
        if sync.store.count(EVENT) == 200:
            break
    assert sync.store.count(EVENT) == 200


@pytest.mark.xdist_group("timing")
def test_a_listing_that_wraps_round_past_its_end_ends_the_run(hostile: HostileServer,
                                                             tmp_path: Path) -> None:
    """Every page full, whatever the offset: a page past the total the same answer gives
    is a lie, or the run would page for ever."""
    hostile.mode, hostile.docs = "wrap", [hostile_doc(i, NOW) for i in range(25)]
    sync = syncer(hostile, tmp_path / "w.db")
    done = threading.Event()
    faults: list[BaseException] = []

    def run() -> None:
        try:
            sync.run_once(done)
        except BaseException as exc:  # handed to the test
            faults.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    done.set()  # a run still paging stops after its page
    worker.join(10)
    [fault] = faults
    assert isinstance(fault, PagingError) and "past the" in str(fault)
    assert sync.store.count(EVENT) == 25


def test_a_listing_that_ends_before_its_total_sweeps_nothing(hostile: HostileServer,
                                                             tmp_path: Path) -> None:
    """After an honest sync, pages that stop at half the total they claim: the reconcile
    neither finishes on half a listing nor sweeps the half it did not get."""
    hostile.docs = [hostile_doc(i, "2026-01-01T00:00:00.000Z") for i in range(100)]
    sync = syncer(hostile, tmp_path / "c.db", reconcile_every=0.001, max_deletion_share=1.0)
    sync.run_once()
    first = sync.store.sync_state(EVENT).last_full_at
    hostile.mode, hostile.cut_at = "cut", 50
    with pytest.raises(PagingError, match="50 of them were not read"):
        sync.run_once()
    assert sync.store.count(EVENT) == 100
    assert sync.store.sync_state(EVENT).last_full_at == first


def test_a_delta_that_ends_before_its_total_keeps_its_watermark(hostile: HostileServer,
                                                                tmp_path: Path) -> None:
    """Forty tickets cancelled, the changes listed only up to twenty: the run fails and
    the next one, the server honest again, reads every cancellation."""
    hostile.docs = [hostile_doc(i, "2026-01-01T00:00:00.000Z") for i in range(100)]
    sync = syncer(hostile, tmp_path / "d.db")
    sync.run_once()
    watermark = sync.store.sync_state(EVENT).delta_until
    changed = utc_iso(datetime.now(UTC))
    for doc in hostile.docs[:40]:
        doc.update(status="INVALID", updatedAt=changed)
    hostile.mode, hostile.cut_at = "cut", 20
    with pytest.raises(PagingError, match="20 of them were not read"):
        sync.run_once()
    assert sync.store.sync_state(EVENT).delta_until == watermark
    hostile.mode = "ok"
    sync.run_once()
    assert {t.status for t in sync.store.iter_tickets(EVENT) if t.id < "h000040"} \
        == {"INVALID"}


def test_a_redirected_upload_is_not_taken_for_accepted(hostile: HostileServer,
                                                      tmp_path: Path) -> None:
    """A 302 with an empty body (a captive portal) accepted nothing: the scans stay
    queued for the next drain, and the drain says why in one line."""
    hostile.mode = "redirect"
    with open_journal(tmp_path / "gate.db") as journal, client(hostile) as api:
        journal.record(make_decision(make_ticket(1, event=EVENT)), scan_id=new_scan_id(),
                       scanned_at=NOW, latency_ms=0.1)
        report = Outbox(journal, api).drain_once()
        assert [e["upload_state"] for e in journal.entries()] == ["pending"]
    assert report.sent == 0 and hostile.requests == [f"/api/accessusers/scans/{EVENT}"]
    [error] = report.errors
    assert "HTTP 302" in error and "\n" not in error


def drain(hostile: HostileServer, tmp_path: Path, scans: int = 4) -> tuple[list[str], Any]:
    """Journal ``scans`` scans, drain them to ``hostile`` once: their upload states and the
    drain's report."""
    with open_journal(tmp_path / "gate.db") as journal, client(hostile) as api:
        for index in range(scans):
            journal.record(make_decision(make_ticket(index, event=EVENT)),
                           scan_id=new_scan_id(), scanned_at=NOW, latency_ms=0.1)
        report = Outbox(journal, api).drain_once()
        return [e["upload_state"] for e in journal.entries()], report


@pytest.mark.parametrize("body", [b'{"status":"ERROR"}', b'{"error":"event is closed"}',
                                  b'{"status":null,"errors":["x"]}'])
def test_a_200_refusing_the_scans_leaves_them_queued(hostile: HostileServer, tmp_path: Path,
                                                     body: bytes) -> None:
    """The answer documented is {"status": "OK"}: one saying otherwise is no acceptance,
    and marking the batch sent on it would lose those scans for the server."""
    hostile.scans_answer = (200, body)
    states, report = drain(hostile, tmp_path)
    assert states == ["pending"] * 4 and report.sent == 0
    [error] = report.errors
    assert "not accepted" in error and "\n" not in error


@pytest.mark.parametrize("status", [408, 425])
def test_a_4xx_asking_to_be_asked_again_leaves_the_scans_queued(hostile: HostileServer,
                                                                tmp_path: Path,
                                                                status: int) -> None:
    """408 (a proxy timing out a slow upload) and 425 say "not now", not "not this": the
    batch is neither bisected nor parked as rejected, where only an operator frees it."""
    hostile.scans_answer = (status, b"")
    states, report = drain(hostile, tmp_path)
    assert states == ["pending"] * 4 and report.rejected == 0
    [error] = report.errors
    assert f"HTTP {status}" in error


def test_an_ok_status_is_accepted(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.scans_answer = (200, b'{"status":"OK","note":"fine"}')
    assert drain(hostile, tmp_path)[0] == ["sent"] * 4


def test_an_online_lookup_answering_another_ticket_admits_nobody(
        hostile: HostileServer, tmp_path: Path) -> None:
    """Asked for a code no one sold, the server answers a valid ticket of another code:
    the gate decides the code it read, which it does not know."""
    hostile.docs = [hostile_doc(1, NOW)]
    api = ApiConfig(url=hostile.url, token=Secret(TOKEN), connect_timeout=1.0,
                    read_timeout=2.0, retries=0)
    with build_gate(tmp_path, events=(EVENT,), api=api,
                    lookup=LookupConfig(deadline_ms=2000)) as gate:
        result = gate.gatekeeper.check("FORGED-00000001", Direction.IN)
        gate.gatekeeper.flush()
        assert (result.decision.reason, result.decision.ticket) == (Reason.UNKNOWN_BARCODE, None)
        assert "/api/accessusers/tickets/FORGED-00000001" in hostile.requests
        assert gate.store.by_barcode("FORGED-00000001") == []


END_OF_TIME = "Fri, 31 Dec 9999 23:59:58 GMT"


def test_a_date_at_the_end_of_the_calendar_does_not_break_the_sync(
        hostile: HostileServer, tmp_path: Path) -> None:
    """Server time plus a margin would pass year 9999: such a Date is no clock."""
    hostile.docs, hostile.date = [hostile_doc(i, NOW) for i in range(3)], END_OF_TIME
    sync = syncer(hostile, tmp_path / "e.db")
    [report] = sync.run_once()
    assert report.total == 3 and sync.api.clock_offset is None


def test_a_date_at_the_end_of_the_calendar_leaves_an_unset_clock_deciding(
        hostile: HostileServer, tmp_path: Path) -> None:
    """A Pi booted at 1970 adopts the server's time; one that ends the calendar a second
    later made every check after it raise OverflowError."""
    hostile.docs, hostile.date = [hostile_doc(1, NOW)], END_OF_TIME
    booted = time.monotonic()

    def clock() -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=time.monotonic() - booted)

    api = ApiConfig(url=hostile.url, token=Secret(TOKEN), retries=0)
    with build_gate(tmp_path, clock=clock, events=(EVENT,), api=api) as gate:
        gate.syncer.run_once()
        time.sleep(1.1)
        result = gate.gatekeeper.check("HB00000001", Direction.IN)
    assert result.scanned_at.startswith("1970-")  # decided, on the device's own time


@pytest.mark.parametrize("status", [None, "", False, 0, "valid", "GRANTED"])
def test_a_status_the_api_does_not_allow_is_stored_not_admissible(
        hostile: HostileServer, tmp_path: Path, status: object) -> None:
    hostile.docs = [hostile_doc(1, NOW, status=status), hostile_doc(2, NOW)]
    sync = syncer(hostile, tmp_path / "s.db")
    [report] = sync.run_once()
    assert report.malformed == 1
    assert [t.status for t in sync.store.by_barcode("HB00000001")] == [MALFORMED]
    assert [t.status for t in sync.store.by_barcode("HB00000002")] == ["VALID"]


def test_wrong_field_types_are_counted_and_logged_once_per_run(
        hostile: HostileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hostile.docs = [hostile_doc(i, NOW, seat=i) for i in range(25)]
    caplog.set_level(logging.WARNING, "scanner.sync")
    [report] = syncer(hostile, tmp_path / "w.db").run_once()
    lines = [r.getMessage() for r in caplog.records if "not admissible" in r.getMessage()]
    assert report.malformed == 25
    assert len(lines) == 1 and "seat: expected a string" in lines[0]
    assert "h000000" in lines[0]


def test_a_ticket_that_cannot_be_stored_is_a_server_fault_naming_field_and_id(
        hostile: HostileServer, tmp_path: Path) -> None:
    hostile.docs = [hostile_doc(1, NOW), hostile_doc(2, NOW, barcode=12345678)]
    sync = syncer(hostile, tmp_path / "b.db")
    with pytest.raises(ProtocolError, match="ticket 'h000002': barcode: expected") as caught:
        sync.run_once()
    assert "ticket store" not in str(caught.value)
    assert sync.store.count() == 0


def test_a_future_updated_at_does_not_pin_the_row(hostile: HostileServer,
                                                  tmp_path: Path) -> None:
    """A copy stamped in 2099 is stored, but a later cancellation stamped now replaces it."""
    hostile.docs = [hostile_doc(1, NOW, updatedAt=FAR_FUTURE)]
    sync = syncer(hostile, tmp_path / "f.db", window_overlap=3600)
    sync.run_once()
    hostile.docs = [hostile_doc(1, utc_iso(datetime.now(UTC)), status="INVALID")]
    sync.run_once()
    [ticket] = sync.store.by_barcode("HB00000001")
    assert ticket.status == "INVALID"


def test_a_normal_stale_copy_still_loses_to_a_newer_one(tmp_path: Path) -> None:
    store = TicketStore(make_engine(f"sqlite:///{tmp_path / 'n.db'}"))
    from scanner.tickets import Ticket
    newer = Ticket.from_api(hostile_doc(1, "2030-01-02T00:00:00.000Z", status="INVALID"))
    older = Ticket.from_api(hostile_doc(1, "2030-01-01T00:00:00.000Z"))
    store.upsert([newer], trusted_until="2030-01-03T00:00:00.000Z")
    store.upsert([older], trusted_until="2030-01-03T00:00:00.000Z")
    assert store.get(newer.id) == newer


def test_overwrite_takes_the_servers_copy_whatever_its_updated_at(tmp_path: Path) -> None:
    store = TicketStore(make_engine(f"sqlite:///{tmp_path / 'o.db'}"))
    from scanner.tickets import Ticket
    stored = Ticket.from_api(hostile_doc(1, "2030-01-02T00:00:00.000Z"))
    current = Ticket.from_api(hostile_doc(1, "2030-01-01T00:00:00.000Z", status="INVALID"))
    store.upsert([stored])
    assert store.upsert([current], overwrite=True) == 1
    assert store.get(current.id) == current


def test_a_token_echoed_across_the_cut_leaves_no_part_of_it(hostile: HostileServer) -> None:
    hostile.mode, hostile.echo_at = "echo", 500 - len("bad token ") - len(TOKEN) // 2
    with client(hostile) as api, pytest.raises(BadRequest) as caught:
        api.ticket_page(EVENT, top=10, skip=0)
    text = str(caught.value) + caught.value.body
    assert "bad token" in text  # the echo is inside what is kept
    assert not any(TOKEN[i:i + 6] in text for i in range(len(TOKEN) - 5))


@pytest.mark.parametrize("field", ["slotStartTime", "createdAt"])
@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_outside_the_calendar_in_utc_is_one_bad_ticket(
        hostile: HostileServer, tmp_path: Path, field: str, stamp: str) -> None:
    """Valid ISO-8601, but moved to UTC it falls outside year 1..9999: an OverflowError
    used to end the whole sync run, so no later ticket got in."""
    hostile.docs = [hostile_doc(1, NOW, **{field: stamp}), hostile_doc(2, NOW)]
    sync = syncer(hostile, tmp_path / "o.db")
    sync.run_once()
    assert [t.status for t in sync.store.by_barcode("HB00000001")] == [MALFORMED]
    assert [t.status for t in sync.store.by_barcode("HB00000002")] == ["VALID"]


def test_an_updated_at_outside_the_calendar_is_a_server_fault_naming_the_ticket(
        hostile: HostileServer, tmp_path: Path) -> None:
    hostile.docs = [hostile_doc(1, NOW, updatedAt="0001-01-01T00:00:00+01:00")]
    with pytest.raises(ProtocolError, match="ticket 'h000001': updatedAt: not an ISO"):
        syncer(hostile, tmp_path / "u.db").run_once()


def test_a_timestamp_before_year_1000_is_stored_in_the_canonical_form(
        hostile: HostileServer, tmp_path: Path) -> None:
    """strftime("%Y") does not pad years before 1000, which then no longer sort or parse."""
    hostile.docs = [hostile_doc(1, NOW, createdAt="0001-01-01T00:00:00Z")]
    sync = syncer(hostile, tmp_path / "y.db")
    sync.run_once()
    [ticket] = sync.store.by_barcode("HB00000001")
    assert ticket.created_at == "0001-01-01T00:00:00.000Z"
