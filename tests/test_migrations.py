"""An upgraded database equals a fresh one: each released schema, as frozen in
tests/data/schema_vN.sql (the ticket store) and journal_schema_vN.sql (the journal), is
migrated and compared, rows and all. Stores before version 3 held the journal too; it moves
into the journal's own database, crash-safe."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, exc, inspect
from sqlalchemy.pool import Pool

from scanner.config import journal_url_beside
from scanner.databases import (
    journal_schema_version,
    make_engine,
    make_journal_engine,
    schema_version,
)
from scanner.decide.model import Direction
from scanner.errors import StoreError
from scanner.journal import Journal
from scanner.journal.schema import JOURNAL_SCHEMA_VERSION
from scanner.store.schema import SCHEMA_VERSION
from scanner.store.tickets import TicketStore

DATA = Path(__file__).parent / "data"
RELEASED = sorted(int(p.stem.removeprefix("schema_v")) for p in DATA.glob("schema_v*.sql"))
JOURNAL_RELEASED = sorted(int(p.stem.removeprefix("journal_schema_v"))
                          for p in DATA.glob("journal_schema_v*.sql"))
SINGLE_FILE = [v for v in RELEASED if v <= 2]  # stores that still held the journal

# Scans as a single-file gate left them: pending, sent, rejected (with the server's answer)
# and local, in seq order with a gap (a deleted seq must not be renumbered).
_SCANS = [
    (3, "s-pending", "t1", "OK", "GRANTED", "pending", None, None),
    (4, "s-sent", "t1", "OK", "CHECKED_OUT", "sent", None, "2030-01-01T10:05:00.000Z"),
    (7, "s-rejected", "t1", "FAIL", "ALREADY_INSIDE", "rejected", "400: bad scan", None),
    (9, "s-local", None, "FAIL", "MALFORMED_READ", "local", "not a barcode", None),
]
_COLUMNS = ("seq", "scan_id", "ticket_id", "result", "reason", "upload_state",
            "upload_error", "uploaded_at")


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything the inspector reports about every table, in a comparable form."""
    found = inspect(engine)
    tables = {}
    for name in sorted(found.get_table_names()):
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in found.get_columns(name)],
            "pk": found.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in found.get_indexes(name)),
            "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                             for u in found.get_unique_constraints(name)),
        }
    return tables


def _ticket_insert(version: int, ticket_id: str, barcode: str) -> tuple[str, tuple[str, ...]]:
    """An INSERT of a ticket of event e1 into that release's table (before version 4,
    every ticket carried the generation of the full sync that last saw it)."""
    marked = version <= 3
    columns = ("id, barcode, event_id, status, ticket_type_id, ticket_name, seller_id,"
               " created_at, updated_at" + (", sync_gen" if marked else ""))
    values = ("?, ?, 'e1', 'VALID', 'tt', 'GA', 's1', '2030-01-01T00:00:00.000Z',"
              " '2030-01-01T00:00:00.000Z'" + (", 1" if marked else ""))
    return f"INSERT INTO tickets ({columns}) VALUES ({values})", (ticket_id, barcode)


def _released(version: int, path: Path) -> Path:
    """A store exactly as that release created it, with a ticket, scans in every upload
    state and the journal's keys (a saved clock offset, the last upload) in ``meta``."""
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / f"schema_v{version}.sql").read_text(encoding="utf-8"))
        conn.execute(*_ticket_insert(version, "t1", "OLDTICKET1"))
        if version <= 2:
            for seq, scan_id, ticket, result, reason, state, error, sent_at in _SCANS:
                conn.execute(
                    "INSERT INTO journal (seq, scan_id, gate_id, event_id, ticket_id,"
                    " barcode, direction, result, reason, message, scanned_at, offline,"
                    " upload_state, upload_error, uploaded_at) VALUES (?, ?, 'north', 'e1',"
                    " ?, 'OLDTICKET1', 'IN', ?, ?, '', '2030-01-01T10:00:00.000Z', 1, ?, ?,"
                    " ?)", (seq, scan_id, ticket, result, reason, state, error, sent_at))
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [("clock_offset", "12.5"),
                              ("last_upload", "2030-01-01T10:05:00.000Z")])
    return path


