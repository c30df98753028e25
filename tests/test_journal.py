"""The journal over a real SQLite file: durability, history, presence, upload states."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from kits.journal import EVENT, OTHER_EVENT, make_decision, make_ticket, open_journal

from scanner.clock import clock_stamp
from scanner.decide.model import Direction, Reason
from scanner.errors import StoreError
from scanner.journal import Journal
from scanner.journal.ids import new_scan_id
from scanner.journal.offset import ServerOffset

IN, OUT = Direction.IN, Direction.OUT


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gate.db"


@pytest.fixture
def journal(db_path: Path):
    with open_journal(db_path) as j:
        yield j


_counter = iter(range(1, 1_000_000))


def put(journal: Journal, decision, *, at: str | None = None, event_id: str | None = None,
        scan_id: str | None = None) -> str:
    scan_id = scan_id or new_scan_id()
    n = next(_counter)
    journal.record(decision, scan_id=scan_id,
                   scanned_at=at or f"2030-01-01T10:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
                   latency_ms=0.1, event_id=event_id)
    return scan_id


def test_recorded_scan_is_on_disk_for_another_connection(journal: Journal, db_path: Path):
    """When record returns, an independent sqlite3 connection already sees the row."""
    scan_id = put(journal, make_decision(make_ticket()))
    with sqlite3.connect(db_path) as other:
        rows = other.execute("SELECT scan_id, result FROM journal").fetchall()
    assert rows == [(scan_id, "OK")]


def test_recorded_scan_survives_reopening_the_engine(db_path: Path):
    with open_journal(db_path) as first:
        scan_id = put(first, make_decision(make_ticket()))
    with open_journal(db_path) as second:
        assert [e["scan_id"] for e in second.entries()] == [scan_id]


def test_record_runs_with_synchronous_full(journal: Journal):
    """The durability policy: every commit fsyncs the WAL (synchronous=FULL is 2)."""
    put(journal, make_decision(make_ticket()))
    assert journal._conn.execute("PRAGMA synchronous").fetchone() == (2,)
    assert journal._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_reused_scan_id_is_refused(journal: Journal):
    scan_id = put(journal, make_decision(make_ticket()))
    with pytest.raises(StoreError, match=scan_id):
        put(journal, make_decision(make_ticket()), scan_id=scan_id)


def test_history_holds_granted_scans_oldest_first(journal: Journal):
    ticket = make_ticket()
    put(journal, make_decision(ticket, IN), at="2030-01-01T10:00:00.000Z")
    put(journal, make_decision(ticket, IN, granted=False), at="2030-01-01T10:01:00.000Z")
    put(journal, make_decision(ticket, OUT), at="2030-01-01T10:02:00.000Z")
    history = journal.history(ticket.id)
    assert [(s.direction, s.scanned_at, s.gate_id) for s in history.scans] == [
        (IN, "2030-01-01T10:00:00.000Z", "g1"), (OUT, "2030-01-01T10:02:00.000Z", "g1")]


def test_history_of_one_ticket_ignores_the_others(journal: Journal):
    put(journal, make_decision(make_ticket(1)))
    assert journal.history(make_ticket(2).id).scans == ()


def test_presence_counts_tickets_whose_last_granted_scan_is_in(journal: Journal):
    a, b, c = make_ticket(1), make_ticket(2), make_ticket(3, event=OTHER_EVENT)
    put(journal, make_decision(a, IN))
    put(journal, make_decision(b, IN))
    put(journal, make_decision(b, OUT))
    put(journal, make_decision(c, IN))
    assert journal.inside_counts() == {EVENT: 1, OTHER_EVENT: 1}


def test_denied_scans_never_change_presence(journal: Journal):
    a = make_ticket(1)
    put(journal, make_decision(a, IN))
    put(journal, make_decision(a, OUT, granted=False, reason=Reason.DIRECTION_NOT_ALLOWED))
    assert journal.inside_counts() == {EVENT: 1}


def test_short_read_is_kept_local_and_counted(journal: Journal):
    put(journal, make_decision(None, granted=False, barcode="SHORT",
                               reason=Reason.UNKNOWN_BARCODE), event_id=EVENT)
    assert journal.pending_events() == []
    stats = journal.stats()
    assert (stats["queue_depth"], stats["local_only"]) == (0, 1)
    [row] = journal.entries()
    assert row["upload_state"] == "local" and "shorter than 8" in row["upload_error"]


def test_malformed_read_is_kept_local(journal: Journal):
    put(journal, make_decision(None, granted=False, barcode="LONGENOUGH\x07",
                               reason=Reason.MALFORMED_READ), event_id=EVENT)
    [row] = journal.entries()
    assert row["upload_state"] == "local"


def test_unknown_barcode_is_queued_under_the_given_event(journal: Journal):
    put(journal, make_decision(None, granted=False, barcode="UNKNOWN-123",
                               reason=Reason.UNKNOWN_BARCODE), event_id=EVENT)
    [queued] = journal.pending(EVENT, 10)
    assert (queued.barcode, queued.ticket_id, queued.result) == ("UNKNOWN-123", None, "FAIL")


def test_unknown_barcode_without_an_event_is_kept_local_with_the_reason(journal: Journal):
    put(journal, make_decision(None, granted=False, barcode="UNKNOWN-123",
                               reason=Reason.UNKNOWN_BARCODE))
    [row] = journal.entries()
    assert row["upload_state"] == "local" and row["upload_error"].startswith("no event")


def test_a_ticket_scan_goes_under_the_tickets_event(journal: Journal):
    put(journal, make_decision(make_ticket(event=OTHER_EVENT)), event_id=EVENT)
    assert journal.pending_events() == [OTHER_EVENT]


def test_pending_gives_one_events_oldest_scans_first(journal: Journal):
    ids = [put(journal, make_decision(make_ticket(n))) for n in range(5)]
    put(journal, make_decision(make_ticket(9, event=OTHER_EVENT)))
    assert [q.scan_id for q in journal.pending(EVENT, 3)] == ids[:3]


def test_mark_sent_moves_only_pending_scans(journal: Journal):
    put(journal, make_decision(make_ticket(1)))
    put(journal, make_decision(make_ticket(2)))
    first, second = journal.pending(EVENT, 10)
    assert journal.mark_rejected(second.seq, "HTTP 400: no")
    assert journal.mark_sent([first.seq, second.seq], "2030-01-01T11:00:00.000Z") == 1
    states = {e["seq"]: e["upload_state"] for e in journal.entries()}
    assert states == {first.seq: "sent", second.seq: "rejected"}


def test_stats_report_queue_rejected_local_and_last_upload(journal: Journal):
    for n in range(3):
        put(journal, make_decision(make_ticket(n)))
    put(journal, make_decision(None, granted=False, barcode="SHORT",
                               reason=Reason.UNKNOWN_BARCODE))
    a, b, _c = journal.pending(EVENT, 10)
    journal.mark_sent([a.seq], "2030-01-01T11:00:00.000Z")
    journal.mark_rejected(b.seq, "HTTP 400: bad")
    assert journal.stats() == {"queue_depth": 1, "rejected": 1, "local_only": 1,
                               "last_upload": "2030-01-01T11:00:00.000Z"}
    assert journal.inside_counts() == {EVENT: 3}


def test_requeue_rejected_puts_scans_back_in_the_queue(journal: Journal):
    put(journal, make_decision(make_ticket()))
    [queued] = journal.pending(EVENT, 1)
    journal.mark_rejected(queued.seq, "HTTP 400")
    assert journal.requeue_rejected() == 1
    assert [q.seq for q in journal.pending(EVENT, 1)] == [queued.seq]


def test_entries_since_skips_older_scans(journal: Journal):
    put(journal, make_decision(make_ticket(1)), at="2030-01-01T09:00:00.000Z")
    late = put(journal, make_decision(make_ticket(2)), at="2030-01-01T11:00:00.000Z")
    assert [e["scan_id"] for e in journal.entries("2030-01-01T10:00:00Z")] == [late]


def test_entries_stream_past_one_chunk(journal: Journal, monkeypatch):
    monkeypatch.setattr("scanner.journal.journal._ENTRIES_CHUNK", 2)
    ids = [put(journal, make_decision(make_ticket(n))) for n in range(5)]
    assert [e["scan_id"] for e in journal.entries()] == ids


def test_entries_refuse_a_since_that_is_not_a_time(journal: Journal):
    with pytest.raises(ValueError):
        list(journal.entries("yesterday"))


def test_clock_offset_is_kept_across_reopening(db_path: Path):
    with open_journal(db_path) as first:
        first.save_clock_offset(-3.25)
    with open_journal(db_path) as second:
        assert second.saved_clock_offset() == -3.25


def test_server_offset_falls_back_to_the_saved_offset_when_offline(journal: Journal):
    journal.save_clock_offset(7.5, clock_stamp().text())
    assert ServerOffset(journal, lambda: None)() == 7.5


def test_server_offset_saves_a_changed_live_offset(journal: Journal):
    offset = ServerOffset(journal, lambda: 12.0)
    offset()
    offset.close()
    assert journal.saved_clock_offset() == 12.0


def test_server_offset_saves_off_the_scan_path():
    """The call that notices a new offset returns before the (fsync'd) save is done."""
    log: list[str] = []
    release = threading.Event()

    class SlowJournal:
        def saved_clock_offset(self) -> None:
            return None

        def saved_clock_stamp(self) -> None:
            return None

        def server_seen(self) -> None:
            return None

        def server_clock(self) -> None:
            return None

        def newest_scanned_at(self) -> None:
            return None

        def save_clock_offset(self, offset: float, stamp: str, *, seen: str) -> None:
            release.wait(5)
            log.append(f"saved {offset}")

        def save_server_clock(self, text: str) -> None:
            pass

    offset = ServerOffset(SlowJournal(), lambda: 3.0)  # type: ignore[arg-type]
    assert offset() == 3.0
    log.append("returned")
    release.set()
    offset.close()
    assert log == ["returned", "saved 3.0"]


def test_scan_ids_are_unique_time_ordered_uuid7():
    ids = [new_scan_id() for _ in range(2000)]
    assert len(set(ids)) == 2000
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7}
    millis = [u.int >> 80 for u in parsed]
    assert millis == sorted(millis)


def test_latest_is_this_gates_last_decisions_newest_first_without_alarms(db_path: Path):
    """What the page lists after a restart: a scan of another gate id and an alarm are no
    one's scan at this gate; the limit keeps the newest."""
    with open_journal(db_path, "other") as other:
        put(other, make_decision(make_ticket(9)))
    with open_journal(db_path) as journal:
        ids = [put(journal, make_decision(make_ticket(n))) for n in range(1, 4)]
        put(journal, make_decision(None, granted=False, reason=Reason.PASSAGE_FORCED))
        denied = put(journal, make_decision(None, granted=False, barcode="NOPE-12345"))
        journal.mark_passed(ids[-1], False)
        latest = journal.latest(3)
    assert [row["scan_id"] for row in latest] == [denied, ids[2], ids[1]]
    assert [row["result"] for row in latest] == ["FAIL", "OK", "OK"]
    assert [row["passed"] for row in latest] == [None, False, None]
    assert latest[1]["ticket_id"] == "tk-ev-main-3"
