"""An upload that cannot mark scans sent stops: a read-only journal never floods the server.

The journal is made read-only the way SQLite itself sees a read-only disk, and even for
root (who writes through a chmod): the file-format *write version* in the database header
(byte 18) is set to 3, which SQLite must treat as read-only, so every write fails with
SQLITE_READONLY ("attempt to write a readonly database") as on an SD card remounted
read-only, while reads go on. No mount privileges, no fakes: the real file, the real
driver, the simulator over loopback HTTP counting what it receives.
"""

# The fixtures ``journal``, ``db_path`` and ``event`` are test_journal's and test_outbox's.
# ruff: noqa: F811

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_journal import db_path, journal  # noqa: F401
from test_outbox import event, journal_scans, server_barcodes  # noqa: F401

from scanner.journal import Journal
from scanner.run.jobs import upload_job
from scanner.run.schedule import Scheduler
from scanner.upload.outbox import Outbox, UploadReport

SCANS = 500
BATCH = 100
_WRITE_VERSION_OFFSET = 18


def set_read_only(path: Path, read_only: bool = True) -> None:
    """Make every later write to the SQLite file ``path`` fail (or work again); connections
    opened before keep the header they read, so none may be open."""
    with sqlite3.connect(path) as conn:  # nothing left in the WAL to overwrite the header
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with path.open("r+b") as db:
        db.seek(_WRITE_VERSION_OFFSET)
        db.write(bytes([3 if read_only else 2]))


def remount(journal: Journal, path: Path, read_only: bool = True) -> None:
    """``set_read_only`` under an open journal: its connections are closed first."""
    journal.close()
    journal.engine.dispose()
    set_read_only(path, read_only)


class RemountedDuringPost:
    """The real client; the disk goes read-only while the first request is in flight, so
    the server acknowledges a batch that the journal then cannot mark sent."""

    def __init__(self, api: Any, journal: Journal, db: Path) -> None:
        self.api, self.journal, self.db = api, journal, db
        self.posts = 0

    def post_scans(self, event_id: str, scans: list[dict[str, Any]]) -> dict[str, Any]:
        answer: dict[str, Any] = self.api.post_scans(event_id, scans)
        self.posts += 1
        if self.posts == 1:
            remount(self.journal, self.db)
        return answer


def test_the_read_only_journal_really_refuses_writes(journal, db_path, event):
    journal_scans(journal, event, 1)
    remount(journal, db_path)
    with pytest.raises(Exception, match="readonly"):
        journal.check_writable()


def test_a_journal_that_cannot_be_written_sends_nothing(journal, db_path, api_client,
                                                        sim_world, event):
    journal_scans(journal, event, SCANS)
    remount(journal, db_path)
    outbox = Outbox(journal, api_client, batch_size=BATCH)
    reports = [outbox.drain_once() for _ in range(3)]
    assert sim_world.scans == []
    assert [(r.sent, r.batches, len(r.errors)) for r in reports] == [(0, 0, 1)] * 3
    assert "readonly" in reports[0].errors[0] and "\n" not in reports[0].errors[0]
    assert journal.stats()["queue_depth"] == SCANS


def test_a_batch_the_journal_could_not_mark_is_never_sent_again(journal, db_path, api_client,
                                                                sim_world, event):
    journal_scans(journal, event, SCANS)
    api = RemountedDuringPost(api_client, journal, db_path)
    outbox = Outbox(journal, api, batch_size=BATCH)
    first = outbox.drain_once()
    assert (len(sim_world.scans), first.sent, first.batches) == (BATCH, 0, 1)
    assert "cannot mark sent" in first.errors[0] and "not sent again" in first.errors[0]
    for _ in range(3):
        assert not outbox.drain_once().ok
    assert (len(sim_world.scans), api.posts) == (BATCH, 1)


def test_once_the_journal_is_writable_the_held_batch_is_marked_not_resent(
        journal, db_path, api_client, sim_world, event):
    barcodes = journal_scans(journal, event, SCANS)
    outbox = Outbox(journal, RemountedDuringPost(api_client, journal, db_path), batch_size=BATCH)
    outbox.drain_once()
    outbox.drain_once()
    remount(journal, db_path, read_only=False)
    report = outbox.drain_once()
    assert (report.sent, report.errors) == (SCANS - BATCH, [])
    assert server_barcodes(sim_world) == Counter(barcodes)  # each scan exactly once
    assert journal.stats()["queue_depth"] == 0


class CountedOutbox(Outbox):
    """The real outbox; sets ``enough`` once it has drained ``limit`` times."""

    def __init__(self, *args: Any, limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.reports: list[UploadReport] = []
        self.enough = threading.Event()

    def drain_once(self) -> UploadReport:
        report = super().drain_once()
        self.reports.append(report)
        if len(self.reports) >= self.limit:
            self.enough.set()
        return report


def test_the_upload_loop_stops_posting_after_the_failed_mark(journal, db_path, api_client,
                                                             sim_world, event, caplog):
    journal_scans(journal, event, SCANS)
    api = RemountedDuringPost(api_client, journal, db_path)
    outbox = CountedOutbox(journal, api, batch_size=BATCH, limit=5)
    # gate upload's loop: the upload job alone in a scheduler, backing off from 5 ms.
    scheduler = Scheduler([upload_job(outbox, 0.005)], tick=0.05)
    scheduler.start()
    try:
        assert outbox.enough.wait(30)
    finally:
        scheduler.stop()
        assert scheduler.join(10)
    assert (len(sim_world.scans), api.posts) == (BATCH, 1)
    assert [r.ok for r in outbox.reports[:5]] == [False] * 5
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "Traceback" not in caplog.text  # one line, not one a drain


def test_upload_once_on_a_read_only_journal_fails_in_one_line_and_sends_nothing(
        tmp_path, sim_server, monkeypatch, capsys):
    from scanner.cli.main import main

    for name, value in {"GATE_API_URL": sim_server.url, "GATE_API_TOKEN": sim_server.token,
                        "GATE_EVENTS": sim_server.world.event_ids[0],
                        "GATE_DB": str(tmp_path / "gate.db")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATE_CONFIG", raising=False)
    monkeypatch.delenv("GATE_API_TOKEN_FILE", raising=False)
    assert main(["check", "UNKNOWN-000001"]) == 1  # journaled, pending for the one event
    set_read_only(tmp_path / "gate-journal.db")
    capsys.readouterr()
    code = main(["upload", "--once"])
    _, err = capsys.readouterr()
    assert (code, sim_server.world.scans) == (1, [])
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: upload stopped: cannot write the journal {tmp_path / 'gate-journal.db'}: "
        "OperationalError: attempt to write a readonly database"]
    assert "Traceback" not in err