def _open_both(store: Path) -> tuple[Engine, Engine]:
    engine = make_engine(f"sqlite:///{store}")
    return engine, make_journal_engine(journal_url_beside(f"sqlite:///{store}"))


def _scans(journal: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(journal) as conn:
        return conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM journal ORDER BY seq").fetchall()


def _keys(path: Path, table: str) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute(f"SELECT key, value FROM {table}").fetchall())


def test_every_schema_version_is_frozen() -> None:
    """A change to either schema without a version bump, a step and a snapshot fails here
    or in the comparisons below (the current snapshots must equal a fresh database)."""
    assert list(range(1, SCHEMA_VERSION + 1)) == RELEASED
    assert list(range(1, JOURNAL_SCHEMA_VERSION + 1)) == JOURNAL_RELEASED


@pytest.mark.parametrize("version", RELEASED)
def test_upgraded_store_and_journal_equal_a_fresh_install(tmp_path: Path,
                                                          version: int) -> None:
    store, journal = _open_both(_released(version, tmp_path / "old.db"))
    fresh_store, fresh_journal = _open_both(tmp_path / "fresh.db")
    assert (schema_version(store), journal_schema_version(journal)) == \
        (SCHEMA_VERSION, JOURNAL_SCHEMA_VERSION)
    assert _schema(store) == _schema(fresh_store)
    assert _schema(journal) == _schema(fresh_journal)


@pytest.mark.parametrize("version", JOURNAL_RELEASED)
def test_a_released_journal_database_equals_a_fresh_one(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old-journal.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((DATA / f"journal_schema_v{version}.sql").read_text("utf-8"))
    migrated = make_journal_engine(f"sqlite:///{path}")
    assert _schema(migrated) == _schema(make_journal_engine(f"sqlite:///{tmp_path / 'j.db'}"))


@pytest.mark.parametrize("version", SINGLE_FILE)
def test_a_single_file_store_moves_every_scan_state_and_key_to_the_journal(
        tmp_path: Path, version: int) -> None:
    store_path = _released(version, tmp_path / "gate.db")
    store, _journal = _open_both(store_path)
    journal_path = tmp_path / "gate-journal.db"
    assert _scans(journal_path) == [tuple(row[i] for i in (0, 1, 2, 3, 4, 5, 6, 7))
                                    for row in _SCANS]
    keys = _keys(journal_path, "journal_meta")
    assert (keys["clock_offset"], keys["last_upload"]) == ("12.5", "2030-01-01T10:05:00.000Z")
    assert "journal" not in inspect(store).get_table_names()
    # Nothing of the journal left behind but the id naming it, the same on both sides.
    assert set(_keys(store_path, "meta")) == {"schema_version", "journal_id"}
    assert _keys(store_path, "meta")["journal_id"] == keys["journal_id"]


@pytest.mark.parametrize("version", SINGLE_FILE)
def test_moved_scans_work_as_before(tmp_path: Path, version: int) -> None:
    """History, the upload queue, the saved offset and new scans carry on from the move."""
    store, engine = _open_both(_released(version, tmp_path / "gate.db"))
    [ticket] = TicketStore(store).by_barcode("OLDTICKET1")
    journal = Journal(engine, "north")
    assert [s.direction for s in journal.history(ticket.id).scans] == [Direction.IN,
                                                                       Direction.IN]
    assert [q.scan_id for q in journal.pending("e1", 10)] == ["s-pending"]
    assert journal.saved_clock_offset() == 12.5
    assert journal.stats()["rejected"] == 1
    journal.close()


def test_a_second_run_is_a_no_op(tmp_path: Path) -> None:
    store_path = _released(2, tmp_path / "gate.db")
    for engine in _open_both(store_path):
        engine.dispose()
    before = (_scans(tmp_path / "gate-journal.db"), _keys(tmp_path / "gate-journal.db",
                                                          "journal_meta"),
              _keys(store_path, "meta"))
    for engine in _open_both(store_path):
        engine.dispose()
    assert (_scans(tmp_path / "gate-journal.db"), _keys(tmp_path / "gate-journal.db",
                                                        "journal_meta"),
            _keys(store_path, "meta")) == before


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_a_v3_store_mid_full_sync_keeps_every_ticket_and_abandons_the_sync(
        tmp_path: Path) -> None:
    """Version 4 moves the seen marks out of ``sync_gen``: the column goes, the tickets stay,
    and a full sync in progress (its marks were in that column) starts over."""
    path = _released(3, tmp_path / "gate.db")
    with sqlite3.connect(path) as conn:
        for n in range(2, 40):
            sql, args = _ticket_insert(3, f"t{n}", f"OLDTICKET{n}")
            conn.execute(sql.replace(", 1)", f", {n % 3})"), args)  # generations 0, 1, 2
        conn.execute("INSERT INTO sync_state (event_id, generation, full_until, full_skip,"
                     " full_anchor, full_total, last_full_at, delta_until) VALUES ('e1', 2,"
                     " '2030-01-02T00:00:00.000Z', 20, '[\"t20\"]', 39,"
                     " '2030-01-01T00:00:00.000Z', '2030-01-01T00:05:00.000Z')")
        columns = ", ".join(c for c in _columns(conn, "tickets") if c != "sync_gen")
        before = conn.execute(f"SELECT {columns} FROM tickets ORDER BY id").fetchall()
    store = make_engine(f"sqlite:///{path}")
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert schema_version(store) == SCHEMA_VERSION == 4
    assert _schema(store) == _schema(fresh)
    state = TicketStore(store).sync_state("e1")
    assert state is not None and not state.full_in_progress
    assert (state.generation, state.full_skip, state.last_full_at, state.delta_until) == \
        (2, None, "2030-01-01T00:00:00.000Z", "2030-01-01T00:05:00.000Z")
    store.dispose()
    fresh.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute(f"SELECT {columns} FROM tickets ORDER BY id").fetchall() == before
        assert conn.execute("SELECT count(*) FROM full_seen").fetchone() == (0,)
        # The inspector cannot tell a rowid table from one without: the DDL can.
        [(ddl,)] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'full_seen'")
    assert "WITHOUT ROWID" in ddl
    dumped = _dump(path)
    make_engine(f"sqlite:///{path}").dispose()  # a second open is a no-op
    assert _dump(path) == dumped


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


_KILLED_MOVE = textwrap.dedent("""
    import os, signal, sys
    from scanner.store import migrations
    from scanner.databases import make_engine
    # SIGKILL the instant the copy is committed, before the store drops its own.
    migrations.drop_store_journal = lambda conn: os.kill(os.getpid(), signal.SIGKILL)
    make_engine("sqlite:///" + sys.argv[1])
""")


def _kill_between_copy_and_drop(store_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILLED_MOVE, str(store_path)],
                          capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    with sqlite3.connect(store_path) as conn:  # the store still holds its copy, at v2
        assert conn.execute("SELECT count(*) FROM journal").fetchone() == (len(_SCANS),)


def test_a_move_killed_between_copy_and_drop_finishes_on_the_next_start(
        tmp_path: Path) -> None:
    store_path = _released(2, tmp_path / "gate.db")
    _kill_between_copy_and_drop(store_path)
    store, _journal = _open_both(store_path)
    assert schema_version(store) == SCHEMA_VERSION
    assert [row[1] for row in _scans(tmp_path / "gate-journal.db")] == \
        [row[1] for row in _SCANS]  # each scan once: the copy was not repeated


def test_a_half_finished_move_that_no_longer_matches_is_refused(tmp_path: Path) -> None:
    """Scans written to the old store after the copy would be lost by finishing the drop."""
    store_path = _released(2, tmp_path / "gate.db")
    _kill_between_copy_and_drop(store_path)
    with sqlite3.connect(store_path) as conn:
        conn.execute("INSERT INTO journal (scan_id, gate_id, barcode, direction, result,"
                     " reason, message, scanned_at, offline, upload_state) VALUES ('late',"
                     " 'north', 'OLDTICKET1', 'OUT', 'OK', 'CHECKED_OUT', '',"
                     " '2030-01-01T11:00:00.000Z', 1, 'pending')")
    with pytest.raises(StoreError, match="half-finished journal move") as info:
        make_engine(f"sqlite:///{store_path}")
    assert str(store_path) in str(info.value) and "\n" not in str(info.value)
    with sqlite3.connect(store_path) as conn:  # nothing was dropped
        assert conn.execute("SELECT count(*) FROM journal").fetchone() == (len(_SCANS) + 1,)


def test_a_journal_database_with_other_scans_is_not_merged_into(tmp_path: Path) -> None:
    other = Journal(make_journal_engine(f"sqlite:///{tmp_path / 'gate-journal.db'}"), "x")
    other.engine.dispose()
    with sqlite3.connect(tmp_path / "gate-journal.db") as conn:
        conn.execute("INSERT INTO journal (scan_id, gate_id, barcode, direction, result,"
                     " reason, message, scanned_at, offline, upload_state) VALUES ('x-1',"
                     " 'x', 'OTHERCODE', 'IN', 'OK', 'GRANTED', '', '2030-01-01T00:00:00Z',"
                     " 1, 'pending')")
    with pytest.raises(StoreError, match="already holds scans"):
        make_engine(f"sqlite:///{_released(2, tmp_path / 'gate.db')}")


def test_store_and_journal_sharing_one_database_upgrade_in_place(tmp_path: Path) -> None:
    """``journal_db`` set to the store's own URL: the journal stays where it is."""
    url = f"sqlite:///{_released(2, tmp_path / 'one.db')}"
    store = make_engine(url, journal_url=url)
    journal = make_journal_engine(url)
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    make_engine(fresh_url, journal_url=fresh_url)
    assert _schema(store) == _schema(make_journal_engine(fresh_url))
    assert [q.scan_id for q in Journal(journal, "north").pending("e1", 10)] == ["s-pending"]
    assert Journal(journal, "north").saved_clock_offset() == 12.5


def test_a_store_from_a_newer_release_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _released(1, tmp_path / "future.db")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer than this gate-scanner") as info:
        make_engine(f"sqlite:///{path}")
    assert str(path) in str(info.value)


def test_a_journal_from_a_newer_release_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    make_journal_engine(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE journal_meta SET value = ? WHERE key = 'schema_version'",
                     (str(JOURNAL_SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=f"{path}: journal schema .* is newer"):
        make_journal_engine(f"sqlite:///{path}")


def test_an_old_single_file_store_opened_as_the_journal_is_refused(tmp_path: Path) -> None:
    path = _released(2, tmp_path / "gate.db")
    with pytest.raises(StoreError, match="from before version 3, not a journal"):
        make_journal_engine(f"sqlite:///{path}")


def test_a_fault_without_a_driver_error_is_one_store_error_keeping_its_cause(
        tmp_path: Path) -> None:
    """SQLAlchemy's own errors (a pool timeout) carry no ``orig``; the handler read it and
    raised AttributeError instead of the StoreError."""
    def exhausted(*_args: Any) -> None:
        raise exc.TimeoutError("QueuePool limit reached")

    event.listen(Pool, "connect", exhausted)
    try:
        with pytest.raises(StoreError, match="QueuePool limit reached") as info:
            make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    finally:
        event.remove(Pool, "connect", exhausted)
    assert isinstance(info.value.__cause__, exc.TimeoutError)
    assert str(tmp_path / "gate.db") in str(info.value)


def test_schema_comparison_sees_a_missing_index(tmp_path: Path) -> None:
    """The comparison above can fail: a database lacking one index differs."""
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    damaged = make_engine(f"sqlite:///{tmp_path / 'damaged.db'}")
    with damaged.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_tickets_barcode")
    assert _schema(damaged) != _schema(fresh)


@pytest.mark.parametrize("kind", ["store", "journal"])
def test_processes_creating_a_fresh_database_at_once_all_get_it(tmp_path: Path,
                                                                 kind: str) -> None:
    """The daemon and the upload service may start on a fresh install together: the one
    that waits must find the schema the other created whole, never half of it (it took a
    half-created journal for a legacy store and refused it)."""
    import threading

    from scanner.databases import make_engine, make_journal_engine

    opened = make_journal_engine if kind == "journal" else make_engine
    for round_no in range(6):
        url = f"sqlite:///{tmp_path / f'{kind}-{round_no}.db'}"
        start = threading.Barrier(4)
        faults: list[BaseException] = []

        def open_it(url: str = url, start: threading.Barrier = start,
                    faults: list[BaseException] = faults) -> None:
            start.wait()
            try:
                opened(url).dispose()
            except BaseException as exc:
                faults.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert faults == []
